"""Retry transient failures with backoff, inside the time the invocation has left.

When the budget runs out the last failure is raised, so that the invocation fails
and Function Compute's own asynchronous retry takes over with the same event (and so
the same ClientToken).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from .errors import ReinstallFailed

T = TypeVar("T")

#: An attempt is not started with less time than this left: it could not finish.
MIN_ATTEMPT_S = 0.5


class Deadline:
    """A point on the monotonic clock by which the invocation must have answered."""

    def __init__(self, seconds: float) -> None:
        self._expires_at = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self._expires_at - time.monotonic())


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_delay_s: float = 0.5
    max_delay_s: float = 10.0

    def delay(self, attempt: int, retry_after_s: float | None, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        Full jitter keeps instances that failed together from retrying together; a
        retry-after hint from the service is a floor, not a suggestion.
        """
        ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
        jittered = rng.uniform(0, ceiling)
        if retry_after_s is not None:
            return max(retry_after_s, jittered)
        return jittered


def call_with_retries(
    attempt: Callable[[float], T],
    *,
    policy: RetryPolicy,
    deadline: Deadline,
    on_retry: Callable[[ReinstallFailed, int, float], None],
) -> T:
    """Call ``attempt(seconds_left)`` until it returns, fails for good, or time is up.

    ``attempt`` raises :class:`ReinstallFailed`; only ``transient`` ones are retried.
    ``on_retry(failure, attempt_number, delay)`` is told before each wait.
    """
    rng = random.Random()
    number = 0
    while True:
        number += 1
        try:
            return attempt(deadline.remaining())
        except ReinstallFailed as failure:
            if not failure.transient:
                failure.attempts = number
                raise
            if number >= policy.max_attempts:
                failure.give_up(number, "the attempt limit")
                raise
            delay = policy.delay(number, failure.retry_after_s, rng)
            if deadline.remaining() - delay < MIN_ATTEMPT_S:
                failure.give_up(number, f"{deadline.remaining():.1f} s of the invocation left")
                raise
            on_retry(failure, number, delay)
            time.sleep(delay)


class RateLimiter:
    """Spaces calls at least ``1 / per_second`` apart, across every caller in the process."""

    def __init__(self, per_second: float) -> None:
        self._interval = 1.0 / per_second
        self._next_at = time.monotonic()

    def wait(self) -> None:
        now = time.monotonic()
        if self._next_at > now:
            time.sleep(self._next_at - now)
            now = self._next_at
        self._next_at = now + self._interval
