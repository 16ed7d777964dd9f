"""The clock faro waits with: monotonic seconds, wall-clock seconds, and timed waits.

Code that measures or waits for time takes a :class:`Clock` so tests can swap in
:class:`faro.testing.FakeClock` and control time instead of sleeping.
"""

from __future__ import annotations

import threading
import time
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
        """Wait on the held ``condition`` for at most ``timeout`` real seconds."""
        if timeout is not None and timeout > threading.TIMEOUT_MAX:
            timeout = threading.TIMEOUT_MAX
        condition.wait(timeout)
