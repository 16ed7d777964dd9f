"""Lines written in groups: one write per batch instead of one per line.

Contract: :meth:`LineBatcher.add` (any thread) appends a line to the batch and returns at
once, without a system call. A daemon thread hands the batch to ``write`` (one call, the
lines in the order they were added) at most ``interval`` seconds after its first line was
added; :meth:`LineBatcher.flush` (any thread) hands it over at once and returns once it is
written, and :meth:`LineBatcher.close` flushes and ends the thread. Batches are written one
at a time, in order. So a process killed at any moment loses at most the lines of the last
``interval`` (never part of a line, as long as ``write`` writes whole lines), and a program
that closes the batcher loses none.

Why: a system call per line releases and takes back the GIL, and with several worker threads
and a busy informer each of those waits for the interpreter's switch interval; writing a
batch costs one.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from faro.clock import Clock, RealClock

_L = TypeVar("_L", bytes, str)

INTERVAL = 0.1
"""Seconds a line may wait before its batch is written (the most a crash loses)."""


class LineBatcher(Generic[_L]):
    """Collects lines and writes them in batches; see the module docstring.

    ``write(lines)`` is called with the batch (a non-empty list) on the batcher's thread, or
    on the thread calling :meth:`flush` or :meth:`close`; it must not raise (an exception is
    suppressed, the batch is gone). ``name`` names the thread (``faro-flush-<name>``).
    """

    def __init__(self, write: Callable[[list[_L]], object], *, name: str,
                 interval: float = INTERVAL, clock: Clock | None = None) -> None:
        self._write: Callable[[list[_L]], object] = write
        self._interval = interval
        self._clock: Clock = clock if clock is not None else RealClock()
        self._lines: list[_L] = []
        self._added = threading.Condition(threading.Lock())
        self._writing = threading.Lock()  # one batch at a time, in order
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"faro-flush-{name}",
                                        daemon=True)
        self._thread.start()

    def add(self, line: _L) -> None:
        """Append ``line`` to the batch (written within ``interval``); after :meth:`close`,
        write it at once."""
        with self._added:
            lines = self._lines
            lines.append(line)
            if len(lines) == 1:
                self._added.notify()
            closed = self._closed
        if closed:
            self.flush()

    def flush(self) -> None:
        """Write the batch now (on this thread); returns once it is written."""
        with self._writing:
            with self._added:
                lines, self._lines = self._lines, []
            if lines:
                with contextlib.suppress(Exception):
                    self._write(lines)

    def close(self, timeout: float | None = 5.0) -> None:
        """Write what is left and end the thread (waits at most ``timeout`` for it)."""
        with self._added:
            self._closed = True
            self._added.notify()
        self.flush()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        clock = self._clock
        while True:
            with self._added:
                while not self._lines and not self._closed:
                    clock.wait(self._added, None)
                if self._closed:
                    return
                first = clock.now()  # a line is waiting: give the batch its interval
                while not self._closed and (remaining := first + self._interval - clock.now()) > 0:
                    clock.wait(self._added, remaining)
            self.flush()
