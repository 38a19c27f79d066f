"""The sweep: a timer trigger finds failed installs across the region by itself."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from collector_reinstall import ConfigurationError, InvocationFailed
from index import handler
from tests.conftest import STS_KEY_ID, STS_SECRET, STS_TOKEN, as_bytes, event_bytes
from tests.emulators.collector_api import CollectorApiEmulator
from tests.emulators.fc_invoke import FcInvokeEmulator, Invocation
from tests.fc_context import Credentials, Python310Context

TRIGGER_TIME = datetime(2026, 12, 3, 8, 0, tzinfo=timezone.utc)
LONG_AGO = datetime(2026, 12, 1, tzinfo=timezone.utc)


def timer_event(moment: datetime = TRIGGER_TIME, payload: str = "") -> bytes:
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return as_bytes({"triggerTime": stamp, "triggerName": "sweep", "payload": payload})


def context(timeout: int = 120) -> Python310Context:
    return Python310Context(Credentials(STS_KEY_ID, STS_SECRET, STS_TOKEN), timeout=timeout)


def fleet(server: CollectorApiEmulator, count: int, every: int = 10) -> dict[str, list[str]]:
    """``count`` collectors with two machines each; every ``every``-th has both failed.

    Returns the failed machines by collector.
    """
    failed: dict[str, list[str]] = {}
    for number in range(count):
        collector_id = f"ct-cn-fleet{number:06d}"
        nodes = [f"i-bp1fleet{number:06d}n{n}" for n in (1, 2)]
        status = "failed" if number % every == 0 else "heartOk"
        server.add_collector(
            collector_id,
            dict.fromkeys(nodes, status),
            name=f"collector-{number}",
            gmt_update_time=LONG_AGO,
        )
        if status == "failed":
            failed[collector_id] = nodes
    return failed


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[CollectorApiEmulator]:
    with CollectorApiEmulator(access_keys={STS_KEY_ID: (STS_SECRET, STS_TOKEN)}) as emulator:
        monkeypatch.setenv("ES_ENDPOINT", emulator.url)
        monkeypatch.setenv("SWEEP_RATE_LIMIT", "10000")
        yield emulator


def reinstalled(server: CollectorApiEmulator) -> dict[str, list[str]]:
    return {r.collector_id: list(r.nodes) for r in server.effective_reinstalls()}


def test_sweep_over_1200_collectors_reinstalls_every_failed_machine_once(
    server: CollectorApiEmulator,
) -> None:
    failed = fleet(server, 1200)

    summary = handler(timer_event(), context())

    assert reinstalled(server) == failed
    assert len(server.effective_reinstalls()) == 120
    lists = [r for r in server.requests if r.action == "ListCollectors"]
    assert [(r.query["page"], r.query["size"]) for r in lists] == [
        ("1", "500"),
        ("2", "500"),
        ("3", "500"),
    ]
    assert len(server.requests) == 3 + 120
    totals = summary["results"][0]
    assert totals["outcome"] == "swept"
    assert (totals["listed"], totals["healthy"]) == (1200, 1080)


def test_second_sweep_in_the_same_window_adds_no_reinstall_and_the_next_window_does(
    server: CollectorApiEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWEEP_GRACE_MINUTES", "0")
    server.status_after_reinstall = "failed"  # every install fails again
    failed = fleet(server, 200)

    handler(timer_event(), context())
    handler(timer_event(TRIGGER_TIME + timedelta(minutes=20)), context())
    assert len(server.effective_reinstalls()) == len(failed)

    handler(timer_event(TRIGGER_TIME + timedelta(minutes=31)), context())

    assert len(server.effective_reinstalls()) == 2 * len(failed)


def test_collector_changed_within_the_grace_period_is_left_alone(
    server: CollectorApiEmulator,
) -> None:
    fleet(server, 3, every=1)
    server.add_collector(
        "ct-cn-justchanged01",
        {"i-bp1justchanged0001": "failed"},
        gmt_update_time=datetime.now(timezone.utc) - timedelta(minutes=2),
    )

    summary = handler(timer_event(), context())

    assert "ct-cn-justchanged01" not in reinstalled(server)
    assert len(reinstalled(server)) == 3
    outcomes = {r.get("ResId"): r["outcome"] for r in summary["results"]}
    assert outcomes["ct-cn-justchanged01"] == "recently-changed"


def test_sweep_is_narrowed_by_settings_and_by_the_trigger_payload(
    server: CollectorApiEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet(server, 30, every=1)
    monkeypatch.setenv("SWEEP_COLLECTOR_IDS", "ct-cn-fleet000001, ct-cn-fleet000002")

    handler(timer_event(), context())
    assert sorted(reinstalled(server)) == ["ct-cn-fleet000001", "ct-cn-fleet000002"]

    handler(timer_event(payload=json.dumps({"names": ["collector-7"]})), context())
    assert "ct-cn-fleet000007" in reinstalled(server)
    assert len(reinstalled(server)) == 3


def test_one_failing_collector_does_not_stop_the_others_and_fails_the_invocation(
    server: CollectorApiEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAX_ATTEMPTS", "2")
    failed = fleet(server, 50)
    server.inject("server_error", times=2, action="ReinstallCollector")

    with pytest.raises(InvocationFailed) as caught:
        handler(timer_event(), context())

    assert len(caught.value.failures) == 1
    assert len(reinstalled(server)) == len(failed) - 1
    summary = caught.value.summary
    assert summary is not None
    assert [r["outcome"] for r in summary["results"]].count("failed") == 1


def test_sample_timer_event_starts_a_sweep(server: CollectorApiEmulator) -> None:
    fleet(server, 5, every=5)

    summary = handler(event_bytes("timer-sweep.json"), context())

    assert summary["results"][0]["triggerName"] == "sweep"
    assert len(reinstalled(server)) == 1


def test_fan_out_invokes_the_target_once_per_collector_and_each_replay_reinstalls(
    server: CollectorApiEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    failed = fleet(server, 60)
    outcomes: list[dict[str, object]] = []
    lock = threading.Lock()

    def run_target(invocation: Invocation) -> None:
        # The target function: the same handler, in its own FC invocation.
        summary = handler(invocation.payload, context())
        with lock:
            outcomes.append(summary)

    with FcInvokeEmulator(
        access_keys={STS_KEY_ID: (STS_SECRET, STS_TOKEN)}, on_invoke=run_target
    ) as fc:
        monkeypatch.setenv("FANOUT_ENDPOINT", fc.url)
        monkeypatch.setenv("FANOUT_SERVICE", "collector-reinstall")
        monkeypatch.setenv("FANOUT_FUNCTION", "reinstall")

        summary = handler(timer_event(), context())
        assert fc.wait_for(len(failed), timeout=30)

    assert len(fc.invocations) == len(failed)
    assert {inv.invocation_type for inv in fc.invocations} == {"Async"}
    assert all(r.signature_valid for r in fc.requests)
    assert fc.callback_errors == []
    assert reinstalled(server) == failed
    fanned = [r for r in summary["results"] if r["outcome"] == "fanned-out"]
    assert len(fanned) == len(failed)
    assert all(o["results"][0]["outcome"] == "reinstalled" for o in outcomes)  # type: ignore[index]

    # FC delivers one of those invocations again, and the install had failed again:
    # the same request under the same token, which the service does not repeat.
    payload = json.loads(fc.invocations[0].payload)
    for node in payload["nodes"]:
        server.set_agent_status(payload["ResId"], node, "failed")
    handler(fc.invocations[0].payload, context())
    assert len(server.effective_reinstalls()) == len(failed)
    assert server.requests[-1].status == 200


def test_half_configured_fan_out_fails_naming_the_missing_setting_before_any_call(
    server: CollectorApiEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet(server, 3, every=1)
    monkeypatch.setenv("FANOUT_SERVICE", "collector-reinstall")

    with pytest.raises(ConfigurationError, match="FANOUT_FUNCTION") as caught:
        handler(timer_event(), context())

    assert caught.value.summary is not None
    assert caught.value.summary["outcome"] == "failed"
    assert server.requests == []
