#!/usr/bin/env python3
"""Does an event match an EventBridge event pattern? Offline, for the operators used here.

    python3 scripts/eventbridge_pattern.py '<pattern JSON>' events/eventbridge-cloudevent.json

A pattern is a JSON object shaped like the event. Where it holds an object, the
event's field must be an object that matches it; where it holds a list, the event's
field (or, for a list field, any of its elements) must satisfy one of the list's
conditions:

* a string, number, boolean or null: equal to it;
* ``{"prefix": "..."}``, ``{"suffix": "..."}``;
* ``{"anything-but": value | [values] | {"prefix": "..."}}``: present and not that;
* ``{"exists": true | false}``;
* ``{"numeric": [">", 0, "<=", 5]}``.

A field the event lacks satisfies only ``{"exists": false}``. Other operators (``cidr``,
for one) raise :class:`PatternError` rather than being guessed at.
"""

from __future__ import annotations

import json
import operator
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

_MISSING = object()
_NUMERIC: dict[str, Callable[[float, float], bool]] = {
    "=": operator.eq,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


class PatternError(ValueError):
    """The pattern is not one this matcher understands; the message says where."""


def parse(text: str) -> dict[str, Any]:
    """Read a pattern from its JSON text and check every condition in it."""
    try:
        pattern = json.loads(text)
    except json.JSONDecodeError as error:
        raise PatternError(f"the pattern is not JSON: {error}") from None
    if not isinstance(pattern, dict):
        raise PatternError("the pattern is not a JSON object")
    _check(pattern, "")
    return pattern


def matches(pattern: Mapping[str, Any], event: object) -> bool:
    """True if ``event`` (a parsed JSON event) satisfies every field of ``pattern``."""
    if not isinstance(event, Mapping):
        return False
    for name, expected in pattern.items():
        value = event.get(name, _MISSING)
        if isinstance(expected, Mapping):
            if not matches(expected, value):
                return False
        elif not _field_matches(expected, value):
            return False
    return True


def _field_matches(conditions: Sequence[Any], value: object) -> bool:
    if isinstance(value, list):
        return any(_satisfies(condition, item) for condition in conditions for item in value)
    return any(_satisfies(condition, value) for condition in conditions)


def _satisfies(condition: object, value: object) -> bool:
    if not isinstance(condition, Mapping):
        return value is not _MISSING and _equal(condition, value)
    (operator_name, argument), *_ = condition.items()
    if operator_name == "exists":
        return (value is not _MISSING) is argument
    if value is _MISSING:
        return False
    if operator_name == "prefix":
        return isinstance(value, str) and value.startswith(argument)
    if operator_name == "suffix":
        return isinstance(value, str) and value.endswith(argument)
    if operator_name == "anything-but":
        return not _anything_but_excludes(argument, value)
    if operator_name == "numeric":
        return _numeric(argument, value)
    raise PatternError(f"unknown operator {operator_name!r}")


def _anything_but_excludes(excluded: object, value: object) -> bool:
    if isinstance(excluded, Mapping):
        return isinstance(value, str) and value.startswith(excluded["prefix"])
    if isinstance(excluded, list):
        return any(_equal(item, value) for item in excluded)
    return _equal(excluded, value)


def _numeric(comparisons: Sequence[Any], value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    pairs = zip(comparisons[::2], comparisons[1::2], strict=True)
    return all(_NUMERIC[symbol](value, bound) for symbol, bound in pairs)


def _equal(expected: object, value: object) -> bool:
    """JSON equality: ``true`` is not ``1``, and ``1`` is ``1.0``."""
    if isinstance(expected, bool) or isinstance(value, bool):
        return type(expected) is type(value) and expected == value
    return expected == value


def _check(pattern: Mapping[str, Any], path: str) -> None:
    if not pattern:
        raise PatternError(f"{path or 'the pattern'} is an empty object")
    for name, expected in pattern.items():
        where = f"{path}.{name}" if path else name
        if isinstance(expected, Mapping):
            _check(expected, where)
        elif not isinstance(expected, list) or not expected:
            raise PatternError(f"{where} must be a non-empty list of conditions or an object")
        else:
            for condition in expected:
                _check_condition(condition, where)


def _check_condition(condition: object, where: str) -> None:
    if not isinstance(condition, Mapping):
        if isinstance(condition, list):
            raise PatternError(f"{where} holds a list inside its list of conditions")
        return
    if len(condition) != 1:
        raise PatternError(f"{where}: a condition object takes exactly one operator")
    (operator_name, argument), *_ = condition.items()
    valid = {
        "prefix": isinstance(argument, str),
        "suffix": isinstance(argument, str),
        "exists": isinstance(argument, bool),
        "anything-but": _valid_anything_but(argument),
        "numeric": _valid_numeric(argument),
    }
    if operator_name not in valid:
        raise PatternError(f"{where}: operator {operator_name!r} is not supported here")
    if not valid[operator_name]:
        raise PatternError(f"{where}: {operator_name} has an invalid argument {argument!r}")


def _valid_anything_but(argument: object) -> bool:
    if isinstance(argument, Mapping):
        return list(argument) == ["prefix"] and isinstance(argument["prefix"], str)
    if isinstance(argument, list):
        return bool(argument) and not any(isinstance(item, (list, dict)) for item in argument)
    return not isinstance(argument, dict)


def _valid_numeric(argument: object) -> bool:
    if not isinstance(argument, list) or not argument or len(argument) % 2:
        return False
    symbols, bounds = argument[::2], argument[1::2]
    return all(symbol in _NUMERIC for symbol in symbols) and all(
        isinstance(bound, (int, float)) and not isinstance(bound, bool) for bound in bounds
    )


def main(argv: Sequence[str]) -> int:
    """Print, for each event file (a batch file counts each of its events), whether it
    matches the pattern; exit 1 if any does not."""
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    pattern = parse(argv[0])
    unmatched = 0
    for name in argv[1:]:
        document = json.loads(Path(name).read_text(encoding="utf-8"))
        for position, event in enumerate(document if isinstance(document, list) else [document]):
            matched = matches(pattern, event)
            unmatched += not matched
            label = f"{name}[{position}]" if isinstance(document, list) else name
            print(f"{'matches' if matched else 'does not match'}: {label}")
    return 1 if unmatched else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
