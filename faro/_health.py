"""Health: a controller's lifecycle as readiness, liveness and the ready callback see it.

Contract: :class:`Health` knows whether the controller started and stopped (the
controller marks both) and whether it became ready (:meth:`Health.await_ready` decides),
and reads the rest through what its constructor was given: the informers running now and
how many worker threads ended, plus the threads it is told to watch (the controller's
manager), whose death means the controller is dead. :meth:`Health.readiness` and
:meth:`Health.liveness` answer ``/readyz`` and ``/healthz`` (``(ok, reason)``) and never
wait for a lock; :meth:`Health.await_ready` (on the controller's readiness thread) waits
for the initial informers' first sync and then calls the ready callback once. Times are the clock's:
``time()`` against the informers' wall-clock health, ``now()`` and ``wait`` for timeouts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import NamedTuple

from faro._pending import Held
from faro.cache import SharedInformer
from faro.clock import Clock, wait_for

logger = logging.getLogger("faro.controller")

SYNC_POLL = 0.5
"""Seconds between await_ready's checks for stop() while an informer has not synced."""


class Watched(NamedTuple):
    """A running informer as the probes see it: its description and when it started."""

    description: str
    informer: SharedInformer
    started_at: float
    """Wall-clock seconds (the clock's ``time()``), like the informer's own health times."""


