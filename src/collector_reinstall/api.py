"""Call the Elasticsearch collector API through the official SDK's generic ``call_api``.

:class:`ApiCall` says what a request is (action, method, path, query, body) without
the SDK, so that a dry run can show it. :class:`CollectorApi` sends one, signed by
``alibabacloud-tea-openapi``, and turns every way it can fail into
:class:`ReinstallFailed`, marked transient or not. The SDK is imported on first use,
not with this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ReinstallFailed
from .settings import Endpoint

if TYPE_CHECKING:
    from alibabacloud_credentials_api import ICredentialsProvider

API_VERSION = "2017-06-13"
USER_AGENT = "collector-reinstall/0.1"


@dataclass(frozen=True)
class ApiCall:
    """One request to the collector API, as it goes on the wire."""

    action: str
    method: str
    pathname: str
    query: Mapping[str, str] = field(default_factory=dict)
    body: Mapping[str, Any] | None = None

    def describe(self, endpoint: Endpoint) -> dict[str, Any]:
        """The request as a JSON-ready mapping, for a dry run."""
        return {
            "action": self.action,
            "method": self.method,
            "url": f"{endpoint.protocol.lower()}://{endpoint.host}{self.pathname}",
            "path": self.pathname,
            "query": dict(self.query),
            "body": self.body,
        }


def reinstall_call(collector_id: str, ecs_instance_ids: tuple[str, ...], token: str) -> ApiCall:
    """ReinstallCollector for ``ecs_instance_ids`` of ``collector_id``, under ``token``.

    The collector id was checked against its alphabet when the event was read, so it
    can stand in the path as it is.
    """
    return ApiCall(
        action="ReinstallCollector",
        method="POST",
        pathname=f"/openapi/collectors/{collector_id}/actions/reinstall",
        query={"ClientToken": token},
        body={"restartType": "nodeEcsId", "nodes": list(ecs_instance_ids)},
    )


def describe_collector_call(collector_id: str) -> ApiCall:
    """DescribeCollector: the collector with its machines' agent status."""
    return ApiCall("DescribeCollector", "GET", f"/openapi/collectors/{collector_id}")


def list_collectors_call(page: int, size: int) -> ApiCall:
    """ListCollectors, one page (``page`` from 1, ``size`` up to 500)."""
    return ApiCall(
        "ListCollectors", "GET", "/openapi/collectors", {"page": str(page), "size": str(size)}
    )


def load_sdk() -> None:
    """Import the SDK modules that :class:`CollectorApi` uses, ahead of the first call."""
    import alibabacloud_credentials.client
    import alibabacloud_tea_openapi.client
    import darabonba.runtime

    del alibabacloud_credentials, alibabacloud_tea_openapi, darabonba


class CollectorApi:
    """A signed client for one endpoint, reused for every request an instance makes."""

    def __init__(
        self, endpoint: Endpoint, credentials: ICredentialsProvider, *, connect_timeout_s: float
    ) -> None:
        from alibabacloud_credentials.client import Client as CredentialClient
        from alibabacloud_tea_openapi.client import Client as OpenApiClient
        from alibabacloud_tea_openapi.utils_models import Config

        self.endpoint = endpoint
        self._connect_timeout_s = connect_timeout_s
        self._client = OpenApiClient(
            Config(
                credential=CredentialClient(provider=credentials),
                endpoint=endpoint.host,
                protocol=endpoint.protocol,
                user_agent=USER_AGENT,
            )
        )

    def send(self, call: ApiCall, timeout_s: float) -> dict[str, Any]:
        """Send ``call``, waiting at most ``timeout_s`` for the answer; return its body."""
        from alibabacloud_tea_openapi import exceptions as sdk_errors
        from alibabacloud_tea_openapi.utils_models import OpenApiRequest, Params
        from darabonba.exceptions import UnretryableException
        from darabonba.runtime import RuntimeOptions

        params = Params(
            action=call.action,
            version=API_VERSION,
            protocol=self.endpoint.protocol,
            method=call.method,
            auth_type="AK",
            style="ROA",
            pathname=call.pathname,
            req_body_type="json",
            body_type="json",
        )
        request = OpenApiRequest(query=dict(call.query), body=call.body)
        runtime = RuntimeOptions(
            read_timeout=max(1, int(timeout_s * 1000)),
            connect_timeout=max(1, int(min(timeout_s, self._connect_timeout_s) * 1000)),
        )
        try:
            answer = self._client.call_api(params, request, runtime)
        except sdk_errors.AlibabaCloudException as error:
            raise _from_api_error(call, error) from None
        except UnretryableException as error:
            raise _from_transport_error(call, error.inner_exception) from None

        body = answer.get("body")
        if not isinstance(body, dict):
            raise ReinstallFailed(
                f"{call.action} answered {type(body).__name__} instead of a JSON object",
                transient=True,
            )
        return body


def _from_api_error(call: ApiCall, error: Any) -> ReinstallFailed:
    """An error answer: throttling and 5xx are transient; other 4xx are not."""
    code = str(error.code or "")
    status = int(error.status_code or 0)
    request_id = error.request_id if error.request_id not in (None, "None") else None
    retry_after_ms = getattr(error, "retry_after", None)
    transient = code.startswith("Throttling") or status == 429 or status >= 500
    data = error.data if isinstance(error.data, dict) else {}
    detail = _first_line(str(data.get("Message") or data.get("message") or ""))
    return ReinstallFailed(
        f"{call.action} failed with HTTP {status} {code or 'without a code'}"
        + (f": {detail}" if detail else "")
        + (f" (RequestId {request_id})" if request_id else ""),
        transient=transient,
        code=code or None,
        api_request_id=request_id,
        retry_after_s=retry_after_ms / 1000 if retry_after_ms else None,
    )


def _from_transport_error(call: ApiCall, inner: BaseException | None) -> ReinstallFailed:
    """No usable answer: connection trouble and timeouts are transient, missing
    credentials are not."""
    from alibabacloud_credentials.exceptions import CredentialException

    kind = type(inner).__name__ if inner is not None else "unknown error"
    if isinstance(inner, CredentialException):
        return ReinstallFailed(
            f"{call.action} was not sent: no credentials could be found ({kind})",
            transient=False,
            code="NoCredentials",
        )
    return ReinstallFailed(
        f"{call.action} got no usable answer: {kind}: {_first_line(str(inner))}",
        transient=True,
        code=kind,
    )


def _first_line(text: str, limit: int = 200) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."
