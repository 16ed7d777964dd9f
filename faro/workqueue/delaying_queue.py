"""A work queue that can also add an item after a delay."""

from __future__ import annotations

import heapq
import itertools
import math
import threading

from faro.clock import Clock
from faro.workqueue.metrics import QueueMetrics
from faro.workqueue.queue import T, WorkQueue

# Heap entry: (ready_at, insertion number, item). The insertion number breaks ties in
# insertion order and keeps items from ever being compared.
_Entry = tuple[float, int, T]

# Rebuild the heap once it holds more than this many superseded entries, and they are
# at least half of it.
_COMPACT_MIN_STALE = 64


class DelayingQueue(WorkQueue[T]):
    """A :class:`WorkQueue` with :meth:`add_after`.

    Delayed items wait in a heap ordered by ready time (ties in insertion order) and are
    added, as by :meth:`add`, by one daemon thread named ``faro-workqueue-<name>-delay``,
    started by the first delayed add. The thread waits on the queue's clock until the
    earliest ready time, so it neither polls nor wakes while nothing is due.

    An item waits at most once: adding it again while it waits keeps the earlier of the
    two ready times. A waiting item is not queued yet, so it does not count in ``len()``
    and a plain :meth:`add` of it queues it at once (it is then added again when ready,
    which does nothing if it is still queued). Shutdown drops waiting items and stops and
    joins the thread. Thread-safe.
    """

    def __init__(
        self,
        name: str = "",
        *,
        clock: Clock | None = None,
        metrics: QueueMetrics[T] | None = None,
    ) -> None:
        super().__init__(name, clock=clock, metrics=metrics)
        self._ready = threading.Condition(self._lock)  # wakes the delay thread
        self._heap: list[_Entry[T]] = []
        self._waiting: dict[T, _Entry[T]] = {}  # item -> its live heap entry
        self._stale = 0  # heap entries superseded by an earlier ready time
        self._sequence = itertools.count()
        self._thread: threading.Thread | None = None

    def add_after(self, item: T, delay: float) -> None:
        """Add ``item`` once ``delay`` seconds of the queue's clock have passed.

        ``delay <= 0`` adds at once. Ignored after shutdown. Raises :class:`ValueError`
        for a NaN ``delay``.
        """
        if delay <= 0:
            self.add(item)
            return
        if math.isnan(delay):
            raise ValueError(f"delay must be a number, got {delay!r}")
        with self._lock:
            if self._shutting_down:
                return
            ready_at = self._clock.now() + delay
            current = self._waiting.get(item)
            if current is not None:
                if current[0] <= ready_at:
                    return
                self._stale += 1  # left in the heap, skipped when it surfaces
            entry = (ready_at, next(self._sequence), item)
            self._waiting[item] = entry
            heapq.heappush(self._heap, entry)
            if self._thread is None:
                self._start_thread_locked()
            elif self._heap[0] is entry:  # a new earliest ready time: re-arm the thread
                self._ready.notify()
            if self._stale > _COMPACT_MIN_STALE and self._stale * 2 > len(self._heap):
                self._compact_locked()

    def _start_thread_locked(self) -> None:
        label = f"faro-workqueue-{self.name}-delay" if self.name else "faro-workqueue-delay"
        self._thread = threading.Thread(target=self._run, name=label, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        heap = self._heap
        waiting = self._waiting
        with self._lock:
            while not self._shutting_down:
                now = self._clock.now()
                timeout: float | None = None
                while heap:
                    entry = heap[0]
                    ready_at, _, item = entry
                    if waiting.get(item) is not entry:
                        heapq.heappop(heap)
                        self._stale -= 1
                    elif ready_at <= now:
                        heapq.heappop(heap)
                        del waiting[item]
                        self._add_locked(item)
                    else:
                        timeout = ready_at - now
                        break
                self._clock.wait(self._ready, timeout)

    def _compact_locked(self) -> None:
        waiting = self._waiting
        self._heap[:] = [e for e in self._heap if waiting.get(e[2]) is e]
        heapq.heapify(self._heap)
        self._stale = 0

    def _begin_shut_down_locked(self) -> None:
        super()._begin_shut_down_locked()
        self._heap.clear()
        self._waiting.clear()
        self._stale = 0
        self._ready.notify_all()

    def _finish_shut_down(self) -> None:
        super()._finish_shut_down()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
