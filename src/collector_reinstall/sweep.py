"""The sweep: find failed installs across the region without any event.

A timer trigger starts it. It lists every collector (ListCollectors, all pages),
keeps those the settings or the trigger's payload name, leaves alone any collector
changed within the grace period (an install may still be running), and reinstalls
each remaining collector's failed machines, either itself or by invoking a target
function asynchronously once per collector (the fan-out).

Each reinstall's ClientToken is derived from the collector, its nodes and the sweep
window that the trigger time falls in: sweeps that overlap, repeat or are retried
within a window make the same requests, and a node still failed in a later window is
tried again.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any

from . import fanout
from .api import list_collectors_call
from .errors import CollectorReinstallError, ConfigurationError, ReinstallFailed
from .events import SweepRequest
from .invocation import INSTANCE, Invocation
from .live_state import Collector, choose_nodes
from .report import describe_error
from .retry import RateLimiter
from .settings import Endpoint
from .tokens import sweep_token

PAGE_SIZE = 500
MAX_PAGES = 200


def run_sweep(
    request: SweepRequest, invocation: Invocation
) -> tuple[list[dict[str, Any]], list[CollectorReinstallError]]:
    """Sweep the region; return a result per collector acted on, and the failures.

    Every collector is tried before the failures are returned, so one that fails does
    not leave the others for the next sweep.
    """
    settings = invocation.settings
    region = invocation.region(None)
    endpoint = settings.endpoint_for(region or "")
    window = int(request.trigger_time.timestamp() // settings.sweep_window_s)
    sweep_ids = {"triggerName": request.trigger_name, "window": window}
    invocation.log("sweeping", **sweep_ids, region=region)
    if invocation.dry_run:
        call = list_collectors_call(1, PAGE_SIZE)
        return [{"outcome": "dry-run", "request": call.describe(endpoint)}], []

    limiter = RateLimiter(settings.sweep_rate_limit)
    # A trigger payload that narrows the sweep replaces the settings' narrowing.
    # Limitation: collectors are chosen by id or name only; the API's answer carries no
    # tags we could rely on.
    if request.collector_ids or request.names:
        wanted_ids, wanted_names = set(request.collector_ids), set(request.names)
    else:
        wanted_ids = set(settings.sweep_collector_ids)
        wanted_names = set(settings.sweep_collector_names)
    target = _fanout_target(invocation, region)
    now = datetime.now(timezone.utc)

    results: list[dict[str, Any]] = []
    failures: list[CollectorReinstallError] = []
    try:
        collectors = _list_collectors(invocation, endpoint, limiter, sweep_ids)
    except ReinstallFailed as failure:
        invocation.log("failed", **sweep_ids, error=describe_error(failure))
        return [{**sweep_ids, "outcome": "failed", "error": describe_error(failure)}], [failure]

    # Limitation: the whole sweep runs within one invocation's time. Collectors left when
    # it runs out fail the invocation, and FC's retry sweeps again; a large fleet wants
    # the fan-out.
    counts = {"listed": len(collectors), "selected": 0, "healthy": 0, "recentlyChanged": 0}
    for collector in collectors:
        if wanted_ids and collector.collector_id not in wanted_ids:
            continue
        if wanted_names and collector.name not in wanted_names:
            continue
        counts["selected"] += 1
        nodes, _ = choose_nodes(
            None, collector, reinstall_uninstalled=settings.reinstall_uninstalled
        )
        if not nodes:
            counts["healthy"] += 1
            continue
        token = sweep_token(collector.collector_id, nodes, window)
        ids = {"ResId": collector.collector_id, "nodes": list(nodes), "ClientToken": token}
        if collector.updated_at and (now - collector.updated_at).total_seconds() < (
            settings.sweep_grace_s
        ):
            counts["recentlyChanged"] += 1
            invocation.log("skipped", **ids, reason="changed within the grace period")
            results.append({**ids, "outcome": "recently-changed"})
            continue
        try:
            if target is None:
                results.append(_reinstall(invocation, endpoint, limiter, ids, region))
            else:
                results.append(_fan_out(invocation, target, limiter, ids, region))
        except ReinstallFailed as failure:
            invocation.log("failed", **ids, error=describe_error(failure))
            results.append({**ids, "outcome": "failed", "error": describe_error(failure)})
            failures.append(failure)

    invocation.log("swept", **sweep_ids, **counts, failed=len(failures))
    results.insert(0, {**sweep_ids, "outcome": "swept", **counts})
    return results, failures


def _list_collectors(
    invocation: Invocation, endpoint: Endpoint, limiter: RateLimiter, ids: dict[str, Any]
) -> list[Collector]:
    """Every collector of the region, page by page until the total is reached."""
    collectors: list[Collector] = []
    for page in range(1, MAX_PAGES + 1):
        call = list_collectors_call(page, PAGE_SIZE)
        answer = invocation.send(endpoint, call, {**ids, "page": page}, pace=limiter.wait)
        entries = answer.get("Result") or []
        collectors.extend(Collector.from_api(entry) for entry in entries)
        total = (answer.get("Headers") or {}).get("X-Total-Count")
        if len(entries) < PAGE_SIZE or (isinstance(total, int) and len(collectors) >= total):
            break
    return collectors


def _reinstall(
    invocation: Invocation,
    endpoint: Endpoint,
    limiter: RateLimiter,
    ids: dict[str, Any],
    region: str | None,
) -> dict[str, Any]:
    api_request_id = invocation.reinstall(endpoint, ids, pace=limiter.wait)
    return {**ids, "region": region, "outcome": "reinstalled", "RequestId": api_request_id}


def _fan_out(
    invocation: Invocation,
    target: tuple[str, str, str],
    limiter: RateLimiter,
    ids: dict[str, Any],
    region: str | None,
) -> dict[str, Any]:
    endpoint, service, function = target
    payload = {"ResId": ids["ResId"], "nodes": ids["nodes"], "ClientToken": ids["ClientToken"]}
    if region:
        payload["regionId"] = region
    invocation.log("fanning-out", **ids, service=service, function=function)

    def attempt(seconds_left: float) -> str | None:
        limiter.wait()
        credentials = INSTANCE.credentials().get_credentials()
        timeout = min(invocation.settings.request_timeout_s, seconds_left)
        return fanout.invoke_async(endpoint, service, function, payload, credentials, timeout)

    fc_request_id = invocation.retrying(attempt, "InvokeFunction", ids)
    invocation.log("handed-over", **ids, invocationRequestId=fc_request_id)
    return {**ids, "outcome": "fanned-out", "invocationRequestId": fc_request_id}


def _fanout_target(invocation: Invocation, region: str | None) -> tuple[str, str, str] | None:
    """(endpoint, service, function) when a fan-out target is configured."""
    settings = invocation.settings
    if not settings.fanout_service and not settings.fanout_function:
        return None
    if not settings.fanout_service or not settings.fanout_function:
        missing = "FANOUT_SERVICE" if not settings.fanout_service else "FANOUT_FUNCTION"
        raise ConfigurationError(missing, None, "set together with the other FANOUT_ setting")
    endpoint = settings.fanout_endpoint
    if endpoint is None:
        account_id = getattr(invocation.context, "account_id", None) or os.environ.get(
            "FC_ACCOUNT_ID"
        )
        if not account_id or not region:
            raise ConfigurationError(
                "FANOUT_ENDPOINT", None, "an FC endpoint: the account id or region is unknown"
            )
        endpoint = f"https://{account_id}.{region}.fc.aliyuncs.com"
    return endpoint, settings.fanout_service, settings.fanout_function
