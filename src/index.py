"""Function Compute entry point: handler string ``index.handler``, code directory ``src/``."""

from __future__ import annotations

from typing import Any

from collector_reinstall.handler import handle


def handler(event: bytes, context: object) -> dict[str, Any]:
    """Reinstall the collectors that ``event`` reports as failed; return a summary."""
    return handle(event, context)


def initializer(context: object) -> None:
    """Instance initializer: load the SDK before the first event, not during it."""
    from collector_reinstall.api import load_sdk

    load_sdk()
