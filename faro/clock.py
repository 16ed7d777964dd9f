"""The clock faro waits with: monotonic seconds, wall-clock seconds, and timed waits.

Code that measures or waits for time takes a :class:`Clock` so tests can swap in
:class:`faro.testing.FakeClock` and control time instead of sleeping. :func:`wait_for`
(a condition's ``wait_for`` on a clock) and :class:`ClockEvent` (an event whose waits
run on a clock: an interruptible sleep) are built on the protocol alone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol


class Clock(Protocol):
    """A source of monotonic time that can also wait on a condition.

    Contract:

    * ``now()`` returns seconds on a monotonic scale (never decreasing, arbitrary origin).
    * ``time()`` returns wall-clock seconds since the epoch (what timestamps shown to
      people are made of); it may jump when the system clock is set.
    * ``wait(condition, timeout)`` must be called with ``condition``'s lock held, like
      :meth:`threading.Condition.wait`. It releases the lock while blocked and holds it
      again on return. It returns after a ``notify`` on the condition, or once ``timeout``
      seconds have passed *on this clock* (``None``: no limit). It may return early, so
      callers re-check their predicate and the time in a loop.
    * Both methods are safe to call from any thread.
    """

    def now(self) -> float:
        """Monotonic seconds."""
        ...

    def time(self) -> float:
        """Wall-clock seconds since the epoch."""
        ...

    def wait(self, condition: threading.Condition, timeout: float | None) -> None:
        """Wait on the held ``condition`` for at most ``timeout`` clock-seconds."""
        ...


class RealClock:
    """Real time: :func:`time.monotonic` and :meth:`threading.Condition.wait`."""

    __slots__ = ()

    now = staticmethod(time.monotonic)
    """Seconds of :func:`time.monotonic` (the function itself: it is called per queued item)."""

    time = staticmethod(time.time)
    """Seconds of :func:`time.time`."""

    def wait(self, condition: threading.Condition, timeout: float | None) -> None:
        """Wait on the held ``condition`` for at most ``timeout`` real seconds.

        On the main thread it returns at least every :data:`MAIN_THREAD_SLICE` seconds (the
        protocol allows early returns): a signal the kernel delivers to another thread does
        not wake a main thread blocked without a timeout, and Python runs signal handlers
        (Ctrl-C) only on the main thread, once it wakes.
        """
        if threading.current_thread() is threading.main_thread():
            timeout = MAIN_THREAD_SLICE if timeout is None else min(timeout, MAIN_THREAD_SLICE)
        elif timeout is not None and timeout > threading.TIMEOUT_MAX:
            timeout = threading.TIMEOUT_MAX
        condition.wait(timeout)


MAIN_THREAD_SLICE = 0.1
"""Seconds a :class:`RealClock` wait on the main thread lasts at most before it returns."""


def wait_for(clock: Clock, condition: threading.Condition, predicate: Callable[[], bool],
             timeout: float | None) -> bool:
    """:meth:`threading.Condition.wait_for` with ``timeout`` measured on ``clock``.

    Call it with ``condition``'s lock held. Waits until ``predicate()`` is true (checked
    first, then after every wake-up) or ``timeout`` clock-seconds have passed (``None``: no
    limit), and returns the last value of ``predicate()``.
    """
    result = predicate()
    if result:
        return result
    deadline = None if timeout is None else clock.now() + timeout
    while not result:
        if deadline is None:
            clock.wait(condition, None)
        else:
            remaining = deadline - clock.now()
            if remaining <= 0:
                break
            clock.wait(condition, remaining)
        result = predicate()
    return result


class ClockEvent:
    """A :class:`threading.Event` whose :meth:`wait` timeout is measured on a :class:`Clock`.

    The stop signal of a thread that waits between attempts: ``wait(seconds)`` is a sleep
    that :meth:`set` (from any thread) ends at once. Thread-safe; :meth:`is_set` takes no
    lock, so it is cheap enough to check in a loop.
    """

    __slots__ = ("_clock", "_condition", "_flag")

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock: Clock = clock if clock is not None else RealClock()
        self._condition = threading.Condition(threading.Lock())
        self._flag = False

    def is_set(self) -> bool:
        """Whether :meth:`set` was called (and :meth:`clear` not since)."""
        return self._flag

    def set(self) -> None:
        """Set the flag and wake every :meth:`wait`."""
        with self._condition:
            self._flag = True
            self._condition.notify_all()

    def clear(self) -> None:
        """Reset the flag."""
        with self._condition:
            self._flag = False

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the flag is set or ``timeout`` clock-seconds passed; returns the flag."""
        with self._condition:
            return wait_for(self._clock, self._condition, self.is_set, timeout)
