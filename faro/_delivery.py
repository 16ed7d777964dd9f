"""Event delivery: matching informer changes to entries, then per-object ordered delivery.

Contract: every change an informer reports goes through a :class:`StreamHandler`
(made by :meth:`Delivery.stream_handler` for one informer and the entries it serves),
which matches it to the first entry whose client-side filters (namespace, name pattern)
accept it, or counts it as filtered, and pushes a :class:`~faro.events.MatchedEvent`.
:meth:`Delivery.push` puts each event at the end of its object's buffer (the object is
``(gvr, namespace/name)``) and adds the object to a rate-limited work queue, which holds
an object at most once and never hands it to two workers at a time. A worker takes an
object and works through its buffer from the front: the middlewares once, the observers
once, then every handler that has not yet handled that event. When a handler raises, the
event stays at the front (so later events of that object wait) and the object comes back
after the queue's rate-limiter delay, to retry only the handlers that failed; after
``max_retries`` retries a handler gives the event up (logged at ERROR, counted) and the
object moves on. Every event is counted once, through the metrics' ``count_*`` methods.

Pending events are bounded (:mod:`faro._pending`): a push waits, on the informer's thread,
while its informer or all of them together are at the bound, and an event is released when
it leaves its buffer. A handler call running longer than ``stuck_handler_sec`` is logged by
a watchdog thread, and again when it returns.

Leading: a controller that runs with leader election delivers only while it leads. A
standby's stream handlers make no events (its informers keep their caches warm all the
same), and a worker drops, undelivered, every buffered event it meets while the delivery is
not leading (:meth:`Delivery.set_leading`); so a replica that loses its Lease stops
delivering before the next event, and hands nothing to a handler after the Lease expires
(a handler call already running finishes).

Nothing here is public; :class:`faro.controller.Controller` owns one.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

import orjson

from faro._names import KubeObject, key_of, object_key, version_before
from faro._pending import PendingBound, Producer
from faro.cache.store import Stored, decode
from faro.clock import Clock, ClockEvent, RealClock
from faro.config import NormalizedConfig
from faro.events import EventType, MatchedEvent, _StoredEvent
from faro.metrics import ControllerMetrics
from faro.workqueue import RateLimiter, RateLimitingQueue, ShutDown
from faro.workqueue.metrics import QueueMetrics

logger = logging.getLogger("faro.controller")

_ADMIT_AT_ONCE = 64
"""At most this many events of a batch are admitted to the pending bound, buffered and queued
at a time (each lock is held for a run of events, never for a whole 1 MiB batch)."""

ObjectKey = tuple[str, str]
"""``(gvr, namespace/name)``: what the work queue holds."""

Observer = Callable[[MatchedEvent], object]
"""Called once per event after the middlewares, before the handlers; never retried."""


@dataclass(eq=False)
class Callee:
    """A handler or middleware: the function to call and a name for logs."""

    call: Callable[[MatchedEvent], Any]
    name: str


def describe_callee(target: object, method: str) -> Callee:
    """Wrap ``target`` (an object with ``method``, or a callable) as a :class:`Callee`."""
    bound = getattr(target, method, None)
    if callable(bound):
        return Callee(bound, _name_of(target))
    if callable(target):
        return Callee(target, _name_of(target))
    raise TypeError(f"{target!r} has no {method}() method and is not callable")


def _name_of(target: object) -> str:
    name = getattr(target, "__qualname__", None) or type(target).__qualname__
    module = getattr(target, "__module__", None) or type(target).__module__
    return f"{module}.{name}" if module and module != "builtins" else str(name)


class _Pending:
    """One event waiting in its object's buffer, with its delivery progress.

    ``handled`` (handlers that succeeded or gave up) and ``failures`` are made
    only when a handler fails: most events are delivered in one pass.
    """

    __slots__ = ("delivered", "event", "failures", "handled", "mark", "middlewares_done",
                 "prepared", "producer", "pushed_at", "retry_at", "size")

    def __init__(self, event: MatchedEvent, producer: Producer | None, size: int,
                 pushed_at: float, mark: Mark | None = None) -> None:
        self.event = event
        self.mark = mark  # its informer's progress epoch
        self.producer = producer  # whose share of the pending bound it counts in
        self.size = size
        self.pushed_at = pushed_at
        self.prepared = False  # the middlewares have all run (event is their result)
        self.middlewares_done = 0
        self.handled: set[Callee] | None = None
        self.failures: dict[Callee, int] | None = None
        self.retry_at = 0.0
        self.delivered = False  # reached every handler (counted in faro_events_total)


class Progress:
    """How far one informer's events have been delivered (for the leader's checkpoint).

    The informer's stream handler counts each batch it pushes into the current *epoch* and
    records the informer's resourceVersion after it (:meth:`StreamHandler.flush`); workers
    count events out of their epoch as they leave the delivery (delivered, given up, dropped
    by a middleware or by a standby). :meth:`mark` closes the epoch at a resourceVersion and
    returns the newest version whose epoch, and every earlier one, has no event left: every
    event up to it has been delivered. Thread-safe.
    """

    __slots__ = ("_counts", "_delivered", "_epoch", "_lock", "_marks")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._epoch = 0
        self._counts: dict[int, int] = {}  # epoch -> events pushed and not yet left
        self._marks: deque[tuple[int, str]] = deque()  # (epoch, version at its end)
        self._delivered: str | None = None

    def pushed(self, count: int) -> tuple[Progress, int]:
        """``count`` events are being pushed: the mark they carry."""
        with self._lock:
            epoch = self._epoch
            self._counts[epoch] = self._counts.get(epoch, 0) + count
        return self, epoch

    def left(self, epoch: int, count: int) -> None:
        """``count`` events of ``epoch`` left the delivery."""
        with self._lock:
            left = self._counts[epoch] - count
            if left:
                self._counts[epoch] = left
            else:
                del self._counts[epoch]

    def mark(self, version: str | None) -> str | None:
        """Close the current epoch at ``version`` (the informer's, read before the call);
        returns the newest version up to which every event was delivered (None: none yet)."""
        with self._lock:
            if version:
                self._marks.append((self._epoch, version))
                self._epoch += 1
            counts = self._counts
            oldest = min(counts) if counts else None
            marks = self._marks
            while marks and (oldest is None or marks[0][0] < oldest):
                self._delivered = marks.popleft()[1]
            return self._delivered


Mark = tuple[Progress, int]
"""The epoch of its informer's :class:`Progress` an event was pushed in."""


class _Tally:
    """What one worker delivered since it last settled: the pending bound's share of each
    producer to release, and the events to count per ``(gvr, event type)``. Settled every
    :data:`_SETTLE_EVERY` events and whenever the worker finds the queue empty, so that a
    burst takes the bound's and the counter's locks once per run of events, not per event.
    """

    __slots__ = ("delivered", "events", "marks", "released")

    def __init__(self) -> None:
        self.events = 0
        self.released: dict[Producer, list[int]] = {}
        self.delivered: dict[tuple[str, str], int] = {}
        self.marks: dict[Mark, int] = {}

    def add(self, pending: _Pending) -> None:
        """``pending`` left its buffer (delivered, given up or dropped)."""
        self.events += 1
        mark = pending.mark
        if mark is not None:
            self.marks[mark] = self.marks.get(mark, 0) + 1
        producer = pending.producer
        if producer is not None:
            share = self.released.get(producer)
            if share is None:
                self.released[producer] = [1, pending.size]
            else:
                share[0] += 1
                share[1] += pending.size
        if pending.delivered:
            event = pending.event
            what = (event.gvr, event.event_type.value)
            self.delivered[what] = self.delivered.get(what, 0) + 1

    def clear(self) -> None:
        self.events = 0
        self.released.clear()
        self.delivered.clear()
        self.marks.clear()


_SETTLE_EVERY = 64
"""A worker settles its tally (:class:`_Tally`) at least every this many events."""


class _Gate:
    """Whether events are made and delivered (shared by a delivery and its stream handlers;
    one attribute, read without a lock: a bool read or write is atomic)."""

    __slots__ = ("open",)

    def __init__(self) -> None:
        self.open = True


@dataclass(frozen=True)
class Busy:
    """What one worker is doing: which handler, for which object, since when."""

    callee: str
    gvr: str
    key: str
    since: float


class Delivery:
    """Delivers pushed events to the handlers; see the module docstring.

    ``observers`` (the event log line, the JSON export) are called once per event,
    after the middlewares and before the handlers; one that raises is logged, never
    retried. ``clock`` times retries and stamps events (``timestamp``).

    ``pending`` bounds the events pushed and not yet delivered (:meth:`push` waits at the
    bound); ``stuck_handler_sec`` (0: never) is how long a handler call runs before the
    ``<name>-watchdog`` thread logs it as stuck.

    Threading: :meth:`push` from any thread; handlers run on ``workers``
    daemon threads (``<name>-worker_N``) started by :meth:`start`: they never keep the
    interpreter alive, and :meth:`stop` (the controller's, at the latest at interpreter
    exit) ends them. Handlers and middlewares may be added at any time (copy-on-write
    tuples); an event already buffered is offered to handlers added before it is delivered.
    """

    def __init__(self, *, name: str, workers: int, max_retries: int,
                 metrics: ControllerMetrics, clock: Clock | None = None,
                 observers: Sequence[Observer] = (),
                 rate_limiter: RateLimiter[ObjectKey] | None = None,
                 queue_metrics: QueueMetrics[ObjectKey] | None = None,
                 pending: PendingBound | None = None, stuck_handler_sec: float = 0) -> None:
        self.name = name
        self.workers = workers
        self.max_retries = max_retries
        self._metrics = metrics
        self._clock: Clock = clock if clock is not None else RealClock()
        # queue_metrics: the work queue's own series (workqueue_*, name label = ``name``).
        self._queue: RateLimitingQueue[ObjectKey] = RateLimitingQueue(
            name, rate_limiter=rate_limiter, clock=self._clock, metrics=queue_metrics)
        self._lock = threading.Lock()
        self._buffers: dict[ObjectKey, deque[_Pending]] = {}
        self._handlers: tuple[Callee, ...] = ()
        self._middlewares: tuple[Callee, ...] = ()
        self._observers = tuple(observers)
        self._threads: list[threading.Thread] = []
        self._exited: dict[int, threading.Event] = {}  # worker thread ident -> its loop ended
        self._working = 0  # worker loops running; the last to end counts what is left
        self._busy: dict[int, tuple[Callee, MatchedEvent, float]] = {}
        self._retrying: set[ObjectKey] = set()  # objects the rate limiter tracks
        self._pending = pending
        self.stuck_handler_sec = stuck_handler_sec
        self._watchdog_stop = ClockEvent(self._clock)
        self._watchdog: threading.Thread | None = None
        self._gate = _Gate()

    # ------------------------------------------------------------ leading

    @property
    def leading(self) -> bool:
        """Whether events are made and delivered (True unless :meth:`set_leading` said not)."""
        return self._gate.open

    def set_leading(self, leading: bool) -> None:
        """Deliver (True) or stand by (False): a standby's stream handlers make no events and
        its workers drop what is buffered, undelivered (any thread)."""
        self._gate.open = leading

    # ------------------------------------------------------------ consumers

    def add_handler(self, handler: Callee) -> None:
        """Call ``handler`` for every event not yet delivered, after those added before."""
        with self._lock:
            self._handlers = (*self._handlers, handler)

    def add_middleware(self, middleware: Callee) -> None:
        """Run ``middleware`` on every event not yet prepared, after those added before."""
        with self._lock:
            self._middlewares = (*self._middlewares, middleware)

    # ------------------------------------------------------------ producers

    def stream_handler(self, gvr: str, entries: Iterable[NormalizedConfig],
                       cluster_scoped: bool, *, name: str | None = None,
                       stored: Callable[[str], Stored | None] | None = None,
                       version: Callable[[], str | None] | None = None) -> StreamHandler:
        """The handler for an informer of ``gvr`` that serves ``entries`` (matched in order;
        a cluster-scoped resource's entries ignore their namespace filter); ``name`` (the
        informer's) is its share of the pending bound; ``stored(key)``, an object's JSON in
        the informer's store (its :meth:`~faro.cache.store.Store.get_encoded`): events then
        carry those bytes, decoded when a consumer reads ``object``; ``version()``, the
        informer's resourceVersion: the handler's :attr:`~StreamHandler.progress` then
        tells up to which version its events were delivered."""
        producer = None if self._pending is None else self._pending.producer(name or gvr)
        return StreamHandler(gvr, entries, cluster_scoped, push=self.push_batch, now=self.now,
                             count_filtered=self._metrics.count_filtered, producer=producer,
                             close=self._close_producer, stored=stored, gate=self._gate,
                             version=version)

    def _close_producer(self, producer: Producer) -> None:
        if self._pending is not None:
            self._pending.close_producer(producer)

    def release_producers(self) -> None:
        """From now on no push waits for room (the informers are being stopped)."""
        if self._pending is not None:
            self._pending.close()

    def now(self) -> datetime:
        """The time an event is observed (UTC), on the delivery's clock."""
        return datetime.fromtimestamp(self._clock.time(), timezone.utc)

    def push(self, event: MatchedEvent, producer: Producer | None = None,
             size: int = 0) -> None:
        """Buffer ``event`` behind its object's earlier events and queue the object.

        With a ``producer`` (the informer's share of the pending bound), first wait for
        room for ``size`` bytes (see :mod:`faro._pending`).
        """
        self.push_batch([(event, size)], producer)

    def push_batch(self, batch: Sequence[tuple[MatchedEvent, int]],
                   producer: Producer | None = None, mark: Mark | None = None) -> None:
        """:meth:`push` each ``(event, size)`` of ``batch`` in order, taking each lock once
        for as many events as the pending bound admits at a time; each event carries
        ``mark`` (its informer's :class:`Progress` epoch)."""
        bound = self._pending if producer is not None else None
        start = 0
        while start < len(batch):
            if bound is not None:
                assert producer is not None
                count = bound.admit_some(producer, [size for _, size in
                                                    batch[start:start + _ADMIT_AT_ONCE]])
            else:
                count = min(len(batch) - start, _ADMIT_AT_ONCE)
            now = self._clock.now()
            owner = producer if bound is not None else None
            items = [((event.gvr, event.key), _Pending(event, owner, size, now, mark))
                     for event, size in batch[start:start + count]]
            with self._lock:
                buffers = self._buffers
                for key, pending in items:
                    buffer = buffers.get(key)
                    if buffer is None:
                        buffers[key] = deque((pending,))
                    else:
                        buffer.append(pending)
            self._queue.add_all([key for key, _ in items])
            start += count

    def pending_events(self) -> int:
        """Events buffered and not yet delivered to every handler."""
        with self._lock:
            return sum(len(buffer) for buffer in self._buffers.values())

    def oldest_pending_since(self) -> float | None:
        """When (clock ``now()``) the oldest event not yet delivered was pushed; None when
        there is none."""
        oldest: float | None = None
        for buffer in list(self._buffers.values()):
            try:
                since = buffer[0].pushed_at  # the front of a buffer is its oldest
            except IndexError:  # emptied meanwhile
                continue
            if oldest is None or since < oldest:
                oldest = since
        return oldest

    def stuck(self) -> list[Busy]:
        """The handler calls running for ``stuck_handler_sec`` or longer (none when 0)."""
        limit = self.stuck_handler_sec
        if limit <= 0:
            return []
        now = self._clock.now()
        return [busy for busy in self.busy() if now - busy.since >= limit]

    def ended_workers(self) -> int:
        """Worker threads whose loop has ended (all of them after :meth:`stop`)."""
        return sum(1 for exited in list(self._exited.values()) if exited.is_set())

    def busy(self) -> list[Busy]:
        """What each worker is running now (handlers only; idle workers are left out)."""
        return [Busy(callee.name, event.gvr, event.key, since)
                for callee, event, since in list(self._busy.values())]

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the worker threads (once)."""
        with self._lock:
            if self._threads:
                raise RuntimeError("delivery already started")
            started = [threading.Event() for _ in range(self.workers)]
            self._working = self.workers
            self._threads = [
                threading.Thread(target=self._work, args=(event,), daemon=True,
                                 name=f"{self.name}-worker_{index}")
                for index, event in enumerate(started)]
        for thread in self._threads:
            thread.start()
        for event in started:
            event.wait()
        if self.stuck_handler_sec > 0:
            self._watchdog = threading.Thread(target=self._watch_stuck, daemon=True,
                                              name=f"{self.name}-watchdog")
            self._watchdog.start()

    def stop(self, timeout: float | None) -> bool:
        """Deliver what is queued, then end the workers; True if they all ended in time.

        Events waiting for a retry are not waited for: when the last worker ends, the
        events still buffered (those, and only those) are counted and logged as
        undelivered. Called on a worker thread (from a handler), it does not wait for
        that worker, which delivers the rest of its object's events when the handler
        returns. Idempotent, and safe to call from several threads at once.
        """
        self._queue.shut_down()
        self._watchdog_stop.set()
        self.release_producers()
        deadline = None if timeout is None else self._clock.now() + timeout
        current = threading.current_thread()
        finished = True
        for thread in self._threads:
            if thread is current:
                continue  # a handler stopping its own controller: do not wait for ourselves
            exited = self._exited.get(thread.ident or 0)
            remaining = None if deadline is None else max(0.0, deadline - self._clock.now())
            if exited is not None and exited.wait(remaining):
                thread.join()  # its loop has returned: the thread is ending now
            finished = finished and not thread.is_alive()
        watchdog = self._watchdog
        if watchdog is not None:
            watchdog.join(None if deadline is None else max(0.0, deadline - self._clock.now()))
            finished = finished and not watchdog.is_alive()
        if not self._threads:  # never started: nothing delivers what was pushed
            self._report_undelivered()
        if not finished:
            for busy in self.busy():
                logger.error(
                    "stop: handler %s is still running for %s %s (for %.1fs); its worker "
                    "thread (a daemon) is left behind", busy.callee, busy.gvr, busy.key,
                    self._clock.now() - busy.since)
        return finished

    def _report_undelivered(self) -> None:
        left = self.pending_events()
        if left:
            logger.warning("stop: %s not delivered (waiting for a retry)",
                           "1 event was" if left == 1 else f"{left} events were")

    # -------------------------------------------------------------- workers

    def _watch_stuck(self) -> None:
        """Log each handler call running ``stuck_handler_sec`` or longer, once (watchdog)."""
        limit = self.stuck_handler_sec
        interval = max(0.01, min(1.0, limit / 4))
        reported: set[tuple[int, float]] = set()
        while not self._watchdog_stop.wait(interval):
            now = self._clock.now()
            running: set[tuple[int, float]] = set()
            for ident, (callee, event, since) in list(self._busy.items()):
                running.add((ident, since))
                if now - since >= limit and (ident, since) not in reported:
                    reported.add((ident, since))
                    logger.warning(
                        "handler %s has been running for %.1fs on %s %s %s (stuck? "
                        "pending.stuck_handler_sec %g); later events of that object wait "
                        "for it", callee.name, now - since, event.event_type.value,
                        event.gvr, event.key, limit)
            reported &= running

    def _work(self, started: threading.Event) -> None:
        ident = threading.get_ident()
        exited = self._exited[ident] = threading.Event()
        started.set()
        try:
            tally = _Tally()
            try:
                key = self._queue.get()
                while True:
                    try:
                        self._drain(key, tally)
                    except Exception:  # a bug here must not kill the worker
                        logger.exception("delivery of %s %s failed", *key)
                    if tally.events >= _SETTLE_EVERY:
                        self._settle(tally)
                    try:
                        key = self._queue.done_and_get(key, timeout=0)
                    except queue.Empty:  # nothing queued: settle before waiting
                        self._settle(tally)
                        key = self._queue.get()
            except ShutDown:
                return
            finally:
                self._settle(tally)
        finally:
            self._busy.pop(ident, None)
            with self._lock:
                self._working -= 1
                last = self._working == 0
            if last:  # the queue is shut down and empty: what is left stays undelivered
                self._report_undelivered()
            exited.set()

    def _settle(self, tally: _Tally) -> None:
        """Release a worker's delivered events from the pending bound and count them."""
        if self._pending is not None:
            for producer, (events, size) in tally.released.items():
                self._pending.release(producer, size, events)
        for (gvr, event_type), count in tally.delivered.items():
            self._metrics.count_delivered(gvr, event_type, count)
        for (progress, epoch), count in tally.marks.items():
            progress.left(epoch, count)
        tally.clear()

    def _drain(self, key: ObjectKey, tally: _Tally) -> None:
        """Deliver the object's buffered events in order, until one must wait for a retry.

        Only the worker holding ``key`` takes from its buffer, and producers
        only append (deque appends and pops are atomic), so the lock is needed
        just to drop the buffer once it is empty.
        """
        buffer = self._buffers.get(key)
        while True:
            if not buffer:
                with self._lock:
                    if buffer:
                        continue  # an event arrived meanwhile
                    self._buffers.pop(key, None)
                break
            pending = buffer[0]
            if self._gate.open:
                if pending.retry_at and pending.retry_at > self._clock.now():
                    return  # woken early by a new event; the retry's delayed add brings it back
                if not self._deliver(pending):
                    self._retrying.add(key)
                    pending.retry_at = self._clock.now() + self._queue.add_rate_limited(key)
                    return
            # else standing by: dropped undelivered (the leader delivers it)
            buffer.popleft()
            tally.add(pending)
            if key in self._retrying:  # a success starts the object's backoff over
                self._retrying.discard(key)
                self._queue.forget(key)

    def _deliver(self, pending: _Pending) -> bool:
        """Run the middlewares (once) and the handlers still due; False if one must retry."""
        if not pending.prepared:
            outcome = self._prepare(pending)
            if outcome is not None:
                return outcome
        event = pending.event
        ident = threading.get_ident()
        busy = self._busy
        now = self._clock.now
        retry = False
        for handler in self._handlers:
            handled = pending.handled
            if handled is not None and handler in handled:
                continue
            busy[ident] = (handler, event, began := now())
            try:
                handler.call(event)
            except Exception as exc:
                retry |= not self._failed(pending, handler, exc)
            else:
                if pending.failures is not None:
                    _handled(pending).add(handler)
            finally:
                del busy[ident]
                if self.stuck_handler_sec and now() - began >= self.stuck_handler_sec:
                    logger.warning("handler %s returned after %.1fs on %s %s %s",
                                   handler.name, now() - began, event.event_type.value,
                                   event.gvr, event.key)
        pending.delivered = not retry
        return not retry

    def _prepare(self, pending: _Pending) -> bool | None:
        """Run the middlewares not yet run; None when the handlers should follow."""
        middlewares = self._middlewares
        while pending.middlewares_done < len(middlewares):
            middleware = middlewares[pending.middlewares_done]
            event = pending.event
            try:
                obj, keep = _checked(middleware, middleware.call(event))
            except Exception as exc:
                if self._failed(pending, middleware, exc):
                    logger.error("middleware %s gave up %s %s %s: no handler receives it",
                                 middleware.name, event.event_type.value, event.gvr, event.key)
                    return True
                return False
            if not keep:
                self._metrics.count_dropped()
                logger.debug("middleware %s dropped %s %s %s", middleware.name,
                             event.event_type.value, event.gvr, event.key)
                return True
            if obj is not event.object:
                pending.event = replace(event, object=obj)
            pending.middlewares_done += 1
        pending.prepared = True
        for observer in self._observers:
            try:
                observer(pending.event)
            except Exception:
                event = pending.event
                logger.exception("%s failed for %s %s %s", _name_of(observer),
                                 event.event_type.value, event.gvr, event.key)
        return None

    def _failed(self, pending: _Pending, callee: Callee, exc: Exception) -> bool:
        """Count a failed call; True when the event is given up for ``callee``."""
        self._metrics.count_handler_error()
        event = pending.event
        if pending.failures is None:
            pending.failures = {}
            # Handlers before this one in this pass succeeded: remember them from now on.
            handlers = self._handlers
            _handled(pending).update(handlers[:handlers.index(callee)]
                                     if callee in handlers else ())
        failures = pending.failures.get(callee, 0) + 1
        pending.failures[callee] = failures
        what = f"{event.event_type.value} {event.gvr} {event.key}"
        if failures > self.max_retries:
            _handled(pending).add(callee)
            logger.error("%s gave up %s (uid %s) after %d attempts: %s: %s", callee.name, what,
                         event.uid or "-", failures, type(exc).__name__, exc,
                         exc_info=(type(exc), exc, exc.__traceback__))
            self._metrics.count_given_up()
            return True
        logger.warning("%s failed for %s (attempt %d of %d); retrying: %s: %s", callee.name,
                       what, failures, self.max_retries + 1, type(exc).__name__, exc)
        return False


def _handled(pending: _Pending) -> set[Callee]:
    if pending.handled is None:
        pending.handled = set()
    return pending.handled


def _checked(middleware: Callee, result: object) -> tuple[Mapping[str, Any], bool]:
    """The (object, keep) a middleware returned, or TypeError naming it."""
    if (isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], Mapping)
            and isinstance(result[1], bool)):
        return result[0], result[1]
    raise TypeError(f"middleware {middleware.name} returned {result!r:.80}; expected a tuple "
                    "(object, keep) of a mapping and a bool")



