"""Tell what happened: one JSON log line per decision, and the invocation's summary.

Log lines carry ids (FC request, event, collector, nodes, token) and outcomes, never
credentials and never a whole event body.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from .errors import CollectorReinstallError, InvalidEvent, ReinstallFailed

logger = logging.getLogger("collector_reinstall")

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_LEVELS = {"rejected": logging.WARNING, "retrying": logging.WARNING, "failed": logging.ERROR}


def log_decision(decision: str, **fields: Any) -> None:
    """Write ``{"decision": ..., **fields}`` as one JSON line, leaving out empty fields."""
    level = _LEVELS.get(decision, logging.INFO)
    if not logger.isEnabledFor(level):
        return
    record = {"decision": decision}
    record.update((name, value) for name, value in fields.items() if value is not None)
    logger.log(level, "%s", _ENCODER.encode(record))


def describe_error(error: CollectorReinstallError) -> dict[str, Any]:
    """The part of a summary or log line that says what went wrong."""
    described: dict[str, Any] = {"type": type(error).__name__, "message": error.message}
    if isinstance(error, InvalidEvent):
        described["field"] = error.field
    if isinstance(error, ReinstallFailed):
        described.update(code=error.code, transient=error.transient, attempts=error.attempts)
    return described
