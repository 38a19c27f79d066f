"""Soak the real handler: thousands of events, each delivered up to three times, against an
API that fails about a third of its requests; then count what took effect.

Every event is one of the accepted shapes (EventBridge CloudEvent, EventBridge batch,
CloudMonitor event with ``content`` as an object or as a JSON string, manual payload
with and without ``ClientToken``) and names collectors among a few hundred. Each is
delivered one to three times, in shuffled order, the ways the platform repeats an event:

* again under the same FC request id (FC running one asynchronous invocation twice);
* again under a new request id (EventBridge delivering the event again). A manual
  payload without ``ClientToken`` is only repeated the first way: its token comes from
  the request id, so a second ``s invoke`` of it is a new request by design.

Each delivery is one call of ``index.handler`` with a ``python3.10``- or
``python3.12``-shaped context. A call that raises is a failed invocation: FC retries it
under the same request id up to ``--fc-retries`` times, then sends it to the failure
destination, which is counted, not lost. A call that outlives the function timeout
counts as failed too (FC would have stopped it). The emulator meanwhile throttles,
answers 503, drops connections before and after processing, and answers slowly (at times
more slowly than ``REQUEST_TIMEOUT_SECONDS``).

The oracle is exact because no two events share a node: every event names nodes of its
own (one to three ``failed`` ones, and at times one whose agent is ``heartOk``,
``heartLost`` or ``uninstalled``), and every collector also has machines that no event
names. From the emulator's effective reinstalls, per event:

* with the live-state check (``CHECK_LIVE_STATE=true``, a reinstall heals the nodes),
  the event's failed nodes must have been reinstalled exactly once and its other nodes
  never;
* without it (``CHECK_LIVE_STATE=false``, the nodes stay ``failed`` after a reinstall, so
  only the ClientToken stands between a redelivery and a second reinstall), every node
  it names exactly once.

*Lost* is an event with a node reinstalled zero times and no delivery in the failure
destination; *duplicated*, an event with a node reinstalled twice or more; *unexpected*,
a reinstalled node that no event asked for. Every reinstall must also carry a token that
its event derives (the event's, or the one derived from it for the nodes sent). The exit
status is 1 when any of these is not zero, or when an invocation failed in a way that
trying again cannot mend.

    python scripts/soak.py                       # 10,000 events, both modes (a few minutes)
    python scripts/soak.py --events 300          # the CI-sized run (seconds)
    python scripts/soak.py --check-live-state off --fault-rate 0.6 --seed 7
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import random
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from collector_reinstall import (  # noqa: E402
    CollectorReinstallError,
    InvalidEvent,
    InvocationFailed,
    ReinstallFailed,
)
from collector_reinstall.events import EventBatch, ReadOptions, read_event  # noqa: E402
from collector_reinstall.plan import plan_reinstalls  # noqa: E402
from collector_reinstall.tokens import narrowed_token  # noqa: E402
from index import handler  # noqa: E402
from tests.emulators.collector_api import (  # noqa: E402
    FAULT_KINDS,
    CollectorApiEmulator,
    EffectiveReinstall,
)
from tests.fc_context import Credentials, Python310Context, Python312Context  # noqa: E402

REGION = "cn-hangzhou"
ACCOUNT = "1234567890123456"
SHAPES = (
    "cloudevent",
    "eventbridge-batch",
    "cloudmonitor",
    "cloudmonitor-string-content",
    "manual-with-token",
    "manual",
)
#: Agent states of a node an event names although its install did not fail.
NOT_FAILED = ("heartOk", "heartLost", "uninstalled")
#: Machines of every collector that no event names; none may ever be reinstalled.
BYSTANDERS = ("failed", "heartOk", "heartLost", "uninstalled")
#: FC hands out new STS credentials now and then; the soak rotates every so many calls.
ROTATE_CREDENTIALS_EVERY = 2000
#: Share of ``slow`` faults that answer after the request timeout rather than before it.
LONG_SLOW_SHARE = 0.25
SHORT_SLOW_S = 0.2
ENV_KEY = ("STS.SoakEnvironmentKey", "soak-env-secret", "soak-env-security-token")


# -- the scenario: collectors, their machines, the events and their deliveries -----------


@dataclass(frozen=True)
class Ask:
    """What one event (one CloudEvent of a batch) asks: nodes of one collector."""

    event: int
    collector_id: str
    statuses: dict[str, str]  # node -> agentStatus before any reinstall, in event order

    def expected(self, check_live_state: bool) -> set[str]:
        """The nodes this ask must have reinstalled, exactly once."""
        if not check_live_state:
            return set(self.statuses)
        return {node for node, status in self.statuses.items() if status == "failed"}


@dataclass
class SoakEvent:
    index: int
    shape: str
    body: bytes
    asks: list[Ask]
    #: Request id of each delivery, the first one's first; repeated ids are FC's own repeats.
    request_ids: list[str] = field(default_factory=list)


@dataclass
class Scenario:
    machines: dict[str, dict[str, str]]  # collector -> node -> agentStatus
    events: list[SoakEvent]
    owners: dict[tuple[str, str], Ask]  # (collector, node) -> the ask that names it


def build_scenario(event_count: int, collector_count: int, seed: int) -> Scenario:
    """The same collectors, events and deliveries for the same arguments."""
    rng = random.Random(seed)
    serial = iter(range(1, 10**9))

    def new_node() -> str:
        return f"i-bp{next(serial):08x}{rng.getrandbits(40):010x}"

    collector_ids = [f"ct-cn-{n:05d}{rng.getrandbits(40):010x}" for n in range(collector_count)]
    machines = {
        collector_id: {new_node(): status for status in BYSTANDERS}
        for collector_id in collector_ids
    }
    owners: dict[tuple[str, str], Ask] = {}
    events: list[SoakEvent] = []
    for index in range(event_count):
        shape = SHAPES[index % len(SHAPES)]
        ask_count = rng.randint(2, 4) if shape == "eventbridge-batch" else 1
        asks: list[Ask] = []
        for _ in range(ask_count):
            # Now and then two events of one batch name one collector, which merges them.
            if asks and rng.random() < 0.25:
                collector_id = asks[-1].collector_id
            else:
                collector_id = rng.choice(collector_ids)
            statuses = {new_node(): "failed" for _ in range(rng.randint(1, 3))}
            if rng.random() < 0.3:
                statuses[new_node()] = rng.choice(NOT_FAILED)
            order = list(statuses)
            rng.shuffle(order)
            ask = Ask(index, collector_id, {node: statuses[node] for node in order})
            asks.append(ask)
            machines[collector_id].update(ask.statuses)
            owners.update(((collector_id, node), ask) for node in ask.statuses)
        event = SoakEvent(index, shape, _event_body(rng, shape, asks, index, seed), asks)
        event.request_ids = _delivery_request_ids(rng, shape)
        events.append(event)
    return Scenario(machines, events, owners)


def _delivery_request_ids(rng: random.Random, shape: str) -> list[str]:
    first = _uuid(rng)
    request_ids = [first]
    for _ in range(rng.choice((0, 1, 1, 2, 2))):
        same_invocation = shape == "manual" or rng.random() < 0.5
        request_ids.append(first if same_invocation else _uuid(rng))
    return request_ids


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _arn(collector_id: str) -> str:
    return f"acs:elasticsearch:{REGION}:{ACCOUNT}:collectors/{collector_id}"


def _collector_field(rng: random.Random, collector_id: str) -> dict[str, str]:
    name = rng.choice(("ResId", "resId", "collectorId", "resourceId"))
    return {name: _arn(collector_id) if name == "resourceId" else collector_id}


def _node_field(rng: random.Random, nodes: list[str]) -> dict[str, Any]:
    name = rng.choice(("nodes", "instanceIds", "ecsInstanceIds", "machines"))
    if name == "machines":
        return {name: [{"instanceId": node, "agentStatus": "failed"} for node in nodes]}
    return {name: list(nodes)}


def _cloud_event(rng: random.Random, ask: Ask) -> dict[str, Any]:
    data = {**_collector_field(rng, ask.collector_id), **_node_field(rng, list(ask.statuses))}
    event: dict[str, Any] = {
        "id": _uuid(rng),
        "source": "acs.custom.collector-monitor",
        "specversion": "1.0",
        "type": "elasticsearch:Collector:InstallFailed",
        "time": "2026-12-03T08:00:00Z",
        "aliyunaccountid": ACCOUNT,
        "aliyunregionid": REGION,
        "data": data,
    }
    if rng.random() < 0.5:
        event["subject"] = _arn(ask.collector_id)
        if rng.random() < 0.5:
            # The subject alone may name the collector.
            event["data"] = _node_field(rng, list(ask.statuses))
    return event


def _event_body(rng: random.Random, shape: str, asks: list[Ask], index: int, seed: int) -> bytes:
    ask = asks[0]
    nodes = list(ask.statuses)
    body: object
    if shape == "cloudevent":
        body = _cloud_event(rng, ask)
    elif shape == "eventbridge-batch":
        body = [_cloud_event(rng, each) for each in asks]
    elif shape.startswith("cloudmonitor"):
        content: dict[str, Any] = _node_field(rng, nodes)
        if rng.random() < 0.3:
            content["resId"] = ask.collector_id
        body = {
            "id": _uuid(rng),
            "eventTime": "20261203T080000.000+0800",
            "level": "WARN",
            "name": "Collector:InstallFailed",
            "product": rng.choice(("elasticsearch", "Elasticsearch")),
            "regionId": REGION,
            "resourceId": _arn(ask.collector_id),
            "userId": ACCOUNT,
            "ver": "1.0",
            "content": json.dumps(content) if shape.endswith("string-content") else content,
        }
    else:
        manual: dict[str, Any] = {
            **_collector_field(rng, ask.collector_id),
            **_node_field(rng, nodes),
        }
        if rng.random() < 0.5:
            manual["restartType"] = "nodeEcsId"
        if rng.random() < 0.5:
            manual["regionId"] = REGION
        if shape == "manual-with-token":
            manual["ClientToken"] = f"soak-{seed}-{index}-{rng.getrandbits(64):016x}"
        body = manual
    return json.dumps(body).encode("utf-8")


# -- one soak: every delivery through the handler, FC's retries included ----------------


@dataclass(frozen=True)
class Options:
    events: int
    collectors: int
    seed: int
    fault_rate: float
    check_live_state: bool
    workers: int
    fc_retries: int
    function_timeout_s: int
    request_timeout_s: float
    progress: bool


@dataclass(frozen=True)
class Call:
    """One invocation: a delivery of an event, or FC's ``retry``-th retry of it."""

    event: int
    delivery: int
    request_id: str
    retry: int = 0


