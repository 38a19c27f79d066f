"""No access key secret or security token reaches a log line, a result or an error."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import pytest

from collector_reinstall import CollectorReinstallError
from index import handler
from tests.conftest import (
    COLLECTOR,
    NODE_1,
    STS_KEY_ID,
    STS_SECRET,
    STS_TOKEN,
    as_bytes,
    event_bytes,
)
from tests.emulators.collector_api import CollectorApiEmulator

# These tests are about the event and the token alone; the look at the live state
# before reinstalling, on by default, has tests of its own (test_live_state.py).
pytestmark = pytest.mark.usefixtures("without_live_state_check")


SECRETS = (STS_SECRET, STS_TOKEN)


def run_everything(
    emulator: CollectorApiEmulator, make_context: Callable[..., object]
) -> list[str]:
    """Drive success, retry, permanent failure and rejection; return what came out."""
    emulator.inject("throttle", times=1, action="ReinstallCollector")
    emulator.inject("server_error", times=1, action="ReinstallCollector")
    emulator.inject("drop_before", times=1, action="ReinstallCollector")
    outputs = []
    events = [
        event_bytes("eventbridge-batch.json"),
        as_bytes({"ResId": "ct-cn-unknown0000", "nodes": [NODE_1]}),
        as_bytes({"ResId": COLLECTOR, "nodes": ["bad"]}),
        b"\xff",
    ]
    for event in events:
        try:
            outputs.append(json.dumps(handler(event, make_context())))
        except CollectorReinstallError as error:
            outputs.extend((str(error), repr(error), json.dumps(error.summary)))
    return outputs


def test_no_secret_in_logs_results_or_errors(
    emulator: CollectorApiEmulator,
    fc_context: Callable[..., object],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)

    outputs = run_everything(emulator, fc_context)

    decisions = [r.getMessage() for r in caplog.records if r.name == "collector_reinstall"]
    assert {json.loads(line)["decision"] for line in decisions} >= {
        "received",
        "calling",
        "retrying",
        "answered",
        "failed",
        "rejected",
    }
    everything = "\n".join([*outputs, *(r.getMessage() for r in caplog.records), caplog.text])
    for secret in SECRETS:
        assert secret not in everything


def test_every_decision_line_names_the_fc_request_and_the_collector(
    emulator: CollectorApiEmulator,
    fc_context: Callable[..., object],
    decision_log: Callable[[], list[dict[str, object]]],
) -> None:
    context = fc_context()

    handler(event_bytes("eventbridge-cloudevent.json"), context)

    lines = decision_log()
    assert [line["decision"] for line in lines] == ["received", "calling", "answered"]
    assert {line["fcRequestId"] for line in lines} == {context.request_id}  # type: ignore[attr-defined]
    for line in lines[1:]:
        assert line["ResId"] == COLLECTOR
        assert line["eventIds"] == ["45ef4dewdwe1-7c35-447a-bd93-fab****"]
        assert str(line["ClientToken"]).startswith("cr-e-")


def test_failed_fan_out_logs_no_secret(
    emulator: CollectorApiEmulator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``aliyun-fc2`` logs the request headers of a failed call; none of that gets out."""
    from tests.emulators.fc_invoke import FcInvokeEmulator
    from tests.fc_context import Credentials, Python310Context

    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("MAX_ATTEMPTS", "2")
    monkeypatch.setenv("SWEEP_GRACE_MINUTES", "0")  # the emulator's collectors are brand new
    timer = as_bytes({"triggerTime": "2026-12-03T08:00:00Z", "triggerName": "sweep"})
    with FcInvokeEmulator(access_keys={STS_KEY_ID: (STS_SECRET, STS_TOKEN)}) as fc:
        fc.inject("server_error", times=2)
        monkeypatch.setenv("FANOUT_ENDPOINT", fc.url)
        monkeypatch.setenv("FANOUT_SERVICE", "collector-reinstall")
        monkeypatch.setenv("FANOUT_FUNCTION", "reinstall")
        with pytest.raises(CollectorReinstallError) as caught:
            handler(timer, Python310Context(Credentials(STS_KEY_ID, STS_SECRET, STS_TOKEN)))

    assert len(fc.requests) >= 2
    everything = "\n".join([str(caught.value), json.dumps(caught.value.summary), caplog.text])
    assert "InvokeFunction" in everything
    for secret in SECRETS:
        assert secret not in everything
