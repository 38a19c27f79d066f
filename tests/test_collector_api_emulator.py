"""Tests of the collector API emulator, driven through the real Alibaba Cloud SDK."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import selectors
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from alibabacloud_elasticsearch20170613 import models as es_models
from alibabacloud_elasticsearch20170613.client import Client as EsClient
from alibabacloud_tea_openapi.client import Client as OpenApiClient
from alibabacloud_tea_openapi.exceptions import (
    ClientException,
    ServerException,
    ThrottlingException,
)
from alibabacloud_tea_openapi.utils import Utils
from alibabacloud_tea_openapi.utils_models import Config, OpenApiRequest, Params
from darabonba.exceptions import UnretryableException
from darabonba.request import DaraRequest
from darabonba.runtime import RuntimeOptions

from tests.emulators.collector_api import CollectorApiEmulator

KEY_ID = "test-access-key-id"
SECRET = "test-access-key-secret"
COLLECTOR = "ct-cn-abc123"
MACHINES = {"i-good": "heartOk", "i-bad1": "failed", "i-bad2": "heartLost"}
EMULATOR_FILE = Path(__file__).parent / "emulators" / "collector_api.py"


@pytest.fixture(autouse=True)
def _no_proxy_for_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    proxy_vars = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY")
    if any(os.environ.get(name) for name in proxy_vars):
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost,::1")
        monkeypatch.setenv("no_proxy", "127.0.0.1,localhost,::1")
        for name in proxy_vars:
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
def emulator() -> Iterator[CollectorApiEmulator]:
    with CollectorApiEmulator() as emu:
        emu.add_collector(COLLECTOR, dict(MACHINES), name="nginx-logs")
        yield emu


def _client(
    target: CollectorApiEmulator | str,
    *,
    key_id: str = KEY_ID,
    secret: str = SECRET,
    token: str | None = None,
    algorithm: str | None = None,
) -> OpenApiClient:
    config = Config(
        access_key_id=key_id,
        access_key_secret=secret,
        security_token=token,
        endpoint=target if isinstance(target, str) else target.endpoint,
        protocol="HTTP",
        signature_algorithm=algorithm,
    )
    return OpenApiClient(config)


def _es_client(emu: CollectorApiEmulator, algorithm: str | None = None) -> EsClient:
    return EsClient(
        Config(
            access_key_id=KEY_ID,
            access_key_secret=SECRET,
            endpoint=emu.endpoint,
            protocol="HTTP",
            region_id="cn-hangzhou",
            signature_algorithm=algorithm,
        )
    )


def _reinstall(
    client: OpenApiClient,
    nodes: list[str],
    *,
    token: str | None = None,
    res_id: str = COLLECTOR,
    runtime: RuntimeOptions | None = None,
) -> dict[str, Any]:
    params = Params(
        action="ReinstallCollector",
        version="2017-06-13",
        protocol="HTTP",
        method="POST",
        auth_type="AK",
        style="ROA",
        pathname=f"/openapi/collectors/{res_id}/actions/reinstall",
        req_body_type="json",
        body_type="json",
    )
    request = OpenApiRequest(
        query={"ClientToken": token} if token is not None else {},
        body={"restartType": "nodeEcsId", "nodes": nodes},
    )
    return client.call_api(params, request, runtime or RuntimeOptions())


def _signed_headers(
    emu: CollectorApiEmulator, method: str, path: str, body: bytes, *, action: str
) -> dict[str, str]:
    """ACS3 headers for a raw request, signed by the SDK's own signing helper."""
    request = DaraRequest()
    request.method = method
    request.pathname = path
    request.headers = {
        "host": emu.endpoint,
        "x-acs-version": "2017-06-13",
        "x-acs-action": action,
        "x-acs-date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "x-acs-signature-nonce": uuid.uuid4().hex,
        "accept": "application/json",
        "content-type": "application/json; charset=utf-8",
        "x-acs-content-sha256": hashlib.sha256(body).hexdigest(),
    }
    payload = request.headers["x-acs-content-sha256"]
    auth = Utils.get_authorization(request, "ACS3-HMAC-SHA256", payload, KEY_ID, SECRET)
    return {**request.headers, "Authorization": auth}


