"""A clock for deterministic tests: time moves only when the test says so."""

from __future__ import annotations

import threading


class FakeClock:
    """A :class:`faro.clock.Clock` whose time moves only on :meth:`advance` or :meth:`set`.

    :meth:`now` starts at ``start``; :meth:`time` (wall clock) at ``epoch``; both move together.

    ``wait(condition, timeout)`` with a finite ``timeout`` blocks on ``condition`` with no
    real timeout and counts as a *waiter* until something wakes it: a ``notify`` on the
    condition, or the next :meth:`advance`/:meth:`set`, which wakes every waiter (whether
    its timeout has passed or not; callers re-check, as the protocol allows) and stops
    counting it at once. ``wait`` with ``timeout=None`` is a plain ``condition.wait()`` and
    is not counted; a timeout ``<= 0`` returns at once.

    To advance time without racing a thread that is about to wait, first wait for it to
    be parked with :meth:`wait_for_waiters`; after an advance, ``wait_for_waiters`` again
    tells you the thread has re-checked and parked again. Thread-safe.
    """

    def __init__(self, start: float = 0.0, *, epoch: float = 1_767_225_600.0) -> None:
        self._lock = threading.Lock()
        self._waiters_changed = threading.Condition(self._lock)
        self._now = float(start)
        self._epoch = float(epoch) - self._now  # time() is epoch at the start, then moves
        # One token per thread blocked in wait() with a finite timeout.
        self._waiting: dict[object, threading.Condition] = {}

    def now(self) -> float:
        """The current fake time in seconds."""
        with self._lock:
            return self._now

    def time(self) -> float:
        """Fake wall-clock seconds: ``epoch`` (2026-01-01 by default) plus the time moved."""
        with self._lock:
            return self._epoch + self._now

    def wait(self, condition: threading.Condition, timeout: float | None) -> None:
        """Wait on the held ``condition`` until notified or until time is moved."""
        if timeout is None:
            condition.wait()
            return
        if timeout <= 0:
            return
        token = object()
        with self._lock:
            self._waiting[token] = condition
            self._waiters_changed.notify_all()
        try:
            condition.wait()
        finally:
            with self._lock:
                if self._waiting.pop(token, None) is not None:
                    self._waiters_changed.notify_all()

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (``>= 0``) and wake every waiter.

        Raises :class:`ValueError` for a negative ``seconds``.
        """
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {seconds!r}")
        with self._lock:
            self._now += seconds
            conditions = self._take_waiters_locked()
        self._wake(conditions)

    def set(self, t: float) -> None:
        """Move time to ``t`` and wake every waiter.

        Raises :class:`ValueError` if ``t`` is earlier than :meth:`now` (time is monotonic).
        """
        with self._lock:
            if t < self._now:
                raise ValueError(f"t must be >= now() ({self._now!r}), got {t!r}")
            self._now = float(t)
            conditions = self._take_waiters_locked()
        self._wake(conditions)

    def waiters(self) -> int:
        """How many threads are blocked in :meth:`wait` with a finite timeout."""
        with self._lock:
            return len(self._waiting)

    def wait_for_waiters(self, count: int = 1, timeout: float | None = 10.0) -> bool:
        """Block until at least ``count`` threads are waiting (see :meth:`waiters`).

        ``timeout`` is in *real* seconds. Returns ``False`` if it ran out first.
        """
        with self._lock:
            return self._waiters_changed.wait_for(lambda: len(self._waiting) >= count, timeout)

    def _take_waiters_locked(self) -> list[threading.Condition]:
        conditions = list(dict.fromkeys(self._waiting.values()))
        self._waiting.clear()
        self._waiters_changed.notify_all()
        return conditions

    @staticmethod
    def _wake(conditions: list[threading.Condition]) -> None:
        # Called without self._lock: a waiter holds its condition's lock while it
        # registers, so taking the clock's lock here first could deadlock. Taking the
        # condition's lock also guarantees the waiter has really started waiting.
        for condition in conditions:
            with condition:
                condition.notify_all()
