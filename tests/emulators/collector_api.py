"""Local emulator of the Elasticsearch 2017-06-13 collector API (ROA style), for tests.

Routes served (everything else is ``404 InvalidAction.NotFound``)::

    POST /openapi/collectors/{ResId}/actions/reinstall   ReinstallCollector
    GET  /openapi/collectors/{ResId}                     DescribeCollector
    GET  /openapi/collectors                             ListCollectors
    GET  /openapi/collectors/{ResId}/nodes               ListNodes
    GET  /_emulator/state                                unsigned debug dump (not recorded)

Every API request is authenticated from what arrived, reimplementing both signatures the
Alibaba Cloud SDK produces (the SDK is not imported):

* ``ACS3-HMAC-SHA256`` (``Authorization: ACS3-HMAC-SHA256 Credential=..,SignedHeaders=..,
  Signature=..``): hex HMAC-SHA256 over ``"ACS3-HMAC-SHA256\\n" + hex(sha256(canonical))``
  where the canonical request is method, path, sorted query (values quoted with safe ``~``),
  the signed headers as ``name:value`` lines, the signed header list and
  ``x-acs-content-sha256``.
* ROA ``HMAC-SHA1`` (``Authorization: acs <ak>:<base64 sig>``): base64 HMAC-SHA1 over
  method, Accept, Content-MD5, Content-Type, Date, every ``x-acs-*`` header as
  ``name:value`` lines, then the path plus the sorted raw query.

Errors are JSON ``{"RequestId", "Code", "Message"}``.  The server binds to loopback only and
uses nothing but the standard library, so it also runs standalone::

    python tests/emulators/collector_api.py --port 8080 --state state.json --fault-rate 0.3
"""

from __future__ import annotations

import argparse
import base64
import bisect
import hashlib
import hmac
import ipaddress
import itertools
import json
import random
import re
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import Message
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

__all__ = [
    "API_VERSION",
    "DEFAULT_ACCESS_KEYS",
    "FAULT_KINDS",
    "CollectorApiEmulator",
    "EffectiveReinstall",
    "RecordedRequest",
    "main",
]

API_VERSION = "2017-06-13"
DEFAULT_ACCESS_KEYS: dict[str, tuple[str, str | None]] = {
    "test-access-key-id": ("test-access-key-secret", None),
}
FAULT_KINDS = ("throttle", "server_error", "drop_before", "drop_after", "slow")
AGENT_STATUSES = ("heartOk", "heartLost", "uninstalled", "failed")
#: Largest difference between a request's timestamp and the emulator's clock that is accepted;
#: set the class attribute to None to turn the check off.
MAX_CLOCK_SKEW_S = 15 * 60
STATE_PATH = "/_emulator/state"
MAX_BODY_BYTES = 8 * 1024 * 1024
OWNER_ID = "1000000000000001"

ACS3_ALGORITHM = "ACS3-HMAC-SHA256"
ROA_ALGORITHM = "HMAC-SHA1"
_ACS3_REQUIRED_SIGNED = (
    "host",
    "x-acs-action",
    "x-acs-content-sha256",
    "x-acs-date",
    "x-acs-signature-nonce",
    "x-acs-version",
)
_CLIENT_TOKEN_RE = re.compile(r"^[\x20-\x7e]{1,64}$")
_COLLECTOR = r"/openapi/collectors/(?P<res_id>[^/]+)"
_ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("POST", re.compile(rf"^{_COLLECTOR}/actions/reinstall$"), "ReinstallCollector"),
    ("GET", re.compile(r"^/openapi/collectors$"), "ListCollectors"),
    ("GET", re.compile(rf"^{_COLLECTOR}/nodes$"), "ListNodes"),
    ("GET", re.compile(rf"^{_COLLECTOR}$"), "DescribeCollector"),
)