def _raw(
    emu: CollectorApiEmulator, method: str, path: str, headers: dict[str, str], body: bytes
) -> tuple[int, dict[str, Any]]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(
        emu.url + path, data=body or None, headers=headers, method=method
    )
    try:
        with opener.open(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def test_acs3_signed_reinstall_is_accepted_and_sets_agent_status(
    emulator: CollectorApiEmulator,
) -> None:
    result = _reinstall(_client(emulator), ["i-bad1", "i-bad2"], token="tok-1")

    assert result["statusCode"] == 200
    assert result["body"]["Result"] is True
    record = emulator.requests[-1]
    assert record.signature_method == "ACS3-HMAC-SHA256"
    assert record.signature_valid
    assert record.action == "ReinstallCollector"
    assert record.access_key_id == KEY_ID
    assert record.query == {"ClientToken": "tok-1"}
    assert record.json() == {"restartType": "nodeEcsId", "nodes": ["i-bad1", "i-bad2"]}
    (done,) = emulator.effective_reinstalls(COLLECTOR)
    assert done.nodes == ("i-bad1", "i-bad2")
    assert done.request_id == result["body"]["RequestId"]
    assert emulator.agent_status(COLLECTOR, "i-bad1") == "heartOk"
    assert emulator.agent_status(COLLECTOR, "i-bad2") == "heartOk"


def test_wrong_secret_is_rejected_with_signature_does_not_match_and_no_reinstall(
    emulator: CollectorApiEmulator,
) -> None:
    with pytest.raises(ClientException) as caught:
        _reinstall(_client(emulator, secret="not-the-secret"), ["i-bad1"])

    assert caught.value.code == "SignatureDoesNotMatch"
    assert caught.value.status_code == 400
    record = emulator.requests[-1]
    assert not record.signature_valid
    assert record.error_code == "SignatureDoesNotMatch"
    assert emulator.reinstalls == []
    assert emulator.agent_status(COLLECTOR, "i-bad1") == "failed"


def test_unknown_access_key_is_404_and_missing_authorization_is_400(
    emulator: CollectorApiEmulator,
) -> None:
    with pytest.raises(ClientException) as caught:
        _reinstall(_client(emulator, key_id="nobody"), ["i-bad1"])
    assert (caught.value.status_code, caught.value.code) == (404, "InvalidAccessKeyId.NotFound")

    status, body = _raw(emulator, "GET", f"/openapi/collectors/{COLLECTOR}", {}, b"")
    assert (status, body["Code"]) == (400, "MissingAuthorization")
    assert emulator.reinstalls == []


@pytest.mark.parametrize("algorithm", [None, "v2"])
def test_sts_key_requires_its_security_token(algorithm: str | None) -> None:
    keys = {"sts-key": ("sts-secret", "the-token")}
    with CollectorApiEmulator(access_keys=keys) as emu:
        emu.add_collector(COLLECTOR, dict(MACHINES))

        def client(token: str | None) -> OpenApiClient:
            return _client(
                emu, key_id="sts-key", secret="sts-secret", token=token, algorithm=algorithm
            )

        for bad_token in (None, "another-token"):
            with pytest.raises(ClientException) as caught:
                _reinstall(client(bad_token), ["i-bad1"])
            assert caught.value.code == "InvalidSecurityToken.Mismatch"
            assert not emu.requests[-1].signature_valid
        assert emu.reinstalls == []

        assert _reinstall(client("the-token"), ["i-bad1"])["body"]["Result"] is True
        assert emu.requests[-1].headers["x-acs-security-token"] == "the-token"
        assert len(emu.reinstalls) == 1


def test_access_key_added_while_running_is_accepted(emulator: CollectorApiEmulator) -> None:
    client = _client(emulator, key_id="STS.rotated", secret="rotated-secret", token="rotated-tok")
    with pytest.raises(ClientException):
        _reinstall(client, ["i-bad1"])

    emulator.add_access_key("STS.rotated", "rotated-secret", "rotated-tok")

    assert _reinstall(client, ["i-bad1"])["statusCode"] == 200
    assert [r.access_key_id for r in emulator.requests] == ["STS.rotated"] * 2


@pytest.mark.parametrize(
    ("algorithm", "method"), [(None, "ACS3-HMAC-SHA256"), ("v2", "HMAC-SHA1")]
)
def test_generated_client_reinstall_describe_and_list_are_accepted(
    emulator: CollectorApiEmulator, algorithm: str | None, method: str
) -> None:
    es = _es_client(emulator, algorithm)

    reinstall = es.reinstall_collector(
        COLLECTOR,
        es_models.ReinstallCollectorRequest(
            client_token="tok-gen", body={"restartType": "nodeEcsId", "nodes": ["i-bad1"]}
        ),
    )
    described = es.describe_collector(COLLECTOR)
    listed = es.list_collectors(es_models.ListCollectorsRequest(page=1, size=10))

    assert reinstall.body.result is True
    result = described.body.result
    assert result.res_id == COLLECTOR
    assert result.res_type == "fileBeat"
    machines = {m.instance_id: m.agent_status for m in result.extend_configs[0].machines}
    assert machines == {**MACHINES, "i-bad1": "heartOk"}
    assert listed.body.headers.x_total_count == 1
    assert [c.res_id for c in listed.body.result] == [COLLECTOR]
    assert [r.signature_method for r in emulator.requests] == [method] * 3
    assert all(r.signature_valid and r.status == 200 for r in emulator.requests)


def test_list_nodes_reports_agent_status_per_machine(emulator: CollectorApiEmulator) -> None:
    nodes = _es_client(emulator).list_nodes(COLLECTOR, es_models.ListNodesRequest())

    assert nodes.body.headers.x_total_count == 3
    assert {n.ecs_instance_id: n.agent_status for n in nodes.body.result} == MACHINES
    assert {n.status for n in nodes.body.result} == {"running"}


def test_same_client_token_twice_is_one_effective_reinstall_with_the_same_request_id(
    emulator: CollectorApiEmulator,
) -> None:
    client = _client(emulator)
    first = _reinstall(client, ["i-bad1"], token="tok-same")
    emulator.set_agent_status(COLLECTOR, "i-bad1", "failed")
    second = _reinstall(client, ["i-bad1"], token="tok-same")

    assert second["body"] == first["body"]
    assert second["statusCode"] == first["statusCode"] == 200
    assert len(emulator.effective_reinstalls()) == 1
    # The replay changed nothing.
    assert emulator.agent_status(COLLECTOR, "i-bad1") == "failed"
    assert len(emulator.requests) == 2


def test_requests_without_client_token_always_take_effect(emulator: CollectorApiEmulator) -> None:
    client = _client(emulator)
    _reinstall(client, ["i-bad1"])
    _reinstall(client, ["i-bad1"])

    assert len(emulator.effective_reinstalls(COLLECTOR)) == 2


def test_same_client_token_with_different_nodes_is_idempotent_parameter_mismatch(
    emulator: CollectorApiEmulator,
) -> None:
    client = _client(emulator)
    _reinstall(client, ["i-bad1"], token="tok-x")
    with pytest.raises(ClientException) as caught:
        _reinstall(client, ["i-bad2"], token="tok-x")

    assert (caught.value.status_code, caught.value.code) == (400, "IdempotentParameterMismatch")
    assert len(emulator.reinstalls) == 1
    assert emulator.agent_status(COLLECTOR, "i-bad2") == "heartLost"


def test_client_token_is_forgotten_after_its_ttl() -> None:
    with CollectorApiEmulator(token_ttl_seconds=0.2) as emu:
        emu.add_collector(COLLECTOR, dict(MACHINES))
        client = _client(emu)
        first = _reinstall(client, ["i-bad1"], token="tok-ttl")
        time.sleep(0.3)
        second = _reinstall(client, ["i-bad1"], token="tok-ttl")

    assert first["body"]["RequestId"] != second["body"]["RequestId"]
    assert len(emu.reinstalls) == 2


def test_failed_and_faulted_answers_are_not_remembered_for_the_client_token(
    emulator: CollectorApiEmulator,
) -> None:
    client = _client(emulator)
    with pytest.raises(ClientException):
        _reinstall(client, ["i-foreign"], token="tok-retry")
    emulator.inject("throttle", action="ReinstallCollector")
    with pytest.raises(ClientException):
        _reinstall(client, ["i-bad1"], token="tok-retry")

    assert _reinstall(client, ["i-bad1"], token="tok-retry")["body"]["Result"] is True
    assert len(emulator.reinstalls) == 1


def test_foreign_node_is_rejected_with_invalid_parameter_naming_it(
    emulator: CollectorApiEmulator,
) -> None:
    with pytest.raises(ClientException) as caught:
        _reinstall(_client(emulator), ["i-bad1", "i-elsewhere"])

    assert (caught.value.status_code, caught.value.code) == (400, "InvalidParameter")
    assert "i-elsewhere" in caught.value.message
    assert emulator.reinstalls == []
    assert emulator.agent_status(COLLECTOR, "i-bad1") == "failed"


def test_unknown_collector_is_404_collector_not_found(emulator: CollectorApiEmulator) -> None:
    with pytest.raises(ClientException) as caught:
        _reinstall(_client(emulator), ["i-bad1"], res_id="ct-missing")

    assert (caught.value.status_code, caught.value.code) == (404, "CollectorNotFound")


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"restartType": "collectorId", "nodes": ["i-bad1"]}, "restartType"),
        ({"restartType": "nodeEcsId", "nodes": []}, "nodes"),
        ({"restartType": "nodeEcsId", "nodes": [1]}, "nodes"),
        ({"nodes": ["i-bad1"]}, "restartType"),
    ],
)
def test_bad_reinstall_body_is_invalid_parameter_naming_the_field(
    emulator: CollectorApiEmulator, body: dict[str, Any], named: str
) -> None:
    es = _es_client(emulator)
    with pytest.raises(ClientException) as caught:
        es.reinstall_collector(COLLECTOR, es_models.ReinstallCollectorRequest(body=body))

    assert caught.value.code == "InvalidParameter"
    assert named in caught.value.message
    assert emulator.reinstalls == []


