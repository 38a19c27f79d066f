"""Generated events, valid and broken: reading never fails any other way than InvalidEvent,
a rejected event calls nothing, and a valid event reads to the same ids and token however
it is formatted.

The strategies build a valid event of every accepted shape, then break it: drop a field,
put a random JSON value, a hostile string (path characters, unicode, ...), a list too
long or a nesting too deep in its place, or damage the bytes (cut short, not UTF-8).
Examples are derandomised and bounded, so a run is repeatable and quick.

The inputs that still escape as another exception are pinned at the end of the file as
strict expected failures; the strategies step around them until they are fixed.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as hypothesis_event
from hypothesis import strategies as st

from collector_reinstall import CollectorReinstallError, InvalidEvent, InvocationFailed
from collector_reinstall.events import (
    COLLECTOR_ID_PATTERN,
    ECS_INSTANCE_ID_PATTERN,
    MAX_COLLECTOR_ID_CHARS,
    EventBatch,
    ReadOptions,
    ReinstallRequest,
    SweepRequest,
    read_event,
)
from collector_reinstall.handler import handle
from collector_reinstall.plan import plan_reinstalls
from collector_reinstall.tokens import client_token, narrowed_token
from index import handler
from tests.conftest import STS_KEY_ID, STS_SECRET, STS_TOKEN, as_bytes
from tests.emulators.collector_api import CollectorApiEmulator
from tests.fc_context import Credentials, Python310Context

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# The documented forms (README, "Events it accepts"), written out again here rather than
# imported, so that a looser pattern in events.py fails these tests.
DOCUMENTED_COLLECTOR_ID = re.compile(r"ct-[a-z0-9]+(?:-[a-z0-9]+)*")
DOCUMENTED_ECS_INSTANCE_ID = re.compile(r"i-[a-z0-9]{6,40}")
DOCUMENTED_REGION = re.compile(r"[a-z]{2,}(?:-[a-z0-9]+){1,3}")
TOKEN_PATTERN = re.compile(r"[\x21-\x7e]{1,64}")
DERIVED_TOKEN_PATTERN = re.compile(r"cr-[ecrmn]-[0-9a-f]{48}")
ACCOUNT = "1234567890123456"
#: Stands for a nesting too deep to build as Python objects; spliced into the JSON text.
DEEP = "\x00deep\x00"
FIELD_NAMES = (
    "id",
    "source",
    "specversion",
    "subject",
    "data",
    "product",
    "content",
    "resourceId",
    "regionId",
    "aliyunregionid",
    "ResId",
    "resId",
    "collectorId",
    "nodes",
    "instanceIds",
    "ecsInstanceIds",
    "machines",
    "instanceId",
    "agentStatus",
    "restartType",
    "ClientToken",
    "triggerTime",
    "triggerName",
    "payload",
    "collectorIds",
    "names",
)
HOSTILE_STRINGS = (
    # Lone surrogates: JSON can carry them ("\ud800"), no UTF-8 text can.
    "\ud800",
    "evt-\udfff-1",
    "",
    " ",
    "/",
    "%",
    "?",
    "..",
    "ct-cn-1/../../instances",
    "ct-cn-1%2F..%2F..",
    "ct-cn-1?ClientToken=other",
    "ct-cn-1#fragment",
    "ct-cn-1\n",
    "ct-cn-1\x00",
    "ct-cn-\u0131",  # dotless i: lower-case, but not ASCII
    "ct-cn-\uff41bc",  # fullwidth a
    "CT-CN-ABC",
    "ct-" + "a" * 62,
    "i-abcdef\u200b",
    "i-ABCDEF0123",
    "i-abc",
    "i-" + "a" * 41,
    "acs:elasticsearch:cn-hangzhou:1:collectors/ct-cn-1/../x",
    "acs:elasticsearch::1:collectors/",
    "acs:elasticsearch:cn-hangzhou.evil.com:1:collectors/ct-cn-1",
    "acs:elasticsearch:cn-hangzhou:1:collectors/ct-cn-1:extra",
    "cn-hangzhou.evil.com",
    "1.0 ",
    "nodeEcsId ",
    "elasticsearch\u0000",
    "\u4e2d\u6587",
    "\U0001f600",
    "null",
    "instanceId",
    "[]",
    "{}",
    '{"nodes": ["i-abcdef"]}',
    "2026-12-03T08:00:00",
    "0001-01-01T00:00:00Z",
)
INVALID_UTF8 = (b"\xff", b"\x80", b"\xc0\x80", b"\xc3\x28", b"\xed\xa0\x80", b"\xf5\x80\x80\x80")
UTC_OFFSETS = (
    timezone.utc,
    timezone(timedelta(hours=8)),
    timezone(timedelta(hours=-5, minutes=-30)),
    timezone(timedelta(hours=14)),
)


# -- valid events ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Generated:
    """A valid event as parsed JSON, and what reading it must give: per event in order,
    the collector and the nodes (de-duplicated; None when it names none)."""

    event: Any
    asks: tuple[tuple[str, tuple[str, ...] | None], ...]


collector_ids = st.from_regex(r"ct-[a-z0-9]{1,12}(-[a-z0-9]{1,8}){0,4}", fullmatch=True)
node_ids = st.from_regex(r"i-[a-z0-9]{6,40}", fullmatch=True)
regions = st.sampled_from(("cn-hangzhou", "cn-beijing", "ap-southeast-1", "eu-central-1"))
event_ids = st.text(min_size=1, max_size=40).filter(str.strip)
client_tokens = st.from_regex(r"[\x21-\x7e]{1,64}", fullmatch=True)
request_ids = st.uuids().map(str)


def _arn(collector_id: str, region: str) -> str:
    return f"acs:elasticsearch:{region}:{ACCOUNT}:collectors/{collector_id}"


@st.composite
def collector_naming(
    draw: st.DrawFn, collector_id: str, region: str, *, fields: tuple[str, ...]
) -> dict[str, str]:
    """One or two of ``fields`` naming the same collector, an ARN for ``resourceId``."""
    chosen = draw(st.lists(st.sampled_from(fields), min_size=1, max_size=2, unique=True))
    arn_region = draw(st.sampled_from((region, "")))
    return {
        name: _arn(collector_id, arn_region) if name == "resourceId" else collector_id
        for name in chosen
    }


@st.composite
def node_naming(draw: st.DrawFn, nodes: list[str]) -> dict[str, Any]:
    name = draw(st.sampled_from(("nodes", "instanceIds", "ecsInstanceIds", "machines")))
    if name != "machines":
        return {name: nodes}
    status = draw(st.sampled_from(("failed", "heartOk", None)))
    return {name: [{"instanceId": node, "agentStatus": status} for node in nodes]}


@st.composite
def event_target(
    draw: st.DrawFn, *, collector_fields: tuple[str, ...], named_elsewhere: bool = False
) -> tuple[dict[str, Any], str, str, tuple[str, ...] | None]:
    """The body naming a collector and nodes: (body, collector id, region, nodes)."""
    collector_id, region = draw(collector_ids), draw(regions)
    body: dict[str, Any] = {}
    if not named_elsewhere or draw(st.booleans()):
        body.update(draw(collector_naming(collector_id, region, fields=collector_fields)))
    nodes: tuple[str, ...] | None = None
    # Without nodes the live state chooses; only valid when nodes are not required.
    if draw(st.integers(0, 9)) > 0:
        listed = draw(st.lists(node_ids, min_size=1, max_size=6))
        body.update(draw(node_naming(listed)))
        nodes = tuple(dict.fromkeys(listed))
    if draw(st.booleans()):
        body["restartType"] = "nodeEcsId"
    if draw(st.booleans()):
        body["regionId"] = region
    return body, collector_id, region, nodes


@st.composite
def cloud_events(draw: st.DrawFn) -> Generated:
    with_subject = draw(st.booleans())
    data, collector_id, region, nodes = draw(
        event_target(
            collector_fields=("ResId", "resId", "collectorId", "resourceId"),
            named_elsewhere=with_subject,
        )
    )
    if draw(st.booleans()):
        data["status"] = draw(st.sampled_from(("failed", 3, None)))
    event: dict[str, Any] = {
        "id": draw(event_ids),
        "source": draw(event_ids),
        "specversion": "1.0",
        "type": "elasticsearch:Collector:InstallFailed",
        "data": data,
    }
    if with_subject:
        event["subject"] = _arn(collector_id, draw(st.sampled_from((region, ""))))
    elif draw(st.booleans()):
        event["subject"] = "collector install failed"  # not an ARN: ignored
    if draw(st.booleans()):
        event["aliyunregionid"] = region
    if draw(st.booleans()):
        event.update(time="2026-12-03T08:00:00Z", aliyunaccountid=ACCOUNT)
    return Generated(event, ((collector_id, nodes),))


@st.composite
def cloudmonitor_events(draw: st.DrawFn) -> Generated:
    with_arn = draw(st.booleans())
    content, collector_id, region, nodes = draw(
        event_target(
            collector_fields=("ResId", "resId", "collectorId", "resourceId"),
            named_elsewhere=with_arn,
        )
    )
    event: dict[str, Any] = {
        "id": draw(event_ids),
        "product": draw(st.sampled_from(("elasticsearch", "Elasticsearch", "ELASTICSEARCH"))),
        "level": "WARN",
        "content": json.dumps(content) if draw(st.booleans()) else content,
    }
    if with_arn:
        event["resourceId"] = _arn(collector_id, draw(st.sampled_from((region, ""))))
    if draw(st.booleans()):
        event["regionId"] = region
    return Generated(event, ((collector_id, nodes),))


@st.composite
def manual_payloads(draw: st.DrawFn) -> Generated:
    payload, collector_id, _, nodes = draw(
        event_target(collector_fields=("ResId", "resId", "collectorId", "resourceId"))
    )
    if draw(st.booleans()):
        payload["ClientToken"] = draw(client_tokens)
    return Generated(payload, ((collector_id, nodes),))


single_events = st.one_of(cloud_events(), cloudmonitor_events(), manual_payloads())


@st.composite
def batches(draw: st.DrawFn) -> Generated:
    members = draw(st.lists(st.one_of(cloud_events(), single_events), min_size=1, max_size=4))
    return Generated(
        [member.event for member in members], tuple(ask for m in members for ask in m.asks)
    )


@st.composite
def timer_events(draw: st.DrawFn) -> dict[str, Any]:
    moment = draw(st.datetimes(timezones=st.sampled_from(UTC_OFFSETS)))
    text = moment.isoformat()
    payload: object = draw(st.sampled_from(("", None)))
    if draw(st.booleans()):
        narrowing = {"collectorIds": draw(st.lists(collector_ids, max_size=3))}
        if draw(st.booleans()):
            narrowing["names"] = draw(st.lists(event_ids, max_size=3))
        payload = json.dumps(narrowing) if draw(st.booleans()) else narrowing
    return {
        "triggerTime": text.replace("+00:00", "Z") if draw(st.booleans()) else text,
        "triggerName": draw(event_ids),
        "payload": payload,
    }


valid_events = st.one_of(single_events, batches())


# -- broken events ---------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),  # NaN and infinities too: json writes and reads them
    st.text(max_size=20),
    st.sampled_from(HOSTILE_STRINGS),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=8), children, max_size=4),
    ),
    max_leaves=12,
)
hostile_strings = st.one_of(
    st.sampled_from(HOSTILE_STRINGS),
    st.text(alphabet=st.sampled_from("ct-i/%?.:#\\ \t\u00e9\u4e2d\U0001f600\x00"), max_size=30),
    st.text(max_size=30),
    st.builds("{}{}".format, st.sampled_from(("ct-", "i-", "acs:elasticsearch:")), st.text()),
)


def _positions(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path of every value inside ``value``, ``value`` itself first."""
    yield path
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _positions(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _positions(child, (*path, index))


def _put(event: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    parent = event
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return event


def _drop(event: Any, path: tuple[Any, ...]) -> Any:
    if not path:
        return {}
    parent = event
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    return event


@st.composite
def mutated_events(draw: st.DrawFn) -> Any:
    """A valid event (or timer event) with one to three of its values broken."""
    event = json.loads(json.dumps(draw(st.one_of(valid_events.map(_event_of), timer_events()))))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(_positions(event))))
        current = _get(event, path)
        mutation = draw(
            st.sampled_from(
                ("drop", "json", "string", "wrong type", "huge list", "deep", "as string")
            )
        )
        if mutation == "drop":
            event = _drop(event, path)
        elif mutation == "json":
            event = _put(event, path, draw(json_values))
        elif mutation == "string":
            event = _put(event, path, draw(hostile_strings))
        elif mutation == "wrong type":
            event = _put(event, path, _another_type(current, draw(json_scalars)))
        elif mutation == "huge list":
            size = draw(st.sampled_from((500, 501, 1000, 1001, 5000)))
            item = current[0] if isinstance(current, list) and current else "i-bp1abcdef"
            event = _put(event, path, [item] * size if draw(st.booleans()) else _nodes(size))
        elif mutation == "deep":
            event = _put(event, path, DEEP)
        else:
            event = _put(event, path, json.dumps(current)[: draw(st.integers(0, 200))])
    return event