class DecisionCounter(logging.Handler):
    """Counts the handler's decision lines (only warnings and errors are emitted), and
    the handler's own retries by the error that caused them."""

    def __init__(self) -> None:
        super().__init__()
        self.decisions: Counter[str] = Counter()
        self.retry_causes: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        # emit() runs under the handler's own lock.
        try:
            line = json.loads(record.getMessage())
        except ValueError:
            self.decisions["not JSON"] += 1
            return
        self.decisions[line.get("decision", "?")] += 1
        if line.get("decision") == "retrying":
            self.retry_causes[str((line.get("error") or {}).get("code"))] += 1


class Soak:
    """Runs every delivery of a scenario through the handler and keeps the tallies."""

    def __init__(self, scenario: Scenario, options: Options, emulator: CollectorApiEmulator):
        self.scenario = scenario
        self.options = options
        self.emulator = emulator
        self.calls: queue.Queue[Call | None] = queue.Queue()
        self.lock = threading.Lock()
        self.tally: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.failure_destination: set[tuple[int, int]] = set()
        self.problems: list[str] = []
        self.keys = [("STS.SoakKey0000", "soak-secret-0", "soak-token-0")]
        emulator.add_access_key(*self.keys[0])
        emulator.add_access_key(*ENV_KEY)

    def run(self) -> None:
        deliveries = [
            Call(event.index, delivery, request_id)
            for event in self.scenario.events
            for delivery, request_id in enumerate(event.request_ids)
        ]
        random.Random(self.options.seed + 1).shuffle(deliveries)
        for call in deliveries:
            self.calls.put(call)
        workers = [
            threading.Thread(target=self._work, args=(n,), daemon=True)
            for n in range(self.options.workers)
        ]
        for worker in workers:
            worker.start()
        self.calls.join()
        for _ in workers:
            self.calls.put(None)

    def _work(self, number: int) -> None:
        rng = random.Random(f"{self.options.seed}-worker-{number}")
        while True:
            call = self.calls.get()
            try:
                if call is None:
                    return
                self._invoke(call, rng)
            finally:
                self.calls.task_done()

    def _invoke(self, call: Call, rng: random.Random) -> None:
        # Most slow answers come within the request timeout; some after it.
        long_slow = self.options.request_timeout_s * 1.2
        self.emulator.set_fault_rate(
            self.options.fault_rate,
            FAULT_KINDS,
            delay_s=long_slow if rng.random() < LONG_SLOW_SHARE else SHORT_SLOW_S,
        )
        context = self._context(call.request_id, rng)
        event = self.scenario.events[call.event]
        started = time.monotonic()
        failure: str | None = None
        try:
            summary = handler(event.body, context)
        except CollectorReinstallError as error:
            failure = self._classify(error)
        except Exception as error:  # noqa: BLE001 - a soak counts a crash, it does not stop
            failure = "unexpected exception"
            self._problem(f"{type(error).__name__} escaped the handler: {error}")
        else:
            with self.lock:
                self.outcomes.update(result["outcome"] for result in summary["results"])
        if time.monotonic() - started > self.options.function_timeout_s:
            failure = "over the function timeout"

        with self.lock:
            self.tally["invocations"] += 1
            self.tally["FC retries" if call.retry else "deliveries"] += 1
            if failure is None:
                self.tally["succeeded"] += 1
                return
            self.tally[f"failed: {failure}"] += 1
            if call.retry >= self.options.fc_retries:
                self.failure_destination.add((call.event, call.delivery))
                return
        self.calls.put(Call(call.event, call.delivery, call.request_id, call.retry + 1))

    def _context(self, request_id: str, rng: random.Random) -> object:
        timeout = self.options.function_timeout_s
        if rng.random() < 0.2:
            # python3.12 has no context.credentials; ENV_KEY is in the environment.
            return Python312Context(request_id=request_id, timeout=timeout, region=REGION)
        with self.lock:
            invocations = self.tally["invocations"]
            if invocations >= len(self.keys) * ROTATE_CREDENTIALS_EVERY:
                serial = len(self.keys)
                key = (f"STS.SoakKey{serial:04d}", f"soak-secret-{serial}", f"soak-token-{serial}")
                self.emulator.add_access_key(*key)
                self.keys.append(key)
            key = self.keys[-1]
        return Python310Context(
            Credentials(*key), request_id=request_id, timeout=timeout, region=REGION
        )

    def _classify(self, error: CollectorReinstallError) -> str:
        failures = error.failures if isinstance(error, InvocationFailed) else [error]
        if all(isinstance(each, ReinstallFailed) and each.transient for each in failures):
            return "transient"
        kinds = sorted({type(each).__name__ for each in failures})
        if any(isinstance(each, InvalidEvent) for each in failures):
            self._problem(f"the soak's own event was rejected: {error.message}")
            return "rejected event"
        self._problem(f"failure that retrying cannot mend ({', '.join(kinds)}): {error.message}")
        return "not transient"

    def _problem(self, text: str) -> None:
        with self.lock:
            self.tally["problems"] += 1
            if len(self.problems) < 5:
                self.problems.append(text[:300])