def test_throttle_fault_is_throttling_user_and_retry_hint_raises_throttling_exception(
    emulator: CollectorApiEmulator,
) -> None:
    client = _client(emulator)
    emulator.inject("throttle")
    emulator.inject("throttle", retry_after_ms=1500)

    with pytest.raises(ClientException) as plain:
        _reinstall(client, ["i-bad1"])
    assert not isinstance(plain.value, ThrottlingException)
    assert (plain.value.status_code, plain.value.code) == (400, "Throttling.User")

    with pytest.raises(ThrottlingException) as hinted:
        _reinstall(client, ["i-bad1"])
    assert hinted.value.retry_after == 1500
    assert hinted.value.code == "Throttling.User"

    assert emulator.reinstalls == []
    assert [r.fault for r in emulator.requests] == ["throttle", "throttle"]
    assert _reinstall(client, ["i-bad1"])["body"]["Result"] is True


def test_faults_are_applied_after_signature_check_and_only_to_the_matching_action(
    emulator: CollectorApiEmulator,
) -> None:
    emulator.inject("server_error", action="ReinstallCollector")
    with pytest.raises(ClientException):
        _reinstall(_client(emulator, secret="wrong"), ["i-bad1"])
    es = _es_client(emulator)
    es.describe_collector(COLLECTOR)

    with pytest.raises(ServerException) as caught:
        _reinstall(_client(emulator), ["i-bad1"])

    assert (caught.value.status_code, caught.value.code) == (503, "ServiceUnavailable")
    assert [r.fault for r in emulator.requests] == [None, None, "server_error"]
    assert emulator.reinstalls == []


