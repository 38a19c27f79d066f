"""Run the handler on event files from a shell: ``python -m collector_reinstall``.

Examples::

    python -m collector_reinstall events/manual.json --dry-run
    python -m collector_reinstall events/cloudevent.json --endpoint http://127.0.0.1:8080

The summary of each file goes to stdout as JSON, the log lines to stderr. The exit
status is 0 when every file succeeded, 1 when any failed, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from types import SimpleNamespace

from .errors import CollectorReinstallError
from .handler import handle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m collector_reinstall",
        description="Invoke the reinstall handler on event files, as Function Compute would.",
    )
    parser.add_argument("events", nargs="+", type=Path, help="event files (JSON)")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the requests that would be sent; needs no credentials and no network",
    )
    parser.add_argument("--endpoint", help="API endpoint, e.g. http://127.0.0.1:8080")
    parser.add_argument("--region", help="the function's region, when the event names none")
    parser.add_argument(
        "--request-id",
        help="FC request id to pretend; tokens of events without an id derive from it",
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="function timeout in seconds (default 60)"
    )
    args = parser.parse_args(argv)

    logging.basicConfig(stream=sys.stderr, format="%(levelname)s %(message)s")
    if args.endpoint:
        os.environ["ES_ENDPOINT"] = args.endpoint
    context = SimpleNamespace(
        request_id=args.request_id,
        region=args.region,
        function=SimpleNamespace(name="collector-reinstall", timeout=args.timeout),
    )

    status = 0
    for path in args.events:
        try:
            event = path.read_bytes()
        except OSError as error:
            print(f"cannot read {path}: {error.strerror}", file=sys.stderr)
            return 2
        try:
            summary = handle(event, context, dry_run=args.dry_run)
        except CollectorReinstallError as error:
            print(f"{path}: {error.message}", file=sys.stderr)
            summary = error.summary or {"outcome": "failed", "error": error.message}
            status = 1
        print(json.dumps({"file": str(path), **summary}, indent=2))
    return status


if __name__ == "__main__":
    sys.exit(main())
