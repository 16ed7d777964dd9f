"""The pending bound: how many events (and bytes) may wait for the handlers.

Contract: every event an informer hands to delivery is first admitted by
:meth:`PendingBound.admit`, on the informer's thread, and released by
:meth:`PendingBound.release` once it left delivery (delivered, given up, dropped by a
middleware). ``admit`` returns at once while there is room, in total and for that
informer (:class:`Producer`); otherwise it waits until the handlers have made room, so the
informer stops reading its watch and TCP pushes back to the API server. Nothing is ever
dropped: an event is admitted late, never refused. A producer with nothing pending is
always admitted (an event larger than a bound goes through alone, and no informer waits
for ever on others), a closed producer (its informer is stopping) and a closed bound (the
controller is stopping) never wait.

An informer that had to wait goes on once it is below :data:`RESUME` of the bound, so that
it reads a run of events rather than one per event delivered.

An informer is *held* from the moment an event of it has to wait until it has room again
(an event admitted at once, or a release leaving it room while none of its events waits);
:meth:`PendingBound.held` says who and since when, for readiness and the logs.

Thread-safe: ``admit`` from informer threads, ``release`` from workers, the rest from any
thread. Times are the clock's ``now()``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import NamedTuple

from faro.clock import Clock
from faro.config import PendingConfig

logger = logging.getLogger("faro.controller")

RESUME = 0.9
"""An informer that had to wait goes on once its events are below this share of the bound
(in events and bytes, for it and in total): it then reads a run of events without waiting,
instead of waking for every event delivered."""
HELD_LOG_AFTER = 1.0
"""Seconds an event waits for room before the wait is logged (WARNING)."""
HELD_LOG_EVERY = 60.0
"""Seconds between two such lines for one producer."""


class Producer:
    """One informer's share of the pending events (see the module docstring).

    Made by :meth:`PendingBound.producer`; its counts are read without a lock.
    """

    __slots__ = ("bytes", "closed", "events", "held_since", "logged_at", "name", "waiting")

    def __init__(self, name: str) -> None:
        self.name = name
        self.events = 0
        self.bytes = 0
        self.closed = False
        self.waiting = 0  # events of this producer waiting in admit()
        self.held_since: float | None = None
        self.logged_at: float | None = None

    def __repr__(self) -> str:
        return f"<Producer {self.name}: {self.events} events, {self.bytes} bytes pending>"


class Held(NamedTuple):
    """An informer held back by the bound: its name, since when (clock seconds), and which
    bound holds it (``"in total"`` or ``"per informer"``)."""

    name: str
    since: float
    bound: str


class PendingBound:
    """Counts pending events and makes informers wait at the bound; see the module docstring.

    ``limits`` gives the bounds (0: that bound is off). ``name`` (the controller's) is in
    the log lines.
    """

    def __init__(self, limits: PendingConfig, *, clock: Clock, name: str) -> None:
        self.limits = limits
        self._clock = clock
        self._name = name
        self._room = threading.Condition(threading.Lock())
        self.events = 0
        self.bytes = 0
        self._closed = False
        self._producers: dict[int, Producer] = {}  # the open ones, by id
        self._held: set[Producer] = set()
        self._waiting = 0

    # ----------------------------------------------------------------- producers

    def producer(self, name: str) -> Producer:
        """A new producer (one per informer) named ``name`` for logs and readiness."""
        producer = Producer(name)
        with self._room:
            if self._closed:
                producer.closed = True
            else:
                self._producers[id(producer)] = producer
        return producer

    def close_producer(self, producer: Producer) -> None:
        """From now on ``producer`` never waits (its informer is stopping); its pending
        events are still released as they leave."""
        with self._room:
            producer.closed = True
            producer.held_since = None
            self._held.discard(producer)
            self._producers.pop(id(producer), None)
            self._room.notify_all()

    def close(self) -> None:
        """From now on nothing waits (the controller is stopping); wakes every waiter."""
        with self._room:
            self._closed = True
            for producer in self._producers.values():
                producer.closed = True
                producer.held_since = None
            self._producers.clear()
            self._held.clear()
            self._room.notify_all()

    # ------------------------------------------------------------ admit, release

    def admit(self, producer: Producer, size: int) -> None:
        """Count an event of ``size`` bytes for ``producer``, first waiting for room."""
        self.admit_some(producer, (size,))

    def admit_some(self, producer: Producer, sizes: Sequence[int]) -> int:
        """Count for ``producer`` as many of the events of ``sizes`` (bytes each, in order)
        as fit now, at least the first (waiting for room for it if none fits); returns how
        many were counted. The caller hands those to delivery before admitting the rest, so
        that waiting never holds back events already counted."""
        room = self._room
        with room:
            admitted = 0
            for size in sizes:
                if not self._fits(producer):
                    if admitted:
                        break
                    self._wait(producer)
                elif producer.held_since is not None:
                    producer.held_since = None
                    self._held.discard(producer)
                producer.events += 1
                producer.bytes += size
                self.events += 1
                self.bytes += size
                admitted += 1
            return admitted

    def release(self, producer: Producer, size: int, events: int = 1) -> None:
        """``events`` events of ``producer`` counted with ``size`` bytes in all left
        delivery."""
        room = self._room
        with room:
            producer.events -= events
            producer.bytes -= size
            self.events -= events
            self.bytes -= size
            if self._held:
                for held in [p for p in self._held if not p.waiting and self._fits(p)]:
                    held.held_since = None
                    self._held.discard(held)
            if self._waiting and any(p.waiting and self._fits(p, RESUME) for p in self._held):
                room.notify_all()

    def _fits(self, producer: Producer, share: float = 1.0) -> bool:
        """Whether ``producer``'s next event is admitted now, or with ``share`` of each bound
        (lock held)."""
        return producer.closed or self._bound(producer, share) is None

    def _bound(self, producer: Producer, share: float = 1.0) -> str | None:
        """Which bound (times ``share``) ``producer``'s next event would go beyond (lock
        held), or None."""
        if producer.events == 0:
            return None
        limits = self.limits
        if (_reached(limits.max_events_per_informer, share, producer.events)
                or _reached(limits.max_bytes_per_informer, share, producer.bytes)):
            return "per informer"
        if _reached(limits.max_events, share, self.events) or \
                _reached(limits.max_bytes, share, self.bytes):
            return "in total"
        return None

    def _wait(self, producer: Producer) -> None:
        """Wait until ``producer`` fits (lock held); log a long wait."""
        now = self._clock.now
        began = now()
        if producer.held_since is None:
            producer.held_since = began
            self._held.add(producer)
        producer.waiting += 1
        self._waiting += 1
        try:
            while not self._fits(producer, RESUME):
                waited = now() - began
                if waited >= HELD_LOG_AFTER and (
                        producer.logged_at is None
                        or now() - producer.logged_at >= HELD_LOG_EVERY):
                    producer.logged_at = now()
                    self._log_held(producer, waited)
                self._clock.wait(self._room, HELD_LOG_AFTER if waited < HELD_LOG_AFTER
                                 else HELD_LOG_EVERY)
        finally:
            producer.waiting -= 1
            self._waiting -= 1

    def _log_held(self, producer: Producer, waited: float) -> None:
        limits = self.limits
        bound = self._bound(producer)
        if bound == "per informer":
            state = (f"{producer.events} events, {_mib(producer.bytes)} pending for it "
                     f"(pending.max_events_per_informer {limits.max_events_per_informer}, "
                     f"max_bytes_per_informer {limits.max_bytes_per_informer})")
        else:
            state = (f"{self.events} events, {_mib(self.bytes)} pending in total "
                     f"(pending.max_events {limits.max_events}, max_bytes {limits.max_bytes})")
        logger.warning("controller %s: informer %s has waited %.1fs for the handlers: %s; it "
                       "reads no more of its watch until they catch up", self._name,
                       producer.name, waited, state)

    # -------------------------------------------------------------------- status

    def held(self) -> list[Held]:
        """The informers held back now, longest held first."""
        with self._room:
            held = [Held(p.name, p.held_since, self._bound(p) or "in total")
                    for p in self._held if p.held_since is not None]
        return sorted(held, key=lambda h: h.since)


def _reached(limit: int, share: float, count: int) -> bool:
    return limit > 0 and limit * share <= count


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"