class StreamHandler:
    """An informer's handler: matches each change to an entry and pushes a MatchedEvent.

    Runs on the informer's thread; cheap (no I/O, no waiting but the pending bound). The
    events of one batch of notifications (one read of the watch stream, one list page) are
    gathered and pushed together when the informer calls :meth:`flush` at its end, and
    stamped with one observation time. With ``stored`` (the informer store's
    ``get_encoded``), an event carries the object's JSON from the store instead of the
    dict, and its old object as the store had it, each decoded when first read. The
    entries it matches against change when the plan does (:meth:`serve`).
    """

    __slots__ = ("_batch", "_close", "_cluster_scoped", "_count_filtered", "_entries", "_gate",
                 "_gvr", "_now", "_producer", "_push", "_stamp", "_stored", "_tombstones",
                 "_tombstones_lock", "_version", "progress", "version")

    def __init__(self, gvr: str, entries: Iterable[NormalizedConfig], cluster_scoped: bool, *,
                 push: Callable[[Sequence[tuple[MatchedEvent, int]], Producer | None,
                                 Mark | None], None],
                 now: Callable[[], datetime], count_filtered: Callable[[str], None],
                 producer: Producer | None = None,
                 close: Callable[[Producer], None] | None = None,
                 stored: Callable[[str], Stored | None] | None = None,
                 gate: _Gate | None = None,
                 version: Callable[[], str | None] | None = None) -> None:
        self._gvr = gvr
        self._gate = gate if gate is not None else _Gate()
        self._version = version
        self.progress = Progress()
        """How far this informer's events were delivered (with ``version``)."""
        self.version: str | None = None
        """The informer's resourceVersion at the end of the last batch (with ``version``):
        every event up to it has been pushed."""
        # With ``version``: deletions seen while standing by, by key: (version, object).
        self._tombstones: dict[str, tuple[str, KubeObject]] = {}
        self._tombstones_lock = threading.Lock()
        self._stored = stored
        self._producer = producer
        self._close = close
        self._entries = tuple(entries)
        self._cluster_scoped = cluster_scoped
        self._push = push
        self._now = now
        self._count_filtered = count_filtered
        self._batch: list[tuple[MatchedEvent, int]] = []
        self._stamp: datetime | None = None

    @property
    def entries(self) -> tuple[NormalizedConfig, ...]:
        """The entries matched against, in order (the first that matches wins)."""
        return self._entries

    def serve(self, entries: Iterable[NormalizedConfig]) -> None:
        """Match later changes against ``entries`` (the informer's entries changed)."""
        self._entries = tuple(entries)

    def close(self) -> None:
        """Its informer is stopping: from now on a push never waits for room."""
        if self._producer is not None and self._close is not None:
            self._close(self._producer)

    def on_add(self, obj: KubeObject, is_initial: bool) -> None:
        self._emit(EventType.ADDED, obj, None, is_initial, False)

    def on_update(self, old: KubeObject, new: KubeObject) -> None:
        self._emit(EventType.UPDATED, new, old, False, False)

    def on_update_stored(self, old: Stored, new: KubeObject) -> None:
        """The informer's lazy form of :meth:`on_update`: ``old`` as the store had it."""
        self._emit(EventType.UPDATED, new, old, False, False)

    def on_delete(self, obj: KubeObject, final_state_unknown: bool) -> None:
        if not self._gate.open and self._version is not None:
            self._entomb(obj)
        self._emit(EventType.DELETED, obj, None, False, final_state_unknown)

    def _entomb(self, obj: KubeObject) -> None:
        """Keep a deletion seen while standing by: if this replica takes over from a
        checkpoint the server no longer has, the relist could not tell it (the object is
        gone from the cache and from the list)."""
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if isinstance(version, str) and version:
            with self._tombstones_lock:
                self._tombstones[key_of(obj)] = (version, obj)

    def prune_tombstones(self, delivered: str) -> None:
        """Forget the deletions the leader has delivered: those no newer than its
        checkpoint ``delivered`` (any thread)."""
        with self._tombstones_lock:
            for key in [key for key, (version, _) in self._tombstones.items()
                        if not version_before(delivered, version)]:
                del self._tombstones[key]

    def report_tombstones(self, delivered: str) -> int:
        """Taking over (under the informer's lock): report the deletions seen while standing
        by that are newer than the checkpoint ``delivered``, then forget every one. Returns
        how many were reported."""
        with self._tombstones_lock:
            tombstones, self._tombstones = self._tombstones, {}
        reported = 0
        for version, obj in tombstones.values():
            if version_before(delivered, version):
                self._emit(EventType.DELETED, obj, None, False, False)
                reported += 1
        self.flush()
        return reported

    def forget_tombstones(self) -> None:
        """Taking over without a checkpoint: forget the deletions seen while standing by (the
        whole cache is reported instead)."""
        with self._tombstones_lock:
            self._tombstones = {}

    def on_resync(self, old: Stored, new: KubeObject) -> None:
        """An update known only as a final state (``final_state_unknown``): after a takeover
        whose checkpoint the server had compacted away."""
        self._emit(EventType.UPDATED, new, old, False, True)

    def flush(self) -> None:
        """Push the events gathered since the last flush (the informer's batch ended)."""
        batch = self._batch
        self._stamp = None
        if batch:
            self._batch = []
            if self._gate.open:  # else the delivery stopped leading since they were made
                mark = self.progress.pushed(len(batch)) if self._version is not None else None
                self._push(batch, self._producer, mark)
        if self._version is not None:
            self.version = self._version()

    def deleted_unseen(self, objects: Iterable[KubeObject]) -> None:
        """Report ``objects`` DELETED with ``final_state_unknown`` (their informer stopped
        because their namespace or resource went away)."""
        for obj in objects:
            self.on_delete(obj, True)
        self.flush()

    def _emit(self, event_type: EventType, obj: KubeObject, old: Stored | None,
              is_initial: bool, final_state_unknown: bool) -> None:
        if not self._gate.open:  # standing by
            return
        metadata = obj.get("metadata") or {}
        name = metadata.get("name") or ""
        namespace = metadata.get("namespace") or ""
        cluster_scoped = self._cluster_scoped
        for config in self._entries:
            if (cluster_scoped or config.matches_namespace(namespace)) and \
                    config.matches_name(name):
                break
        else:
            self._count_filtered(self._gvr)
            return
        stamp = self._stamp
        if stamp is None:
            stamp = self._stamp = self._now()
        key = object_key(namespace, name)
        # The store's JSON of the object just stored (a deleted one is no longer there).
        stored = None if self._stored is None or event_type is EventType.DELETED else \
            self._stored(key)
        event: MatchedEvent
        if type(stored) is bytes:
            event = _StoredEvent.of(event_type, stored, metadata, self._gvr, key, config,
                                    stamp, old, is_initial, final_state_unknown)
            size = len(stored)
        else:
            event = MatchedEvent(event_type, obj, self._gvr, key, config, stamp,
                                 None if old is None else decode(old), is_initial,
                                 final_state_unknown)
            size = 0 if self._producer is None else _json_size(obj)
        self._batch.append((event, size))


def _json_size(obj: KubeObject) -> int:
    """The size of ``obj`` as compact JSON: what an event counts in the pending bound."""
    try:
        return len(orjson.dumps(obj))
    except TypeError:  # not JSON (a transform made it so): a rough size is enough here
        return len(repr(obj))