def test_drop_before_fault_closes_the_connection_without_reinstalling(
    emulator: CollectorApiEmulator,
) -> None:
    emulator.inject("drop_before")
    with pytest.raises(UnretryableException):
        _reinstall(_client(emulator), ["i-bad1"], token="tok-drop")

    assert emulator.reinstalls == []
    record = emulator.requests[-1]
    assert (record.fault, record.status, record.signature_valid) == ("drop_before", 0, True)
    # The token was not remembered either: the retry is a fresh, effective reinstall.
    assert _reinstall(_client(emulator), ["i-bad1"], token="tok-drop")["statusCode"] == 200
    assert len(emulator.reinstalls) == 1


def test_drop_after_fault_reinstalls_and_a_retry_with_the_same_token_gets_the_stored_answer(
    emulator: CollectorApiEmulator,
) -> None:
    client = _client(emulator)
    emulator.inject("drop_after")
    with pytest.raises(UnretryableException):
        _reinstall(client, ["i-bad1"], token="tok-da")

    (done,) = emulator.reinstalls
    assert emulator.agent_status(COLLECTOR, "i-bad1") == "heartOk"
    assert (emulator.requests[-1].fault, emulator.requests[-1].status) == ("drop_after", 200)

    retry = _reinstall(client, ["i-bad1"], token="tok-da")
    assert retry["body"] == {"RequestId": done.request_id, "Result": True}
    assert len(emulator.reinstalls) == 1