class Health:
    """Readiness and liveness of one controller; see the module docstring.

    ``running()`` returns the informers running now (the controller's streams and
    watchers), ``ended_workers()`` how many of the ``workers`` delivery threads ended;
    ``unhealthy_after_sec`` is how long an informer may fail (or not sync) before the
    controller is unready. ``held()`` returns the informers the pending bound holds back,
    ``held_unready_after_sec`` how long one may be held before the controller is unready,
    and ``pending_detail()`` what is pending and why, for that reason. Thread-safe.
    """

    def __init__(self, *, name: str, clock: Clock, unhealthy_after_sec: float, workers: int,
                 running: Callable[[], Sequence[Watched]],
                 ended_workers: Callable[[], int],
                 held: Callable[[], Sequence[Held]] = tuple,
                 held_unready_after_sec: float = 60.0,
                 pending_detail: Callable[[], str] = str,
                 role: Callable[[], str] = str) -> None:
        self._name = name
        self._role = role
        self._clock = clock
        self._unhealthy_after = unhealthy_after_sec
        self._workers = workers
        self._running = running
        self._ended_workers = ended_workers
        self._held = held
        self._held_unready_after = held_unready_after_sec
        self._pending_detail = pending_detail
        self._changed = threading.Condition()  # guards the flags below; notified on each
        self._started = False
        self._ready = False
        self._stopped = False
        self._threads: tuple[tuple[str, threading.Thread], ...] = ()
        self._ready_callback: Callable[[], object] | None = None

    # ------------------------------------------------------------- lifecycle marks

    def mark_started(self) -> None:
        """The controller started (its informers and threads are being started)."""
        with self._changed:
            self._started = True
            self._changed.notify_all()

    def mark_stopped(self) -> bool:
        """The controller stops: not ready, not alive from now on. True the first time."""
        with self._changed:
            first = not self._stopped
            self._stopped = True
            self._changed.notify_all()
        return first

    def watch_thread(self, role: str, thread: threading.Thread) -> None:
        """Count ``thread`` (the controller's ``role`` thread) among those that must stay
        alive while the controller runs."""
        with self._changed:
            self._threads = (*self._threads, (role, thread))

    @property
    def stopped(self) -> bool:
        """True once :meth:`mark_stopped` was called."""
        return self._stopped

    def wait_stopped(self, timeout: float | None) -> bool:
        """Block until stopped (True) or ``timeout`` clock-seconds passed (False)."""
        with self._changed:
            return wait_for(self._clock, self._changed, lambda: self._stopped, timeout)

    # ------------------------------------------------------------------ readiness

    def set_ready_callback(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` once ready; at once (on this thread) if already ready."""
        with self._changed:
            self._ready_callback = callback
            ready = self._ready
        if ready:
            self._call(callback)

    def await_ready(self, initial: Sequence[SharedInformer]) -> None:
        """Wait until each of ``initial`` synced (or stopped running for the controller),
        then mark ready and call the ready callback; returns early on stop."""
        for informer in initial:
            while not informer.wait_for_sync(SYNC_POLL):
                if self._stopped:
                    return
                if not any(w.informer is informer for w in self._running()):
                    break  # removed before it synced (its CRD or namespace went away)
        with self._changed:
            if self._stopped:
                return
            self._ready = True
            self._changed.notify_all()
            callback = self._ready_callback
        logger.info("controller %s is ready", self._name)
        if callback is not None:
            self._call(callback)

    def _call(self, callback: Callable[[], object]) -> None:
        try:
            callback()
        except Exception:
            logger.exception("controller %s: the ready callback failed", self._name)

    def is_ready(self) -> bool:
        """Ready, and no informer unhealthy for longer than ``unhealthy_after_sec``."""
        return self.readiness()[0]

    def wait_until_ready(self, timeout: float | None) -> bool:
        """Block until ready or stopped, at most ``timeout`` clock-seconds; :meth:`is_ready`."""
        with self._changed:
            wait_for(self._clock, self._changed, lambda: self._ready or self._stopped, timeout)
        return self.is_ready()

    # --------------------------------------------------------------------- probes

    def readiness(self) -> tuple[bool, str]:
        """``is_ready()`` and why not (the /readyz answer); never waits for a lock."""
        if self._stopped:
            return False, "controller stopped"
        if not self._started:
            return False, "controller not started yet"
        limit = self._unhealthy_after
        now = self._clock.time()
        unsynced: list[str] = []
        unhealthy: list[str] = []
        for description, informer, started_at in self._running():
            health = informer.health()
            if not health.synced:
                unsynced.append(description)
            since = started_at if not health.synced else health.failing_since
            if since is not None and now - since > limit:
                problem = "not synced" if not health.synced else "failing"
                error = f": {health.last_error}" if health.last_error else ""
                unhealthy.append(f"informer {description} {problem} for {now - since:.1f}s "
                                 f"(unhealthy_after_sec {limit:g}){error}")
        if not self._ready:
            # An initial informer that never syncs (a 403 for a resource the identity may
            # not read) keeps the controller unready for good: say why, not only which.
            waiting = f": {', '.join(unsynced)}" if unsynced else ""
            return False, "; ".join([f"informers not synced yet{waiting}", *unhealthy])
        if unhealthy:
            return False, "; ".join(unhealthy)
        held = self._held_too_long()
        if held:
            return False, held
        role = self._role()
        return True, f"ok: {role}" if role else "ok"

    def _held_too_long(self) -> str:
        """Why the pending bound makes the controller unready ("" when it does not)."""
        limit = self._held_unready_after
        now = self._clock.now()
        held = [h for h in self._held() if now - h.since > limit]
        if not held:
            return ""
        informers = ", ".join(f"informer {h.name} held back by the pending bound ({h.bound}) "
                              f"for {now - h.since:.1f}s" for h in held)
        detail = self._pending_detail()
        return (f"{informers} (pending.unready_after_sec {limit:g})"
                + (f": {detail}" if detail else ""))

    def liveness(self) -> tuple[bool, str]:
        """Started, not stopped, every thread alive (the /healthz answer); never waits."""
        if self._stopped:
            return False, "controller stopped"
        if not self._started:
            return True, "starting"
        dead: list[str] = []
        ended = self._ended_workers()
        if ended:
            dead.append(f"{ended} of {self._workers} worker threads")
        dead += [f"the {role} thread {thread.name}" for role, thread in self._threads
                 if not thread.is_alive()]
        stopped = [w for w in self._running() if _ended(w.informer)]
        if stopped:
            # Not running after it started: its thread ended, unless the controller stopped
            # it meanwhile (removed from the plan): only those it still runs are dead.
            still = {id(w.informer) for w in self._running()}
            dead += [f"the informer thread of {w.description}" for w in stopped
                     if id(w.informer) in still and not self._stopped]
        if dead:
            return False, "dead: " + ", ".join(dead)
        return True, "ok"


def _ended(informer: SharedInformer) -> bool:
    """Whether ``informer`` started and is no longer running."""
    health = informer.health()
    return health.started_at is not None and not health.running
