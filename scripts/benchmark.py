#!/usr/bin/env python3
"""How much the handler costs over calling the SDK directly, measured side by side.

    .venv/bin/python scripts/benchmark.py [--runs N] [--warm-runs N] [--events N] [--quick]
                                          [--latency-ms MS]

Every measurement runs in fresh interpreters (subprocesses of this one, with
``PYTHONPATH=src:.``) that talk HTTP to the collector API emulator, which serves from a
thread of this process on 127.0.0.1. The two sides of a comparison alternate run by
run, so that noise from the machine hits both; a ratio is the median of the ratios of
runs made back to back. What is compared:

* cold start: a fresh interpreter that imports ``index`` and handles one manual payload,
  against one that imports only the SDK (``alibabacloud_tea_openapi``,
  ``alibabacloud_credentials``, ``darabonba``) and makes the same calls with
  ``call_api``: DescribeCollector then ReinstallCollector, or with
  ``CHECK_LIVE_STATE=false`` ReinstallCollector alone;
* warm invocations: ``--events`` distinct invocations in one process against as many
  direct call sequences (the machines stay failed, so every one reinstalls); the target
  is judged on the median, and the 10th percentile is shown because it hardly moves
  when other processes take the CPU (the load average is printed before and after);
* rejecting an invalid event in a fresh interpreter, against ``python -c pass``, and
  whether the SDK got imported for it;
* peak memory (``ru_maxrss``) of the warm processes;
* an EventBridge batch of 100 events for 5 collectors: the calls the API sees, and the
  ClientToken rules (the same batch again: the same tokens; another batch: new ones).

Both sides find their modules byte-compiled (in a cache under /tmp, filled by an
untimed first run of each kind), as in the code package that ``build_package.py``
makes. Log lines are formatted and written to /dev/null. Only loopback is used; the
access keys are made up for this run and never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from importlib import metadata
from pathlib import Path
from random import Random
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.dont_write_bytecode = True  # leave no __pycache__ in the working tree
for _path in (str(ROOT), str(ROOT / "src")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from tests.emulators.collector_api import CollectorApiEmulator  # noqa: E402

COLD_TARGET = 1.15
WARM_TARGET = 1.10
MEMORY_TARGET_MB = 10.0
COLLECTOR_ID = "ct-cn-0b0e0c0a0f0d0e0c1"
NODES = ("i-bp1benchmark0000001", "i-bp1benchmark0000002", "i-bp1benchmark0000003")
BATCH_EVENTS = 100
BATCH_COLLECTORS = 5
MACHINES_PER_COLLECTOR = 6
SDK_DISTRIBUTIONS = ("alibabacloud-tea-openapi", "alibabacloud-credentials", "darabonba-core")

#: The program each fresh interpreter runs (``python -m``, so that it is byte-compiled
#: once); its first argument (JSON) says what to do. Both sides share everything but the
#: mode function, so neither pays for the other.
DRIVER_MODULE = "collector_reinstall_bench_driver"
DRIVER = """\
import json
import logging
import os
import resource
import sys
import time

SDK_PACKAGES = {
    "alibabacloud_credentials", "alibabacloud_credentials_api", "alibabacloud_gateway_spi",
    "alibabacloud_tea_openapi", "alibabacloud_tea_util", "darabonba", "Tea", "aiohttp",
    "requests",
}


def credentials_from_environ():
    from tests.fc_context import Credentials

    return Credentials(
        os.environ["ALIBABA_CLOUD_ACCESS_KEY_ID"],
        os.environ["ALIBABA_CLOUD_ACCESS_KEY_SECRET"],
        os.environ["ALIBABA_CLOUD_SECURITY_TOKEN"],
    )


def run_handler(spec):
    started = time.perf_counter()
    import index
    imported = time.perf_counter()
    from tests.fc_context import Python310Context

    credentials = credentials_from_environ()
    event = json.dumps({"ResId": spec["collector_id"], "nodes": spec["nodes"]}).encode()
    times = []
    for number in range(spec["invocations"]):
        # A new FC request id makes a new invocation, and so a new ClientToken.
        context = Python310Context(credentials, request_id=f"{spec['tag']}-{number}")
        began = time.perf_counter()
        summary = index.handler(event, context)
        times.append(time.perf_counter() - began)
        outcome = summary["results"][0]["outcome"]
        if outcome != "reinstalled":
            raise SystemExit(f"invocation {number} ended {outcome}, not reinstalled")
    return {"import_s": imported - started, "times_s": times}