def test_slow_fault_delays_the_answer_and_a_short_read_timeout_fails(
    emulator: CollectorApiEmulator,
) -> None:
    client = _client(emulator)
    emulator.inject("slow", delay_s=0.3)
    started = time.monotonic()
    assert _reinstall(client, ["i-bad1"], token="tok-slow")["statusCode"] == 200
    assert time.monotonic() - started >= 0.3

    emulator.inject("slow", delay_s=0.5)
    with pytest.raises(UnretryableException):
        _reinstall(client, ["i-bad2"], runtime=RuntimeOptions(read_timeout=100))
    # The slow request was processed; only its answer was late.
    assert [r.nodes for r in emulator.reinstalls] == [("i-bad1",), ("i-bad2",)]


def test_random_fault_rate_is_reproducible_for_a_seed() -> None:
    def faults(seed: int) -> list[str | None]:
        with CollectorApiEmulator(seed=seed) as emu:
            emu.add_collector(COLLECTOR, dict(MACHINES))
            emu.set_fault_rate(0.5, ("throttle", "server_error"))
            es = _es_client(emu)
            for _ in range(16):
                with contextlib.suppress(ClientException, ServerException):
                    es.describe_collector(COLLECTOR)
            emu.set_fault_rate(0)
            es.describe_collector(COLLECTOR)
            return [r.fault for r in emu.requests]

    first = faults(7)
    assert first == faults(7)
    assert {"throttle", "server_error", None} <= set(first[:-1])
    assert first[-1] is None


def test_list_collectors_pages_1200_collectors_as_500_500_200_with_total_count() -> None:
    with CollectorApiEmulator() as emu:
        for number in range(1200):
            emu.add_collector(f"ct-{number:05d}", {f"i-{number:05d}": "failed"})
        es = _es_client(emu)
        pages = [
            es.list_collectors(es_models.ListCollectorsRequest(page=page, size=500)).body
            for page in (1, 2, 3)
        ]

    assert [len(p.result) for p in pages] == [500, 500, 200]
    assert {p.headers.x_total_count for p in pages} == {1200}
    ids = [c.res_id for p in pages for c in p.result]
    assert len(set(ids)) == 1200


def test_list_collectors_rejects_out_of_range_size(emulator: CollectorApiEmulator) -> None:
    with pytest.raises(ClientException) as caught:
        _es_client(emulator).list_collectors(es_models.ListCollectorsRequest(size=501))

    assert caught.value.code == "InvalidParameter"
    assert "size" in caught.value.message


