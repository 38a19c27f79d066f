"""``python -m collector_reinstall``: a person running the handler on an event file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import (
    COLLECTOR,
    EVENTS,
    NODE_1,
    NODE_2,
    STS_KEY_ID,
    STS_SECRET,
    STS_TOKEN,
)
from tests.emulators.collector_api import CollectorApiEmulator

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ALIBABA_CLOUD_ACCESS", "ALIBABA_CLOUD_SECURITY", "ES_"))
    }
    environment.update(PYTHONPATH=str(ROOT / "src"), **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "collector_reinstall", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )


def test_dry_run_prints_the_exact_request_without_credentials() -> None:
    done = run_cli(str(EVENTS / "manual.json"), "--dry-run")

    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    (result,) = summary["results"]
    assert result["request"] == {
        "action": "ReinstallCollector",
        "method": "POST",
        "url": f"https://elasticsearch.cn-hangzhou.aliyuncs.com/openapi/collectors/{COLLECTOR}"
        "/actions/reinstall",
        "path": f"/openapi/collectors/{COLLECTOR}/actions/reinstall",
        "query": {"ClientToken": result["ClientToken"]},
        "body": {"restartType": "nodeEcsId", "nodes": [NODE_1, NODE_2]},
    }
    assert '"decision":"dry-run"' in done.stderr


def test_invoke_against_an_endpoint_reinstalls(emulator: CollectorApiEmulator) -> None:
    done = run_cli(
        str(EVENTS / "cloudmonitor.json"),
        "--endpoint",
        emulator.url,
        env={
            "ALIBABA_CLOUD_ACCESS_KEY_ID": STS_KEY_ID,
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": STS_SECRET,
            "ALIBABA_CLOUD_SECURITY_TOKEN": STS_TOKEN,
        },
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["results"][0]["outcome"] == "reinstalled"
    assert [r.nodes for r in emulator.effective_reinstalls()] == [(NODE_1, NODE_2)]


def test_bad_event_file_exits_1_and_names_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"ResId": "ct-cn-0a1b2c3d4e5f6a7b8", "nodes": []}')

    done = run_cli(str(bad), "--dry-run")

    assert done.returncode == 1
    assert "nodes: is empty" in done.stderr
    assert json.loads(done.stdout)["outcome"] == "failed"


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    done = run_cli(str(tmp_path / "absent.json"), "--dry-run")

    assert done.returncode == 2
    assert "cannot read" in done.stderr


def test_dry_run_output_holds_no_credential() -> None:
    credentials = {
        "ALIBABA_CLOUD_ACCESS_KEY_ID": STS_KEY_ID,
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": STS_SECRET,
        "ALIBABA_CLOUD_SECURITY_TOKEN": STS_TOKEN,
    }

    events = [str(path) for path in sorted(EVENTS.glob("*.json"))]
    done = run_cli(*events, "--dry-run", "--region", "cn-hangzhou", env=credentials)

    assert done.returncode == 0, done.stderr
    assert '"dryRun": true' in done.stdout
    for secret in (STS_SECRET, STS_TOKEN):
        assert secret not in done.stdout
        assert secret not in done.stderr
