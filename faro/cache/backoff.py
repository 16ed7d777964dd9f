"""How long an informer waits before retrying after a failure.

:class:`Backoff` holds the parameters; the defaults are client-go's reflector
(800 ms doubling to 30 s, jitter factor 1.0, reset once two minutes passed
without a failure). :meth:`Backoff.wait_strategy` makes the tenacity wait
strategy an informer's retry loop uses; one strategy per informer, as it keeps
the step it is at. The strategy measures time (for the reset) on a
:class:`~faro.clock.Clock`: the informer's. The waits themselves are the
informer's too (tenacity's ``sleep``, on the same clock, interruptible by stop).

A failure whose error carries ``retry_after`` (429 Too Many Requests or 503
with a ``Retry-After`` header) waits what the server asked instead, capped at
``max_retry_after``.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import tenacity
from tenacity.wait import wait_base

from faro.clock import Clock, RealClock


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter, as client-go's reflector does it.

    The n-th consecutive failure waits ``min(initial * factor**(n-1), maximum)``
    plus a random extra of up to ``jitter`` times that. A failure more than
    ``reset_after`` seconds after the previous one starts from ``initial`` again.
    Raises ValueError naming a parameter out of range.
    """

    initial: float = 0.8
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 1.0
    reset_after: float = 120.0
    max_retry_after: float = 300.0

    def __post_init__(self) -> None:
        for name in ("initial", "maximum", "jitter", "reset_after", "max_retry_after"):
            if getattr(self, name) < 0:
                raise ValueError(f"Backoff.{name} must not be negative, got {getattr(self, name)}")
        if self.factor < 1:
            raise ValueError(f"Backoff.factor must be at least 1, got {self.factor}")
        if self.maximum < self.initial:
            raise ValueError(f"Backoff.maximum ({self.maximum}) is less than Backoff.initial "
                             f"({self.initial})")

    def wait_strategy(self, *, clock: Clock | Callable[[], float] | None = None,
                      rng: Callable[[], float] = random.random) -> BackoffWait:
        """A new tenacity wait strategy following these parameters.

        ``clock`` (default :class:`~faro.clock.RealClock`) tells how long ago the last
        failure was (give the informer's); a function returning monotonic seconds, the
        form this method took before, is still accepted. ``rng`` draws the jitter
        (uniform in [0, 1)).
        """
        return BackoffWait(self, _as_clock(clock), rng)


class BackoffWait(wait_base):
    """Tenacity wait strategy for :class:`Backoff` (thread-safe); it only computes delays.

    ``clock``'s :meth:`~faro.clock.Clock.now` dates the failures (for ``reset_after``).
    """

    def __init__(self, backoff: Backoff, clock: Clock, rng: Callable[[], float]) -> None:
        self.backoff = backoff
        self._now = clock.now
        self._rng = rng
        self._lock = threading.Lock()
        self._step = 0
        self._last_failure: float | None = None

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        return self.next_delay(getattr(error, "retry_after", None))

    def next_delay(self, retry_after: float | None = None) -> float:
        """Seconds to wait after a failure now (server's ``retry_after`` honoured)."""
        b = self.backoff
        with self._lock:
            now = self._now()
            if self._last_failure is not None and now - self._last_failure > b.reset_after:
                self._step = 0
            self._last_failure = now
            base = min(b.initial * b.factor ** min(self._step, 64), b.maximum)
            self._step += 1
        if retry_after is not None:
            return float(min(max(retry_after, 0.0), b.max_retry_after))
        return float(base * (1.0 + b.jitter * self._rng()))

    def reset(self) -> None:
        """Start from ``initial`` at the next failure."""
        with self._lock:
            self._step = 0
            self._last_failure = None


def _as_clock(clock: Clock | Callable[[], float] | None) -> Clock:
    if clock is None:
        return RealClock()
    if callable(getattr(clock, "now", None)):
        return cast(Clock, clock)
    return _FunctionClock(cast(Callable[[], float], clock))


class _FunctionClock(RealClock):
    """Real time whose monotonic ``now`` is a given function (see :meth:`Backoff.wait_strategy`)."""

    __slots__ = ("now",)

    def __init__(self, now: Callable[[], float]) -> None:
        self.now = now
