"""The main job, end to end on this machine: every sample event through the real handler.

Starts the collector API emulator on loopback, gives it the collectors that the
sample events name (with their machines in ``failed``), then calls ``index.handler``
the way Function Compute does (the event as bytes, a ``python3.10``-shaped context
with STS credentials) for each file in ``events/``, twice: the second time is FC's
asynchronous retry of the same invocation, which must not reinstall again. Every
event starts from the same state (the machines failed, last changed a day ago).
Prints what the handler returned and what the API saw.

    python3 dev.py run [--verbose]     (or: .venv/bin/python scripts/demo.py)
"""

from __future__ import annotations

import json
import logging
import os
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from collector_reinstall import CollectorReinstallError  # noqa: E402
from index import handler  # noqa: E402
from tests.emulators.collector_api import CollectorApiEmulator  # noqa: E402
from tests.fc_context import Credentials, Python310Context  # noqa: E402

KEY_ID, SECRET, TOKEN = "STS.DemoKeyId", "demo-secret", "demo-security-token"
MACHINES = {
    "ct-cn-0a1b2c3d4e5f6a7b8": ["i-bp1aaaaaaaaaaaaaaaa1", "i-bp1aaaaaaaaaaaaaaaa2"],
    "ct-cn-9f8e7d6c5b4a3f2e1": ["i-bp1bbbbbbbbbbbbbbbb1"],
}


def main() -> int:
    # The handler's JSON decision lines are shown with --verbose; warnings always.
    log_handler = logging.StreamHandler(sys.stderr)
    log_handler.setLevel(logging.INFO if "--verbose" in sys.argv else logging.WARNING)
    logging.basicConfig(handlers=[log_handler], format="  log: %(message)s")
    events = sorted((ROOT / "events").glob("*.json"))
    with CollectorApiEmulator(access_keys={KEY_ID: (SECRET, TOKEN)}) as emulator:
        os.environ["ES_ENDPOINT"] = emulator.url
        print(f"collector API emulator at {emulator.url}")

        failed = 0
        for path in events:
            reset(emulator)
            # FC's async retry of an invocation keeps its request id.
            request_id = str(uuid.uuid4())
            before = len(emulator.effective_reinstalls())
            print(f"\n== {path.name} ==")
            for delivery in ("first delivery", "FC async retry"):
                print(f"  {delivery}:")
                failed += invoke(path, request_id)
            done = len(emulator.effective_reinstalls()) - before
            print(f"  -> {done} effective reinstall(s)")

        print("\n== what the API saw ==")
        for request in emulator.requests:
            token = request.query.get("ClientToken")
            print(
                f"  {request.action:<18} {request.method} {request.path}"
                + (f" token={token}" if token else "")
                + f" signature={'valid' if request.signature_valid else 'INVALID'}"
                f" -> {request.status}"
            )
        print(f"\n{len(emulator.effective_reinstalls())} effective reinstalls:")
        for reinstall in emulator.effective_reinstalls():
            print(f"  {reinstall.collector_id}: {', '.join(reinstall.nodes)}")
    return 1 if failed else 0


def reset(emulator: CollectorApiEmulator) -> None:
    """The sample events' collectors with every machine failed, and a healthy one."""
    a_day_ago = datetime.now(timezone.utc) - timedelta(days=1)
    for collector_id, machines in MACHINES.items():
        emulator.add_collector(
            collector_id, dict.fromkeys(machines, "failed"), gmt_update_time=a_day_ago
        )
    emulator.add_collector(
        "ct-cn-healthy000000001", {"i-bp1cccccccccccccccc1": "heartOk"}, gmt_update_time=a_day_ago
    )


def invoke(path: Path, request_id: str) -> int:
    context = Python310Context(Credentials(KEY_ID, SECRET, TOKEN), request_id=request_id)
    try:
        summary = handler(path.read_bytes(), context)
    except CollectorReinstallError as error:
        print(f"    FAILED {error.message}")
        return 1
    for result in summary["results"]:
        if result["outcome"] == "swept":
            counts = ("listed", "selected", "healthy", "recentlyChanged")
            print("    swept: " + ", ".join(f"{name} {result[name]}" for name in counts))
            continue
        print(
            f"    {result['outcome']} {result['ResId']} nodes={json.dumps(result['nodes'])}"
            + (f" RequestId={result['RequestId']}" if result.get("RequestId") else "")
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