# -- the oracle ---------------------------------------------------------------------------


@dataclass
class Verdict:
    exactly_once: int = 0
    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0
    in_failure_destination: int = 0
    foreign_tokens: int = 0
    examples: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if len(self.examples) < 5:
            self.examples.append(text)


def judge(
    scenario: Scenario,
    reinstalls: list[EffectiveReinstall],
    failure_destination: set[tuple[int, int]],
    check_live_state: bool,
) -> Verdict:
    """Hold every effective reinstall against the asks of the events."""
    verdict = Verdict()
    times: Counter[tuple[str, str]] = Counter()
    for reinstall in reinstalls:
        for node in reinstall.nodes:
            key = (reinstall.collector_id, node)
            times[key] += 1
            ask = scenario.owners.get(key)
            if ask is None or node not in ask.expected(check_live_state):
                verdict.unexpected += 1
                verdict.note(f"{reinstall.collector_id}/{node} reinstalled, no event asked")
        if not _token_is_derived(scenario, reinstall, check_live_state):
            verdict.foreign_tokens += 1
            verdict.note(f"token {reinstall.client_token} is not derived from its event")

    sent_away = {event for event, _ in failure_destination}
    for event in scenario.events:
        for ask in event.asks:
            counts = [times[(ask.collector_id, node)] for node in ask.expected(check_live_state)]
            if any(count > 1 for count in counts):
                verdict.duplicated += 1
                verdict.note(f"event {event.index} ({event.shape}) reinstalled {max(counts)}x")
            elif all(count == 1 for count in counts):
                verdict.exactly_once += 1
            elif event.index in sent_away:
                verdict.in_failure_destination += 1
            else:
                verdict.lost += 1
                verdict.note(f"event {event.index} ({event.shape}) lost: {event.body[:200]!r}")
    return verdict


