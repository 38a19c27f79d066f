"""What one invocation knows and how it calls the API: settings, time, ids, retries.

:data:`INSTANCE` is what an FC instance keeps between invocations (the API clients
and the credentials provider); an :class:`Invocation` lives for one call of the
handler and sends every request through the same retry loop and log lines.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from . import retry
from .api import ApiCall, reinstall_call
from .errors import ConfigurationError, ReinstallFailed
from .report import log_decision
from .settings import Endpoint, Settings

if TYPE_CHECKING:
    from .api import CollectorApi
    from .credentials import FunctionCredentials

T = TypeVar("T")

#: Share of the function's timeout kept back so the handler can answer in time.
_TIMEOUT_RESERVE = 0.1
_MIN_RESERVE_S = 0.5
_MAX_RESERVE_S = 5.0


class Instance:
    """What an FC instance keeps between invocations: one API client per endpoint."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._apis: dict[Endpoint, CollectorApi] = {}
        self._credentials: FunctionCredentials | None = None

    def credentials(self) -> FunctionCredentials:
        with self._lock:
            if self._credentials is None:
                from .credentials import FunctionCredentials

                self._credentials = FunctionCredentials()
            return self._credentials

    def api(self, endpoint: Endpoint, settings: Settings) -> CollectorApi:
        credentials = self.credentials()
        with self._lock:
            if endpoint not in self._apis:
                from .api import CollectorApi

                self._apis[endpoint] = CollectorApi(
                    endpoint, credentials, connect_timeout_s=settings.connect_timeout_s
                )
            return self._apis[endpoint]

    def clients(self) -> list[CollectorApi]:
        with self._lock:
            return list(self._apis.values())

    def clear(self) -> None:
        with self._lock:
            self._apis.clear()
            self._credentials = None


INSTANCE = Instance()


class Invocation:
    """One call of the handler: its context, settings, deadline and request id."""

    def __init__(self, context: object, settings: Settings, *, dry_run: bool = False) -> None:
        self.context = context
        self.settings = settings
        self.dry_run = dry_run
        self.fc_request_id: str | None = getattr(context, "request_id", None)
        self.deadline = retry.Deadline(_time_budget(context, settings))
        self.policy = retry.RetryPolicy(
            settings.max_attempts, settings.retry_base_delay_s, settings.retry_max_delay_s
        )
        self._credentials_bound = False

    def log(self, decision: str, **fields: Any) -> None:
        log_decision(decision, fcRequestId=self.fc_request_id, **fields)

    def region(self, event_region: str | None) -> str | None:
        """The event's region, else the function's, else the configured default.

        Only needed to name the endpoint; ``ES_ENDPOINT`` makes it unnecessary.
        """
        region = (
            event_region
            or getattr(self.context, "region", None)
            or os.environ.get("FC_REGION")
            or self.settings.default_region
        )
        if region is None and self.settings.endpoint_override is None:
            raise ConfigurationError(
                "ES_REGION", None, "a region: neither the event nor the function names one"
            )
        return region

    def endpoint(self, event_region: str | None) -> Endpoint:
        return self.settings.endpoint_for(self.region(event_region) or "")

    def send(
        self,
        endpoint: Endpoint,
        call: ApiCall,
        ids: dict[str, Any],
        *,
        pace: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        """Send ``call`` with retries; ``pace`` is called before every attempt."""
        api = INSTANCE.api(endpoint, self.settings)

        def attempt(seconds_left: float) -> dict[str, Any]:
            if pace is not None:
                pace()
            return api.send(call, min(self.settings.request_timeout_s, seconds_left))

        return self.retrying(attempt, call.action, ids)

    def reinstall(
        self,
        endpoint: Endpoint,
        ids: dict[str, Any],
        *,
        pace: Callable[[], None] | None = None,
    ) -> str | None:
        """ReinstallCollector for ``ids`` (ResId, nodes, ClientToken); return its RequestId.

        ``Result: false`` is a failure, and not one that trying again can mend.
        """
        self.log("calling", endpoint=endpoint.host, **ids)
        call = reinstall_call(ids["ResId"], tuple(ids["nodes"]), ids["ClientToken"])
        answer = self.send(endpoint, call, ids, pace=pace)
        api_request_id = answer.get("RequestId")
        if answer.get("Result") is not True:
            raise ReinstallFailed(
                f"ReinstallCollector answered Result: {answer.get('Result')!r}"
                f" (RequestId {api_request_id})",
                transient=False,
                code="ResultFalse",
                api_request_id=api_request_id,
            )
        self.log("answered", **ids, RequestId=api_request_id)
        return api_request_id if isinstance(api_request_id, str) else None

    def retrying(self, attempt: Callable[[float], T], action: str, ids: dict[str, Any]) -> T:
        """Run ``attempt(seconds_left)`` in the retry loop, logging each retry."""
        self._bind_credentials()

        def on_retry(failure: ReinstallFailed, attempt_number: int, delay: float) -> None:
            self.log(
                "retrying",
                action=action,
                **ids,
                attempt=attempt_number,
                delaySeconds=round(delay, 3),
                error={"code": failure.code, "message": failure.message},
            )

        return retry.call_with_retries(
            attempt, policy=self.policy, deadline=self.deadline, on_retry=on_retry
        )

    def _bind_credentials(self) -> None:
        # Done before the first request, not when the invocation starts: an event that
        # is rejected never loads the credentials machinery.
        if not self._credentials_bound:
            INSTANCE.credentials().use_context(self.context)
            self._credentials_bound = True


def _time_budget(context: object, settings: Settings) -> float:
    """Seconds the handler may spend: the function's timeout, less a reserve to answer."""
    function = getattr(context, "function", None)
    timeout = getattr(function, "timeout", None)
    seconds = float(timeout) if isinstance(timeout, (int, float)) and timeout > 0 else None
    if seconds is None:
        seconds = settings.invocation_timeout_s
    reserve = min(_MAX_RESERVE_S, max(_MIN_RESERVE_S, seconds * _TIMEOUT_RESERVE))
    return max(0.0, seconds - reserve)
