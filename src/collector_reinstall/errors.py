"""The exceptions this package raises, one type per kind of failure."""

from __future__ import annotations

from typing import Any

_MAX_VALUE_CHARS = 60


def shorten(value: object) -> str:
    """Return ``repr(value)`` cut to a length that fits in a one-line message."""
    text = repr(value)
    if len(text) <= _MAX_VALUE_CHARS:
        return text
    return text[: _MAX_VALUE_CHARS - 3] + "..."


class CollectorReinstallError(Exception):
    """Base class of every error this package raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        #: The handler's summary of the invocation, when the error ends one.
        self.summary: dict[str, Any] | None = None


class ConfigurationError(CollectorReinstallError):
    """A setting (an environment variable) has a value the function cannot use."""

    def __init__(self, variable: str, value: object, expected: str) -> None:
        super().__init__(f"setting {variable}={shorten(value)} is invalid: expected {expected}")
        self.variable = variable


class InvalidEvent(CollectorReinstallError):
    """An event, or one event of a batch, that cannot be turned into a reinstall.

    ``field`` is the dotted path of the offending field (``data.nodes[2]``), or
    ``event`` when the event as a whole is at fault.
    """

    def __init__(self, field: str, problem: str, *, event_id: str | None = None) -> None:
        where = f"event {event_id!r}: " if event_id else ""
        super().__init__(f"{where}{field}: {problem}")
        self.field = field
        self.problem = problem
        self.event_id = event_id


class ReinstallFailed(CollectorReinstallError):
    """ReinstallCollector did not succeed for one collector.

    ``transient`` says whether trying again later can help (throttling, 5xx,
    connection trouble, time running out) or not (the request itself is wrong,
    the collector is unknown, access is denied, ``Result: false``).
    """

    def __init__(
        self,
        message: str,
        *,
        transient: bool,
        code: str | None = None,
        api_request_id: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.transient = transient
        self.code = code
        self.api_request_id = api_request_id
        #: The service's hint of how long to wait before trying again.
        self.retry_after_s = retry_after_s
        #: How many requests were sent before the handler stopped trying.
        self.attempts = 0

    def give_up(self, attempts: int, reason: str) -> None:
        """Record that retrying stopped after ``attempts``, and why, in the message."""
        self.attempts = attempts
        self.message = f"{self.message} (gave up after {attempts} attempt(s): {reason})"
        self.args = (self.message,)


class InvocationFailed(CollectorReinstallError):
    """At least one event of a batch failed; the others were handled.

    Raising it makes Function Compute count the invocation as failed, so that its
    asynchronous retry and failure destination take over.
    """

    def __init__(self, failures: list[CollectorReinstallError]) -> None:
        lines = "; ".join(failure.message for failure in failures)
        super().__init__(f"{len(failures)} event(s) failed: {lines}")
        self.failures = failures