def run_sdk(spec):
    started = time.perf_counter()
    from alibabacloud_credentials.client import Client as CredentialClient
    from alibabacloud_credentials.models import Config as CredentialConfig
    from alibabacloud_tea_openapi.client import Client as OpenApiClient
    from alibabacloud_tea_openapi.utils_models import Config, OpenApiRequest, Params
    from darabonba.runtime import RuntimeOptions
    imported = time.perf_counter()

    def params(action, method, pathname):
        return Params(
            action=action, version="2017-06-13", protocol="HTTP", method=method,
            auth_type="AK", style="ROA", pathname=pathname, req_body_type="json",
            body_type="json",
        )

    path = f"/openapi/collectors/{spec['collector_id']}"
    nodes = spec["nodes"]
    client = None
    times = []
    for number in range(spec["invocations"]):
        began = time.perf_counter()
        if client is None:  # built by the first call, as the handler builds its own
            credential = CredentialClient(CredentialConfig(
                type="sts",
                access_key_id=os.environ["ALIBABA_CLOUD_ACCESS_KEY_ID"],
                access_key_secret=os.environ["ALIBABA_CLOUD_ACCESS_KEY_SECRET"],
                security_token=os.environ["ALIBABA_CLOUD_SECURITY_TOKEN"],
            ))
            client = OpenApiClient(
                Config(credential=credential, endpoint=spec["endpoint"], protocol="HTTP")
            )
        runtime = RuntimeOptions(read_timeout=10000, connect_timeout=3000)
        chosen = nodes
        if spec["check"]:
            answer = client.call_api(params("DescribeCollector", "GET", path),
                                     OpenApiRequest(), runtime)
            status = {
                machine["instanceId"]: machine["agentStatus"]
                for config in answer["body"]["Result"]["extendConfigs"]
                if config.get("configType") == "collectorDeployMachine"
                for machine in config.get("machines", [])
            }
            chosen = [node for node in nodes if status.get(node) == "failed"]
        request = OpenApiRequest(
            query={"ClientToken": f"{spec['tag']}-{number}"},
            body={"restartType": "nodeEcsId", "nodes": chosen},
        )
        answer = client.call_api(
            params("ReinstallCollector", "POST", path + "/actions/reinstall"), request, runtime
        )
        times.append(time.perf_counter() - began)
        if answer["body"].get("Result") is not True:
            raise SystemExit(f"call sequence {number} answered {answer['body']!r}")
    return {"import_s": imported - started, "times_s": times}


def run_reject(spec):
    started = time.perf_counter()
    import index
    from collector_reinstall import InvalidEvent
    from tests.fc_context import Python310Context

    imported = time.perf_counter()
    context = Python310Context(credentials_from_environ(), request_id="benchmark-reject")
    try:
        index.handler(b"not json", context)
        rejected = False
    except InvalidEvent:
        rejected = True
    return {
        "import_s": imported - started,
        "rejected": rejected,
        "sdk_loaded": sorted({name.split(".")[0] for name in sys.modules} & SDK_PACKAGES),
    }


def run_batch(spec):
    import index
    from collector_reinstall import CollectorReinstallError
    from tests.fc_context import Python310Context

    with open(spec["event_file"], "rb") as event_file:
        event = event_file.read()
    context = Python310Context(credentials_from_environ(), request_id=spec["tag"])
    try:
        summary = index.handler(event, context)
    except CollectorReinstallError as failure:
        summary = failure.summary
    return {"outcome": summary["outcome"], "results": summary["results"]}


