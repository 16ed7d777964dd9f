"""Rate limiters: how long an item should wait before it is retried."""

from __future__ import annotations

import math
import threading
from collections.abc import Hashable
from typing import Generic, Protocol, TypeVar

from faro.clock import Clock, RealClock

T = TypeVar("T", bound=Hashable)
T_contra = TypeVar("T_contra", bound=Hashable, contravariant=True)


class RateLimiter(Protocol[T_contra]):
    """Decides how long an item waits before it is retried. Implementations are thread-safe.

    * ``when(item)`` records one more retry of ``item`` and returns the seconds to wait
      (``>= 0``).
    * ``forget(item)`` clears what the limiter tracks for ``item`` (call it once the item
      succeeded); limiters that track nothing per item ignore it.
    * ``num_requeues(item)`` is how many retries of ``item`` are being tracked.
    """

    def when(self, item: T_contra) -> float:
        """Record a retry of ``item``; return the seconds it should wait."""
        ...

    def forget(self, item: T_contra) -> None:
        """Stop tracking ``item``."""
        ...

    def num_requeues(self, item: T_contra) -> int:
        """How many retries of ``item`` are tracked."""
        ...


class ItemExponentialFailureRateLimiter(Generic[T]):
    """Per-item exponential backoff: ``base_delay * 2**failures``, at most ``max_delay``.

    The n-th :meth:`when` of an item (counting from 0 since its last :meth:`forget`)
    returns ``min(base_delay * 2**n, max_delay)``; huge ``n`` yield ``max_delay`` rather
    than overflowing. Raises :class:`ValueError` if ``base_delay < 0`` or
    ``max_delay < base_delay``. Thread-safe.
    """

    def __init__(self, base_delay: float = 0.005, max_delay: float = 1000.0) -> None:
        _check_number("base_delay", base_delay)
        _check_number("max_delay", max_delay)
        if base_delay < 0:
            raise ValueError(f"base_delay must be >= 0, got {base_delay!r}")
        if max_delay < base_delay:
            raise ValueError(f"max_delay must be >= base_delay ({base_delay!r}), got {max_delay!r}")
        self.base_delay = float(base_delay)
        self.max_delay = float(max_delay)
        self._lock = threading.Lock()
        self._failures: dict[T, int] = {}

    def when(self, item: T) -> float:
        """Count a failure of ``item`` and return its backoff in seconds."""
        with self._lock:
            exponent = self._failures.get(item, 0)
            self._failures[item] = exponent + 1
        try:
            backoff = math.ldexp(self.base_delay, exponent)  # base_delay * 2**exponent
        except OverflowError:
            return self.max_delay
        return min(backoff, self.max_delay)

    def forget(self, item: T) -> None:
        """Reset ``item``'s failure count."""
        with self._lock:
            self._failures.pop(item, None)

    def num_requeues(self, item: T) -> int:
        """How many failures of ``item`` were counted since its last :meth:`forget`."""
        with self._lock:
            return self._failures.get(item, 0)


class BucketRateLimiter(Generic[T]):
    """A token bucket shared by all items (overall retry rate, not per item).

    The bucket starts full with ``burst`` tokens and refills at ``qps`` tokens per second
    of ``clock``, up to ``burst``. Each :meth:`when` takes one token, even when none is
    left (the count goes negative), and returns how long until that token exists: ``0.0``
    while tokens remain, then ``1/qps`` apart (like ``Reserve().Delay()`` of Go's
    ``golang.org/x/time/rate``). :meth:`forget` does nothing and :meth:`num_requeues` is
    always 0. Raises :class:`ValueError` unless ``qps`` is finite and ``> 0`` and
    ``burst >= 1``. Thread-safe.
    """

    def __init__(self, qps: float = 10.0, burst: int = 100, *, clock: Clock | None = None) -> None:
        _check_number("qps", qps)
        if not qps > 0 or math.isinf(qps):
            raise ValueError(f"qps must be a finite number > 0, got {qps!r}")
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ValueError(f"burst must be an integer >= 1, got {burst!r}")
        self.qps = float(qps)
        self.burst = burst
        self._clock: Clock = clock if clock is not None else RealClock()
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._last = self._clock.now()

    def when(self, item: T) -> float:
        """Take a token; return the seconds until it exists (``0.0`` if one was left)."""
        with self._lock:
            now = self._clock.now()
            elapsed = now - self._last
            tokens = self._tokens
            if elapsed > 0:
                tokens = min(float(self.burst), tokens + elapsed * self.qps)
                self._last = now
            tokens -= 1.0
            self._tokens = tokens
        return -tokens / self.qps if tokens < 0 else 0.0

    def forget(self, item: T) -> None:
        """Do nothing: the bucket tracks no items."""

    def num_requeues(self, item: T) -> int:
        """Always 0: the bucket tracks no items."""
        return 0


class MaxOfRateLimiter(Generic[T]):
    """Combines limiters: waits as long as the slowest of them says.

    :meth:`when` asks every limiter (each records the retry) and returns the largest
    delay; :meth:`forget` forwards to all; :meth:`num_requeues` is the largest count.
    Raises :class:`ValueError` without any limiter. Thread-safe if the limiters are.
    """

    def __init__(self, *limiters: RateLimiter[T]) -> None:
        if not limiters:
            raise ValueError("limiters: at least one rate limiter is required")
        self.limiters: tuple[RateLimiter[T], ...] = limiters

    def when(self, item: T) -> float:
        """The largest delay any limiter returns for ``item``."""
        return max([limiter.when(item) for limiter in self.limiters])

    def forget(self, item: T) -> None:
        """Forget ``item`` in every limiter."""
        for limiter in self.limiters:
            limiter.forget(item)

    def num_requeues(self, item: T) -> int:
        """The largest retry count any limiter tracks for ``item``."""
        return max(limiter.num_requeues(item) for limiter in self.limiters)


def default_controller_rate_limiter(*, clock: Clock | None = None) -> MaxOfRateLimiter[Hashable]:
    """client-go's default for controllers: per-item backoff from 5 ms up to 1000 s,
    and at most 10 retries per second overall with bursts of 100.

    That is ``MaxOfRateLimiter(ItemExponentialFailureRateLimiter(0.005, 1000.0),
    BucketRateLimiter(10.0, 100, clock=clock))``; a new, independent limiter on every
    call. ``clock`` (default :class:`~faro.clock.RealClock`) refills the bucket: give the
    queue's.
    """
    return MaxOfRateLimiter(
        ItemExponentialFailureRateLimiter(0.005, 1000.0),
        BucketRateLimiter(10.0, 100, clock=clock),
    )


def _check_number(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ValueError(f"{name} must be a number, got {value!r}")