@dataclass(frozen=True)
class RecordedRequest:
    """One request that reached the handler, with the emulator's verdict.

    ``status`` is the HTTP status answered, or 0 when the connection was dropped before
    processing (``drop_before``); for ``drop_after`` it is the status of the processed (but
    unsent) answer.  ``signature_valid`` is True only when every authentication check passed
    (signature, access key, security token, timestamp, nonce, action/version headers).
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    action: str | None
    access_key_id: str | None
    signature_method: str | None
    signature_valid: bool
    status: int
    error_code: str | None
    fault: str | None

    def json(self) -> object:
        """The body parsed as JSON, or None when it is empty or not JSON."""
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclass(frozen=True)
class EffectiveReinstall:
    """A ReinstallCollector that changed state (idempotent replays are not listed)."""

    collector_id: str
    nodes: tuple[str, ...]
    client_token: str | None
    request_id: str
    at: float


@dataclass
class _Collector:
    res_id: str
    name: str
    status: str
    region: str
    tags: dict[str, str]
    vpc_id: str
    created: datetime
    updated: datetime
    machines: dict[str, str]

    def to_api(self) -> dict[str, Any]:
        return {
            "resId": self.res_id,
            "name": self.name,
            "resType": "fileBeat",
            "resVersion": "6.8.5_with_community",
            "status": self.status,
            "vpcId": self.vpc_id,
            "ownerId": OWNER_ID,
            "gmtCreatedTime": _format_time(self.created),
            "gmtUpdateTime": _format_time(self.updated),
            "dryRun": False,
            "collectorPaths": [],
            "configs": [],
            "extendConfigs": [
                {
                    "configType": "collectorDeployMachine",
                    "type": "ECSInstanceId",
                    "groupId": f"default_{self.res_id}",
                    "instanceId": self.vpc_id,
                    "machines": [
                        {"instanceId": iid, "agentStatus": st} for iid, st in self.machines.items()
                    ],
                }
            ],
            "tags": dict(self.tags),
        }


@dataclass
class _Fault:
    kind: str
    remaining: int
    action: str | None
    retry_after_ms: int | None = None
    delay_s: float = 0.0


@dataclass
class _RandomFaults:
    rate: float
    kinds: tuple[str, ...]
    delay_s: float
    action: str | None


@dataclass
class _Answer:
    status: int
    body: bytes
    request_id: str
    error_code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _StoredToken:
    res_id: str
    body_key: str
    answer: _Answer
    at: float


@dataclass
class _Exchange:
    """Mutable per-request facts gathered while handling, frozen into a RecordedRequest."""

    seq: int
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    multi_headers: dict[str, list[str]]
    body: bytes
    action: str | None = None
    access_key_id: str | None = None
    signature_method: str | None = None
    signature_valid: bool = False
    fault: str | None = None


class _ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def answer(self, request_id: str) -> _Answer:
        body = {"RequestId": request_id, "Code": self.code, "Message": self.message}
        return _Answer(self.status, _dump(body), request_id, self.code, dict(self.headers))


def _dump(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _format_time(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _loopback_host(host: str) -> str:
    """Return ``host`` as a loopback IP literal, or raise ValueError."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"host must be a loopback IP address, got {host!r}") from None
    loopback_v4 = ipaddress.ip_network("127.0.0.0/8")
    if (address.version == 4 and address in loopback_v4) or address == ipaddress.ip_address("::1"):
        return str(address)
    raise ValueError(f"host must be a loopback address (127.0.0.0/8 or ::1), got {host!r}")


def _route(method: str, path: str) -> tuple[str, str | None] | None:
    for route_method, pattern, action in _ROUTES:
        match = pattern.match(path)
        if match and method == route_method:
            return action, match.groupdict().get("res_id")
    return None


def _body_key(body: bytes) -> str:
    """A comparison key for request bodies that ignores JSON formatting and key order."""
    try:
        return json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"))
    except ValueError:
        return "raw:" + body.hex()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], emulator: CollectorApiEmulator) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.emulator = emulator
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout, drop) is normal here, not worth a traceback.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "CollectorApiEmulator/1.0"
    sys_version = ""

    def do_GET(self) -> None:
        self.server.emulator._serve(self)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