def main():
    spec = json.loads(sys.argv[1])
    # FC hands the function's log records to its log service; here they go nowhere.
    logging.basicConfig(stream=open(os.devnull, "w"), level=logging.INFO)
    modes = {"handler": run_handler, "sdk": run_sdk, "reject": run_reject, "batch": run_batch}
    report = modes[spec["mode"]](spec)
    report["maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(report))


main()
"""


class BenchmarkError(Exception):
    """A run did not do what it is measured doing; the numbers would mean nothing."""


@dataclass(frozen=True)
class Options:
    cold_runs: int
    warm_runs: int
    events: int
    latency_ms: float = 0.0


@dataclass
class Child:
    """One fresh interpreter: its wall time as seen from here, and what it reported."""

    wall_s: float
    report: dict[str, Any]


@dataclass
class Row:
    measurement: str
    handler: str
    baseline: str
    difference: str = ""
    ratio: str = ""
    target: str = ""
    result: str = ""


@dataclass
class BatchRow:
    delivery: str
    calls: Counter[str]
    new_reinstalls: int
    tokens: list[str]
    target: str
    met: bool


@dataclass
class Bench:
    """What every child run shares: the interpreter, the driver, the environment."""

    python: str
    workdir: Path
    access_key: tuple[str, str, str]
    latency_ms: float = 0.0
    rows: list[Row] = field(default_factory=list)
    batch_rows: dict[str, list[BatchRow]] = field(default_factory=dict)

    def environ(self, endpoint_url: str, *, check: bool = True) -> dict[str, str]:
        """A clean environment: nothing of the caller's cloud settings, proxies or keys."""
        key_id, secret, token = self.access_key
        keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
        environ = {name: os.environ[name] for name in keep if name in os.environ}
        environ.update(
            PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT), str(self.workdir)]),
            PYTHONPYCACHEPREFIX=str(self.workdir / "pycache"),
            NO_PROXY="127.0.0.1,localhost",
            ES_ENDPOINT=endpoint_url,
            CHECK_LIVE_STATE="true" if check else "false",
            ALIBABA_CLOUD_ACCESS_KEY_ID=key_id,
            ALIBABA_CLOUD_ACCESS_KEY_SECRET=secret,
            ALIBABA_CLOUD_SECURITY_TOKEN=token,
        )
        return environ

    def run(self, spec: dict[str, Any], environ: dict[str, str], timeout_s: float) -> Child:
        command = [self.python, "-m", DRIVER_MODULE, json.dumps(spec)]
        return self._run(command, environ, timeout_s)

    def run_bare(self, environ: dict[str, str]) -> Child:
        return self._run([self.python, "-c", "pass"], environ, 60)

    def _run(self, command: list[str], environ: dict[str, str], timeout_s: float) -> Child:
        began = time.perf_counter()
        try:
            done = subprocess.run(
                command, env=environ, capture_output=True, text=True, timeout=timeout_s
            )
        except subprocess.TimeoutExpired:
            raise BenchmarkError(f"a run took longer than {timeout_s:.0f} s") from None
        wall_s = time.perf_counter() - began
        if done.returncode != 0:
            raise BenchmarkError(
                f"a run exited with {done.returncode}:\n{self._redact(done.stderr[-3000:])}"
            )
        report = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else {}
        return Child(wall_s, report)

    def _redact(self, text: str) -> str:
        for value in self.access_key:
            text = text.replace(value, "***")
        return text


@contextmanager
def emulator(bench: Bench) -> Iterator[CollectorApiEmulator]:
    """A fresh emulator whose machines stay failed, so that every reinstall is real work.

    Fresh per measurement: its nonce and token stores grow with every request.
    """
    key_id, secret, token = bench.access_key
    with CollectorApiEmulator(
        access_keys={key_id: (secret, token)}, status_after_reinstall="failed"
    ) as api:
        a_day_ago = datetime.now(timezone.utc) - timedelta(days=1)
        api.add_collector(COLLECTOR_ID, dict.fromkeys(NODES, "failed"), gmt_update_time=a_day_ago)
        if bench.latency_ms > 0:
            # Every answer waits as long as a real round trip to the service would.
            api.set_fault_rate(1.0, ("slow",), delay_s=bench.latency_ms / 1000)
        yield api


