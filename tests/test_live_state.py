"""Look before acting: the live agent status decides which nodes are reinstalled."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from collector_reinstall import InvalidEvent, ReinstallFailed
from index import handler
from tests.conftest import COLLECTOR, STS_KEY_ID, STS_SECRET, STS_TOKEN, as_bytes
from tests.emulators.collector_api import CollectorApiEmulator

FAILED, UNINSTALLED, HEART_OK, HEART_LOST, FOREIGN = (
    "i-bp1failed000000001",
    "i-bp1uninstalled0001",
    "i-bp1heartok00000001",
    "i-bp1heartlost000001",
    "i-bp1foreign00000001",
)
ALL_NAMED = [FAILED, UNINSTALLED, HEART_OK, HEART_LOST, FOREIGN]


@pytest.fixture
def mixed(monkeypatch: pytest.MonkeyPatch) -> Iterator[CollectorApiEmulator]:
    """A collector whose machines are in every documented state."""
    with CollectorApiEmulator(access_keys={STS_KEY_ID: (STS_SECRET, STS_TOKEN)}) as server:
        server.add_collector(
            COLLECTOR,
            {
                FAILED: "failed",
                UNINSTALLED: "uninstalled",
                HEART_OK: "heartOk",
                HEART_LOST: "heartLost",
            },
        )
        monkeypatch.setenv("ES_ENDPOINT", server.url)
        yield server


def actions(emulator: CollectorApiEmulator) -> list[str | None]:
    return [request.action for request in emulator.requests]


def cloud_event(event_id: str, data: dict[str, object]) -> bytes:
    return as_bytes(
        {
            "id": event_id,
            "source": "acs.custom.collector-monitor",
            "specversion": "1.0",
            "data": data,
        }
    )


def test_only_failed_nodes_are_reinstalled_and_the_others_say_why(
    mixed: CollectorApiEmulator, fc_context: Callable[..., object]
) -> None:
    summary = handler(cloud_event("e1", {"ResId": COLLECTOR, "nodes": ALL_NAMED}), fc_context())

    assert actions(mixed) == ["DescribeCollector", "ReinstallCollector"]
    assert [r.nodes for r in mixed.effective_reinstalls()] == [(FAILED,)]
    (result,) = summary["results"]
    assert result["outcome"] == "reinstalled"
    assert result["nodes"] == [FAILED]
    reasons = {skip["node"]: (skip["agentStatus"], skip["reason"]) for skip in result["skipped"]}
    assert reasons == {
        UNINSTALLED: ("uninstalled", "not installed yet; REINSTALL_UNINSTALLED is off"),
        HEART_OK: ("heartOk", "the agent's heartbeat is normal"),
        HEART_LOST: ("heartLost", "the heartbeat is lost, which is not an install failure"),
        FOREIGN: (None, "not a machine of this collector"),
    }


def test_uninstalled_nodes_are_reinstalled_when_the_setting_says_so(
    mixed: CollectorApiEmulator,
    fc_context: Callable[..., object],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REINSTALL_UNINSTALLED", "true")

    handler(cloud_event("e1", {"ResId": COLLECTOR, "nodes": ALL_NAMED}), fc_context())

    assert [r.nodes for r in mixed.effective_reinstalls()] == [(FAILED, UNINSTALLED)]


def test_event_without_a_node_list_targets_every_qualifying_machine(
    mixed: CollectorApiEmulator, fc_context: Callable[..., object]
) -> None:
    summary = handler(cloud_event("e1", {"resId": COLLECTOR}), fc_context())

    assert [r.nodes for r in mixed.effective_reinstalls()] == [(FAILED,)]
    assert summary["results"][0]["ClientToken"].startswith("cr-n-")


def test_explicitly_empty_node_list_stays_invalid(
    mixed: CollectorApiEmulator, fc_context: Callable[..., object]
) -> None:
    with pytest.raises(InvalidEvent, match="empty"):
        handler(cloud_event("e1", {"resId": COLLECTOR, "nodes": []}), fc_context())

    assert mixed.requests == []


def test_replayed_event_after_the_nodes_healed_makes_no_reinstall_call(
    mixed: CollectorApiEmulator, fc_context: Callable[..., object]
) -> None:
    event = cloud_event("e1", {"ResId": COLLECTOR, "nodes": [FAILED]})
    handler(event, fc_context())
    assert mixed.agent_status(COLLECTOR, FAILED) == "heartOk"

    replay = handler(event, fc_context())

    assert actions(mixed) == ["DescribeCollector", "ReinstallCollector", "DescribeCollector"]
    assert replay["outcome"] == "succeeded"
    assert replay["results"][0]["outcome"] == "nothing-to-do"
    assert len(mixed.effective_reinstalls()) == 1


def test_fc_retry_that_sees_the_same_state_repeats_the_same_request(
    mixed: CollectorApiEmulator, fc_context: Callable[..., object]
) -> None:
    # The install fails again at once: the retry still sees the node failed.
    mixed.status_after_reinstall = "failed"
    event = cloud_event("e1", {"ResId": COLLECTOR, "nodes": [FAILED, HEART_OK]})
    context = fc_context()

    handler(event, context)
    handler(event, context)

    sent = [r for r in mixed.requests if r.action == "ReinstallCollector"]
    assert len(sent) == 2
    assert sent[0].query == sent[1].query
    assert sent[0].json() == sent[1].json()
    assert len(mixed.effective_reinstalls()) == 1


def test_fc_retry_that_sees_fewer_failed_nodes_never_reuses_the_token_for_another_body(
    mixed: CollectorApiEmulator, fc_context: Callable[..., object]
) -> None:
    second_failed = "i-bp1failed000000002"
    mixed.add_collector(COLLECTOR, {FAILED: "failed", second_failed: "failed"})
    event = cloud_event("e1", {"ResId": COLLECTOR, "nodes": [FAILED, second_failed]})
    context = fc_context()
    handler(event, context)
    # One node recovered, the other failed again, before FC retried the invocation.
    mixed.set_agent_status(COLLECTOR, second_failed, "failed")

    handler(event, context)

    sent = [r for r in mixed.requests if r.action == "ReinstallCollector"]
    assert [r.json()["nodes"] for r in sent] == [[FAILED, second_failed], [second_failed]]
    assert sent[0].query["ClientToken"] != sent[1].query["ClientToken"]
    assert all(r.status == 200 for r in sent)


def test_check_off_reinstalls_without_looking(
    mixed: CollectorApiEmulator,
    fc_context: Callable[..., object],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHECK_LIVE_STATE", "false")

    handler(cloud_event("e1", {"ResId": COLLECTOR, "nodes": [FAILED, HEART_OK]}), fc_context())

    assert actions(mixed) == ["ReinstallCollector"]
    assert [r.nodes for r in mixed.effective_reinstalls()] == [(FAILED, HEART_OK)]


def test_look_at_an_unknown_collector_fails_without_reinstalling(
    mixed: CollectorApiEmulator, fc_context: Callable[..., object]
) -> None:
    with pytest.raises(ReinstallFailed) as caught:
        handler(cloud_event("e1", {"ResId": "ct-cn-unknown0000", "nodes": [FAILED]}), fc_context())

    assert caught.value.code == "CollectorNotFound"
    assert not caught.value.transient
    assert actions(mixed) == ["DescribeCollector"]


def test_throttled_look_is_retried(
    mixed: CollectorApiEmulator, fc_context: Callable[..., object]
) -> None:
    mixed.inject("throttle", times=2, action="DescribeCollector")

    handler(cloud_event("e1", {"ResId": COLLECTOR, "nodes": [FAILED]}), fc_context())

    assert actions(mixed) == ["DescribeCollector"] * 3 + ["ReinstallCollector"]
    assert len(mixed.effective_reinstalls()) == 1