def _token_is_derived(
    scenario: Scenario, reinstall: EffectiveReinstall, check_live_state: bool
) -> bool:
    """The reinstall's token is one its event makes: the plan's, or the plan's narrowed."""
    ask = scenario.owners.get((reinstall.collector_id, reinstall.nodes[0]))
    if ask is None or reinstall.client_token is None:
        return False
    event = scenario.events[ask.event]
    batch = read_event(event.body, ReadOptions(nodes_required=not check_live_state))
    assert isinstance(batch, EventBatch)
    requests = [item for item in batch.items if not isinstance(item, InvalidEvent)]
    for plan in plan_reinstalls(requests, event.request_ids[0]):
        if plan.collector_id == reinstall.collector_id:
            narrowed = narrowed_token(plan.client_token, reinstall.nodes)
            return reinstall.client_token in (plan.client_token, narrowed)
    return False


# -- running and reporting ----------------------------------------------------------------


def soak(options: Options) -> dict[str, Any]:
    """One soak in this process; returns what to print, as plain data."""
    started = time.monotonic()
    scenario = build_scenario(options.events, options.collectors, options.seed)
    _configure_process(options)
    counter = DecisionCounter()
    logger = logging.getLogger("collector_reinstall")
    logger.addHandler(counter)
    logger.propagate = False

    with CollectorApiEmulator(
        access_keys={},
        status_after_reinstall="heartOk" if options.check_live_state else "failed",
        seed=options.seed,
    ) as emulator:
        os.environ["ES_ENDPOINT"] = emulator.url
        for collector_id, machines in scenario.machines.items():
            emulator.add_collector(collector_id, machines)
        runner = Soak(scenario, options, emulator)
        with _progress(options, runner):
            runner.run()
        emulator.reset_faults()
        reinstalls = emulator.effective_reinstalls()
        requests = list(emulator.requests)

    verdict = judge(scenario, reinstalls, runner.failure_destination, options.check_live_state)
    return {
        "mode": "on" if options.check_live_state else "off",
        "status_after_reinstall": "heartOk" if options.check_live_state else "failed",
        "events": len(scenario.events),
        "shapes": dict(Counter(event.shape for event in scenario.events)),
        "asks": sum(len(event.asks) for event in scenario.events),
        "collectors": len(scenario.machines),
        "machines": sum(len(machines) for machines in scenario.machines.values()),
        "deliveries": sum(len(event.request_ids) for event in scenario.events),
        "redeliveries_new_request_id": sum(
            len(set(event.request_ids)) - 1 for event in scenario.events
        ),
        "tally": dict(runner.tally),
        "outcomes": dict(runner.outcomes),
        "decisions": dict(counter.decisions),
        "retry_causes": dict(counter.retry_causes),
        "requests": dict(Counter(request.action or "?" for request in requests)),
        "faults": {kind: sum(r.fault == kind for r in requests) for kind in FAULT_KINDS},
        "effective_reinstalls": len(reinstalls),
        "failure_destination_deliveries": len(runner.failure_destination),
        "verdict": verdict.__dict__,
        "problems": runner.problems,
        "credential_rotations": len(runner.keys) - 1,
        "wall_s": time.monotonic() - started,
    }