@st.composite
def events_with_a_near_miss(draw: st.DrawFn) -> Any:
    """A valid event with one value a step away from what was there: a string (an id, an
    ARN, a region, a token) with a character more, changed case, repeated or hostile; or
    an object inside it given as the list of its keys, as its JSON text, or in a list."""
    event = json.loads(json.dumps(draw(valid_events.map(_event_of))))
    inside = [path for path in _positions(event) if isinstance(_get(event, path), (str, dict))]
    path = draw(st.sampled_from(inside))
    current = _get(event, path)
    if isinstance(current, dict):
        return _put(
            event, path, draw(st.sampled_from((list(current), json.dumps(current), [current])))
        )
    near_misses = st.one_of(
        st.builds(
            lambda inserted, at: current[:at] + inserted + current[at:],
            st.sampled_from("/%?.#:;\n\x00 \u0131\uff41A_-"),
            st.integers(0, len(current)),
        ),
        st.sampled_from(
            (current.upper(), current * 3, current[:-1], current + "-", "-" + current)
        ),
    )
    return _put(event, path, draw(st.one_of(near_misses, hostile_strings)))


def _event_of(generated: Generated) -> Any:
    return generated.event


def _get(event: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        event = event[key]
    return event


def _another_type(current: Any, scalar: Any) -> Any:
    if isinstance(current, str):
        return [current] if isinstance(scalar, str) else scalar
    if isinstance(current, list):
        return {"0": current[0]} if current else "[]"
    if isinstance(current, dict):
        return list(current)
    return str(current)


def _nodes(count: int) -> list[str]:
    return [f"i-bp1{number:017d}" for number in range(count)]


@st.composite
def event_bytes(draw: st.DrawFn, events: st.SearchStrategy[Any]) -> bytes:
    """An event serialised, perhaps spliced with a deep nesting, then perhaps damaged."""
    text = json.dumps(draw(events), indent=draw(st.sampled_from((None, 2))))
    if json.dumps(DEEP) in text:
        depth = draw(st.sampled_from((10, 900, 990, 1000, 5000, 100_000)))
        opener = draw(st.sampled_from(("[", '{"a":')))
        closer = "]" if opener == "[" else "}"
        text = text.replace(json.dumps(DEEP), opener * depth + "1" + closer * depth)
    raw = text.encode("utf-8")
    damage = draw(st.sampled_from(("none", "none", "truncate", "not utf-8", "byte", "bom")))
    position = draw(st.integers(0, len(raw)))
    if damage == "truncate":
        return raw[:position]
    if damage == "not utf-8":
        return raw[:position] + draw(st.sampled_from(INVALID_UTF8)) + raw[position:]
    if damage == "byte":
        return raw[:position] + bytes([draw(st.integers(0, 255))]) + raw[position + 1 :]
    if damage == "bom":
        return b"\xef\xbb\xbf" + raw
    return raw


@st.composite
def deeply_nested(draw: st.DrawFn) -> bytes:
    """A nesting of lists or objects, whole or cut short, alone or as an event's value."""
    depth = draw(st.sampled_from((900, 990, 1000, 5000, 100_000)))
    opener, closer = draw(st.sampled_from((("[", "]"), ('{"nodes":', "}"))))
    nested = opener * depth + (closer * depth if draw(st.booleans()) else "")
    field = draw(st.sampled_from(("", "nodes", "restartType", "specversion", "content", "text")))
    if field == "text":
        # CloudMonitor's content as a JSON string, nested too deeply to read.
        text = json.dumps("[" * depth + "]" * depth)
        nested = f'{{"id": "e", "product": "elasticsearch", "content": {text}}}'
    elif field:
        nested = '{"id": "e", "product": "elasticsearch", "specversion": "1.0", "data": {}, '
        nested += f'"{field}": ' + opener * depth + "1" + closer * depth + "}"
    return nested.encode()


broken_events = st.one_of(
    event_bytes(mutated_events()),
    events_with_a_near_miss().map(as_bytes),
    event_bytes(valid_events.map(_event_of)),
    deeply_nested(),
    st.binary(max_size=200),
    st.sampled_from((b"", b" ", b"[]", b"{}", b"null", b"[[]]", b"[null]", b'"x"', b"1e999")),
)


def _as_delivered(raw: bytes, form: str) -> object:
    """``raw`` in one of the forms read_event takes: bytes, str or parsed JSON."""
    if form == "bytearray":
        return bytearray(raw)
    if form == "memoryview":
        return memoryview(raw)
    if form in ("str", "parsed"):
        text = raw.decode("utf-8", errors="surrogateescape")
        if form == "str":
            return text
        try:
            return json.loads(text)
        except (ValueError, RecursionError):
            return text
    return raw


def _all_rejected(raw: bytes, options: ReadOptions) -> bool:
    """Whether reading rejects the whole event (every event of a batch)."""
    try:
        batch = read_event(raw, options)
    except InvalidEvent:
        return True
    return isinstance(batch, EventBatch) and all(
        isinstance(item, InvalidEvent) for item in batch.items
    )


# -- (a) reading fails only with InvalidEvent -----------------------------------------------


def _read(event: object, options: ReadOptions) -> EventBatch | SweepRequest | InvalidEvent:
    """What reading gives, the rejection included; any other exception goes through."""
    try:
        return read_event(event, options)
    except InvalidEvent as rejection:
        return rejection


def _assert_documented(request: ReinstallRequest, options: ReadOptions) -> None:
    assert DOCUMENTED_COLLECTOR_ID.fullmatch(request.collector_id)
    assert len(request.collector_id) <= 64
    if request.ecs_instance_ids is None:
        assert not options.nodes_required
    else:
        assert 0 < len(request.ecs_instance_ids) <= options.max_nodes
        assert all(DOCUMENTED_ECS_INSTANCE_ID.fullmatch(n) for n in request.ecs_instance_ids)
    assert request.region is None or DOCUMENTED_REGION.fullmatch(request.region)
    assert request.client_token is None or TOKEN_PATTERN.fullmatch(request.client_token)


@FUZZ
@given(
    raw=broken_events,
    form=st.sampled_from(("bytes", "bytearray", "memoryview", "str", "parsed")),
    options=st.builds(
        ReadOptions,
        max_nodes=st.one_of(st.just(500), st.integers(1, 600)),
        nodes_required=st.booleans(),
    ),
)
def test_reading_any_broken_event_fails_only_with_invalid_event(
    raw: bytes, form: str, options: ReadOptions
) -> None:
    accepted = _read(_as_delivered(raw, form), options)

    hypothesis_event("rejected" if isinstance(accepted, InvalidEvent) else "accepted")
    if isinstance(accepted, InvalidEvent):
        assert accepted.field
        assert accepted.message
        return
    # Whatever gets through has the documented ids, however broken the rest was.
    if isinstance(accepted, SweepRequest):
        assert all(DOCUMENTED_COLLECTOR_ID.fullmatch(each) for each in accepted.collector_ids)
        return
    for request in accepted.items:
        if isinstance(request, ReinstallRequest):
            _assert_documented(request, options)


@FUZZ
@given(event=events_with_a_near_miss(), nodes_required=st.booleans())
def test_event_with_one_value_a_step_off_is_rejected_or_reads_to_documented_ids(
    event: Any, nodes_required: bool
) -> None:
    options = ReadOptions(nodes_required=nodes_required)

    accepted = _read(as_bytes(event), options)

    hypothesis_event("rejected" if isinstance(accepted, InvalidEvent) else "accepted")
    if isinstance(accepted, EventBatch):
        for request in accepted.items:
            if isinstance(request, ReinstallRequest):
                _assert_documented(request, options)


@FUZZ
@given(event=timer_events(), nodes_required=st.booleans())
def test_reading_a_timer_event_at_any_time_gives_that_moment_in_utc(
    event: dict[str, Any], nodes_required: bool
) -> None:
    sweep = read_event(as_bytes(event), ReadOptions(nodes_required=nodes_required))

    assert isinstance(sweep, SweepRequest)
    assert sweep.trigger_time.utcoffset() == timedelta(0)
    given_moment = datetime.fromisoformat(event["triggerTime"].replace("Z", "+00:00"))
    assert sweep.trigger_time == given_moment
    assert all(DOCUMENTED_COLLECTOR_ID.fullmatch(each) for each in sweep.collector_ids)


# -- (b) a rejected event calls nothing ------------------------------------------------------


@pytest.fixture(scope="module")
def collector_api() -> Iterator[CollectorApiEmulator]:
    """One emulator for every example: it must never see a request, so nothing to reset."""
    with CollectorApiEmulator(access_keys={STS_KEY_ID: (STS_SECRET, STS_TOKEN)}) as server:
        yield server


@pytest.mark.parametrize("check_live_state", ["true", "false"])
@settings(FUZZ, max_examples=150)
@given(raw=broken_events, request_id=request_ids)
def test_rejected_event_raises_the_projects_error_and_calls_no_api(
    collector_api: CollectorApiEmulator, check_live_state: str, raw: bytes, request_id: str
) -> None:
    options = ReadOptions(nodes_required=check_live_state == "false")
    if not _all_rejected(raw, options):
        hypothesis_event("partly valid: not sent")
        return  # calls are expected, and other tests cover them
    hypothesis_event("rejected: sent to the handler")
    context = Python310Context(
        Credentials(STS_KEY_ID, STS_SECRET, STS_TOKEN), request_id=request_id, timeout=10
    )

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ES_ENDPOINT", collector_api.url)
        patch.setenv("CHECK_LIVE_STATE", check_live_state)
        with pytest.raises(CollectorReinstallError) as raised:
            handler(raw, context)

    failures = (
        raised.value.failures if isinstance(raised.value, InvocationFailed) else [raised.value]
    )
    assert all(isinstance(failure, InvalidEvent) for failure in failures)
    assert raised.value.summary is not None
    assert raised.value.summary["outcome"] == "failed"
    assert collector_api.requests == []


# -- (c) one event, one token ----------------------------------------------------------------


def _reordered(value: Any, shuffle: random.Random) -> Any:
    """``value`` with the keys of every object in another order; lists keep theirs."""
    if isinstance(value, dict):
        keys = list(value)
        shuffle.shuffle(keys)
        return {key: _reordered(value[key], shuffle) for key in keys}
    if isinstance(value, list):
        return [_reordered(item, shuffle) for item in value]
    return value


def _requests(raw: bytes) -> list[ReinstallRequest]:
    batch = read_event(raw, ReadOptions(nodes_required=False))
    assert isinstance(batch, EventBatch)
    requests = [item for item in batch.items if isinstance(item, ReinstallRequest)]
    assert len(requests) == len(batch.items)
    return requests


def _tokens(raw: bytes, request_id: str | None) -> tuple[list[str], list[str]]:
    """Each event's own token, and the token of each planned request."""
    requests = _requests(raw)
    own = [client_token(request, request_id) for request in requests]
    planned = [plan.client_token for plan in plan_reinstalls(requests, request_id)]
    return own, planned


@FUZZ
@given(
    generated=valid_events,
    shuffle=st.randoms(use_true_random=False),
    indent=st.sampled_from((None, 0, 2, "\t")),
    padding=st.text(alphabet=" \t\r\n", max_size=4),
    request_id=request_ids,
)
def test_same_event_gives_the_same_token_however_it_is_formatted(
    generated: Generated, shuffle: random.Random, indent: Any, padding: str, request_id: str
) -> None:
    compact = json.dumps(generated.event, separators=(",", ":")).encode()
    reformatted = (
        padding + json.dumps(_reordered(generated.event, shuffle), indent=indent) + padding
    ).encode()

    first = _tokens(compact, request_id)

    assert _tokens(compact, request_id) == first
    assert _tokens(reformatted, request_id) == first
    assert _tokens(bytes(reformatted), request_id) == first


@settings(FUZZ, max_examples=100)
@given(generated=valid_events, request_id=request_ids)
def test_dry_run_summary_carries_the_token_the_event_derives(
    generated: Generated, request_id: str
) -> None:
    raw = as_bytes(generated.event)
    context = Python310Context(
        Credentials(STS_KEY_ID, STS_SECRET, STS_TOKEN), request_id=request_id
    )

    summary = handle(raw, context, dry_run=True)

    _, planned = _tokens(raw, request_id)
    assert [result["ClientToken"] for result in summary["results"]] == planned
    assert [result["ClientToken"] for result in handle(raw, context, dry_run=True)["results"]] == (
        planned
    )


@FUZZ
@given(generated=valid_events, first_id=request_ids, second_id=request_ids)
def test_redelivery_under_a_new_request_id_keeps_the_token_of_an_identified_event(
    generated: Generated, first_id: str, second_id: str
) -> None:
    raw = as_bytes(generated.event)

    for request in _requests(raw):
        first, again = client_token(request, first_id), client_token(request, second_id)
        if request.identity is not None or request.client_token is not None:
            assert first == again
        elif first_id != second_id:
            # A manual payload without ClientToken: FC's request id is what stays the same.
            assert first != again


# -- (d) what a valid event reads to ---------------------------------------------------------


@FUZZ
@given(generated=valid_events, request_id=st.one_of(st.none(), request_ids), data=st.data())
def test_valid_event_reads_to_documented_ids_and_a_short_ascii_token(
    generated: Generated, request_id: str | None, data: st.DataObject
) -> None:
    requests = _requests(as_bytes(generated.event))

    assert [(r.collector_id, r.ecs_instance_ids) for r in requests] == list(generated.asks)
    for request in requests:
        assert DOCUMENTED_COLLECTOR_ID.fullmatch(request.collector_id)
        assert COLLECTOR_ID_PATTERN.fullmatch(request.collector_id)
        assert len(request.collector_id) <= MAX_COLLECTOR_ID_CHARS
        for node in request.ecs_instance_ids or ():
            assert DOCUMENTED_ECS_INSTANCE_ID.fullmatch(node)
            assert ECS_INSTANCE_ID_PATTERN.fullmatch(node)
        token = client_token(request, request_id)
        assert TOKEN_PATTERN.fullmatch(token)
        assert request.client_token == token or DERIVED_TOKEN_PATTERN.fullmatch(token)
        chosen = data.draw(st.lists(node_ids, min_size=1, max_size=5))
        assert DERIVED_TOKEN_PATTERN.fullmatch(narrowed_token(token, tuple(chosen)))
    for plan in plan_reinstalls(requests, request_id):
        assert TOKEN_PATTERN.fullmatch(plan.client_token)


# -- inputs that once escaped as another exception than InvalidEvent -------------------------
# Each pins the minimal example that fuzzing or reading the code found.


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_timer_event_at_the_edge_of_the_calendar_is_rejected_as_invalid(moment: str) -> None:
    event = as_bytes({"triggerTime": moment, "triggerName": "sweep", "payload": ""})

    with pytest.raises(InvalidEvent, match="triggerTime"):
        read_event(event)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"ResId": ' + b"1" * 4301 + b"}",
        as_bytes({"id": "cms-1", "product": "elasticsearch", "content": "[" + "1" * 4301 + "]"}),
    ],
    ids=["in the event", "in a content string"],
)
def test_number_too_long_to_read_is_rejected_as_invalid(raw: bytes) -> None:
    with pytest.raises(InvalidEvent):
        read_event(raw)


