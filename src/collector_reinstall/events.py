"""Read an invocation's event: which collector to reinstall, on which ECS instances.

Four shapes are accepted (README.md, "Events"): an EventBridge CloudEvent, a batch of
them, a CloudMonitor system event, and a manual payload shaped like the API. Each
reads down to a :class:`ReinstallRequest`; anything else raises :class:`InvalidEvent`
naming the field at fault. This module imports no SDK, so rejecting a bad event in a
fresh instance costs only the standard library.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .errors import InvalidEvent, shorten
from .fields import (
    kind_of,
    object_field,
    optional_region,
    optional_text,
    required_text,
    text_list,
)
from .settings import REGION_PATTERN

COLLECTOR_ID_PATTERN = re.compile(r"ct-[a-z0-9]+(?:-[a-z0-9]+)*")
ECS_INSTANCE_ID_PATTERN = re.compile(r"i-[a-z0-9]{6,40}")
CLIENT_TOKEN_PATTERN = re.compile(r"[\x21-\x7e]{1,64}")
MAX_COLLECTOR_ID_CHARS = 64
MAX_BATCH_EVENTS = 1000
RESTART_TYPE = "nodeEcsId"

_COLLECTOR_ID_FIELDS = ("ResId", "resId", "collectorId")
_ARN_FIELDS = ("resourceId", "subject")
_NODE_FIELDS = ("nodes", "instanceIds", "ecsInstanceIds", "machines")
_MANUAL_FIELDS = frozenset(
    (*_COLLECTOR_ID_FIELDS, "resourceId", *_NODE_FIELDS, "restartType", "ClientToken", "regionId")
)


@dataclass(frozen=True)
class ReinstallRequest:
    """One collector to reinstall on some of its ECS instances, read from one event.

    ``ecs_instance_ids`` is ``None`` when the event names no nodes and the live
    state is to choose them. ``identity`` names the event itself (``source`` + ``id``
    of a CloudEvent, the ``id`` of a CloudMonitor event); it is ``None`` for a manual
    payload. ``position`` is the event's index in a batch, ``None`` outside one.
    """

    collector_id: str
    ecs_instance_ids: tuple[str, ...] | None
    shape: str
    region: str | None = None
    event_id: str | None = None
    identity: str | None = None
    client_token: str | None = None
    position: int | None = None


@dataclass(frozen=True)
class SweepRequest:
    """A timer trigger's event: look for failed installs across the region.

    ``collector_ids`` and ``names`` narrow the sweep when the trigger's payload
    gives them; empty means every collector.
    """

    trigger_time: datetime
    trigger_name: str
    collector_ids: tuple[str, ...] = ()
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReadOptions:
    """How strict reading is. Without ``nodes_required``, an event that names a
    collector and no nodes at all means "every machine of it that needs it"."""

    max_nodes: int = 500
    nodes_required: bool = True


@dataclass(frozen=True)
class EventBatch:
    """What one invocation carried: requests, and the events that were rejected."""

    items: tuple[ReinstallRequest | InvalidEvent, ...]
    is_batch: bool


def read_event(raw: object, options: ReadOptions | None = None) -> EventBatch | SweepRequest:
    """Read ``raw`` (bytes as FC delivers it, a str, or already parsed JSON).

    A single event that cannot be read raises :class:`InvalidEvent`. In a batch, each
    bad event becomes an :class:`InvalidEvent` item and the good ones are still read.
    A timer trigger's event reads as a :class:`SweepRequest`.
    """
    options = options or ReadOptions()
    decoded = _decode(raw)
    if isinstance(decoded, Mapping) and "triggerTime" in decoded and "triggerName" in decoded:
        return _read_timer_event(decoded)
    if isinstance(decoded, list):
        if not decoded:
            raise InvalidEvent("event", "is an empty batch: expected at least one event")
        if len(decoded) > MAX_BATCH_EVENTS:
            raise InvalidEvent(
                "event", f"is a batch of {len(decoded)} events; at most {MAX_BATCH_EVENTS}"
            )
        items: list[ReinstallRequest | InvalidEvent] = []
        for position, item in enumerate(decoded):
            try:
                items.append(_read_one(item, options, position))
            except InvalidEvent as rejection:
                items.append(rejection)
        return EventBatch(tuple(items), is_batch=True)
    return EventBatch((_read_one(decoded, options, None),), is_batch=False)


def _decode(raw: object) -> Any:
    if isinstance(raw, (bytes, bytearray, memoryview)):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as error:
            raise InvalidEvent("event", f"is not UTF-8 (byte {error.start})") from None
    if isinstance(raw, str):
        if not raw.strip():
            raise InvalidEvent("event", "is empty: expected a JSON object or array")
        try:
            return json.loads(raw)
        except json.JSONDecodeError as error:
            raise InvalidEvent(
                "event", f"is not JSON ({error.msg} at line {error.lineno} column {error.colno})"
            ) from None
        except RecursionError:
            raise InvalidEvent("event", "is nested too deeply to read") from None
        except ValueError as error:
            # json raises a plain ValueError for an integer past Python's digit limit.
            raise InvalidEvent("event", f"cannot be read: {error}") from None
    if isinstance(raw, (Mapping, list)):
        return raw
    raise InvalidEvent("event", f"is a {type(raw).__name__}: expected a JSON object or array")


def _read_one(event: object, options: ReadOptions, position: int | None) -> ReinstallRequest:
    where = "event" if position is None else f"event[{position}]"
    if not isinstance(event, Mapping):
        raise InvalidEvent(where, f"is {kind_of(event)}: expected a JSON object")
    if "specversion" in event:
        return _read_cloud_event(event, options, position)
    if "triggerTime" in event and "triggerName" in event:
        raise InvalidEvent(where, "is a timer trigger's event, which cannot be part of a batch")
    if "product" in event:
        return _read_cloudmonitor_event(event, options, position)
    return _read_manual_payload(event, options, position)


def _read_timer_event(event: Mapping[str, Any]) -> SweepRequest:
    """An FC timer trigger's event; its optional payload is a JSON object that narrows
    the sweep: ``{"collectorIds": [...], "names": [...]}``."""
    trigger_name = required_text(event, "triggerName", "")
    trigger_time = required_text(event, "triggerTime", "")
    moment: datetime | None = None
    try:
        parsed = datetime.fromisoformat(trigger_time.replace("Z", "+00:00"))
        if parsed.tzinfo is not None:
            moment = parsed.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        pass  # left None: reported below
    if moment is None:
        raise InvalidEvent(
            "triggerTime",
            f"is {shorten(trigger_time)}: expected a UTC time like 2026-12-03T08:00:00Z",
        )
    payload: Mapping[str, Any] = {}
    if event.get("payload") not in (None, ""):
        payload = object_field(event, "payload", "", trigger_name)
    unknown = sorted(str(key) for key in payload if key not in ("collectorIds", "names"))
    if unknown:
        raise InvalidEvent(f"payload.{unknown[0]}", "is not a sweep option: collectorIds, names")
    collector_ids = text_list(payload, "collectorIds", "payload.")
    for index, collector_id in enumerate(collector_ids):
        _check_collector_id(collector_id, f"payload.collectorIds[{index}]", None)
    return SweepRequest(
        trigger_time=moment,
        trigger_name=trigger_name,
        collector_ids=collector_ids,
        names=text_list(payload, "names", "payload."),
    )


def _read_cloud_event(
    event: Mapping[str, Any], options: ReadOptions, position: int | None
) -> ReinstallRequest:
    """An EventBridge CloudEvent 1.0: the collector and nodes are in ``data``."""
    prefix = "" if position is None else f"[{position}]."
    event_id = required_text(event, "id", prefix)
    source = required_text(event, "source", prefix, event_id)
    if event.get("specversion") != "1.0":
        raise InvalidEvent(
            f"{prefix}specversion",
            f"is {shorten(event.get('specversion'))}: expected '1.0'",
            event_id=event_id,
        )
    data = object_field(event, "data", prefix, event_id)
    subject = optional_text(event, "subject", prefix, event_id)
    return _read_target(
        data,
        f"{prefix}data.",
        options,
        shape="cloudevent",
        event_id=event_id,
        identity=f"cloudevent\n{source}\n{event_id}",
        position=position,
        outer_arn=(prefix + "subject", subject)
        if subject and subject.startswith("acs:")
        else None,
        outer_region=optional_region(event, "aliyunregionid", prefix, event_id),
    )


def _read_cloudmonitor_event(
    event: Mapping[str, Any], options: ReadOptions, position: int | None
) -> ReinstallRequest:
    """A CloudMonitor system event: ``resourceId`` is the collector's ARN."""
    prefix = "" if position is None else f"[{position}]."
    event_id = required_text(event, "id", prefix)
    product = required_text(event, "product", prefix, event_id)
    if product.lower() != "elasticsearch":
        raise InvalidEvent(
            f"{prefix}product",
            f"is {shorten(product)}: expected 'elasticsearch'",
            event_id=event_id,
        )
    content = object_field(event, "content", prefix, event_id)
    arn = optional_text(event, "resourceId", prefix, event_id)
    return _read_target(
        content,
        f"{prefix}content.",
        options,
        shape="cloudmonitor",
        event_id=event_id,
        identity=f"cloudmonitor\n{event_id}",
        position=position,
        outer_arn=(prefix + "resourceId", arn) if arn else None,
        outer_region=optional_region(event, "regionId", prefix, event_id),
    )


