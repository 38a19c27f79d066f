"""Decide what to ask of the API: one reinstall per collector, under one ClientToken.

Events of one batch that name the same collector are merged into one request for
the union of their nodes, so a burst of events costs one call per collector. A
request that stands alone keeps the token of its event; a merged one takes a token
derived from the sorted tokens of its events, which a redelivery of the same batch
derives again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .events import ReinstallRequest
from .tokens import client_token


@dataclass(frozen=True)
class PlannedReinstall:
    """One ReinstallCollector to make. ``ecs_instance_ids`` is ``None`` until the live
    state has chosen the nodes of an event that named none."""

    collector_id: str
    region: str | None
    ecs_instance_ids: tuple[str, ...] | None
    client_token: str
    events: tuple[ReinstallRequest, ...]

    @property
    def event_ids(self) -> list[str]:
        return [event.event_id for event in self.events if event.event_id]


def plan_reinstalls(
    requests: list[ReinstallRequest], fc_request_id: str | None
) -> list[PlannedReinstall]:
    """Group ``requests`` by collector and region, keeping the order of first mention."""
    groups: dict[tuple[str, str | None], list[ReinstallRequest]] = {}
    for request in requests:
        groups.setdefault((request.collector_id, request.region), []).append(request)

    plans = []
    for (collector_id, region), members in groups.items():
        tokens = [client_token(member, fc_request_id) for member in members]
        named = [member.ecs_instance_ids for member in members]
        nodes: tuple[str, ...] | None
        if None in named:
            # An event that names no nodes asks for every machine that needs it, which
            # covers whatever the other events of the batch name.
            nodes = None
        elif len(members) == 1:
            nodes = named[0]
        else:
            # Sorted, so that the same events in another order make the same request.
            nodes = tuple(sorted({node for ids in named for node in ids or ()}))
        plans.append(
            PlannedReinstall(
                collector_id=collector_id,
                region=region,
                ecs_instance_ids=nodes,
                client_token=tokens[0] if len(set(tokens)) == 1 else _merged(tokens),
                events=tuple(members),
            )
        )
    return plans


def _merged(tokens: list[str]) -> str:
    # Limitation: an event redelivered later on its own carries its own token, not this
    # one, and so reinstalls again; the look at the live state is the guard there.
    digest = hashlib.sha256("\n".join(("v1", "m", *sorted(set(tokens)))).encode("ascii"))
    return f"cr-m-{digest.hexdigest()[:48]}"
