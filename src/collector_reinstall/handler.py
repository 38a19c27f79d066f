"""From one invocation's event to ReinstallCollector calls: read, plan, call, report."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from . import retry
from .api import ApiCall, reinstall_call
from .errors import (
    CollectorReinstallError,
    ConfigurationError,
    InvalidEvent,
    InvocationFailed,
    ReinstallFailed,
)
from .events import ReinstallRequest, read_event
from .plan import PlannedReinstall, plan_reinstalls
from .report import describe_error, log_decision, logger
from .settings import Endpoint, Settings

if TYPE_CHECKING:
    from .api import CollectorApi
    from .credentials import FunctionCredentials

#: Share of the function's timeout kept back so the handler can answer in time.
_TIMEOUT_RESERVE = 0.1
_MIN_RESERVE_S = 0.5
_MAX_RESERVE_S = 5.0


class _Instance:
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

    def clear(self) -> None:
        with self._lock:
            self._apis.clear()
            self._credentials = None


INSTANCE = _Instance()


def handle(event: object, context: object, *, dry_run: bool = False) -> dict[str, Any]:
    """Handle one FC invocation and return its summary.

    Raises a :class:`CollectorReinstallError` (with the summary attached) when any
    event was rejected or any reinstall failed, so that FC counts the invocation as
    failed and its asynchronous retry and failure destination take over.
    """
    settings = Settings.from_environ()
    logger.setLevel(settings.log_level)
    fc_request_id = getattr(context, "request_id", None)
    deadline = retry.Deadline(_time_budget(context, settings))
    log_decision("received", fcRequestId=fc_request_id, eventBytes=_size(event))

    try:
        batch = read_event(event, max_nodes=settings.max_nodes_per_event)
    except InvalidEvent as rejection:
        log_decision("rejected", fcRequestId=fc_request_id, error=describe_error(rejection))
        rejection.summary = _summary(fc_request_id, [_rejected(rejection)], dry_run)
        raise

    results: list[dict[str, Any]] = []
    failures: list[CollectorReinstallError] = []
    requests: list[ReinstallRequest] = []
    for item in batch.items:
        if isinstance(item, InvalidEvent):
            log_decision("rejected", fcRequestId=fc_request_id, error=describe_error(item))
            results.append(_rejected(item))
            failures.append(item)
        else:
            requests.append(item)

    if not dry_run:
        INSTANCE.credentials().use_context(context)
    for plan in plan_reinstalls(requests, fc_request_id):
        result = _result(plan)
        try:
            result.update(_reinstall(plan, context, settings, deadline, fc_request_id, dry_run))
        except (ReinstallFailed, ConfigurationError) as failure:
            log_decision(
                "failed", fcRequestId=fc_request_id, **_ids(plan), error=describe_error(failure)
            )
            result.update(outcome="failed", error=describe_error(failure))
            failures.append(failure)
        results.append(result)

    summary = _summary(fc_request_id, results, dry_run)
    if failures:
        error = InvocationFailed(failures) if batch.is_batch else failures[0]
        error.summary = summary
        raise error
    return summary


def _reinstall(
    plan: PlannedReinstall,
    context: object,
    settings: Settings,
    deadline: retry.Deadline,
    fc_request_id: str | None,
    dry_run: bool,
) -> dict[str, Any]:
    endpoint = settings.endpoint_for(_region(plan, context, settings) or "")
    call = reinstall_call(plan.collector_id, plan.ecs_instance_ids, plan.client_token)
    if dry_run:
        log_decision("dry-run", fcRequestId=fc_request_id, **_ids(plan))
        return {"outcome": "dry-run", "request": call.describe(endpoint)}

    log_decision("calling", fcRequestId=fc_request_id, endpoint=endpoint.host, **_ids(plan))
    api = INSTANCE.api(endpoint, settings)

    def attempt(seconds_left: float) -> dict[str, Any]:
        return _send_reinstall(api, call, min(settings.request_timeout_s, seconds_left))

    def on_retry(failure: ReinstallFailed, attempt_number: int, delay: float) -> None:
        log_decision(
            "retrying",
            fcRequestId=fc_request_id,
            **_ids(plan),
            attempt=attempt_number,
            delaySeconds=round(delay, 3),
            error=describe_error(failure),
        )

    policy = retry.RetryPolicy(
        settings.max_attempts, settings.retry_base_delay_s, settings.retry_max_delay_s
    )
    answer = retry.call_with_retries(attempt, policy=policy, deadline=deadline, on_retry=on_retry)
    api_request_id = answer.get("RequestId")
    log_decision("answered", fcRequestId=fc_request_id, **_ids(plan), RequestId=api_request_id)
    return {"outcome": "reinstalled", "RequestId": api_request_id}


def _send_reinstall(api: CollectorApi, call: ApiCall, timeout_s: float) -> dict[str, Any]:
    answer = api.send(call, timeout_s)
    if answer.get("Result") is not True:
        raise ReinstallFailed(
            f"{call.action} answered Result: {answer.get('Result')!r}"
            f" (RequestId {answer.get('RequestId')})",
            transient=False,
            code="ResultFalse",
            api_request_id=answer.get("RequestId"),
        )
    return answer


def _region(plan: PlannedReinstall, context: object, settings: Settings) -> str | None:
    """The event's region, else the function's, else the configured default.

    Only needed to name the endpoint; ``ES_ENDPOINT`` makes it unnecessary.
    """
    region = (
        plan.region
        or getattr(context, "region", None)
        or os.environ.get("FC_REGION")
        or settings.default_region
    )
    if region is None and settings.endpoint_override is None:
        raise ConfigurationError(
            "ES_REGION", None, "a region: neither the event nor the function names one"
        )
    return region


def _time_budget(context: object, settings: Settings) -> float:
    """Seconds the handler may spend: the function's timeout, less a reserve to answer."""
    function = getattr(context, "function", None)
    timeout = getattr(function, "timeout", None)
    seconds = float(timeout) if isinstance(timeout, (int, float)) and timeout > 0 else None
    if seconds is None:
        seconds = settings.invocation_timeout_s
    reserve = min(_MAX_RESERVE_S, max(_MIN_RESERVE_S, seconds * _TIMEOUT_RESERVE))
    return max(0.0, seconds - reserve)


def _ids(plan: PlannedReinstall) -> dict[str, Any]:
    return {
        "eventIds": plan.event_ids or None,
        "ResId": plan.collector_id,
        "nodes": list(plan.ecs_instance_ids),
        "ClientToken": plan.client_token,
    }


def _result(plan: PlannedReinstall) -> dict[str, Any]:
    return {**_ids(plan), "eventIds": plan.event_ids, "region": plan.region}


def _rejected(rejection: InvalidEvent) -> dict[str, Any]:
    return {
        "eventId": rejection.event_id,
        "outcome": "rejected",
        "error": describe_error(rejection),
    }


def _summary(
    fc_request_id: str | None, results: list[dict[str, Any]], dry_run: bool
) -> dict[str, Any]:
    failed = any(result["outcome"] in ("rejected", "failed") for result in results)
    return {
        "fcRequestId": fc_request_id,
        "outcome": "failed" if failed else "succeeded",
        "dryRun": dry_run,
        "results": results,
    }


def _size(event: object) -> int | None:
    return len(event) if isinstance(event, (bytes, bytearray, str)) else None
