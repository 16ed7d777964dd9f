"""The work queue: fair, deduplicating, and never hands one item to two workers."""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

from faro.clock import Clock, RealClock, wait_for
from faro.workqueue.metrics import QueueMetrics

T = TypeVar("T", bound=Hashable)


class ShutDown(Exception):
    """Raised by :meth:`WorkQueue.get` once the queue is shut down and has nothing left.

    Mirrors :class:`queue.ShutDown` of Python 3.13.
    """


class WorkQueue(Generic[T]):
    """A FIFO of hashable items for worker threads, with client-go's workqueue rules.

    * :meth:`add` of an item that is already queued does nothing.
    * An item is *processing* from :meth:`get` until :meth:`done`; it is never handed to
      a second worker meanwhile. Adding it while it is processing queues it again, once,
      when :meth:`done` is called.
    * Otherwise items are handed out in the order they were first added.

    Shutdown (:meth:`shut_down`, :meth:`shut_down_with_drain`) is client-go's: later adds
    are silently ignored, but items already queued are still handed out, and so are items
    re-queued by :meth:`done`. :meth:`get` raises :class:`ShutDown` only when the queue is
    shut down *and* has nothing queued; every blocked :meth:`get` is woken to find out.

    All methods are thread-safe. ``name`` labels the queue for ``metrics``; ``clock``
    (default :class:`~faro.clock.RealClock`) times ``get`` timeouts, drain timeouts and
    metrics.
    """

    def __init__(
        self,
        name: str = "",
        *,
        clock: Clock | None = None,
        metrics: QueueMetrics[T] | None = None,
    ) -> None:
        self.name = name
        self._clock: Clock = clock if clock is not None else RealClock()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._all_done = threading.Condition(self._lock)
        self._queue: deque[T] = deque()  # in order; each is dirty and not processing
        self._dirty: set[T] = set()  # needs processing: queued, or re-added while processing
        self._processing: set[T] = set()  # handed out, not yet done
        self._getters = 0  # threads (possibly) blocked in get(); skips needless notify()
        # A notify() sent and not yet taken up by a waking getter. While one is under way no
        # other is sent: the getter that wakes passes the baton on if items remain, so a burst
        # of adds wakes one thread at a time instead of every idle worker at once (which makes
        # them all fight over the lock and the GIL).
        self._waking = False
        self._shutting_down = False
        self._draining = False
        self._metrics = metrics
        # Only kept when there are metrics: when each dirty item was added, and when each
        # processing item was handed out.
        self._added_at: dict[T, float] = {}
        self._started_at: dict[T, float] = {}
        if metrics is not None:
            metrics.bind(name, self)

    def add(self, item: T) -> None:
        """Queue ``item`` unless it is already queued; ignored after shutdown."""
        with self._lock:
            self._add_locked(item)

    def add_all(self, items: Iterable[T]) -> None:
        """:meth:`add` each of ``items``, in order, under one acquisition of the lock (a
        producer with a batch wakes one getter, not one per item)."""
        with self._lock:
            for item in items:
                self._add_locked(item)

    def get(self, timeout: float | None = None) -> T:
        """Hand out the next item and mark it processing; call :meth:`done` with it later.

        Blocks until an item is available, or for at most ``timeout`` seconds of the
        queue's clock. Raises :class:`queue.Empty` when the timeout runs out,
        :class:`ShutDown` when the queue is shut down and has nothing queued, and
        :class:`ValueError` for a negative ``timeout``.
        """
        with self._lock:
            if not self._queue:
                self._wait_for_item_locked(timeout)
            return self._get_locked()

    def done_and_get(self, item: T, timeout: float | None = None) -> T:
        """:meth:`done` with ``item``, then :meth:`get` the next one, taking the lock once
        for both when an item is queued (a worker's loop). Raises as :meth:`done` and
        :meth:`get` do; when :meth:`get` raises, ``item`` is done already."""
        with self._lock:
            self._done_locked(item)
            if self._queue:
                return self._get_locked()
        return self.get(timeout)

    def done(self, item: T) -> None:
        """Mark ``item`` as processed; queue it again if it was added meanwhile.

        Raises :class:`ValueError` if ``item`` is not being processed (not handed out by
        :meth:`get`, or already done).
        """
        with self._lock:
            self._done_locked(item)

    def shut_down(self) -> None:
        """Stop accepting items and wake every blocked :meth:`get`.

        Items already queued are still handed out. Also ends the wait of a concurrent
        :meth:`shut_down_with_drain`, which then returns ``False`` unless all was done.
        Calling it again is harmless.
        """
        with self._lock:
            self._draining = False
            self._all_done.notify_all()
            self._begin_shut_down_locked()
        self._finish_shut_down()

    def shut_down_with_drain(self, timeout: float | None = None) -> bool:
        """Shut down like :meth:`shut_down`, then wait until no item is being processed.

        Waits for at most ``timeout`` seconds of the queue's clock (``None``: no limit).
        Items still queued are not waited for; workers can still get them. Returns
        ``True`` once nothing is being processed, ``False`` if the timeout ran out or a
        :meth:`shut_down` ended the wait first.
        """
        with self._lock:
            self._draining = True
            self._begin_shut_down_locked()
        self._finish_shut_down()
        with self._lock:
            wait_for(self._clock, self._all_done,
                     lambda: not (self._processing and self._draining), timeout)
            return not self._processing

    def is_shutting_down(self) -> bool:
        """Whether :meth:`shut_down` or :meth:`shut_down_with_drain` has been called."""
        with self._lock:
            return self._shutting_down

    def __len__(self) -> int:
        """How many items are queued: not counting items being processed."""
        with self._lock:
            return len(self._queue)

    def unfinished_work_seconds(self) -> float:
        """Sum of how long each item being processed has been; ``0.0`` without metrics."""
        with self._lock:
            now = self._clock.now()
            return sum(now - started for started in self._started_at.values())

    def longest_running_processor_seconds(self) -> float:
        """How long the oldest item being processed has been; ``0.0`` without metrics."""
        with self._lock:
            if not self._started_at:
                return 0.0
            return self._clock.now() - min(self._started_at.values())

    # Internals; the caller holds self._lock where the name ends in _locked.

    def _get_locked(self) -> T:
        """Hand out the front item (the queue is not empty)."""
        item = self._queue.popleft()
        self._processing.add(item)
        self._dirty.discard(item)
        if self._queue:
            self._wake_locked()
        if self._metrics is not None:
            now = self._clock.now()
            self._started_at[item] = now
            self._metrics.get(item, now - self._added_at.pop(item, now))
        return item

    def _done_locked(self, item: T) -> None:
        try:
            self._processing.remove(item)
        except KeyError:
            raise ValueError(f"done({item!r}): the item is not being processed") from None
        if self._metrics is not None:
            started = self._started_at.pop(item)
            self._metrics.done(item, self._clock.now() - started)
        if item in self._dirty:
            self._queue.append(item)
            self._wake_locked()
        if self._draining and not self._processing:
            self._all_done.notify_all()

    def _add_locked(self, item: T) -> None:
        if self._shutting_down or item in self._dirty:
            return
        self._dirty.add(item)
        if self._metrics is not None:
            self._added_at[item] = self._clock.now()
            self._metrics.add(item)
        if item in self._processing:
            return  # done() queues it
        self._queue.append(item)
        self._wake_locked()

    def _wake_locked(self) -> None:
        """Wake one blocked getter for the queued items, unless one is waking already."""
        if self._getters and not self._waking:
            self._waking = True
            self._not_empty.notify()

    def _wait_for_item_locked(self, timeout: float | None) -> None:
        if timeout is not None and timeout < 0:
            raise ValueError(f"timeout must be >= 0 or None, got {timeout!r}")
        deadline = None if timeout is None else self._clock.now() + timeout
        while not self._queue:
            if self._shutting_down:
                raise ShutDown(f"work queue {self.name!r} is shut down")
            if deadline is None:
                remaining = None
            else:
                remaining = deadline - self._clock.now()
                if remaining <= 0:
                    raise queue.Empty
            self._getters += 1
            try:
                self._clock.wait(self._not_empty, remaining)
            finally:
                self._getters -= 1
                self._waking = False  # whoever woke, a later add may wake another

    def _begin_shut_down_locked(self) -> None:
        """Mark the queue shut down; subclasses extend it to stop their own machinery."""
        self._shutting_down = True
        self._not_empty.notify_all()

    def _finish_shut_down(self) -> None:
        """Called after :meth:`_begin_shut_down_locked`, without the lock (e.g. to join)."""
