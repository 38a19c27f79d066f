"""Local emulator of the Function Compute 2016-08-15 ``InvokeFunction`` API, for tests.

Only the invoke route is served::

    POST /2016-08-15/services/{service}[.{qualifier}]/functions/{function}/invocations

Requests are authenticated the way the real service does it, reimplemented here from the
received request (the SDK is not imported)::

    Authorization: FC <access key id>:<base64(HMAC-SHA256(secret, string_to_sign))>

    string_to_sign = METHOD "\\n" Content-MD5 "\\n" Content-Type "\\n" Date "\\n"
                     canonical_headers canonical_resource

where ``canonical_headers`` is every ``x-fc-*`` header, lower-cased, sorted by name, each as
``name:value\\n``, and ``canonical_resource`` is the percent-decoded request path (the invoke
API carries no query string).  Errors are answered as JSON
``{"ErrorCode": ..., "ErrorMessage": ...}`` with an ``x-fc-request-id`` header, like the
service does.

The server binds to a loopback address only and uses nothing but the standard library.
"""

from __future__ import annotations

import base64
import collections
import email.utils
import hashlib
import hmac
import ipaddress
import json
import re
import threading
import traceback
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = [
    "API_VERSION",
    "ASYNC_PAYLOAD_LIMIT",
    "DEFAULT_ACCESS_KEYS",
    "FAULT_KINDS",
    "MAX_DATE_SKEW",
    "SYNC_PAYLOAD_LIMIT",
    "FcInvokeEmulator",
    "Invocation",
    "RecordedFcRequest",
    "sign_string",
    "string_to_sign",
]

API_VERSION = "2016-08-15"
DEFAULT_ACCESS_KEYS: dict[str, tuple[str, str | None]] = {
    "test-access-key-id": ("test-access-key-secret", None),
}
#: Largest ``Date`` difference from the emulator's clock that is accepted.
MAX_DATE_SKEW = timedelta(minutes=15)
#: FC 2.0 payload limits: 32 MB for a synchronous, 128 KB for an asynchronous invocation.
SYNC_PAYLOAD_LIMIT = 32 * 1024 * 1024
ASYNC_PAYLOAD_LIMIT = 128 * 1024
#: ``inject`` kinds -> (HTTP status, ErrorCode, ErrorMessage); ``drop`` answers nothing.
FAULT_KINDS: dict[str, tuple[int, str, str] | None] = {
    "server_error": (503, "ServiceUnavailable", "the service is temporarily unavailable"),
    "throttle": (429, "ResourceThrottled", "the request is throttled, please retry later"),
    "drop": None,
}

_INVOKE_PATH = re.compile(
    r"^/" + re.escape(API_VERSION) + r"/services/([^/]+)/functions/([^/]+)/invocations/?$"
)
_STACK_LIMIT = 20


@dataclass(frozen=True)
class Invocation:
    """One accepted invocation, in the order the emulator accepted them."""

    service: str
    function: str
    qualifier: str | None
    invocation_type: str  # "Sync" or "Async"
    payload: bytes
    request_id: str  # the x-fc-request-id the emulator answered with
    headers: dict[str, str]  # request headers, names lower-cased

    def json(self) -> Any:
        """The payload decoded as UTF-8 JSON."""
        return json.loads(self.payload.decode("utf-8"))


@dataclass(frozen=True)
class RecordedFcRequest:
    """Every request the emulator received, whatever it answered."""

    method: str
    path: str  # raw request target, as received
    headers: dict[str, str]  # names lower-cased
    body: bytes
    request_id: str
    status: int | None  # None when the connection was dropped without an answer
    error_code: str | None  # ErrorCode answered, None for an accepted invocation / a drop
    signature_valid: bool  # the Authorization header matched a known key's signature
    access_key_id: str | None = None
    service: str | None = None
    function: str | None = None
    qualifier: str | None = None
    invocation_type: str | None = None
    fault: str | None = None  # the injected fault kind that answered this request
    string_to_sign: str | None = field(default=None, repr=False)