def test_reused_signature_nonce_is_rejected(emulator: CollectorApiEmulator) -> None:
    path = f"/openapi/collectors/{COLLECTOR}/actions/reinstall"
    body = json.dumps({"restartType": "nodeEcsId", "nodes": ["i-bad1"]}).encode()
    headers = _signed_headers(emulator, "POST", path, body, action="ReinstallCollector")

    assert _raw(emulator, "POST", path, headers, body)[0] == 200
    status, answer = _raw(emulator, "POST", path, headers, body)

    assert (status, answer["Code"]) == (400, "SignatureNonceUsed")
    assert len(emulator.reinstalls) == 1


def test_tampered_body_or_path_is_rejected(emulator: CollectorApiEmulator) -> None:
    emulator.add_collector("ct-other", {"i-bad1": "failed"})
    path = f"/openapi/collectors/{COLLECTOR}/actions/reinstall"
    body = json.dumps({"restartType": "nodeEcsId", "nodes": ["i-bad1"]}).encode()
    headers = _signed_headers(emulator, "POST", path, body, action="ReinstallCollector")

    tampered = body.replace(b"i-bad1", b"i-bad2")
    status, answer = _raw(emulator, "POST", path, headers, tampered)
    assert (status, answer["Code"]) == (400, "SignatureDoesNotMatch")
    other = "/openapi/collectors/ct-other/actions/reinstall"
    status, answer = _raw(emulator, "POST", other, headers, body)
    assert (status, answer["Code"]) == (400, "SignatureDoesNotMatch")

    assert emulator.reinstalls == []
    assert [r.signature_valid for r in emulator.requests] == [False, False]


def test_action_header_must_match_the_route(emulator: CollectorApiEmulator) -> None:
    path = f"/openapi/collectors/{COLLECTOR}"
    headers = _signed_headers(emulator, "GET", path, b"", action="ReinstallCollector")

    status, answer = _raw(emulator, "GET", path, headers, b"")

    assert (status, answer["Code"]) == (400, "InvalidAction.Mismatch")


def test_state_endpoint_dumps_collectors_and_reinstalls(emulator: CollectorApiEmulator) -> None:
    _reinstall(_client(emulator), ["i-bad1"], token="tok-state")

    status, state = _raw(emulator, "GET", "/_emulator/state", {}, b"")

    assert status == 200
    assert [c["resId"] for c in state["collectors"]] == [COLLECTOR]
    assert state["reinstalls"][0]["clientToken"] == "tok-state"
    assert state["reinstalls"][0]["nodes"] == ["i-bad1"]


def test_emulator_refuses_non_loopback_host() -> None:
    with pytest.raises(ValueError, match="loopback"):
        CollectorApiEmulator(host="0.0.0.0")


def _read_line(proc: subprocess.Popen[str], timeout: float = 10.0) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError("emulator printed nothing in time")
    return proc.stdout.readline()


def test_standalone_serves_state_file_and_prints_one_line_per_request(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"collectors": [{"resId": COLLECTOR, "machines": MACHINES}]}))
    command = [sys.executable, str(EMULATOR_FILE), "--port", "0", "--state", str(state)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as proc:
        try:
            banner = _read_line(proc)
            url = banner.split(" on ", 1)[1].split()[0]
            _reinstall(_client(url.removeprefix("http://")), ["i-bad1"], token="tok-cli")
            line = _read_line(proc)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=10)

    assert "1 collectors" in banner
    assert line.split()[:3] == [
        "POST",
        f"/openapi/collectors/{COLLECTOR}/actions/reinstall",
        "action=ReinstallCollector",
    ]
    assert "status=200" in line
    assert "token=tok-cli" in line
    assert proc.returncode == 0


def test_standalone_refuses_a_non_loopback_host() -> None:
    result = subprocess.run(
        [sys.executable, str(EMULATOR_FILE), "--host", "192.0.2.1", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert result.returncode == 2
    assert "loopback" in result.stderr