def _configure_process(options: Options) -> None:
    os.environ.update(
        CHECK_LIVE_STATE="true" if options.check_live_state else "false",
        RETRY_BASE_DELAY_SECONDS="0.01",
        RETRY_MAX_DELAY_SECONDS="0.05",
        REQUEST_TIMEOUT_SECONDS=str(options.request_timeout_s),
        CONNECT_TIMEOUT_SECONDS=str(options.request_timeout_s),
        LOG_LEVEL="WARNING",
        ALIBABA_CLOUD_ACCESS_KEY_ID=ENV_KEY[0],
        ALIBABA_CLOUD_ACCESS_KEY_SECRET=ENV_KEY[1],
        ALIBABA_CLOUD_SECURITY_TOKEN=ENV_KEY[2],
        ALIBABA_CLOUD_ECS_METADATA_DISABLED="true",
        ALIBABA_CLOUD_CLI_PROFILE_DISABLED="true",
        NO_PROXY="127.0.0.1,localhost",
    )
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ES_REGION"):
        os.environ.pop(name, None)


@contextmanager
def _progress(options: Options, runner: Soak) -> Iterator[None]:
    """Every 15 s, a line on stderr saying how far the soak has got."""
    done = threading.Event()

    def report() -> None:
        started = time.monotonic()
        mode = "on" if options.check_live_state else "off"
        while not done.wait(15):
            print(
                f"  [live state {mode}] {runner.tally['invocations']} invocations, "
                f"{time.monotonic() - started:.0f} s",
                file=sys.stderr,
                flush=True,
            )

    if options.progress:
        threading.Thread(target=report, daemon=True).start()
    try:
        yield
    finally:
        done.set()


