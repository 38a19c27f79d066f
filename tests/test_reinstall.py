"""The handler, called the way FC calls it, against the collector API emulator."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest

from collector_reinstall import ReinstallFailed
from collector_reinstall.handler import INSTANCE, handle
from index import handler
from tests.conftest import (
    COLLECTOR,
    EVENTS,
    NODE_1,
    NODE_2,
    OTHER_COLLECTOR,
    OTHER_NODE,
    STS_KEY_ID,
    STS_SECRET,
    STS_TOKEN,
    as_bytes,
    event_bytes,
)
from tests.emulators.collector_api import CollectorApiEmulator
from tests.fc_context import Credentials, Python310Context

# These tests are about the event and the token alone; the look at the live state
# before reinstalling, on by default, has tests of its own (test_live_state.py).
pytestmark = pytest.mark.usefixtures("without_live_state_check")


# What each sample event must become: collector -> nodes, in order.
EXPECTED = {
    "eventbridge-cloudevent.json": {COLLECTOR: [NODE_1, NODE_2]},
    "eventbridge-batch.json": {COLLECTOR: [NODE_1, NODE_2], OTHER_COLLECTOR: [OTHER_NODE]},
    "cloudmonitor.json": {COLLECTOR: [NODE_1, NODE_2]},
    "cloudmonitor-string-content.json": {COLLECTOR: [NODE_2]},
    "manual.json": {COLLECTOR: [NODE_1, NODE_2]},
    "fanout.json": {OTHER_COLLECTOR: [OTHER_NODE]},
}
# A timer trigger's event starts a sweep instead (test_sweep.py).
SWEEP_EVENTS = {"timer-sweep.json"}


def reinstall_requests(emulator: CollectorApiEmulator) -> list:  # type: ignore[type-arg]
    return [r for r in emulator.requests if r.action == "ReinstallCollector"]


def test_every_sample_event_has_an_expectation() -> None:
    names = {path.name for path in EVENTS.glob("*.json")}
    assert sorted(EXPECTED) == sorted(names - SWEEP_EVENTS)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_event_makes_one_signed_request_per_collector(
    name: str, emulator: CollectorApiEmulator, fc_context: Callable[..., object]
) -> None:
    summary = handler(event_bytes(name), fc_context())

    sent = reinstall_requests(emulator)
    assert {r.path: r.json()["nodes"] for r in sent} == {
        f"/openapi/collectors/{collector}/actions/reinstall": nodes
        for collector, nodes in EXPECTED[name].items()
    }
    for request in sent:
        assert request.method == "POST"
        assert request.signature_valid
        assert request.signature_method == "ACS3-HMAC-SHA256"
        assert request.access_key_id == STS_KEY_ID
        assert request.headers["x-acs-security-token"] == STS_TOKEN
        assert request.json()["restartType"] == "nodeEcsId"
        assert request.status == 200
    assert summary["outcome"] == "succeeded"
    tokens = {r.path.split("/")[3]: r.query["ClientToken"] for r in sent}
    assert {result["ResId"]: result["ClientToken"] for result in summary["results"]} == tokens
    assert all(len(token) <= 64 and token.isascii() for token in tokens.values())
    json.dumps(summary)


def test_same_event_delivered_three_times_reinstalls_once(
    emulator: CollectorApiEmulator, fc_context: Callable[..., object]
) -> None:
    event = event_bytes("eventbridge-cloudevent.json")

    # Redelivery by EventBridge comes in a new invocation with a new request id.
    summaries = [handler(event, fc_context()) for _ in range(3)]

    assert len(reinstall_requests(emulator)) == 3
    assert len(emulator.effective_reinstalls()) == 1
    assert len({s["results"][0]["RequestId"] for s in summaries}) == 1
    assert len({r.query["ClientToken"] for r in reinstall_requests(emulator)}) == 1


def test_fc_async_retries_of_a_manual_payload_reinstall_once(
    emulator: CollectorApiEmulator, fc_context: Callable[..., object]
) -> None:
    event = as_bytes({"ResId": COLLECTOR, "nodes": [NODE_1]})
    context = fc_context(request_id="c0ffee00-1111-2222-3333-444455556666")

    for _ in range(3):
        handler(event, context)

    assert len(emulator.effective_reinstalls()) == 1


def test_two_different_events_for_the_same_nodes_reinstall_twice(
    emulator: CollectorApiEmulator, fc_context: Callable[..., object]
) -> None:
    first = json.loads(event_bytes("eventbridge-cloudevent.json"))
    second = {**first, "id": "another-event-for-the-same-nodes"}

    handler(as_bytes(first), fc_context())
    handler(as_bytes(second), fc_context())

    effective = emulator.effective_reinstalls()
    assert [r.nodes for r in effective] == [(NODE_1, NODE_2), (NODE_1, NODE_2)]
    assert effective[0].client_token != effective[1].client_token


def test_throttled_twice_then_accepted_succeeds_with_one_token(
    emulator: CollectorApiEmulator, fc_context: Callable[..., object]
) -> None:
    emulator.inject("throttle", times=1, action="ReinstallCollector")
    emulator.inject("throttle", times=1, action="ReinstallCollector", retry_after_ms=50)

    summary = handler(event_bytes("manual.json"), fc_context())

    sent = reinstall_requests(emulator)
    assert [r.fault for r in sent] == ["throttle", "throttle", None]
    assert len({r.query["ClientToken"] for r in sent}) == 1
    assert summary["outcome"] == "succeeded"
    assert len(emulator.effective_reinstalls()) == 1


def test_answer_lost_after_the_reinstall_is_retried_without_a_second_reinstall(
    emulator: CollectorApiEmulator, fc_context: Callable[..., object]
) -> None:
    emulator.inject("drop_after", action="ReinstallCollector")

    summary = handler(event_bytes("manual.json"), fc_context())

    assert summary["outcome"] == "succeeded"
    assert len(reinstall_requests(emulator)) == 2
    assert len(emulator.effective_reinstalls()) == 1


def test_dropped_connection_before_the_reinstall_is_retried(
    emulator: CollectorApiEmulator, fc_context: Callable[..., object]
) -> None:
    emulator.inject("drop_before", action="ReinstallCollector")
    emulator.inject("server_error", action="ReinstallCollector")

    summary = handler(event_bytes("manual.json"), fc_context())

    assert summary["outcome"] == "succeeded"
    assert len(emulator.effective_reinstalls()) == 1


def test_always_503_fails_the_invocation_within_its_time_budget(
    emulator: CollectorApiEmulator,
    fc_context: Callable[..., object],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MAX_ATTEMPTS", "100")
    monkeypatch.setenv("RETRY_BASE_DELAY_SECONDS", "0.2")
    monkeypatch.setenv("RETRY_MAX_DELAY_SECONDS", "0.5")
    emulator.inject("server_error", times=1000)
    started = time.monotonic()

    with pytest.raises(ReinstallFailed) as caught:
        handler(event_bytes("manual.json"), fc_context(timeout=3))

    assert time.monotonic() - started < 3
    assert caught.value.transient
    assert caught.value.code == "ServiceUnavailable"
    assert caught.value.attempts == len(reinstall_requests(emulator)) > 1
    assert "gave up" in str(caught.value)
    assert emulator.effective_reinstalls() == []


def test_slow_answers_do_not_outlive_the_function_timeout(
    emulator: CollectorApiEmulator,
    fc_context: Callable[..., object],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MAX_ATTEMPTS", "100")
    emulator.inject("slow", times=1000, delay_s=5.0)
    started = time.monotonic()

    with pytest.raises(ReinstallFailed) as caught:
        handler(event_bytes("manual.json"), fc_context(timeout=3))

    assert time.monotonic() - started < 3
    assert caught.value.transient


def test_unknown_collector_fails_at_once_with_the_api_code_and_request_id(
    emulator: CollectorApiEmulator, fc_context: Callable[..., object]
) -> None:
    event = as_bytes({"ResId": "ct-cn-doesnotexist0000", "nodes": [NODE_1]})

    with pytest.raises(ReinstallFailed) as caught:
        handler(event, fc_context())

    assert len(reinstall_requests(emulator)) == 1
    assert not caught.value.transient
    assert caught.value.attempts == 1
    assert caught.value.code == "CollectorNotFound"
    assert caught.value.api_request_id
    assert caught.value.api_request_id in str(caught.value)
    assert "CollectorNotFound" in str(caught.value)
    assert caught.value.summary is not None
    assert caught.value.summary["results"][0]["outcome"] == "failed"


def test_access_denied_is_permanent(
    emulator: CollectorApiEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = Credentials(STS_KEY_ID, "not-the-secret", STS_TOKEN)

    with pytest.raises(ReinstallFailed) as caught:
        handler(event_bytes("manual.json"), Python310Context(wrong))

    assert not caught.value.transient
    assert caught.value.code == "SignatureDoesNotMatch"
    assert len(emulator.requests) == 1
    assert emulator.effective_reinstalls() == []


def test_client_is_reused_and_signs_with_credentials_rotated_by_fc(
    emulator: CollectorApiEmulator,
) -> None:
    rotated = ("STS.NUxRotatedKeyId0002", "rotated-secret-0002", "rotated-token-0002")
    emulator.add_access_key(rotated[0], rotated[1], rotated[2])
    first = Python310Context(Credentials(STS_KEY_ID, STS_SECRET, STS_TOKEN))
    second = Python310Context(Credentials(*rotated))

    handler(as_bytes({"ResId": COLLECTOR, "nodes": [NODE_1]}), first)
    (api,) = INSTANCE.clients()
    handler(as_bytes({"ResId": COLLECTOR, "nodes": [NODE_2]}), second)

    assert INSTANCE.clients() == [api]
    assert [r.access_key_id for r in emulator.requests] == [STS_KEY_ID, rotated[0]]
    assert all(r.signature_valid for r in emulator.requests)


def test_python312_reads_credentials_rotated_in_the_environment(
    emulator: CollectorApiEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.fc_context import Python312Context

    rotated = ("STS.NUxRotatedKeyId0003", "rotated-secret-0003", "rotated-token-0003")
    emulator.add_access_key(rotated[0], rotated[1], rotated[2])
    for key_id, secret, token in ((STS_KEY_ID, STS_SECRET, STS_TOKEN), rotated):
        monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", key_id)
        monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", secret)
        monkeypatch.setenv("ALIBABA_CLOUD_SECURITY_TOKEN", token)
        handler(
            as_bytes({"ResId": COLLECTOR, "nodes": [NODE_1], "ClientToken": key_id}),
            Python312Context(),
        )

    assert [r.access_key_id for r in emulator.requests] == [STS_KEY_ID, rotated[0]]
    assert all(r.signature_valid for r in emulator.requests)


def test_dry_run_sends_nothing_and_needs_no_credentials(emulator: CollectorApiEmulator) -> None:
    summary = handle(event_bytes("eventbridge-batch.json"), object(), dry_run=True)

    assert emulator.requests == []
    requests = {r["ResId"]: r["request"] for r in summary["results"]}
    assert requests[OTHER_COLLECTOR] == {
        "action": "ReinstallCollector",
        "method": "POST",
        "url": f"{emulator.url}/openapi/collectors/{OTHER_COLLECTOR}/actions/reinstall",
        "path": f"/openapi/collectors/{OTHER_COLLECTOR}/actions/reinstall",
        "query": {"ClientToken": summary["results"][1]["ClientToken"]},
        "body": {"restartType": "nodeEcsId", "nodes": [OTHER_NODE]},
    }


def test_region_of_the_event_chooses_the_public_or_vpc_endpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    event = as_bytes({"ResId": COLLECTOR, "nodes": [NODE_1], "regionId": "cn-shanghai"})

    public = handle(event, object(), dry_run=True)
    monkeypatch.setenv("ES_USE_VPC_ENDPOINT", "true")
    vpc = handle(event, object(), dry_run=True)

    assert public["results"][0]["request"]["url"].startswith(
        "https://elasticsearch.cn-shanghai.aliyuncs.com/"
    )
    assert vpc["results"][0]["request"]["url"].startswith(
        "https://elasticsearch-vpc.cn-shanghai.aliyuncs.com/"
    )


def test_sample_events_are_the_ones_documented() -> None:
    readme = (EVENTS.parent / "README.md").read_text()
    for path in EVENTS.glob("*.json"):
        assert f"events/{path.name}" in readme


def test_same_batch_in_another_order_makes_the_same_request(
    emulator: CollectorApiEmulator, fc_context: Callable[..., object]
) -> None:
    batch = json.loads(event_bytes("eventbridge-batch.json"))[:2]

    handler(as_bytes(batch), fc_context())
    handler(as_bytes(batch[::-1]), fc_context())

    first, second = reinstall_requests(emulator)
    assert first.query == second.query
    assert first.json() == second.json()
    assert second.status == 200
    assert len(emulator.effective_reinstalls()) == 1