def main(argv: list[str] | None = None) -> int:
    options = _parse(argv)
    workdir = Path(tempfile.mkdtemp(prefix="collector-reinstall-bench-"))
    try:
        (workdir / f"{DRIVER_MODULE}.py").write_text(DRIVER, encoding="utf-8")
        access_key = (
            f"STS.bench{secrets.token_hex(8)}",
            secrets.token_urlsafe(24),
            secrets.token_urlsafe(32),
        )
        bench = Bench(sys.executable, workdir, access_key, options.latency_ms)
        print(_machine(options), flush=True)
        steps: list[tuple[str, Callable[[], None]]] = [
            ("cold start, check on", lambda: measure_cold(bench, options, check=True)),
            ("cold start, check off", lambda: measure_cold(bench, options, check=False)),
            ("invalid event", lambda: measure_reject(bench, options)),
            ("warm, check on", lambda: measure_warm(bench, options, check=True)),
            ("warm, check off", lambda: measure_warm(bench, options, check=False)),
            ("batch, check on", lambda: measure_batch(bench, check=True)),
            ("batch, check off", lambda: measure_batch(bench, check=False)),
        ]
        for name, step in steps:
            began = time.perf_counter()
            print(f"  measuring {name} ...", end="", file=sys.stderr, flush=True)
            step()
            print(f" {time.perf_counter() - began:.1f} s", file=sys.stderr, flush=True)
    except BenchmarkError as error:
        print(f"\nbenchmark failed: {error}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print(_table(bench.rows))
    print(f"\nload average at the end: {_load()}")
    print(_batch_table(bench.batch_rows))
    missed = [row.measurement for row in bench.rows if row.result == "miss"]
    missed += [
        f"batch ({mode}): {row.delivery}"
        for mode, rows in bench.batch_rows.items()
        for row in rows
        if not row.met
    ]
    print("\nall targets met" if not missed else "\ntargets missed:\n- " + "\n- ".join(missed))
    return 0


def measure_cold(bench: Bench, options: Options, *, check: bool) -> None:
    """Fresh interpreters, one event each: the handler against direct ``call_api``."""
    label = "check on" if check else "check off"
    calls = "Describe + Reinstall" if check else "Reinstall only"
    with emulator(bench) as api:
        environ = bench.environ(api.url, check=check)
        spec = {"collector_id": COLLECTOR_ID, "nodes": list(NODES), "invocations": 1}
        sides = {
            "handler": {**spec, "mode": "handler"},
            "sdk": {**spec, "mode": "sdk", "endpoint": api.endpoint, "check": check},
        }
        runs = _alternate(
            options.cold_runs,
            lambda side, number: bench.run(
                {**sides[side], "tag": f"cold-{side}-{number}"}, environ, 120
            ),
        )
        _expect_same_calls(api, 2 * (options.cold_runs + 1), check=check)

    def first_event(child: Child) -> float:
        return float(child.report["import_s"] + child.report["times_s"][0])

    bench.rows += [
        _compare(
            f"cold start ({label}: {calls}), whole process",
            runs,
            lambda child: child.wall_s,
            _ms,
            COLD_TARGET,
        ),
        _compare(
            f"of which: `import index` vs the SDK imports ({label})",
            runs,
            lambda child: float(child.report["import_s"]),
            _ms,
        ),
        _compare(f"of which: imports + first event, in process ({label})", runs, first_event, _ms),
    ]


def measure_reject(bench: Bench, options: Options) -> None:
    """``handler(b"not json")`` in a fresh interpreter against ``python -c pass``."""
    with emulator(bench) as api:
        environ = bench.environ(api.url)
        runs = _alternate(
            options.cold_runs,
            lambda side, number: (
                bench.run({"mode": "reject"}, environ, 60)
                if side == "handler"
                else bench.run_bare(environ)
            ),
        )
        if api.requests:
            raise BenchmarkError("rejecting an invalid event made an API call")
    handler_runs = [handler for handler, _ in runs]
    if not all(child.report["rejected"] for child in handler_runs):
        raise BenchmarkError("the handler did not reject b'not json' with InvalidEvent")
    loaded = sorted({name for child in handler_runs for name in child.report["sdk_loaded"]})
    bench.rows += [
        _compare("reject invalid event, whole process vs `python -c pass`", runs, _wall, _ms),
        Row(
            "SDK modules imported after the rejection",
            ", ".join(loaded) if loaded else "none",
            "none",
            target="none",
            result="miss" if loaded else "met",
        ),
    ]


def measure_warm(bench: Bench, options: Options, *, check: bool) -> None:
    """``--events`` invocations in one process each side; the first one is not counted."""
    label = "check on" if check else "check off"
    pairs: list[tuple[Child, Child]] = []
    spec = {"collector_id": COLLECTOR_ID, "nodes": list(NODES), "invocations": options.events + 1}
    timeout_s = 120 + options.events * 0.5
    for number in range(options.warm_runs):
        # A fresh emulator per pair keeps its stores (nonces, tokens) the same size for both.
        with emulator(bench) as api:
            environ = bench.environ(api.url, check=check)
            sides = {
                "handler": {**spec, "mode": "handler"},
                "sdk": {**spec, "mode": "sdk", "endpoint": api.endpoint, "check": check},
            }
            order = ("handler", "sdk") if number % 2 == 0 else ("sdk", "handler")
            done = {
                side: bench.run(
                    {**sides[side], "tag": f"warm-{side}-{number}"}, environ, timeout_s
                )
                for side in order
            }
            _expect_same_calls(api, 2 * (options.events + 1), check=check)
            pairs.append((done["handler"], done["sdk"]))

    def per_invocation(summary: Callable[[list[float]], float]) -> Callable[[Child], float]:
        return lambda child: summary(child.report["times_s"][1:])

    count = f"{options.events:,}"
    bench.rows += [
        _compare(
            f"warm ({label}), median per invocation of {count}",
            pairs,
            per_invocation(statistics.median),
            _ms,
            WARM_TARGET,
        ),
        _compare(
            f"warm ({label}), mean per invocation of {count}",
            pairs,
            per_invocation(statistics.fmean),
            _ms,
        ),
        # The fastest tenth hardly moves when other processes take the CPU for a while.
        _compare(
            f"warm ({label}), 10th percentile per invocation",
            pairs,
            per_invocation(lambda times: statistics.quantiles(times, n=10)[0]),
            _ms,
        ),
    ]
    if check:
        bench.rows.append(_compare_memory(f"peak RSS after {count} invocations", pairs))


def measure_batch(bench: Bench, *, check: bool) -> None:
    """One EventBridge batch, delivered twice, then another batch for the same nodes."""
    rng = Random(20_170_613)
    machines = {
        f"ct-cn-bench{index:014d}": [
            f"i-bp1batch{index:02d}{machine:09d}" for machine in range(MACHINES_PER_COLLECTOR)
        ]
        for index in range(BATCH_COLLECTORS)
    }
    collector_ids = list(machines)
    plan = []
    for number in range(BATCH_EVENTS):
        collector_id = collector_ids[number % BATCH_COLLECTORS]
        nodes = rng.sample(machines[collector_id], rng.randint(1, 3))
        plan.append((collector_id, sorted(nodes)))
    key_id, secret, token = bench.access_key
    rows: list[BatchRow] = []
    with CollectorApiEmulator(
        access_keys={key_id: (secret, token)}, status_after_reinstall="failed"
    ) as api:
        a_day_ago = datetime.now(timezone.utc) - timedelta(days=1)
        for collector_id, instance_ids in machines.items():
            api.add_collector(
                collector_id, dict.fromkeys(instance_ids, "failed"), gmt_update_time=a_day_ago
            )
        environ = bench.environ(api.url, check=check)
        first_tokens: list[str] = []
        first_target = f"{BATCH_COLLECTORS} Reinstall" + (
            f" + {BATCH_COLLECTORS} Describe" if check else ""
        )
        deliveries = (
            ("first delivery", "a", first_target),
            ("the same batch again", "a", f"the same {BATCH_COLLECTORS} tokens, none new"),
            ("another batch (new event ids)", "b", f"{BATCH_COLLECTORS} new tokens"),
        )
        for number, (delivery, batch_tag, target) in enumerate(deliveries):
            event_file = bench.workdir / f"batch-{batch_tag}.json"
            event_file.write_text(json.dumps(_batch(plan, batch_tag)), encoding="utf-8")
            seen, reinstalled = len(api.requests), len(api.effective_reinstalls())
            child = bench.run(
                {"mode": "batch", "event_file": str(event_file), "tag": f"batch-{number}"},
                environ,
                120,
            )
            if child.report["outcome"] != "succeeded":
                raise BenchmarkError(f"the batch ({delivery}) failed: {child.report}")
            tokens = sorted(result["ClientToken"] for result in child.report["results"])
            calls = Counter(request.action or "?" for request in api.requests[seen:])
            new_reinstalls = len(api.effective_reinstalls()) - reinstalled
            if number == 0:
                first_tokens = tokens
                met = calls == Counter(
                    {"ReinstallCollector": BATCH_COLLECTORS}
                    | ({"DescribeCollector": BATCH_COLLECTORS} if check else {})
                )
                met = met and new_reinstalls == BATCH_COLLECTORS
            elif batch_tag == "a":
                met = tokens == first_tokens and new_reinstalls == 0
            else:
                met = len(set(tokens)) == BATCH_COLLECTORS and not set(tokens) & set(first_tokens)
                met = met and new_reinstalls == BATCH_COLLECTORS
            rows.append(BatchRow(delivery, calls, new_reinstalls, tokens, target, met))
    bench.batch_rows["check on" if check else "check off"] = rows


def _batch(plan: list[tuple[str, list[str]]], batch_tag: str) -> list[dict[str, Any]]:
    """``plan`` as CloudEvents, ids unique to ``batch_tag``."""
    return [
        {
            "id": f"bench-{batch_tag}-{number:04d}",
            "source": "acs.custom.collector-benchmark",
            "specversion": "1.0",
            "type": "elasticsearch:Collector:InstallFailed",
            "time": "2026-12-03T08:00:00Z",
            "aliyunregionid": "cn-hangzhou",
            "data": {"collectorId": collector_id, "nodes": nodes},
        }
        for number, (collector_id, nodes) in enumerate(plan)
    ]


def _alternate(runs: int, run: Callable[[str, int], Child]) -> list[tuple[Child, Child]]:
    """An untimed first run of each side (it fills the bytecode cache), then ``runs``
    pairs, the side that goes first swapping every run."""
    run("handler", -1)
    run("sdk", -1)
    pairs = []
    for number in range(runs):
        order = ("handler", "sdk") if number % 2 == 0 else ("sdk", "handler")
        done = {side: run(side, number) for side in order}
        pairs.append((done["handler"], done["sdk"]))
    return pairs


def _expect_same_calls(api: CollectorApiEmulator, sequences: int, *, check: bool) -> None:
    """Both sides together made ``sequences`` call sequences, each answered and effective."""
    calls = Counter(request.action for request in api.requests)
    expected = Counter({"ReinstallCollector": sequences})
    if check:
        expected["DescribeCollector"] = sequences
    answered = all(request.status == 200 for request in api.requests)
    if calls != expected or not answered or len(api.effective_reinstalls()) != sequences:
        raise BenchmarkError(
            f"expected {dict(expected)}, all answered and effective; the API saw {dict(calls)}"
        )


def _compare(
    measurement: str,
    pairs: list[tuple[Child, Child]],
    value: Callable[[Child], float],
    show: Callable[[float], str],
    target: float | None = None,
) -> Row:
    handler = [value(handler) for handler, _ in pairs]
    baseline = [value(baseline) for _, baseline in pairs]
    pairs_of_values = list(zip(handler, baseline, strict=True))
    ratios = [mine / theirs for mine, theirs in pairs_of_values]
    ratio = statistics.median(ratios)
    row = Row(
        measurement,
        show(statistics.median(handler)),
        show(statistics.median(baseline)),
        _signed(statistics.median(mine - theirs for mine, theirs in pairs_of_values), show),
        f"{ratio:.2f}x ({min(ratios):.2f}-{max(ratios):.2f})",
    )
    if target is not None:
        row.target = f"≤ {target:.2f}x"
        row.result = "met" if ratio <= target else "miss"
    return row


def _compare_memory(measurement: str, pairs: list[tuple[Child, Child]]) -> Row:
    """Linux reports ``ru_maxrss`` in KiB."""
    handler = [child.report["maxrss_kb"] / 1024 for child, _ in pairs]
    baseline = [child.report["maxrss_kb"] / 1024 for _, child in pairs]
    pairs_of_values = list(zip(handler, baseline, strict=True))
    extra = statistics.median(mine - theirs for mine, theirs in pairs_of_values)
    ratios = [mine / theirs for mine, theirs in pairs_of_values]
    return Row(
        measurement,
        f"{statistics.median(handler):.1f} MB",
        f"{statistics.median(baseline):.1f} MB",
        f"{extra:+.1f} MB",
        f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})",
        f"≤ +{MEMORY_TARGET_MB:.0f} MB",
        "met" if extra <= MEMORY_TARGET_MB else "miss",
    )