def _read_manual_payload(
    event: Mapping[str, Any], options: ReadOptions, position: int | None
) -> ReinstallRequest:
    """A payload shaped like the API, as a person would write it for ``s invoke``."""
    prefix = "" if position is None else f"[{position}]."
    unknown = sorted(str(key) for key in event if key not in _MANUAL_FIELDS)
    if unknown:
        raise InvalidEvent(
            prefix + unknown[0],
            "is not a field of any accepted event; a manual payload takes "
            + ", ".join(sorted(_MANUAL_FIELDS)),
        )
    token = optional_text(event, "ClientToken", prefix)
    if token is not None and not CLIENT_TOKEN_PATTERN.fullmatch(token):
        raise InvalidEvent(
            f"{prefix}ClientToken",
            f"is {shorten(token)}: expected 1 to 64 printable ASCII characters without spaces",
        )
    return _read_target(
        event,
        prefix,
        options,
        shape="manual",
        event_id=None,
        identity=None,
        position=position,
        client_token=token,
    )


def _read_target(
    body: Mapping[str, Any],
    prefix: str,
    options: ReadOptions,
    *,
    shape: str,
    event_id: str | None,
    identity: str | None,
    position: int | None,
    outer_arn: tuple[str, str] | None = None,
    outer_region: str | None = None,
    client_token: str | None = None,
) -> ReinstallRequest:
    """Read the collector, nodes, restart type and region from an event's body."""
    collector_id, arn_region = _read_collector_id(body, prefix, event_id, outer_arn)
    nodes = _read_nodes(body, prefix, event_id, options)

    restart_type = body.get("restartType", RESTART_TYPE)
    if restart_type != RESTART_TYPE:
        raise InvalidEvent(
            f"{prefix}restartType",
            f"is {shorten(restart_type)}: the only restart type is {RESTART_TYPE!r}",
            event_id=event_id,
        )

    regions = [
        (name, region)
        for name, region in (
            (prefix + "regionId", optional_region(body, "regionId", prefix, event_id)),
            ("the ARN", arn_region),
            ("the event's region", outer_region),
        )
        if region
    ]
    if len({region for _, region in regions}) > 1:
        described = ", ".join(f"{name} says {region}" for name, region in regions)
        raise InvalidEvent(
            prefix + "regionId", f"regions disagree: {described}", event_id=event_id
        )

    return ReinstallRequest(
        collector_id=collector_id,
        ecs_instance_ids=nodes,
        shape=shape,
        region=regions[0][1] if regions else None,
        event_id=event_id,
        identity=identity,
        client_token=client_token,
        position=position,
    )


