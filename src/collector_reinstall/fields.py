"""Read one field of an event, and say exactly what is wrong with it when it cannot be.

Each reader takes the dotted ``prefix`` of the object it looks in (``data.``,
``[2].content.``) so that an :class:`InvalidEvent` names the field as the event's
author would find it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .errors import InvalidEvent, shorten
from .settings import REGION_PATTERN


def text_list(body: Mapping[str, Any], field: str, prefix: str) -> tuple[str, ...]:
    values = body.get(field, [])
    if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
        raise InvalidEvent(prefix + field, f"is {kind_of(values)}: expected a list of strings")
    for index, value in enumerate(values):
        check_encodable(value, f"{prefix}{field}[{index}]", None)
    return tuple(values)


def required_text(
    event: Mapping[str, Any], field: str, prefix: str, event_id: str | None = None
) -> str:
    value = optional_text(event, field, prefix, event_id)
    if value is None:
        raise InvalidEvent(prefix + field, "is missing", event_id=event_id)
    return value


def optional_text(
    event: Mapping[str, Any], field: str, prefix: str, event_id: str | None = None
) -> str | None:
    if field not in event or event[field] is None:
        return None
    value = event[field]
    if not isinstance(value, str) or not value.strip():
        raise InvalidEvent(
            prefix + field,
            f"is {kind_of(value)}: expected a non-empty string",
            event_id=event_id,
        )
    check_encodable(value, prefix + field, event_id)
    return value


def check_encodable(value: str, field: str, event_id: str | None) -> None:
    # JSON can carry a lone surrogate ("\ud800"), which no UTF-8 text holds: such an id
    # could be neither hashed into a token nor logged faithfully.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidEvent(
            field, "holds a character that is not valid Unicode (a lone surrogate)"
        ) from None


def optional_region(
    event: Mapping[str, Any], field: str, prefix: str, event_id: str | None
) -> str | None:
    # The region becomes part of the endpoint's host name: only region ids pass.
    region = optional_text(event, field, prefix, event_id)
    if region is not None and not REGION_PATTERN.fullmatch(region):
        raise InvalidEvent(
            prefix + field,
            f"is {shorten(region)}: expected a region id like cn-hangzhou",
            event_id=event_id,
        )
    return region


def object_field(
    event: Mapping[str, Any], field: str, prefix: str, event_id: str
) -> Mapping[str, Any]:
    """An object, or the same object serialised as a JSON string (CloudMonitor does both)."""
    if field not in event:
        raise InvalidEvent(prefix + field, "is missing", event_id=event_id)
    value = event[field]
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            raise InvalidEvent(
                prefix + field, "is a string that is not a JSON object", event_id=event_id
            ) from None
    if not isinstance(value, Mapping):
        raise InvalidEvent(
            prefix + field,
            f"is {kind_of(value)}: expected a JSON object",
            event_id=event_id,
        )
    return value


def kind_of(value: object) -> str:
    """Describe a JSON value by its type, with the value itself when it is short."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    name = names.get(type(value), "a number" if isinstance(value, (int, float)) else "a value")
    if isinstance(value, (dict, list)):
        return name
    return f"{name} {shorten(value)}"