def print_report(report: dict[str, Any], options: Options) -> None:
    tally, verdict = report["tally"], report["verdict"]
    failed = {k.removeprefix("failed: "): v for k, v in tally.items() if k.startswith("failed")}
    rows: list[tuple[str, object]] = [
        ("events", f"{report['events']} " + _counts(report["shapes"])),
        ("  reinstalls they ask for", f"{report['asks']} (a batch asks one per CloudEvent)"),
        ("collectors", f"{report['collectors']} ({report['machines']} ECS machines)"),
        (
            "deliveries",
            f"{report['deliveries']} ({report['redeliveries_new_request_id']} under a new "
            "request id, the rest repeating the first one's)",
        ),
        (
            "invocations",
            f"{tally.get('invocations', 0)} ({tally.get('succeeded', 0)} succeeded, "
            f"{tally.get('FC retries', 0)} FC retries; failed: {_counts(failed) or 'none'})",
        ),
        ("handler outcomes", _counts(report["outcomes"])),
        ("API requests", f"{sum(report['requests'].values())} " + _counts(report["requests"])),
        ("faults injected", f"{sum(report['faults'].values())} " + _counts(report["faults"])),
        ("warning/error lines", _counts(report["decisions"]) or "none"),
        ("handler retries by cause", _counts(report["retry_causes"]) or "none"),
        ("effective reinstalls", report["effective_reinstalls"]),
        ("reinstalled exactly once", verdict["exactly_once"]),
        (
            "failure destination",
            f"{report['failure_destination_deliveries']} deliveries; "
            f"{verdict['in_failure_destination']} event asks never reinstalled, accounted there",
        ),
        ("lost", verdict["lost"]),
        ("duplicated", verdict["duplicated"]),
        ("unexpected nodes", verdict["unexpected"]),
        ("tokens not from the event", verdict["foreign_tokens"]),
        ("other problems", tally.get("problems", 0)),
        ("STS rotations", report["credential_rotations"]),
        ("wall time", f"{report['wall_s']:.1f} s"),
    ]
    live = "true" if report["mode"] == "on" else "false"
    print(
        f"== CHECK_LIVE_STATE={live}, status after a reinstall: "
        f"{report['status_after_reinstall']}, fault rate {options.fault_rate}, "
        f"seed {options.seed} =="
    )
    for name, value in rows:
        print(f"  {name:<26} {value}")
    for text in verdict["examples"] + report["problems"]:
        print(f"  ! {text}")


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(counts.items()))