def _signed(value: float, show: Callable[[float], str]) -> str:
    return ("+" if value >= 0 else "-") + show(abs(value))


def _wall(child: Child) -> float:
    return child.wall_s


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _table(rows: list[Row]) -> str:
    lines = [
        "\n| measurement | handler | SDK only (or bare start) | difference | ratio (range) "
        "| target | result |",
        "| --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    lines += [
        f"| {row.measurement} | {row.handler} | {row.baseline} | {row.difference} "
        f"| {row.ratio} | {row.target} | {row.result} |"
        for row in rows
    ]
    lines.append(
        "\nhandler and SDK columns: medians over the runs; difference and ratio: medians of"
        " the differences and ratios of runs made back to back (range: lowest and highest)"
    )
    return "\n".join(lines)


def _batch_table(batch_rows: dict[str, list[BatchRow]]) -> str:
    lines = [
        f"\nEventBridge batch: {BATCH_EVENTS} CloudEvents naming {BATCH_COLLECTORS} collectors\n",
        "| check | delivery | DescribeCollector | ReinstallCollector | new effective reinstalls "
        "| tokens | target | result |",
        "| --- | --- | ---: | ---: | ---: | --- | --- | --- |",
    ]
    for mode, rows in batch_rows.items():
        first = rows[0].tokens if rows else []
        for row in rows:
            if row is rows[0]:
                tokens = f"{len(set(row.tokens))} distinct ({_rule(row.tokens)})"
            elif row.tokens == first:
                tokens = f"the same {len(first)}"
            else:
                shared = len(set(row.tokens) & set(first))
                tokens = f"{len(set(row.tokens))} distinct, {shared} shared with the first"
            lines.append(
                f"| {mode} | {row.delivery} | {row.calls['DescribeCollector']} "
                f"| {row.calls['ReinstallCollector']} | {row.new_reinstalls} | {tokens} "
                f"| {row.target} | {'met' if row.met else 'miss'} |"
            )
    return "\n".join(lines)


