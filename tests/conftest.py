"""Shared fixtures: a clean environment, the collector API emulator, FC contexts."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from collector_reinstall.handler import INSTANCE
from tests.emulators.collector_api import CollectorApiEmulator
from tests.fc_context import Credentials, Python310Context, Python312Context

EVENTS = Path(__file__).resolve().parent.parent / "events"

# Keys the emulator accepts: a role's STS credentials, as FC hands them over.
STS_KEY_ID = "STS.NUxTestRoleKeyId0001"
STS_SECRET = "sts-secret-7f3a9c2e5b1d4f6a8c0e2b4d6f8a1c3e"
STS_TOKEN = "CAIS-security-token-5e7a1c3b9d2f4e6a8c0b2d4f6a8c1e3b5d7f9a"

# Names the tests give collectors and ECS instances; events/ uses the same ones.
COLLECTOR = "ct-cn-0a1b2c3d4e5f6a7b8"
OTHER_COLLECTOR = "ct-cn-9f8e7d6c5b4a3f2e1"
NODE_1 = "i-bp1aaaaaaaaaaaaaaaa1"
NODE_2 = "i-bp1aaaaaaaaaaaaaaaa2"
OTHER_NODE = "i-bp1bbbbbbbbbbbbbbbb1"

_SETTINGS = (
    "ES_ENDPOINT",
    "ES_USE_VPC_ENDPOINT",
    "ES_REGION",
    "MAX_NODES_PER_EVENT",
    "INVOCATION_TIMEOUT_SECONDS",
    "REQUEST_TIMEOUT_SECONDS",
    "CONNECT_TIMEOUT_SECONDS",
    "MAX_ATTEMPTS",
    "RETRY_BASE_DELAY_SECONDS",
    "RETRY_MAX_DELAY_SECONDS",
    "LOG_LEVEL",
    "FC_REGION",
    "ALIBABA_CLOUD_ACCESS_KEY_ID",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
    "ALIBABA_CLOUD_SECURITY_TOKEN",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No setting, credential or proxy leaks in from the machine, and no network
    look-up for credentials: the ECS metadata service and CLI profiles are off."""
    for name in _SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
    monkeypatch.setenv("ALIBABA_CLOUD_CLI_PROFILE_DISABLED", "true")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    # Retries in tests wait milliseconds, not seconds.
    monkeypatch.setenv("RETRY_BASE_DELAY_SECONDS", "0.01")
    monkeypatch.setenv("RETRY_MAX_DELAY_SECONDS", "0.05")
    INSTANCE.clear()
    yield
    INSTANCE.clear()


@pytest.fixture
def without_live_state_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reinstall what the event names without reading DescribeCollector first."""
    monkeypatch.setenv("CHECK_LIVE_STATE", "false")


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[CollectorApiEmulator]:
    """The collector API on loopback, holding two collectors with failed machines; the
    handler is pointed at it."""
    with CollectorApiEmulator(access_keys={STS_KEY_ID: (STS_SECRET, STS_TOKEN)}) as server:
        server.add_collector(COLLECTOR, {NODE_1: "failed", NODE_2: "failed"})
        server.add_collector(OTHER_COLLECTOR, {OTHER_NODE: "failed"})
        monkeypatch.setenv("ES_ENDPOINT", server.url)
        yield server


@pytest.fixture
def sts_credentials() -> Credentials:
    return Credentials(STS_KEY_ID, STS_SECRET, STS_TOKEN)


@pytest.fixture(params=["python3.10", "python3.12"])
def fc_context(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, sts_credentials: Credentials
) -> Callable[..., object]:
    """Make a context of each runtime generation; for python3.12 the role's
    credentials are in the environment, as FC sets them."""
    runtime = request.param

    def make(**kwargs: object) -> object:
        if runtime == "python3.10":
            return Python310Context(sts_credentials, **kwargs)  # type: ignore[arg-type]
        return Python312Context(**kwargs)  # type: ignore[arg-type]

    if runtime == "python3.12":
        monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", STS_KEY_ID)
        monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", STS_SECRET)
        monkeypatch.setenv("ALIBABA_CLOUD_SECURITY_TOKEN", STS_TOKEN)
    return make


def event_bytes(name: str) -> bytes:
    """A sample event from events/, as the bytes FC delivers."""
    return (EVENTS / name).read_bytes()


def as_bytes(event: object) -> bytes:
    return json.dumps(event).encode("utf-8")


@pytest.fixture
def decision_log(caplog: pytest.LogCaptureFixture) -> Callable[[], list[dict[str, object]]]:
    """The handler's JSON log lines, parsed."""
    caplog.set_level(logging.DEBUG, logger="collector_reinstall")

    def lines() -> list[dict[str, object]]:
        return [
            json.loads(record.getMessage())
            for record in caplog.records
            if record.name == "collector_reinstall"
        ]

    return lines
