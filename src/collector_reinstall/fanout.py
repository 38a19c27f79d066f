"""Hand one collector's reinstall to another FC invocation, asynchronously.

A sweep of a large fleet invokes a target function once per collector that needs a
reinstall (``x-fc-invocation-type: Async``, through ``aliyun-fc2``), so that each
collector gets FC's own asynchronous retries and failure destination. The payload
is a manual event that the handler accepts, carrying the sweep's ClientToken, so a
redelivered invocation makes the same request.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from .errors import ReinstallFailed


class _HideFc2RequestLogs(logging.Filter):
    """Drop the root-logger records that ``aliyun-fc2`` writes about its requests.

    They print the request headers, signature and security token included; the
    fan-out logs its own line for every failure instead.
    """

    def __init__(self, directory: str) -> None:
        super().__init__()
        self.directory = directory

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.pathname.startswith(self.directory)


_hiding: _HideFc2RequestLogs | None = None


def invoke_async(
    endpoint: str,
    service: str,
    function: str,
    payload: dict[str, Any],
    credentials: Any,
    timeout_s: float,
) -> str | None:
    """Invoke ``service``/``function`` with ``payload``; return FC's request id.

    ``credentials`` is an ``alibabacloud-credentials`` credentials object, read just
    before the call so that rotated STS keys are used.
    """
    # Limitation: aliyun-fc2 speaks the FC 2.0 API (services and functions); whether a
    # function created through FC 3.0 answers to those names is not confirmed.
    import fc2
    import requests
    from fc2.fc_exceptions import FcError

    _hide_fc2_request_logs(fc2)
    client = fc2.Client(
        endpoint=endpoint,
        accessKeyID=credentials.get_access_key_id(),
        accessKeySecret=credentials.get_access_key_secret(),
        securityToken=credentials.get_security_token() or "",
        Timeout=max(1.0, timeout_s),
    )
    try:
        answer = client.invoke_function(
            service,
            function,
            payload=json.dumps(payload).encode("utf-8"),
            headers={"x-fc-invocation-type": "Async"},
        )
    except FcError as error:
        status = int(error.status_code or 0)
        code = str(error.err_code or "") or None
        raise ReinstallFailed(
            f"InvokeFunction {service}/{function} failed with HTTP {status} {code}"
            f" (RequestId {error.request_id})",
            transient=status == 429
            or status >= 500
            or (code or "").startswith(("Throttl", "ResourceThrottled", "ResourceExhausted")),
            code=code,
            api_request_id=str(error.request_id or "") or None,
        ) from None
    except (requests.RequestException, ValueError) as error:
        # ValueError: fc2 reads every error answer as JSON, and a proxy's is not.
        raise ReinstallFailed(
            f"InvokeFunction {service}/{function} got no usable answer: {type(error).__name__}",
            transient=True,
            code=type(error).__name__,
        ) from None
    headers = getattr(answer, "headers", {}) or {}
    return headers.get("x-fc-request-id") or headers.get("X-Fc-Request-Id")


def _hide_fc2_request_logs(fc2_module: Any) -> None:
    global _hiding
    if _hiding is None:
        _hiding = _HideFc2RequestLogs(os.path.dirname(fc2_module.__file__))
        logging.getLogger().addFilter(_hiding)
