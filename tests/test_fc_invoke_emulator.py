"""Tests of the FC InvokeFunction emulator, driven by the real ``fc2`` SDK."""

from __future__ import annotations

import email.utils
import json
import threading
import time

import fc2
import pytest
import requests
from fc2.auth import Auth
from fc2.fc_exceptions import FcError

from tests.emulators.fc_invoke import (
    DEFAULT_ACCESS_KEYS,
    FcInvokeEmulator,
    Invocation,
    sign_string,
    string_to_sign,
)

AK_ID, (AK_SECRET, _) = next(iter(DEFAULT_ACCESS_KEYS.items()))
STS_KEYS = {"STS.test-id": ("sts-secret", "sts-token")}
INVOKE_PATH = "/2016-08-15/services/svc/functions/fn/invocations"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def client_for(
    emulator: FcInvokeEmulator,
    key_id: str = AK_ID,
    secret: str = AK_SECRET,
    token: str = "",
) -> fc2.Client:
    return fc2.Client(
        endpoint=emulator.endpoint,
        accessKeyID=key_id,
        accessKeySecret=secret,
        securityToken=token,
        Timeout=5,
    )


def signed_headers(
    *, date: str | None = None, secret: str = AK_SECRET, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """Headers for a hand-made invoke request, signed by fc2's own Auth."""
    headers = {
        "date": date or email.utils.formatdate(usegmt=True),
        "content-type": "application/json",
        **(extra or {}),
    }
    headers["authorization"] = Auth(AK_ID, secret).sign_request("POST", INVOKE_PATH, headers)
    return headers


def test_sync_invocation_with_valid_signature_is_accepted_and_recorded() -> None:
    with FcInvokeEmulator(on_invoke=lambda inv: {"echo": inv.json()}) as emulator:
        response = client_for(emulator).invoke_function(
            "svc",
            "fn",
            payload=json.dumps({"a": 1}).encode(),
            headers={"x-fc-invocation-type": "Sync", "x-fc-trace-id": "trace-1"},
        )

        assert json.loads(response.data) == {"echo": {"a": 1}}
        [invocation] = emulator.invocations
        assert invocation.service == "svc"
        assert invocation.function == "fn"
        assert invocation.qualifier is None
        assert invocation.invocation_type == "Sync"
        assert invocation.payload == b'{"a": 1}'
        assert invocation.headers["x-fc-trace-id"] == "trace-1"
        assert invocation.headers["authorization"].startswith(f"FC {AK_ID}:")
        assert response.headers["x-fc-request-id"] == invocation.request_id
        [recorded] = emulator.requests
        assert recorded.signature_valid
        assert (recorded.status, recorded.error_code) == (200, None)


def test_async_invocation_is_answered_202_and_on_invoke_receives_payload() -> None:
    received: list[Invocation] = []
    release = threading.Event()

    def on_invoke(invocation: Invocation) -> None:
        release.wait(5)  # the 202 must not wait for the callback
        received.append(invocation)

    with FcInvokeEmulator(on_invoke=on_invoke) as emulator:
        response = client_for(emulator).invoke_function(
            "svc", "fn", payload=b'{"job": 7}', headers={"x-fc-invocation-type": "Async"}
        )
        assert response.data == b""
        assert not emulator.wait_for(1, timeout=0.1)
        release.set()
        assert emulator.wait_for(1, timeout=5)

        assert [inv.payload for inv in received] == [b'{"job": 7}']
        assert received[0].invocation_type == "Async"
        assert received[0].headers["x-fc-invocation-type"] == "Async"
        assert response.headers["x-fc-request-id"] == received[0].request_id
        assert emulator.invocations == received
        assert [r.status for r in emulator.requests] == [202]
        assert emulator.callback_errors == []


def test_qualifier_is_split_from_the_service_name() -> None:
    with FcInvokeEmulator(functions={("svc", "fn")}) as emulator:
        client_for(emulator).invoke_function("svc", "fn", payload=b"x", qualifier="LATEST")
        [invocation] = emulator.invocations
        assert (invocation.service, invocation.qualifier) == ("svc", "LATEST")


def test_wrong_secret_is_rejected_with_signature_not_match_and_not_invoked() -> None:
    calls: list[Invocation] = []
    with FcInvokeEmulator(on_invoke=calls.append) as emulator:
        client = client_for(emulator, secret="wrong-secret")
        with pytest.raises(FcError) as caught:
            client.invoke_function("svc", "fn", payload=b"{}")

        assert caught.value.status_code == 403
        assert caught.value.err_code == "SignatureNotMatch"
        assert emulator.invocations == []
        assert calls == []
        [recorded] = emulator.requests
        assert not recorded.signature_valid
        assert caught.value.request_id == recorded.request_id


def test_unknown_access_key_is_rejected_with_invalid_access_key_id() -> None:
    with FcInvokeEmulator() as emulator:
        with pytest.raises(FcError) as caught:
            client_for(emulator, key_id="nobody").invoke_function("svc", "fn", payload=b"{}")
        assert (caught.value.status_code, caught.value.err_code) == (403, "InvalidAccessKeyID")
        assert emulator.invocations == []


@pytest.mark.parametrize("token", ["", "wrong-token"])
def test_sts_key_without_or_with_wrong_security_token_is_rejected(token: str) -> None:
    with FcInvokeEmulator(access_keys=STS_KEYS) as emulator:
        client = client_for(emulator, "STS.test-id", "sts-secret", token)
        with pytest.raises(FcError) as caught:
            client.invoke_function("svc", "fn", payload=b"{}")
        assert (caught.value.status_code, caught.value.err_code) == (403, "InvalidSecurityToken")
        assert emulator.invocations == []
        # the signature itself was right: only the token is at fault
        assert emulator.requests[0].signature_valid


def test_sts_key_with_its_security_token_is_accepted_and_token_is_signed() -> None:
    with FcInvokeEmulator(access_keys=STS_KEYS) as emulator:
        client = client_for(emulator, "STS.test-id", "sts-secret", "sts-token")
        client.invoke_function("svc", "fn", payload=b"{}")
        [invocation] = emulator.invocations
        assert invocation.headers["x-fc-security-token"] == "sts-token"
        assert "x-fc-security-token:sts-token\n" in (emulator.requests[0].string_to_sign or "")


def test_security_token_sent_with_a_permanent_key_is_rejected() -> None:
    with FcInvokeEmulator() as emulator:
        with pytest.raises(FcError) as caught:
            client_for(emulator, token="stray").invoke_function("svc", "fn", payload=b"{}")
        assert caught.value.err_code == "InvalidSecurityToken"


def test_unknown_service_and_function_are_404_when_functions_are_declared() -> None:
    with FcInvokeEmulator(functions={("svc", "fn")}) as emulator:
        client = client_for(emulator)
        with pytest.raises(FcError) as no_service:
            client.invoke_function("other", "fn", payload=b"{}")
        with pytest.raises(FcError) as no_function:
            client.invoke_function("svc", "other", payload=b"{}")
        client.invoke_function("svc", "fn", payload=b"{}")

        assert (no_service.value.status_code, no_service.value.err_code) == (
            404,
            "ServiceNotFound",
        )
        assert (no_function.value.status_code, no_function.value.err_code) == (
            404,
            "FunctionNotFound",
        )
        assert [inv.function for inv in emulator.invocations] == ["fn"]


def test_string_to_sign_matches_fc2_signature_for_the_same_headers() -> None:
    headers = signed_headers(extra={"x-fc-invocation-type": "Async", "x-fc-trace-id": "t"})
    expected = headers["authorization"].split(":", 1)[1]
    assert sign_string(AK_SECRET, string_to_sign("POST", INVOKE_PATH, headers)) == expected


def test_tampered_x_fc_header_breaks_the_signature() -> None:
    headers = signed_headers(extra={"x-fc-invocation-type": "Sync"})
    headers["x-fc-invocation-type"] = "Async"
    with FcInvokeEmulator() as emulator:
        response = requests.post(emulator.url + INVOKE_PATH, headers=headers, timeout=5)
        assert response.status_code == 403
        assert response.json()["ErrorCode"] == "SignatureNotMatch"
        assert response.headers["x-fc-request-id"]
        assert emulator.invocations == []


def test_date_more_than_15_minutes_off_is_rejected_even_when_signed() -> None:
    stale = email.utils.formatdate(time.time() - 16 * 60, usegmt=True)
    fresh = email.utils.formatdate(time.time() - 14 * 60, usegmt=True)
    with FcInvokeEmulator() as emulator:
        too_old = requests.post(
            emulator.url + INVOKE_PATH, headers=signed_headers(date=stale), timeout=5
        )
        in_window = requests.post(
            emulator.url + INVOKE_PATH, headers=signed_headers(date=fresh), timeout=5
        )
        assert too_old.status_code == 403
        assert too_old.json()["ErrorCode"] == "RequestTimeTooSkewed"
        assert in_window.status_code == 200
        assert len(emulator.invocations) == 1


def test_sync_on_invoke_exception_is_an_unhandled_invocation_error() -> None:
    def on_invoke(invocation: Invocation) -> None:
        raise RuntimeError("boom")

    with FcInvokeEmulator(on_invoke=on_invoke) as emulator:
        with pytest.raises(FcError) as caught:
            client_for(emulator).invoke_function("svc", "fn", payload=b"{}")
        assert caught.value.status_code == 200
        assert "boom" in caught.value.message
        assert len(emulator.invocations) == 1
        assert [type(e) for e in emulator.callback_errors] == [RuntimeError]


def test_async_payload_over_128_kb_is_rejected_with_entity_too_large() -> None:
    with FcInvokeEmulator() as emulator:
        client = client_for(emulator)
        with pytest.raises(FcError) as caught:
            client.invoke_function(
                "svc",
                "fn",
                payload=b"x" * (128 * 1024 + 1),
                headers={"x-fc-invocation-type": "Async"},
            )
        assert (caught.value.status_code, caught.value.err_code) == (400, "EntityTooLarge")
        client.invoke_function(
            "svc", "fn", payload=b"x" * (128 * 1024), headers={"x-fc-invocation-type": "Async"}
        )
        assert len(emulator.invocations) == 1


def test_injected_server_error_is_503_and_fc2_does_not_retry_it() -> None:
    with FcInvokeEmulator() as emulator:
        client = client_for(emulator)
        emulator.inject("server_error")
        with pytest.raises(FcError) as caught:
            client.invoke_function("svc", "fn", payload=b"{}")
        assert (caught.value.status_code, caught.value.err_code) == (503, "ServiceUnavailable")
        # fc2 retries only 500/502/504 and urllib3 never retries POST: one attempt seen.
        assert [(r.status, r.fault) for r in emulator.requests] == [(503, "server_error")]
        assert emulator.invocations == []

        client.invoke_function("svc", "fn", payload=b"{}")
        assert len(emulator.invocations) == 1


def test_injected_throttle_is_429_resource_throttled_for_the_next_n_requests() -> None:
    with FcInvokeEmulator() as emulator:
        client = client_for(emulator)
        emulator.inject("throttle", times=2)
        for _ in range(2):
            with pytest.raises(FcError) as caught:
                client.invoke_function("svc", "fn", payload=b"{}")
            assert (caught.value.status_code, caught.value.err_code) == (429, "ResourceThrottled")
        client.invoke_function("svc", "fn", payload=b"{}")
        assert [r.status for r in emulator.requests] == [429, 429, 200]
        assert len(emulator.invocations) == 1


def test_injected_drop_closes_without_answer_and_fc2_raises_connection_error() -> None:
    with FcInvokeEmulator() as emulator:
        client = client_for(emulator)
        emulator.inject("drop")
        with pytest.raises(requests.exceptions.ConnectionError):
            client.invoke_function(
                "svc", "fn", payload=b"{}", headers={"x-fc-invocation-type": "Async"}
            )
        # POST is not retried by fc2's urllib3 Retry on a read error either.
        [dropped] = emulator.requests
        assert (dropped.status, dropped.fault, dropped.body) == (None, "drop", b"{}")
        assert emulator.invocations == []

        client.invoke_function(
            "svc", "fn", payload=b"{}", headers={"x-fc-invocation-type": "Async"}
        )
        assert emulator.wait_for(1, timeout=5)


def test_other_paths_are_path_not_supported() -> None:
    with FcInvokeEmulator() as emulator:
        response = requests.get(emulator.url + "/2016-08-15/services", timeout=5)
        assert response.status_code == 400
        assert response.json()["ErrorCode"] == "PathNotSupported"


def test_emulator_refuses_a_non_loopback_host() -> None:
    with pytest.raises(ValueError, match="loopback"):
        FcInvokeEmulator(host="0.0.0.0")


def test_inject_rejects_unknown_fault_kind() -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        FcInvokeEmulator().inject("explode")
