"""Every kind of bad input is refused before any API call, with an error naming it."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from collector_reinstall import InvalidEvent, InvocationFailed
from collector_reinstall.handler import handle
from tests.conftest import COLLECTOR, NODE_1, NODE_2, OTHER_COLLECTOR, as_bytes
from tests.emulators.collector_api import CollectorApiEmulator

ARN = f"acs:elasticsearch:cn-hangzhou:1234567890123456:collectors/{COLLECTOR}"


def cloud_event(data: object, **overrides: object) -> dict[str, object]:
    event: dict[str, object] = {
        "id": "evt-1",
        "source": "acs.custom.collector-monitor",
        "specversion": "1.0",
        "type": "elasticsearch:Collector:InstallFailed",
        "aliyunregionid": "cn-hangzhou",
        "data": data,
    }
    event.update(overrides)
    return event


def cloudmonitor(content: object, **overrides: object) -> dict[str, object]:
    event: dict[str, object] = {
        "id": "cms-1",
        "product": "elasticsearch",
        "regionId": "cn-hangzhou",
        "resourceId": ARN,
        "content": content,
    }
    event.update(overrides)
    return event


# (name, raw event, field named in the error, words the message must contain)
BAD_EVENTS: list[tuple[str, bytes, str, str]] = [
    ("not utf-8", b'{"ResId": "\xff"}', "event", "not UTF-8"),
    ("not json", b"{ResId: ct-cn-1}", "event", "not JSON"),
    ("empty body", b"", "event", "empty"),
    ("whitespace body", b"  \n ", "event", "empty"),
    ("json scalar", b"42", "event", "expected a JSON object"),
    ("json string", b'"ct-cn-0a1b2c3d"', "event", "expected a JSON object"),
    ("empty batch", b"[]", "event", "empty batch"),
    ("no collector id", as_bytes({"nodes": [NODE_1]}), "ResId", "missing"),
    ("no nodes", as_bytes({"ResId": COLLECTOR}), "nodes", "missing"),
    ("explicitly empty nodes", as_bytes({"ResId": COLLECTOR, "nodes": []}), "nodes", "empty"),
    ("nodes not a list", as_bytes({"ResId": COLLECTOR, "nodes": NODE_1}), "nodes", "a list"),
    ("node not a string", as_bytes({"ResId": COLLECTOR, "nodes": [42]}), "nodes[0]", "ECS"),
    (
        "malformed node id",
        as_bytes({"ResId": COLLECTOR, "nodes": [NODE_1, "node-2"]}),
        "nodes[1]",
        "ECS instance id",
    ),
    (
        "malformed collector id",
        as_bytes({"ResId": "collector-1", "nodes": [NODE_1]}),
        "ResId",
        "collector id",
    ),
    (
        "collector id with a slash",
        as_bytes({"ResId": "ct-cn-1/../../instances", "nodes": [NODE_1]}),
        "ResId",
        "collector id",
    ),
    (
        "collector id with an encoded slash",
        as_bytes({"ResId": "ct-cn-1%2F..", "nodes": [NODE_1]}),
        "ResId",
        "collector id",
    ),
    (
        "collector id with a query",
        as_bytes({"ResId": "ct-cn-1?ClientToken=x", "nodes": [NODE_1]}),
        "ResId",
        "collector id",
    ),
    (
        "collector id too long",
        as_bytes({"ResId": "ct-" + "a" * 70, "nodes": [NODE_1]}),
        "ResId",
        "collector id",
    ),
    ("collector id a number", as_bytes({"ResId": 12345, "nodes": [NODE_1]}), "ResId", "string"),
    (
        "absurd number of nodes",
        as_bytes({"ResId": COLLECTOR, "nodes": [f"i-bp1{n:017d}" for n in range(501)]}),
        "nodes",
        "at most 500",
    ),
    (
        "wrong restart type",
        as_bytes({"ResId": COLLECTOR, "nodes": [NODE_1], "restartType": "collectorId"}),
        "restartType",
        "nodeEcsId",
    ),
    (
        "two node lists",
        as_bytes({"ResId": COLLECTOR, "nodes": [NODE_1], "instanceIds": [NODE_2]}),
        "instanceIds",
        "exactly one",
    ),
    (
        "two different collectors",
        as_bytes({"ResId": COLLECTOR, "collectorId": OTHER_COLLECTOR, "nodes": [NODE_1]}),
        "ResId",
        "more than one collector",
    ),
    (
        "unknown field in a manual payload",
        as_bytes({"ResId": COLLECTOR, "node": [NODE_1]}),
        "node",
        "not a field",
    ),
    (
        "client token too long",
        as_bytes({"ResId": COLLECTOR, "nodes": [NODE_1], "ClientToken": "t" * 65}),
        "ClientToken",
        "64",
    ),
    (
        "client token with a space",
        as_bytes({"ResId": COLLECTOR, "nodes": [NODE_1], "ClientToken": "a b"}),
        "ClientToken",
        "without spaces",
    ),
    (
        "region that could change the host",
        as_bytes({"ResId": COLLECTOR, "nodes": [NODE_1], "regionId": "evil.example.com/x"}),
        "regionId",
        "region id",
    ),
    (
        "arn of another product",
        as_bytes({"resourceId": "acs:ecs:cn-hangzhou:1:instance/i-1", "nodes": [NODE_1]}),
        "resourceId",
        "ARN",
    ),
    (
        "arn without a collector",
        as_bytes(
            {"resourceId": "acs:elasticsearch:cn-hangzhou:1:instances/es-1", "nodes": [NODE_1]}
        ),
        "resourceId",
        "ARN",
    ),
    (
        "cloudevent without id",
        as_bytes(cloud_event({"ResId": COLLECTOR}, id=None)),
        "id",
        "missing",
    ),
    (
        "cloudevent of another spec version",
        as_bytes(cloud_event({"ResId": COLLECTOR, "nodes": [NODE_1]}, specversion="0.3")),
        "specversion",
        "1.0",
    ),
    ("cloudevent without data", as_bytes({**cloud_event({}), "data": None}), "data", "object"),
    ("cloudevent data a list", as_bytes(cloud_event([COLLECTOR])), "data", "object"),
    (
        "cloudevent regions disagree",
        as_bytes(cloud_event({"ResId": COLLECTOR, "nodes": [NODE_1], "regionId": "cn-beijing"})),
        "data.regionId",
        "disagree",
    ),
    (
        "machines entry without instanceId",
        as_bytes(cloud_event({"ResId": COLLECTOR, "machines": [{"agentStatus": "failed"}]})),
        "data.machines[0]",
        "instanceId",
    ),
    (
        "cloudmonitor of another product",
        as_bytes(cloudmonitor({"nodes": [NODE_1]}, product="ecs")),
        "product",
        "elasticsearch",
    ),
    (
        "cloudmonitor content not json",
        as_bytes(cloudmonitor("{not json")),
        "content",
        "not a JSON object",
    ),
    (
        "cloudmonitor arn and content disagree",
        as_bytes(cloudmonitor({"resId": OTHER_COLLECTOR, "nodes": [NODE_1]})),
        "content.resId",
        "more than one collector",
    ),
    (
        "timer event with an unreadable time",
        as_bytes({"triggerTime": "yesterday", "triggerName": "sweep", "payload": ""}),
        "triggerTime",
        "UTC time",
    ),
    (
        "timer event with an unknown sweep option",
        as_bytes(
            {"triggerTime": "2026-12-03T08:00:00Z", "triggerName": "s", "payload": '{"x": 1}'}
        ),
        "payload.x",
        "not a sweep option",
    ),
    (
        "timer event whose payload is not json",
        as_bytes({"triggerTime": "2026-12-03T08:00:00Z", "triggerName": "s", "payload": "all"}),
        "payload",
        "not a JSON object",
    ),
    ("deeply nested", b"[" * 100_000 + b"]" * 100_000, "event", "nested too deeply"),
]


# With the live-state check on, an event that names no nodes is not an error: it
# asks for every machine that needs a reinstall.
VALID_WITH_CHECK_ON = {"no nodes"}


@pytest.mark.parametrize(
    ("check_live_state", "raw", "field", "words"),
    [
        pytest.param(check, raw, field, words, id=f"{name}-check-{check}")
        for name, raw, field, words in BAD_EVENTS
        for check in ("false", "true")
        if not (check == "true" and name in VALID_WITH_CHECK_ON)
    ],
)
def test_bad_event_is_refused_naming_the_field_and_nothing_is_called(
    check_live_state: str,
    raw: bytes,
    field: str,
    words: str,
    emulator: CollectorApiEmulator,
    fc_context: Callable[..., object],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHECK_LIVE_STATE", check_live_state)

    with pytest.raises(InvalidEvent) as caught:
        handle(raw, fc_context())

    assert caught.value.field == field
    assert field in str(caught.value)
    assert words in str(caught.value)
    assert caught.value.summary is not None
    assert caught.value.summary["outcome"] == "failed"
    assert emulator.requests == []


def test_table_has_at_least_25_distinct_bad_inputs() -> None:
    assert len({raw for _, raw, _, _ in BAD_EVENTS}) >= 25


def test_bad_event_in_a_batch_fails_the_invocation_after_the_good_ones_are_done(
    emulator: CollectorApiEmulator, fc_context: Callable[..., object]
) -> None:
    good = cloud_event({"ResId": COLLECTOR, "nodes": [NODE_1]}, id="good")
    bad = cloud_event({"ResId": COLLECTOR, "nodes": ["not-an-instance"]}, id="bad")

    with pytest.raises(InvocationFailed) as caught:
        handle(as_bytes([bad, good]), fc_context())

    assert [r.nodes for r in emulator.effective_reinstalls()] == [(NODE_1,)]
    assert len(caught.value.failures) == 1
    rejection = caught.value.failures[0]
    assert isinstance(rejection, InvalidEvent)
    assert rejection.event_id == "bad"
    assert rejection.field == "[0].data.nodes[0]"
    summary = caught.value.summary
    assert summary is not None
    outcomes = sorted(result["outcome"] for result in summary["results"])
    assert outcomes == ["reinstalled", "rejected"]
    json.dumps(summary)


def test_rejecting_an_event_in_a_fresh_instance_loads_no_sdk() -> None:
    """A bad event must not cost the SDK's import time on a cold start."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    program = """
import sys
from types import SimpleNamespace
import index
from collector_reinstall import InvalidEvent
context = SimpleNamespace(request_id="r-1", function=SimpleNamespace(timeout=60))
try:
    index.handler(b'{"ResId": "ct-cn-0a1b2c3d", "nodes": []}', context)
except InvalidEvent:
    pass
heavy = {"alibabacloud_tea_openapi", "alibabacloud_credentials", "alibabacloud_credentials_api",
         "darabonba", "Tea",
         "requests", "aiohttp", "fc2"}
print(sorted(name for name in sys.modules if name.split(".")[0] in heavy))
"""
    done = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(root / "src"), "PATH": "/usr/bin:/bin"},
        timeout=60,
        check=True,
    )

    assert done.stdout.strip() == "[]", done.stdout