LONE_SURROGATE_ID = (
    b'{"id": "\\ud800", "source": "acs.custom.collector-monitor", "specversion": "1.0",'
    b' "data": {"ResId": "ct-cn-1", "nodes": ["i-bp1abcdef"]}}'
)


def test_event_id_with_a_lone_surrogate_is_rejected_naming_the_field() -> None:
    with pytest.raises(InvalidEvent, match="lone surrogate") as caught:
        _requests(LONE_SURROGATE_ID)

    assert caught.value.field == "id"


def test_batch_with_a_lone_surrogate_id_still_reinstalls_its_good_event(
    emulator: CollectorApiEmulator, fc_context: Any
) -> None:
    good = {
        "id": "evt-good",
        "source": "acs.custom.collector-monitor",
        "specversion": "1.0",
        "data": {"ResId": "ct-cn-0a1b2c3d4e5f6a7b8", "nodes": ["i-bp1aaaaaaaaaaaaaaaa1"]},
    }
    raw = b"[" + LONE_SURROGATE_ID + b", " + as_bytes(good) + b"]"

    with pytest.raises(InvocationFailed):
        handler(raw, fc_context())

    assert [r.nodes for r in emulator.effective_reinstalls()] == [("i-bp1aaaaaaaaaaaaaaaa1",)]