def _rule(tokens: list[str]) -> str:
    """The token rules in use, ``cr-m-…`` for instance."""
    return ", ".join(sorted({"-".join(token.split("-")[:2]) + "-…" for token in tokens}))


def _machine(options: Options) -> str:
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    versions = []
    for name in SDK_DISTRIBUTIONS:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    return "\n".join(
        [
            "# collector-reinstall benchmark\n",
            f"- machine: {platform.platform()}, {cpu}, nproc {usable}",
            f"- python: {platform.python_implementation()} {platform.python_version()}"
            f" ({sys.executable})",
            f"- SDK: {', '.join(versions)}",
            f"- runs: cold start {options.cold_runs} pairs per row; warm {options.warm_runs}"
            f" pair(s) of {options.events:,} invocations each; emulator on 127.0.0.1"
            f" answering after {options.latency_ms:g} ms more than it needs",
            f"- load average at the start: {_load()}",
        ]
    )


def _load() -> str:
    """The 1-minute load average, which says how much others used the machine."""
    if not hasattr(os, "getloadavg"):
        return "unknown"
    load = os.getloadavg()[0]
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    busy = (
        " (busy: others were running; expect wide ranges)" if load > 0.75 * (usable or 1) else ""
    )
    return f"{load:.2f}{busy}"


def _parse(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, help="cold-start runs per side (7; --quick 3)")
    parser.add_argument("--warm-runs", type=int, help="warm runs per side (3; --quick 1)")
    parser.add_argument("--events", type=int, help="invocations per warm run (1000; --quick 200)")
    parser.add_argument("--quick", action="store_true", help="a smoke run, about a minute")
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="delay every emulator answer this long, like a real round trip (default 0)",
    )
    args = parser.parse_args(argv)
    defaults = (3, 1, 200) if args.quick else (7, 3, 1000)
    options = Options(
        cold_runs=args.runs if args.runs is not None else defaults[0],
        warm_runs=args.warm_runs if args.warm_runs is not None else defaults[1],
        events=args.events if args.events is not None else defaults[2],
        latency_ms=args.latency_ms,
    )
    if min(options.cold_runs, options.warm_runs) < 1 or options.events < 2:
        parser.error("--runs and --warm-runs must be at least 1, --events at least 2")
    return options


if __name__ == "__main__":
    sys.exit(main())