class CollectorApiEmulator:
    """A signed, fault-injectable stand-in for the Elasticsearch collector API."""

    #: Seconds of clock skew tolerated on x-acs-date / Date; None disables the check.
    max_clock_skew_s: float | None = MAX_CLOCK_SKEW_S

    def __init__(
        self,
        *,
        access_keys: dict[str, tuple[str, str | None]] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        token_ttl_seconds: float | None = None,
        status_after_reinstall: str = "heartOk",
        seed: int = 0,
    ) -> None:
        self._host = _loopback_host(host)
        self._port = port
        self._access_keys = dict(DEFAULT_ACCESS_KEYS if access_keys is None else access_keys)
        self._token_ttl = token_ttl_seconds
        self.status_after_reinstall = status_after_reinstall
        self._seed = seed
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._seq = itertools.count()
        self._collectors: dict[str, _Collector] = {}
        self._tokens: dict[str, _StoredToken] = {}
        self._nonces: dict[str, dict[str, float]] = {}
        self._faults: list[_Fault] = []
        self._random_faults: _RandomFaults | None = None
        self._request_seqs: list[int] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.requests: list[RecordedRequest] = []
        self.reinstalls: list[EffectiveReinstall] = []
        #: Called with each RecordedRequest after it is recorded (the CLI prints from here).
        self.on_request: Callable[[RecordedRequest], None] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> CollectorApiEmulator:
        """Bind and serve in a daemon thread."""
        if self._server is not None:
            raise RuntimeError("emulator already started")
        self._server = _Server((self._host, self._port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"collector-api-emulator-{self._server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket (idempotent)."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> CollectorApiEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        """``host:port`` as the SDK's Config(endpoint=...) wants it."""
        if self._server is None:
            raise RuntimeError("emulator not started")
        port = self._server.server_address[1]
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{host}:{port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    # -- state -----------------------------------------------------------------------------

    def add_collector(
        self,
        collector_id: str,
        machines: dict[str, str] | None = None,
        *,
        name: str | None = None,
        status: str = "active",
        gmt_update_time: datetime | None = None,
        region: str = "cn-hangzhou",
        tags: dict[str, str] | None = None,
    ) -> None:
        """Create (or replace) a collector; ``machines`` maps ECS instance id -> agentStatus."""
        digest = hashlib.sha256(f"{self._seed}:{collector_id}".encode()).hexdigest()
        now = _now()
        collector = _Collector(
            res_id=collector_id,
            name=name if name is not None else collector_id,
            status=status,
            region=region,
            tags=dict(tags or {}),
            vpc_id=f"vpc-{digest[:21]}",
            created=now,
            updated=gmt_update_time if gmt_update_time is not None else now,
            machines=dict(machines or {}),
        )
        with self._lock:
            self._collectors[collector_id] = collector

    def add_access_key(
        self, access_key_id: str, secret: str, security_token: str | None = None
    ) -> None:
        """Accept another key (e.g. rotated STS credentials) from now on."""
        with self._lock:
            self._access_keys[access_key_id] = (secret, security_token)

    def agent_status(self, collector_id: str, instance_id: str) -> str:
        with self._lock:
            return self._collectors[collector_id].machines[instance_id]

    def set_agent_status(self, collector_id: str, instance_id: str, status: str) -> None:
        with self._lock:
            self._collectors[collector_id].machines[instance_id] = status

    def effective_reinstalls(self, collector_id: str | None = None) -> list[EffectiveReinstall]:
        with self._lock:
            return [r for r in self.reinstalls if collector_id in (None, r.collector_id)]

    def snapshot(self) -> dict[str, Any]:
        """What GET /_emulator/state answers."""
        with self._lock:
            collectors = [{**c.to_api(), "region": c.region} for c in self._collectors.values()]
            reinstalls = [
                {
                    "collectorId": r.collector_id,
                    "nodes": list(r.nodes),
                    "clientToken": r.client_token,
                    "requestId": r.request_id,
                    "at": r.at,
                }
                for r in self.reinstalls
            ]
        return {"collectors": collectors, "reinstalls": reinstalls}

    # -- faults ----------------------------------------------------------------------------

    def inject(
        self,
        kind: str,
        times: int = 1,
        *,
        action: str | None = None,
        retry_after_ms: int | None = None,
        delay_s: float = 0.0,
    ) -> None:
        """Queue ``kind`` for the next ``times`` authenticated requests matching ``action``."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
        if times < 1:
            raise ValueError("times must be >= 1")
        with self._lock:
            self._faults.append(_Fault(kind, times, action, retry_after_ms, delay_s))

    def set_fault_rate(
        self,
        rate: float,
        kinds: tuple[str, ...] = FAULT_KINDS,
        *,
        delay_s: float = 0.2,
        action: str | None = None,
    ) -> None:
        """Give each matching request probability ``rate`` of a random fault from ``kinds``."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be within [0, 1]")
        unknown = [k for k in kinds if k not in FAULT_KINDS]
        if unknown or not kinds:
            raise ValueError(f"kinds must be a non-empty subset of {FAULT_KINDS}")
        with self._lock:
            self._random_faults = (
                _RandomFaults(rate, tuple(kinds), delay_s, action) if rate > 0 else None
            )

    def reset_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._random_faults = None

    def _draw_fault(self, action: str | None) -> _Fault | None:
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.action in (None, action):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        del self._faults[index]
                    return fault
            spec = self._random_faults
            if spec is None or spec.action not in (None, action):
                return None
            if self._rng.random() >= spec.rate:
                return None
            return _Fault(self._rng.choice(spec.kinds), 1, action, None, spec.delay_s)

    # -- HTTP plumbing ---------------------------------------------------------------------

    def _serve(self, handler: _Handler) -> None:
        seq = next(self._seq)
        split = urlsplit(handler.path)
        path = unquote(split.path)
        multi = _header_lists(handler.headers)
        headers = {name: ", ".join(values) for name, values in multi.items()}
        exchange = _Exchange(
            seq=seq,
            method=handler.command,
            path=path,
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            headers=headers,
            multi_headers=multi,
            body=b"",
        )
        request_id = str(uuid.uuid4()).upper()
        try:
            exchange.body = _read_body(handler, headers)
        except _ApiError as error:
            self._finish(handler, exchange, error.answer(request_id))
            return
        if path == STATE_PATH:
            self._serve_state(handler)
            return

        routed = _route(exchange.method, path)
        exchange.action = routed[0] if routed else headers.get("x-acs-action")
        fault: _Fault | None = None
        try:
            self._authenticate(exchange, routed)
            exchange.signature_valid = True
            fault = self._draw_fault(exchange.action)
            if fault is not None:
                exchange.fault = fault.kind
                self._raise_fault_before(fault)
                if fault.kind == "drop_before":
                    self._record(exchange, 0, None)
                    handler.close_connection = True
                    return
            if routed is None:  # pragma: no cover - _authenticate rejects unknown routes
                raise _ApiError(404, "InvalidAction.NotFound", "No such API.")
            answer = self._process(routed[0], routed[1], exchange, request_id)
        except _ApiError as error:
            answer = error.answer(request_id)
        except Exception as error:
            # An emulator bug must reach the test as a recorded 500, not a dropped connection.
            message = "".join(traceback.format_exception_only(type(error), error)).strip()
            answer = _ApiError(500, "InternalError", f"emulator bug: {message}").answer(request_id)
        if fault is not None and fault.kind == "drop_after":
            self._record(exchange, answer.status, answer.error_code)
            handler.close_connection = True
            return
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay_s)
        self._finish(handler, exchange, answer)

    def _raise_fault_before(self, fault: _Fault) -> None:
        if fault.kind == "throttle":
            extra = {}
            if fault.retry_after_ms is not None:
                extra["x-acs-retry-after"] = str(fault.retry_after_ms)
            raise _ApiError(
                400, "Throttling.User", "Request was denied due to user flow control.", extra
            )
        if fault.kind == "server_error":
            raise _ApiError(
                503,
                "ServiceUnavailable",
                "The request has failed due to a temporary failure of the server.",
            )

    def _finish(self, handler: _Handler, exchange: _Exchange, answer: _Answer) -> None:
        # Record before answering so that a caller who got the answer also sees the record.
        self._record(exchange, answer.status, answer.error_code)
        _send(handler, answer)

    def _record(self, exchange: _Exchange, status: int, error_code: str | None) -> None:
        record = RecordedRequest(
            method=exchange.method,
            path=exchange.path,
            query=dict(exchange.query),
            headers=dict(exchange.headers),
            body=exchange.body,
            action=exchange.action,
            access_key_id=exchange.access_key_id,
            signature_method=exchange.signature_method,
            signature_valid=exchange.signature_valid,
            status=status,
            error_code=error_code,
            fault=exchange.fault,
        )
        with self._lock:
            # Keep arrival order even when a slow request finishes after a later one.
            index = bisect.bisect(self._request_seqs, exchange.seq)
            self._request_seqs.insert(index, exchange.seq)
            self.requests.insert(index, record)
        callback = self.on_request
        if callback is not None:
            callback(record)

    def _serve_state(self, handler: _Handler) -> None:
        client = handler.client_address[0]
        request_id = str(uuid.uuid4()).upper()
        if not ipaddress.ip_address(client.split("%")[0]).is_loopback:
            answer = _ApiError(403, "Forbidden", "loopback only").answer(request_id)
        elif handler.command != "GET":
            answer = _ApiError(405, "MethodNotAllowed", "use GET").answer(request_id)
        else:
            answer = _Answer(200, _dump(self.snapshot()), request_id)
        _send(handler, answer)

    # -- authentication --------------------------------------------------------------------

    def _authenticate(self, exchange: _Exchange, routed: tuple[str, str | None] | None) -> None:
        authorization = exchange.headers.get("authorization", "").strip()
        if not authorization:
            raise _ApiError(400, "MissingAuthorization", "Authorization header is required.")
        if authorization.startswith("ACS3-"):
            token = self._verify_acs3(exchange, authorization)
        elif authorization.startswith("acs "):
            token = self._verify_roa(exchange, authorization)
        else:
            raise _ApiError(
                400, "IncompleteSignature", "Authorization is neither ACS3 nor ROA 'acs'."
            )
        self._check_security_token(exchange, token)
        self._check_timestamp(exchange)
        self._check_action(exchange, routed)
        self._use_nonce(exchange)

    def _lookup_key(self, exchange: _Exchange, access_key_id: str) -> tuple[str, str | None]:
        exchange.access_key_id = access_key_id
        try:
            return self._access_keys[access_key_id]
        except KeyError:
            raise _ApiError(
                404, "InvalidAccessKeyId.NotFound", "Specified access key is not found."
            ) from None

    def _verify_acs3(self, exchange: _Exchange, authorization: str) -> str | None:
        """Check an ACS3-HMAC-SHA256 signature; return the key's security token."""
        algorithm, _, rest = authorization.partition(" ")
        exchange.signature_method = algorithm
        fields: dict[str, str] = {}
        for part in rest.split(","):
            name, sep, value = part.strip().partition("=")
            if sep:
                fields[name] = value
        missing = [f for f in ("Credential", "SignedHeaders", "Signature") if not fields.get(f)]
        if missing:
            raise _ApiError(
                400, "IncompleteSignature", f"Authorization lacks {', '.join(missing)}."
            )
        secret, token = self._lookup_key(exchange, fields["Credential"])
        if algorithm != ACS3_ALGORITHM:
            raise _ApiError(
                400,
                "InvalidSignatureMethod",
                f"Signature algorithm {algorithm} is not supported; use {ACS3_ALGORITHM}.",
            )
        signed = fields["SignedHeaders"].split(";")
        if signed != sorted(set(signed)) or any(name != name.lower() for name in signed):
            raise _ApiError(
                400, "IncompleteSignature", "SignedHeaders must be lower-case and sorted."
            )
        required = list(_ACS3_REQUIRED_SIGNED)
        if "x-acs-security-token" in exchange.headers:
            # A token that is sent must be signed; a missing one is reported as a token error.
            required.append("x-acs-security-token")
        unsigned = [name for name in required if name not in signed]
        absent = [name for name in signed if name not in exchange.multi_headers]
        if unsigned or absent:
            detail = []
            if unsigned:
                detail.append(f"headers not signed: {', '.join(unsigned)}")
            if absent:
                detail.append(f"signed headers missing from the request: {', '.join(absent)}")
            raise _ApiError(400, "IncompleteSignature", "; ".join(detail) + ".")

        payload_hash = exchange.headers["x-acs-content-sha256"].strip()
        if payload_hash != hashlib.sha256(exchange.body).hexdigest():
            raise _ApiError(
                400,
                "SignatureDoesNotMatch",
                "x-acs-content-sha256 does not match the sha256 of the request body.",
            )
        canonical_headers = "".join(
            f"{name}:{','.join(sorted(v.strip() for v in exchange.multi_headers[name]))}\n"
            for name in signed
        )
        canonical_request = "\n".join(
            [
                exchange.method,
                exchange.path or "/",
                _acs3_query(exchange.query),
                canonical_headers,
                ";".join(signed),
                payload_hash,
            ]
        )
        digest = hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()
        string_to_sign = f"{ACS3_ALGORITHM}\n{digest}"
        expected = hmac.new(
            secret.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha256
        ).hexdigest()
        if not hmac.compare_digest(expected, fields["Signature"].lower()):
            raise _ApiError(
                400,
                "SignatureDoesNotMatch",
                "The request signature does not conform to Aliyun standards. "
                f"Server canonical request is: {canonical_request!r}",
            )
        return token

    def _verify_roa(self, exchange: _Exchange, authorization: str) -> str | None:
        """Check a ROA 'acs <ak>:<sig>' HMAC-SHA1 signature; return the key's security token."""
        exchange.signature_method = ROA_ALGORITHM
        credential = authorization[len("acs ") :].strip()
        access_key_id, sep, signature = credential.rpartition(":")
        if not sep or not access_key_id or not signature:
            raise _ApiError(400, "IncompleteSignature", "Authorization must be 'acs <ak>:<sig>'.")
        secret, token = self._lookup_key(exchange, access_key_id)
        headers = exchange.headers
        method_header = headers.get("x-acs-signature-method", ROA_ALGORITHM)
        if method_header != ROA_ALGORITHM:
            raise _ApiError(
                400,
                "InvalidSignatureMethod",
                f"x-acs-signature-method {method_header} is not supported with 'acs'.",
            )
        if "content-md5" in headers:
            # Without Content-MD5 the ROA signature does not cover the body at all.
            actual_md5 = base64.b64encode(hashlib.md5(exchange.body).digest()).decode()
            if headers["content-md5"].strip() != actual_md5:
                raise _ApiError(
                    400, "SignatureDoesNotMatch", "Content-MD5 does not match the request body."
                )
        string_to_sign = _roa_string_to_sign(exchange)
        expected = base64.b64encode(
            hmac.new(secret.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha1).digest()
        ).decode("ascii")
        if not hmac.compare_digest(expected, signature):
            raise _ApiError(
                400,
                "SignatureDoesNotMatch",
                "Specified signature is not matched with our calculation. "
                f"Server string to sign is: {string_to_sign!r}",
            )
        claimed = headers.get("x-acs-accesskey-id")
        if claimed is not None and claimed != access_key_id:
            raise _ApiError(
                400, "SignatureDoesNotMatch", "x-acs-accesskey-id differs from Authorization."
            )
        return token

    def _check_security_token(self, exchange: _Exchange, token: str | None) -> None:
        received = exchange.headers.get("x-acs-security-token")
        if token is None and received is None:
            return
        if token is None:
            message = "A security token was sent for an access key that has none."
        elif received is None:
            message = "The STS access key requires the x-acs-security-token header."
        elif hmac.compare_digest(received.encode("utf-8"), token.encode("utf-8")):
            return
        else:
            message = "The security token does not belong to the access key."
        raise _ApiError(400, "InvalidSecurityToken.Mismatch", message)

    def _check_timestamp(self, exchange: _Exchange) -> None:
        if exchange.signature_method == ACS3_ALGORITHM:
            raw = exchange.headers["x-acs-date"].strip()
            try:
                moment = datetime.strptime(raw, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
            except ValueError:
                raise _ApiError(
                    400, "InvalidTimeStamp.Format", "x-acs-date must be yyyy-MM-ddTHH:mm:ssZ."
                ) from None
        else:
            raw = exchange.headers.get("date", "")
            try:
                moment = parsedate_to_datetime(raw)
            except (TypeError, ValueError):
                return
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=timezone.utc)
        skew = self.max_clock_skew_s
        if skew is not None and abs((_now() - moment).total_seconds()) > skew:
            raise _ApiError(
                400,
                "InvalidTimeStamp.Expired",
                f"Specified time stamp {raw} is more than {skew:.0f}s away from server time.",
            )

    def _check_action(self, exchange: _Exchange, routed: tuple[str, str | None] | None) -> None:
        version = exchange.headers.get("x-acs-version")
        acs3 = exchange.signature_method == ACS3_ALGORITHM
        if (acs3 or version is not None) and version != API_VERSION:
            raise _ApiError(
                400, "InvalidVersion", f"Specified version {version} is not {API_VERSION}."
            )
        if routed is None:
            raise _ApiError(
                404,
                "InvalidAction.NotFound",
                f"No API serves {exchange.method} {exchange.path}.",
            )
        claimed = exchange.headers.get("x-acs-action")
        if claimed is not None and claimed != routed[0]:
            raise _ApiError(
                400,
                "InvalidAction.Mismatch",
                f"x-acs-action {claimed} does not match {exchange.method} {exchange.path} "
                f"({routed[0]}).",
            )

    def _use_nonce(self, exchange: _Exchange) -> None:
        nonce = exchange.headers.get("x-acs-signature-nonce")
        if nonce is None or exchange.access_key_id is None:
            return
        now = time.time()
        window = max(float(self.max_clock_skew_s or 0), 15 * 60) * 2
        with self._lock:
            seen = self._nonces.setdefault(exchange.access_key_id, {})
            if nonce in seen:
                raise _ApiError(
                    400, "SignatureNonceUsed", f"Specified signature nonce {nonce} was used."
                )
            if len(seen) > 10_000:
                for old, at in list(seen.items()):
                    if now - at > window:
                        del seen[old]
            seen[nonce] = now

    # -- operations ------------------------------------------------------------------------

    def _process(
        self, action: str, res_id: str | None, exchange: _Exchange, request_id: str
    ) -> _Answer:
        if action == "ReinstallCollector":
            assert res_id is not None
            return self._reinstall(res_id, exchange, request_id)
        if action == "ListCollectors":
            return self._list_collectors(exchange.query, request_id)
        assert res_id is not None
        with self._lock:
            collector = self._collector(res_id)
            if action == "DescribeCollector":
                return _ok(request_id, {"Result": collector.to_api()})
            return self._list_nodes(collector, exchange.query, request_id)

    def _collector(self, res_id: str) -> _Collector:
        collector = self._collectors.get(res_id)
        if collector is None:
            # The real code is unpublished; CollectorNotFound is our assumption.
            raise _ApiError(404, "CollectorNotFound", f"Collector {res_id} does not exist.")
        return collector

    def _reinstall(self, res_id: str, exchange: _Exchange, request_id: str) -> _Answer:
        token = exchange.query.get("ClientToken")
        if token is not None and not _CLIENT_TOKEN_RE.match(token):
            raise _ApiError(
                400,
                "InvalidParameter",
                "ClientToken must be 1 to 64 printable ASCII characters.",
            )
        body_key = _body_key(exchange.body)
        with self._lock:
            if token is not None:
                replay = self._replay(token, res_id, body_key)
                if replay is not None:
                    return replay
            nodes = _reinstall_nodes(exchange.body)
            collector = self._collector(res_id)
            foreign = sorted({n for n in nodes if n not in collector.machines})
            if foreign:
                raise _ApiError(
                    400,
                    "InvalidParameter",
                    f"nodes {', '.join(foreign)} are not machines of collector {res_id}.",
                )
            for node in nodes:
                collector.machines[node] = self.status_after_reinstall
            collector.updated = _now()
            now = time.time()
            self.reinstalls.append(
                EffectiveReinstall(res_id, tuple(nodes), token, request_id, now)
            )
            answer = _ok(request_id, {"Result": True})
            if token is not None:
                self._tokens[token] = _StoredToken(res_id, body_key, answer, now)
            return answer

    def _replay(self, token: str, res_id: str, body_key: str) -> _Answer | None:
        stored = self._tokens.get(token)
        if stored is None:
            return None
        if self._token_ttl is not None and time.time() - stored.at > self._token_ttl:
            del self._tokens[token]
            return None
        if stored.res_id != res_id or stored.body_key != body_key:
            # Our assumption: the service documents ClientToken but not this error's code.
            raise _ApiError(
                400,
                "IdempotentParameterMismatch",
                f"ClientToken {token} was already used with different parameters.",
            )
        return stored.answer

    def _list_collectors(self, query: dict[str, str], request_id: str) -> _Answer:
        page = _int_param(query, "page", 1, 1, 200)
        size = _int_param(query, "size", 20, 1, 500)
        with self._lock:
            selected = [c for c in self._collectors.values() if _collector_matches(c, query)]
            chunk = [c.to_api() for c in selected[(page - 1) * size : page * size]]
        return _ok(
            request_id,
            {"Result": chunk, "Headers": {"X-Total-Count": len(selected)}},
            {"X-Total-Count": str(len(selected))},
        )

    def _list_nodes(
        self, collector: _Collector, query: dict[str, str], request_id: str
    ) -> _Answer:
        page = _int_param(query, "page", 1, 1, 200)
        size = _int_param(query, "size", 20, 1, 500)
        wanted = {i.strip() for i in query.get("ecsInstanceIds", "").split(",") if i.strip()}
        nodes = [
            {
                "ecsInstanceId": iid,
                "agentStatus": status,
                "status": "running",
                "osType": "linux",
                "cloudAssistantStatus": "true",
            }
            for iid, status in collector.machines.items()
            if not wanted or iid in wanted
        ]
        chunk = nodes[(page - 1) * size : page * size]
        return _ok(
            request_id,
            {"Result": chunk, "Headers": {"X-Total-Count": len(nodes)}},
            {"X-Total-Count": str(len(nodes))},
        )


def _ok(
    request_id: str, payload: dict[str, Any], headers: dict[str, str] | None = None
) -> _Answer:
    return _Answer(
        200, _dump({"RequestId": request_id, **payload}), request_id, None, headers or {}
    )


def _reinstall_nodes(body: bytes) -> list[str]:
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        raise _ApiError(400, "InvalidParameter", "The request body is not valid JSON.") from None
    if not isinstance(parsed, dict):
        raise _ApiError(400, "InvalidParameter", "The request body must be a JSON object.")
    restart_type = parsed.get("restartType")
    if restart_type != "nodeEcsId":
        raise _ApiError(
            400,
            "InvalidParameter",
            f"restartType must be 'nodeEcsId', got {restart_type!r}.",
        )
    nodes = parsed.get("nodes")
    if (
        not isinstance(nodes, list)
        or not nodes
        or not all(isinstance(n, str) and n for n in nodes)
    ):
        raise _ApiError(
            400, "InvalidParameter", "nodes must be a non-empty list of ECS instance ids."
        )
    return nodes


def _int_param(query: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise _ApiError(
            400, "InvalidParameter", f"{name} must be an integer in [{low}, {high}], got {raw!r}."
        )
    return value


def _collector_matches(collector: _Collector, query: dict[str, str]) -> bool:
    if query.get("resId") and collector.res_id != query["resId"]:
        return False
    if query.get("name") and query["name"] not in collector.name:
        return False
    if query.get("instanceId") and query["instanceId"] != collector.vpc_id:
        return False
    # Every emulated collector deploys to ECS machines.
    return not (query.get("sourceType") and query["sourceType"].upper() != "ECS")


def _acs3_query(query: dict[str, str]) -> str:
    return "&".join(f"{key}={quote(query[key], safe='~')}" for key in sorted(query))


def _roa_string_to_sign(exchange: _Exchange) -> str:
    headers = exchange.headers
    lines = [
        exchange.method,
        headers.get("accept", ""),
        headers.get("content-md5", ""),
        headers.get("content-type", ""),
        headers.get("date", ""),
    ]
    acs_headers = "".join(
        f"{name}:{headers[name]}\n" for name in sorted(headers) if name.startswith("x-acs-")
    )
    resource = exchange.path
    if exchange.query:
        resource += "?" + "&".join(
            key if value == "" else f"{key}={value}"
            for key, value in sorted(exchange.query.items())
        )
    return "\n".join(lines) + "\n" + acs_headers + resource


def _header_lists(message: Message) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for name, value in message.items():
        headers.setdefault(name.lower(), []).append(value)
    return headers


def _read_body(handler: _Handler, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return _read_chunked(handler)
    raw = headers.get("content-length", "0").strip() or "0"
    try:
        length = int(raw)
    except ValueError:
        raise _ApiError(400, "InvalidParameter", "Content-Length is not a number.") from None
    if length < 0 or length > MAX_BODY_BYTES:
        raise _ApiError(413, "RequestEntityTooLarge", "The request body is too large.")
    return handler.rfile.read(length) if length else b""


def _read_chunked(handler: _Handler) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        size_line = handler.rfile.readline(1024).split(b";")[0].strip()
        try:
            size = int(size_line, 16)
        except ValueError:
            raise _ApiError(400, "InvalidParameter", "Malformed chunked body.") from None
        if size == 0:
            while handler.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(parts)
        total += size
        if total > MAX_BODY_BYTES:
            raise _ApiError(413, "RequestEntityTooLarge", "The request body is too large.")
        parts.append(handler.rfile.read(size))
        handler.rfile.readline(1024)


def _send(handler: _Handler, answer: _Answer) -> None:
    try:
        handler.send_response(answer.status)
        handler.send_header("Content-Type", "application/json;charset=utf-8")
        handler.send_header("Content-Length", str(len(answer.body)))
        handler.send_header("x-acs-request-id", answer.request_id)
        for name, value in answer.headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(answer.body)
    except OSError:
        # The client hung up (for example it timed out on a "slow" fault); nothing to do.
        handler.close_connection = True


# -- standalone ------------------------------------------------------------------------------


def _load_state(emulator: CollectorApiEmulator, path: Path) -> int:
    data = json.loads(path.read_text(encoding="utf-8"))
    collectors = data.get("collectors", []) if isinstance(data, dict) else None
    if not isinstance(collectors, list):
        raise ValueError(f"{path}: expected {{'collectors': [...]}}")
    for entry in collectors:
        updated = entry.get("gmtUpdateTime")
        emulator.add_collector(
            str(entry["resId"]),
            {str(k): str(v) for k, v in (entry.get("machines") or {}).items()},
            name=entry.get("name"),
            status=entry.get("status", "active"),
            gmt_update_time=datetime.fromisoformat(updated) if updated else None,
            region=entry.get("region", "cn-hangzhou"),
            tags=entry.get("tags"),
        )
    return len(collectors)


def _print_request(record: RecordedRequest) -> None:
    token = record.query.get("ClientToken", "-")
    extra = f" fault={record.fault}" if record.fault else ""
    code = f" {record.error_code}" if record.error_code else ""
    print(
        f"{record.method} {record.path} action={record.action or '-'} "
        f"status={record.status}{code} token={token}{extra}",
        flush=True,
    )


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--state", type=Path, help='JSON {"collectors": [{"resId", ...}]}')
    parser.add_argument("--access-key-id")
    parser.add_argument("--access-key-secret")
    parser.add_argument("--security-token")
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--token-ttl-seconds", type=float)
    parser.add_argument("--status-after-reinstall", default="heartOk")
    args = parser.parse_args(argv)

    try:
        _loopback_host(args.host)
    except ValueError as error:
        parser.error(str(error))
    if bool(args.access_key_id) != bool(args.access_key_secret):
        parser.error("--access-key-id and --access-key-secret go together")
    if args.security_token and not args.access_key_id:
        parser.error("--security-token needs --access-key-id and --access-key-secret")
    keys = None
    if args.access_key_id:
        keys = {args.access_key_id: (args.access_key_secret, args.security_token)}

    emulator = CollectorApiEmulator(
        access_keys=keys,
        host=args.host,
        port=args.port,
        token_ttl_seconds=args.token_ttl_seconds,
        status_after_reinstall=args.status_after_reinstall,
        seed=args.seed,
    )
    loaded = _load_state(emulator, args.state) if args.state else 0
    if args.fault_rate:
        emulator.set_fault_rate(args.fault_rate)
    emulator.on_request = _print_request
    # A shell starts background jobs with SIGINT ignored; Ctrl-C and kill must still stop us.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    emulator.start()
    key_ids = ", ".join(emulator._access_keys)
    print(
        f"collector API emulator on {emulator.url} ({loaded} collectors, keys: {key_ids}, "
        f"state: {emulator.url}{STATE_PATH}); Ctrl-C stops",
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