def is_clean(report: dict[str, Any]) -> bool:
    verdict = report["verdict"]
    troubles = ("lost", "duplicated", "unexpected", "foreign_tokens")
    return not any(verdict[name] for name in troubles) and not report["tally"].get("problems")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=_positive, default=10_000)
    parser.add_argument(
        "--collectors", type=_positive, default=500, help="at most one per 4 events (500)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fault-rate", type=_rate, default=0.3)
    parser.add_argument("--check-live-state", choices=("on", "off", "both"), default="both")
    parser.add_argument("--workers", type=_positive, default=24, help="concurrent invocations")
    parser.add_argument("--fc-retries", type=int, default=3, help="FC async retries (3)")
    parser.add_argument("--function-timeout", type=_positive, default=10, help="seconds (10)")
    parser.add_argument("--request-timeout", type=float, default=1.0, help="seconds (1)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    modes = {"on": [True], "off": [False], "both": [True, False]}[args.check_live_state]
    all_options = [
        Options(
            events=args.events,
            collectors=max(1, min(args.collectors, args.events // 4)),
            seed=args.seed,
            fault_rate=args.fault_rate,
            check_live_state=mode,
            workers=args.workers,
            fc_retries=args.fc_retries,
            function_timeout_s=args.function_timeout,
            request_timeout_s=args.request_timeout,
            progress=not args.no_progress,
        )
        for mode in modes
    ]
    started = time.monotonic()
    if len(all_options) == 1:
        reports = [soak(all_options[0])]
    else:
        # One process per mode: each has its own emulator, and the two use both cores.
        with ProcessPoolExecutor(len(all_options), mp_context=get_context("spawn")) as pool:
            reports = list(pool.map(soak, all_options))
    for report, options in zip(reports, all_options, strict=True):
        print_report(report, options)
    clean = all(is_clean(report) for report in reports)
    print(f"{'PASSED' if clean else 'FAILED'} in {time.monotonic() - started:.1f} s")
    return 0 if clean else 1


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be within [0, 1]")
    return value


if __name__ == "__main__":
    sys.exit(main())