def _read_collector_id(
    body: Mapping[str, Any],
    prefix: str,
    event_id: str | None,
    outer_arn: tuple[str, str] | None,
) -> tuple[str, str | None]:
    """Return the collector id every naming field agrees on, and the ARN's region."""
    named: list[tuple[str, str]] = []
    arn_region: str | None = None
    for field in _COLLECTOR_ID_FIELDS:
        value = optional_text(body, field, prefix, event_id)
        if value is not None:
            named.append((prefix + field, value))
    arns = [(prefix + field, body[field]) for field in _ARN_FIELDS if field in body]
    if outer_arn is not None:
        arns.append(outer_arn)
    for field, arn in arns:
        collector_id, region = _parse_arn(arn, field, event_id)
        named.append((field, collector_id))
        arn_region = arn_region or region

    if not named:
        raise InvalidEvent(
            prefix + "ResId",
            "is missing: name the collector with ResId, resId, collectorId or an ARN in "
            "resourceId",
            event_id=event_id,
        )
    for field, collector_id in named:
        _check_collector_id(collector_id, field, event_id)
    distinct = {collector_id for _, collector_id in named}
    if len(distinct) > 1:
        described = ", ".join(f"{field}={collector_id}" for field, collector_id in named)
        raise InvalidEvent(
            named[0][0], f"names more than one collector: {described}", event_id=event_id
        )
    return named[0][1], arn_region


