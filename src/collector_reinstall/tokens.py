"""Derive the ClientToken that makes every retry of one event the same request.

Function Compute retries a failed asynchronous invocation, EventBridge may deliver an
event twice, and the handler retries transient failures itself. All of these must
reach ReinstallCollector as one request, so the token is a pure function of the event:

1. a ``ClientToken`` written in a manual payload is used as it is;
2. else the event's own identity (CloudEvent ``source`` + ``id``, CloudMonitor
   ``id``), which every redelivery of the event repeats;
3. else the FC request id, which FC keeps across the async retries of one invocation,
   with the event's place in the batch;
4. else a hash of what is asked (collector and nodes), the only thing left to go by.

Derived tokens are ``cr-`` + a letter for the rule (``e``, ``r``, ``c``) + ``-`` + 48
hex digits of a SHA-256: 53 ASCII characters, within the API's 64. The collector id
is part of every hash, so one event can never lend its token to another collector.

Two more rules serve the live-state check and the sweep. When the check narrows an
event's nodes, the request differs from the one the event alone would make, so it
gets its own token (``n``: the event's token and the nodes sent); a retry that sees
the same state sends the same request under the same token, and one that sees a
different state never reuses a token for a different request. A sweep has no event
identity: its token is the collector, its nodes and the sweep window (``s``).
"""

from __future__ import annotations

import hashlib

from .events import ReinstallRequest

_VERSION = "v1"


def client_token(request: ReinstallRequest, fc_request_id: str | None) -> str:
    """Return the ClientToken for ``request``, following the rules above."""
    # Limitation: how long the service remembers a token is not documented; a delivery
    # that comes much later may reinstall again, unless the live state says otherwise.
    if request.client_token is not None:
        return request.client_token
    if request.identity is not None:
        return _derive("e", request.identity, request.collector_id)
    if fc_request_id:
        return _derive("r", fc_request_id, str(request.position), request.collector_id)
    return _derive("c", request.collector_id, *sorted(request.ecs_instance_ids or ("*",)))


def narrowed_token(event_token: str, ecs_instance_ids: tuple[str, ...]) -> str:
    """The token for a request whose nodes the live state chose among the event's."""
    return _derive("n", event_token, *sorted(ecs_instance_ids))


def sweep_token(collector_id: str, ecs_instance_ids: tuple[str, ...], window: int) -> str:
    """The token of a sweep's reinstall: the same within one window, new in the next."""
    return _derive("s", collector_id, str(window), *sorted(ecs_instance_ids))


def _derive(rule: str, *parts: str) -> str:
    digest = hashlib.sha256("\n".join((_VERSION, rule, *parts)).encode("utf-8"))
    return f"cr-{rule}-{digest.hexdigest()[:48]}"
