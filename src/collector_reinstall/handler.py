"""From one invocation's event to ReinstallCollector calls: read, look, plan, call, report."""

from __future__ import annotations

from typing import Any

from .api import describe_collector_call, reinstall_call
from .errors import (
    CollectorReinstallError,
    ConfigurationError,
    InvalidEvent,
    InvocationFailed,
    ReinstallFailed,
)
from .events import ReadOptions, ReinstallRequest, SweepRequest, read_event
from .invocation import INSTANCE, Invocation
from .live_state import Collector, Skipped, choose_nodes
from .plan import PlannedReinstall, plan_reinstalls
from .report import describe_error, logger
from .settings import Endpoint, Settings
from .tokens import narrowed_token

__all__ = ["INSTANCE", "handle"]


def handle(event: object, context: object, *, dry_run: bool = False) -> dict[str, Any]:
    """Handle one FC invocation and return its summary.

    Raises a :class:`CollectorReinstallError` (with the summary attached) when any
    event was rejected or any reinstall failed, so that FC counts the invocation as
    failed and its asynchronous retry and failure destination take over.
    """
    settings = Settings.from_environ()
    logger.setLevel(settings.log_level)
    invocation = Invocation(context, settings, dry_run=dry_run)
    invocation.log("received", eventBytes=_size(event))

    options = ReadOptions(
        max_nodes=settings.max_nodes_per_event, nodes_required=not settings.check_live_state
    )
    try:
        batch = read_event(event, options)
    except InvalidEvent as rejection:
        invocation.log("rejected", error=describe_error(rejection))
        rejection.summary = _summary(invocation, [_rejected(rejection)])
        raise

    if isinstance(batch, SweepRequest):
        from .sweep import run_sweep

        try:
            swept = run_sweep(batch, invocation)
        except ConfigurationError as failure:
            invocation.log("failed", error=describe_error(failure))
            failure.summary = _summary(
                invocation, [{"outcome": "failed", "error": describe_error(failure)}]
            )
            raise
        return _finish(invocation, *swept, is_batch=True)

    results: list[dict[str, Any]] = []
    failures: list[CollectorReinstallError] = []
    requests: list[ReinstallRequest] = []
    for item in batch.items:
        if isinstance(item, InvalidEvent):
            invocation.log("rejected", error=describe_error(item))
            results.append(_rejected(item))
            failures.append(item)
        else:
            requests.append(item)

    for plan in plan_reinstalls(requests, invocation.fc_request_id):
        result = _ids(plan)
        try:
            result.update(_reinstall(plan, invocation))
        except (ReinstallFailed, ConfigurationError) as failure:
            invocation.log("failed", **_ids(plan), error=describe_error(failure))
            result.update(outcome="failed", error=describe_error(failure))
            failures.append(failure)
        results.append(result)
    return _finish(invocation, results, failures, is_batch=batch.is_batch)


def _reinstall(plan: PlannedReinstall, invocation: Invocation) -> dict[str, Any]:
    """Look at the collector (unless told not to), then reinstall what needs it."""
    if invocation.dry_run:
        return _dry_run(plan, invocation)
    endpoint = invocation.endpoint(plan.region)

    skipped: list[Skipped] = []
    if invocation.settings.check_live_state:
        nodes, skipped = _look(plan, invocation, endpoint)
        if not nodes:
            invocation.log("nothing-to-do", **_ids(plan))
            return {"outcome": "nothing-to-do", "nodes": [], "skipped": _json(skipped)}
    elif plan.ecs_instance_ids is not None:
        nodes = plan.ecs_instance_ids
    else:
        raise AssertionError("an event without nodes was read while the check is off")

    # A narrowed request is not the one the event alone would make: it gets its own
    # token, so that no token ever stands for two different requests.
    token = plan.client_token
    if plan.ecs_instance_ids is None or set(nodes) != set(plan.ecs_instance_ids):
        token = narrowed_token(plan.client_token, nodes)
    ids = {**_ids(plan), "nodes": list(nodes), "ClientToken": token}
    api_request_id = invocation.reinstall(endpoint, ids)
    outcome = {"outcome": "reinstalled", **ids, "RequestId": api_request_id}
    if skipped:
        outcome["skipped"] = _json(skipped)
    return outcome


def _look(
    plan: PlannedReinstall, invocation: Invocation, endpoint: Endpoint
) -> tuple[tuple[str, ...], list[Skipped]]:
    """DescribeCollector, and the nodes among the planned ones that need a reinstall."""
    answer = invocation.send(endpoint, describe_collector_call(plan.collector_id), _ids(plan))
    collector = Collector.from_api(answer.get("Result") or {})
    nodes, skipped = choose_nodes(
        plan.ecs_instance_ids,
        collector,
        reinstall_uninstalled=invocation.settings.reinstall_uninstalled,
    )
    invocation.log("checked", **_ids(plan), chosen=list(nodes), skipped=_json(skipped) or None)
    return nodes, skipped


def _json(skipped: list[Skipped]) -> list[dict[str, Any]]:
    return [skip.to_json() for skip in skipped]


def _dry_run(plan: PlannedReinstall, invocation: Invocation) -> dict[str, Any]:
    """The requests a real run would start with; the live state may narrow the nodes."""
    endpoint = invocation.endpoint(plan.region)
    invocation.log("dry-run", **_ids(plan))
    outcome: dict[str, Any] = {"outcome": "dry-run"}
    if invocation.settings.check_live_state:
        outcome["lookup"] = describe_collector_call(plan.collector_id).describe(endpoint)
    if plan.ecs_instance_ids is not None:
        call = reinstall_call(plan.collector_id, plan.ecs_instance_ids, plan.client_token)
        outcome["request"] = call.describe(endpoint)
    return outcome


def _finish(
    invocation: Invocation,
    results: list[dict[str, Any]],
    failures: list[CollectorReinstallError],
    *,
    is_batch: bool,
) -> dict[str, Any]:
    summary = _summary(invocation, results)
    if failures:
        error = InvocationFailed(failures) if is_batch or len(failures) > 1 else failures[0]
        error.summary = summary
        raise error
    return summary


def _ids(plan: PlannedReinstall) -> dict[str, Any]:
    return {
        "eventIds": plan.event_ids,
        "ResId": plan.collector_id,
        "region": plan.region,
        "nodes": None if plan.ecs_instance_ids is None else list(plan.ecs_instance_ids),
        "ClientToken": plan.client_token,
    }


def _rejected(rejection: InvalidEvent) -> dict[str, Any]:
    return {
        "eventId": rejection.event_id,
        "outcome": "rejected",
        "error": describe_error(rejection),
    }


def _summary(invocation: Invocation, results: list[dict[str, Any]]) -> dict[str, Any]:
    failed = any(result.get("outcome") in ("rejected", "failed") for result in results)
    return {
        "fcRequestId": invocation.fc_request_id,
        "outcome": "failed" if failed else "succeeded",
        "dryRun": invocation.dry_run,
        "results": results,
    }


def _size(event: object) -> int | None:
    return len(event) if isinstance(event, (bytes, bytearray, str)) else None