def string_to_sign(method: str, path: str, headers: dict[str, str]) -> str:
    """Build the FC string to sign from a lower-cased header dict and the decoded path."""
    canonical = sorted((k, v) for k, v in headers.items() if k.startswith("x-fc-"))
    canonical_headers = "".join(f"{k}:{v}\n" for k, v in canonical)
    return "\n".join(
        [
            method.upper(),
            headers.get("content-md5", ""),
            headers.get("content-type", ""),
            headers.get("date", ""),
            canonical_headers + path,
        ]
    )


def sign_string(secret: str, text: str) -> str:
    """base64(HMAC-SHA256(secret, text)): the part of ``Authorization`` after ``<ak>:``."""
    digest = hmac.new(secret.encode("utf-8"), text.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


class _FcError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(status, code, message)
        self.status = status
        self.code = code
        self.message = message


class FcInvokeEmulator:
    """A threaded HTTP server on 127.0.0.1 answering like FC's InvokeFunction API.

    ``on_invoke(invocation)`` is called for every accepted invocation after it is recorded:
    inline for ``Sync`` (its return value becomes the 200 body: ``bytes`` pass through,
    ``None`` gives an empty body, anything else is JSON-encoded; an exception becomes a 200
    answer with ``x-fc-error-type: UnhandledInvocationError`` like a failing function), and in a
    background thread for ``Async`` (the 202 is answered at once).  Exceptions raised by the
    callback are kept in :attr:`callback_errors`.
    """

    def __init__(
        self,
        *,
        access_keys: dict[str, tuple[str, str | None]] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        on_invoke: Callable[[Invocation], Any] | None = None,
        functions: Iterable[tuple[str, str]] | None = None,
    ) -> None:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"host must be an IPv4 loopback address, got {host!r}") from None
        if address.version != 4 or not address.is_loopback:
            raise ValueError(f"host must be an IPv4 loopback address, got {host!r}")
        self._host = host
        self._port = port
        self._access_keys = dict(DEFAULT_ACCESS_KEYS if access_keys is None else access_keys)
        self._on_invoke = on_invoke
        self._functions = None if functions is None else frozenset(functions)
        self._services = (
            None if self._functions is None else frozenset(s for s, _ in self._functions)
        )

        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._invocations: list[Invocation] = []
        self._requests: list[RecordedFcRequest] = []
        self._callback_errors: list[BaseException] = []
        self._faults: collections.deque[str] = collections.deque()
        self._async_done = 0
        self._workers: list[threading.Thread] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> FcInvokeEmulator:
        if self._server is not None:
            raise RuntimeError("emulator already started")
        server = ThreadingHTTPServer((self._host, self._port), _make_handler(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fc-invoke-emulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        with self._lock:
            workers = list(self._workers)
        for worker in workers:
            worker.join(timeout)

    def __enter__(self) -> FcInvokeEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- public state ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("emulator not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def endpoint(self) -> str:
        """Same as :attr:`url`: ``fc2.Client`` takes a full URL as endpoint."""
        return self.url

    @property
    def invocations(self) -> list[Invocation]:
        """Accepted invocations, in order (a snapshot)."""
        with self._lock:
            return list(self._invocations)

    @property
    def requests(self) -> list[RecordedFcRequest]:
        """Every request received, in order (a snapshot)."""
        with self._lock:
            return list(self._requests)

    @property
    def callback_errors(self) -> list[BaseException]:
        """Exceptions raised by ``on_invoke`` (sync and async), in order."""
        with self._lock:
            return list(self._callback_errors)

    def inject(self, kind: str, times: int = 1) -> None:
        """Answer the next ``times`` requests with a fault, before any other check.

        ``server_error``: 503 ServiceUnavailable; ``throttle``: 429 ResourceThrottled;
        ``drop``: read the request, then close the connection without answering.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; expected one of {sorted(FAULT_KINDS)}")
        if times < 1:
            raise ValueError("times must be >= 1")
        with self._lock:
            self._faults.extend([kind] * times)

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until ``count`` async invocations have been handled (``on_invoke`` returned or
        raised; immediately on acceptance when there is no ``on_invoke``)."""
        with self._done:
            return self._done.wait_for(lambda: self._async_done >= count, timeout)

    # -- request handling (called from handler threads) -----------------------------------

    def _take_fault(self) -> str | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _record(self, request: RecordedFcRequest, invocation: Invocation | None = None) -> None:
        with self._lock:
            self._requests.append(request)
            if invocation is not None:
                self._invocations.append(invocation)

    def _authenticate(
        self, method: str, path: str, headers: dict[str, str]
    ) -> tuple[str | None, bool, str | None, _FcError | None]:
        """Return (access key id, signature valid, string to sign, first auth error)."""
        authorization = headers.get("authorization")
        if authorization is None:
            error = _FcError(
                400,
                "MissingRequiredHeader",
                "required HTTP header Authorization was not specified",
            )
            return None, False, None, error
        scheme, _, credentials = authorization.partition(" ")
        key_id, sep, signature = credentials.strip().partition(":")
        if scheme != "FC" or not sep or not key_id or not signature:
            error = _FcError(
                400, "InvalidArgument", "Authorization header must be 'FC <AccessKeyID>:<sig>'"
            )
            return None, False, None, error
        text = string_to_sign(method, unquote(urlsplit(path).path), headers)
        known = self._access_keys.get(key_id)
        if known is None:
            error = _FcError(403, "InvalidAccessKeyID", f"invalid access key ID '{key_id}'")
            return key_id, False, text, error
        secret, token = known
        valid = hmac.compare_digest(sign_string(secret, text).encode(), signature.encode())

        error = None
        sent_token = headers.get("x-fc-security-token")
        if token is not None and sent_token is None:
            error = _FcError(
                403, "InvalidSecurityToken", f"security token required for '{key_id}'"
            )
        elif token is not None and not hmac.compare_digest(sent_token or "", token):
            error = _FcError(403, "InvalidSecurityToken", "invalid security token")
        elif token is None and sent_token is not None:
            error = _FcError(
                403, "InvalidSecurityToken", f"'{key_id}' is not a temporary (STS) access key"
            )
        elif not valid:
            error = _FcError(
                403,
                "SignatureNotMatch",
                "The request signature we calculated does not match the signature you "
                "provided. Check your access key and signing method",
            )
        return key_id, valid, text, error

    def _check_date(self, headers: dict[str, str]) -> None:
        raw = headers.get("date")
        if raw is None:
            raise _FcError(
                400, "MissingRequiredHeader", "required HTTP header Date was not specified"
            )
        try:
            sent = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            raise _FcError(400, "InvalidArgument", f"invalid Date header {raw!r}") from None
        if sent.tzinfo is None:
            sent = sent.replace(tzinfo=timezone.utc)
        skew = abs(datetime.now(timezone.utc) - sent)
        if skew > MAX_DATE_SKEW:
            limit = int(MAX_DATE_SKEW.total_seconds())
            raise _FcError(
                403,
                "RequestTimeTooSkewed",
                f"the difference between the request time {raw!r} and the server's time "
                f"is {int(skew.total_seconds())}s, more than {limit}s",
            )

    def _invoke_async(self, invocation: Invocation) -> None:
        callback = self._on_invoke
        if callback is None:
            with self._done:
                self._async_done += 1
                self._done.notify_all()
            return

        def run() -> None:
            try:
                callback(invocation)
            except BaseException as exc:  # kept for the test to inspect, never re-raised
                with self._lock:
                    self._callback_errors.append(exc)
            finally:
                with self._done:
                    self._async_done += 1
                    self._done.notify_all()

        worker = threading.Thread(target=run, name="fc-invoke-async", daemon=True)
        with self._lock:
            self._workers.append(worker)
        worker.start()

    def _invoke_sync(self, invocation: Invocation) -> tuple[bytes, str, dict[str, str]]:
        """Return (body, content type, extra headers) of a 200 answer."""
        if self._on_invoke is None:
            return b"", "application/octet-stream", {}
        try:
            result = self._on_invoke(invocation)
        except Exception as exc:
            with self._lock:
                self._callback_errors.append(exc)
            body = json.dumps(
                {
                    "errorMessage": str(exc),
                    "errorType": type(exc).__name__,
                    "stackTrace": traceback.format_exception(exc)[-_STACK_LIMIT:],
                }
            ).encode("utf-8")
            return body, "application/json", {"x-fc-error-type": "UnhandledInvocationError"}
        if result is None:
            return b"", "application/octet-stream", {}
        if isinstance(result, (bytes, bytearray, memoryview)):
            return bytes(result), "application/octet-stream", {}
        return json.dumps(result).encode("utf-8"), "application/json", {}


def _make_handler(emulator: FcInvokeEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        pass

    Handler.emulator = emulator
    return Handler


class _Handler(BaseHTTPRequestHandler):
    emulator: FcInvokeEmulator
    protocol_version = "HTTP/1.1"
    server_version = "FcInvokeEmulator/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self._handle()

    def do_GET(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self) -> None:
        emulator = self.emulator
        method = self.command
        headers = {k.lower(): v for k, v in self.headers.items()}
        request_id = str(uuid.uuid4())
        try:
            body = self._read_body()
        except ValueError:
            body = b""
            self.close_connection = True
        info: dict[str, Any] = {
            "method": method,
            "path": self.path,
            "headers": headers,
            "body": body,
            "request_id": request_id,
        }

        key_id, valid, text, auth_error = emulator._authenticate(method, self.path, headers)
        info.update(access_key_id=key_id, signature_valid=valid, string_to_sign=text)

        match = _INVOKE_PATH.match(urlsplit(self.path).path)
        if match:
            service_part, function = unquote(match.group(1)), unquote(match.group(2))
            service, dot, qualifier = service_part.partition(".")
            info.update(service=service, function=function, qualifier=qualifier if dot else None)

        fault = emulator._take_fault()
        if fault is not None:
            info["fault"] = fault
            answer = FAULT_KINDS[fault]
            if answer is None:
                emulator._record(RecordedFcRequest(status=None, error_code=None, **info))
                self.close_connection = True
                return
            status, code, message = answer
            emulator._record(RecordedFcRequest(status=status, error_code=code, **info))
            self._send_error(_FcError(status, code, message), request_id)
            return

        try:
            if match is None or method != "POST":
                raise _FcError(
                    400,
                    "PathNotSupported",
                    f"'{method}' against '{urlsplit(self.path).path}' is not supported",
                )
            emulator._check_date(headers)
            if auth_error is not None:
                raise auth_error
            invocation_type = _invocation_type(headers.get("x-fc-invocation-type"))
            info["invocation_type"] = invocation_type
            limit = ASYNC_PAYLOAD_LIMIT if invocation_type == "Async" else SYNC_PAYLOAD_LIMIT
            if len(body) > limit:
                raise _FcError(
                    400,
                    "EntityTooLarge",
                    f"payload size exceeds maximum allowed size ({limit} bytes)",
                )
            _check_exists(emulator, info["service"], info["function"])
        except _FcError as error:
            emulator._record(RecordedFcRequest(status=error.status, error_code=error.code, **info))
            self._send_error(error, request_id)
            return

        invocation = Invocation(
            service=info["service"],
            function=info["function"],
            qualifier=info["qualifier"],
            invocation_type=invocation_type,
            payload=body,
            request_id=request_id,
            headers=dict(headers),
        )
        status = 202 if invocation_type == "Async" else 200
        emulator._record(RecordedFcRequest(status=status, error_code=None, **info), invocation)
        if invocation_type == "Async":
            self._send(202, b"", request_id, "application/octet-stream")
            emulator._invoke_async(invocation)
            return
        result, content_type, extra = emulator._invoke_sync(invocation)
        self._send(200, result, request_id, content_type, extra)

    def _send_error(self, error: _FcError, request_id: str) -> None:
        body = json.dumps({"ErrorCode": error.code, "ErrorMessage": error.message})
        self._send(error.status, body.encode("utf-8"), request_id, "application/json")

    def _send(
        self,
        status: int,
        body: bytes,
        request_id: str,
        content_type: str,
        extra: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-fc-request-id", request_id)
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)


def _invocation_type(raw: str | None) -> str:
    if raw is None or raw.lower() == "sync":
        return "Sync"
    if raw.lower() == "async":
        return "Async"
    raise _FcError(
        400, "InvalidArgument", f"x-fc-invocation-type must be 'Sync' or 'Async', got {raw!r}"
    )


def _check_exists(emulator: FcInvokeEmulator, service: str, function: str) -> None:
    if emulator._functions is None or emulator._services is None:
        return
    if service not in emulator._services:
        raise _FcError(404, "ServiceNotFound", f"service '{service}' does not exist")
    if (service, function) not in emulator._functions:
        raise _FcError(
            404, "FunctionNotFound", f"function '{function}' does not exist in service '{service}'"
        )