def _parse_arn(arn: object, field: str, event_id: str | None) -> tuple[str, str | None]:
    """``acs:elasticsearch:<region>:<account>:collectors/<ResId>`` to (ResId, region)."""
    expected = "an ARN like acs:elasticsearch:<region>:<account>:collectors/<ResId>"
    if not isinstance(arn, str):
        raise InvalidEvent(field, f"is {kind_of(arn)}: expected {expected}", event_id=event_id)
    parts = arn.split(":")
    if len(parts) != 5 or parts[0] != "acs" or parts[1] != "elasticsearch":
        raise InvalidEvent(field, f"is {shorten(arn)}: expected {expected}", event_id=event_id)
    resource_type, _, collector_id = parts[4].partition("/")
    if resource_type != "collectors" or not collector_id:
        raise InvalidEvent(field, f"is {shorten(arn)}: expected {expected}", event_id=event_id)
    region = parts[2] or None
    if region is not None and not REGION_PATTERN.fullmatch(region):
        raise InvalidEvent(
            field,
            f"has region {shorten(region)}: expected one like cn-hangzhou",
            event_id=event_id,
        )
    return collector_id, region


def _check_collector_id(collector_id: str, field: str, event_id: str | None) -> None:
    # The id becomes part of the request path, so anything beyond the documented
    # alphabet (a slash, a dot, a percent sign) is refused rather than escaped.
    if len(collector_id) > MAX_COLLECTOR_ID_CHARS or not COLLECTOR_ID_PATTERN.fullmatch(
        collector_id
    ):
        raise InvalidEvent(
            field,
            f"is {shorten(collector_id)}: expected a collector id like ct-cn-0123abcd "
            "(lower-case letters, digits and dashes)",
            event_id=event_id,
        )


def _read_nodes(
    body: Mapping[str, Any], prefix: str, event_id: str | None, options: ReadOptions
) -> tuple[str, ...] | None:
    """The nodes the event lists; ``None`` when it lists none and need not."""
    present = [field for field in _NODE_FIELDS if field in body]
    if not present and not options.nodes_required:
        return None
    if not present:
        raise InvalidEvent(
            prefix + "nodes",
            "is missing: list the ECS instances in nodes, instanceIds, ecsInstanceIds or machines",
            event_id=event_id,
        )
    if len(present) > 1:
        raise InvalidEvent(
            prefix + present[1],
            f"is given together with {prefix}{present[0]}: list the nodes in exactly one field",
            event_id=event_id,
        )
    field = prefix + present[0]
    entries = body[present[0]]
    if not isinstance(entries, list):
        raise InvalidEvent(field, f"is {kind_of(entries)}: expected a list", event_id=event_id)
    if not entries:
        raise InvalidEvent(
            field, "is empty: expected at least one ECS instance", event_id=event_id
        )
    if len(entries) > options.max_nodes:
        raise InvalidEvent(
            field,
            f"lists {len(entries)} nodes; at most {options.max_nodes} are accepted in one event",
            event_id=event_id,
        )

    nodes: dict[str, None] = {}
    for index, entry in enumerate(entries):
        entry_field = f"{field}[{index}]"
        if present[0] == "machines":
            if not isinstance(entry, Mapping) or "instanceId" not in entry:
                raise InvalidEvent(
                    entry_field,
                    f"is {kind_of(entry)}: expected an object with instanceId",
                    event_id=event_id,
                )
            entry = entry["instanceId"]
            entry_field += ".instanceId"
        if not isinstance(entry, str) or not ECS_INSTANCE_ID_PATTERN.fullmatch(entry):
            raise InvalidEvent(
                entry_field,
                f"is {kind_of(entry)}: expected an ECS instance id like i-bp1abcdef0123456789",
                event_id=event_id,
            )
        nodes[entry] = None
    return tuple(nodes)
