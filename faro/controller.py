"""The Controller: configuration in, informers running, matched events out to your handlers.

A :class:`Controller` keeps the public surface and composes the parts that do the work,
each passed what it needs when made (one clock for all):

* :mod:`faro._entries`: the entries watched (configured, added at runtime, staged);
* :mod:`faro._serving`: how the cluster serves each resource (discovery, and watchers of
  CRDs and namespaces whose changes trigger a re-plan);
* :mod:`faro._plan`: the pure planner, entries and that snapshot in, the informers to run
  out (one per resource, namespace and server-side selectors, shared by every entry that
  asks for that stream; namespaces matched by a pattern, or several listed, share one
  all-namespaces informer unless the credentials may not list the resource cluster-wide);
* :mod:`faro._streams`: the running informers, kept equal to the plan;
* :mod:`faro._delivery`: matching each change to an entry and delivering it to the
  handlers, per object in order, one worker per object at a time;
* :mod:`faro._health`: readiness, liveness and the ready callback.

The controller itself sequences start and stop and re-plans, on one thread, whenever the
cluster changes (namespaces matching a pattern come and go, CRDs are installed, changed
and deleted) or resources are added or removed. docs/architecture.md states the delivery
contract; docs/controller.md shows the API in use.

Exit: every thread a controller starts is a daemon, so none keeps the interpreter alive. A
program that ends without :meth:`Controller.stop` (main returned or raised) has its running
controllers stopped by an interpreter-exit hook, each with a short bounded drain
(``exit_timeout``) that delivers what is queued. The hook is registered once, at import,
with ``threading._register_atexit`` (``atexit`` where that does not exist): it runs when the
main thread ends, before the interpreter joins the program's non-daemon threads, so a
non-daemon thread of the program blocked in :meth:`Controller.run` (or waiting for the
controller) is released instead of keeping the process alive for ever; ``atexit`` callbacks
run only after those joins. It also runs before the program's own ``atexit`` callbacks, so an
``atexit.register(controller.stop)`` finds the controller stopped, and logging still works.
The running controllers are found in :data:`_RUNNING`, a weak set (the only process-wide
state: a controller is in it from the beginning of its start to the beginning of its stop).
docs/embedding.md shows the patterns.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

import orjson
from kubernetes.client import ApiClient

from faro._batch import LineBatcher
from faro._checkpoint import ANNOTATION, decode_checkpoint, encode_checkpoint
from faro._delivery import Delivery, StreamHandler, describe_callee
from faro._entries import Entries
from faro._health import Health, Watched
from faro._pending import PendingBound
from faro._plan import Plan, plan_informers
from faro._serving import Serving
from faro._sharding import accepts
from faro._streams import Streams
from faro.cache import SharedInformer
from faro.client import KubernetesClient
from faro.clock import Clock, RealClock
from faro.config import Config, ConfigError, NormalizedConfig, ResourceConfig
from faro.events import EventHandler, HandlerFunc, JSONMiddleware, MatchedEvent, MiddlewareFunc
from faro.export import EventExporter, StreamExporter, event_record
from faro.leaderelection import LeaderElectionConfig, LeaderElector
from faro.logs import info_writer
from faro.metrics import ControllerMetrics, PendingStats
from faro.server import MetricsServer
from faro.workqueue import ShutDown, WorkQueue

logger = logging.getLogger("faro.controller")
event_logger = logging.getLogger("faro.events")
"""One INFO line per matched event (after the middlewares), as the Go original logs them."""

__all__ = ["EXIT_TIMEOUT", "ActiveInformers", "Controller"]

EXIT_TIMEOUT = 5.0
"""Default seconds a controller's stop gets when the program ends without ``stop()``
(interpreter exit), when :meth:`Controller.run` is interrupted (Ctrl-C), and when a ``with``
block is left by an exception: the ``exit_timeout`` of :class:`Controller`."""


class ActiveInformers(NamedTuple):
    """How many informers run: for the configuration, and for resources added at runtime."""

    config_driven: int
    dynamic: int


class Controller:
    """Watches what a configuration names and delivers every matched change to handlers.

    ``client`` is a :class:`~faro.client.KubernetesClient` (or an official
    ``ApiClient``); ``config`` a :class:`~faro.config.Config`.

    Lifecycle: register handlers, middlewares and the ready callback, then
    :meth:`start` (returns once discovery is done and the informers are
    started) or :meth:`run` (also blocks until :meth:`stop` or
    ``auto_shutdown_sec``); :meth:`stop` ends every thread. A controller runs
    once. It is also a context manager (``with Controller(...) as c:`` starts
    and stops it).

    Threading: every method may be called from any thread, handlers included
    (a handler may call :meth:`add_resources` or :meth:`stop`). Handlers run on
    ``config.workers`` worker threads; informers each on their own thread; one
    more thread reacts to namespaces and CRDs and one waits for readiness. Every
    one is a daemon thread. The controller installs no signal handler and keeps
    no global state but a weak set of the running controllers: two controllers
    in one process are independent.

    Fork: a started controller belongs to the process that started it. In a child made by
    ``fork()`` (a pre-fork server's worker) its threads do not exist: there
    :meth:`is_ready` is False, :meth:`stop` returns at once without touching the
    parent's sockets, and every other method raises :class:`RuntimeError` saying to start
    a controller in each process after the fork (docs/embedding.md). A controller made but
    not started before the fork may be started in the child.

    Sharding: with ``config.shard`` (``count`` > 1) the informers keep and report only
    the objects of shard ``index`` (docs/operations.md); with ``leader_election`` too, the
    Lease is per shard (``<name>-shard-<index>``), so each shard has its own leader.

    Exit: a program that ends without :meth:`stop` (its main code returned or
    raised) exits all the same: an interpreter-exit hook stops every running
    controller, delivering what is queued for at most ``exit_timeout`` seconds
    (default :data:`EXIT_TIMEOUT`). :meth:`run` interrupted by Ctrl-C
    (KeyboardInterrupt) stops the controller likewise and raises again.

    Delivery (see docs/architecture.md): every event that passes the filters
    reaches every handler, per object in resourceVersion order; two workers
    never handle one object at once; a handler that raises gets the event
    again after a backoff, up to ``config.max_retries`` retries.

    High availability: with ``leader_election`` (a
    :class:`~faro.leaderelection.LeaderElectionConfig`) the controller competes for a
    ``coordination.k8s.io/v1`` Lease with the other replicas and delivers only while it
    leads. A standby runs its informers all the same (warm caches: ``informers()`` and
    readiness work as usual) but makes no events and calls no handler; a leader that
    cannot renew its Lease within ``renew_deadline`` stops delivering before the Lease can
    expire, and competes again. :meth:`stop` delivers what is queued, then releases the
    Lease so a standby takes over at once. docs/operations.md has the details.
    """

    def __init__(self, client: KubernetesClient | ApiClient, config: Config, *,
                 metrics: ControllerMetrics | None = None, clock: Clock | None = None,
                 name: str = "faro", exit_timeout: float = EXIT_TIMEOUT,
                 leader_election: LeaderElectionConfig | None = None) -> None:
        if not 0 <= exit_timeout < float("inf"):
            raise ValueError(f"exit_timeout must be a number of seconds >= 0, "
                             f"got {exit_timeout!r}")
        self.exit_timeout = exit_timeout
        """Seconds :meth:`stop` gets when the program ends without it (interpreter exit),
        when :meth:`run` is interrupted, and when a ``with`` block is left by an exception."""
        self._clock: Clock = clock if clock is not None else RealClock()
        self.client = client if isinstance(client, KubernetesClient) else \
            KubernetesClient(client, clock=self._clock)
        """The :class:`~faro.client.KubernetesClient` it talks through (``client`` wrapped when
        an ``ApiClient`` was given)."""
        self.config = config
        """The :class:`~faro.config.Config` the controller was made with."""
        self.name = name
        """Names the controller's threads, work queues and log lines."""
        self.metrics = metrics if metrics is not None else ControllerMetrics()
        """The Prometheus metrics it records (its own registry unless one was given)."""
        self._lock = threading.RLock()  # state below; reconcile holds it while it works
        self._entries = Entries(config.normalized)
        self._warned: set[NormalizedConfig] = set()  # plan warnings logged
        self._state = "new"  # new -> starting -> started -> stopped (starting -> new: failed)
        self._pid: int | None = None  # the process that started it (see _forked)
        self._fork_warned = False
        self._threads: list[threading.Thread] = []
        self._server: MetricsServer | None = None
        self._export = _JSONExport(config, self.metrics, self._clock)
        self._changes: WorkQueue[str] = WorkQueue(f"{name}-changes", clock=self._clock,
                                                  metrics=self.metrics.queue_metrics())
        self._pending = PendingBound(config.pending, clock=self._clock, name=name)
        self._delivery = Delivery(name=name, workers=config.workers,
                                  max_retries=config.max_retries, metrics=self.metrics,
                                  clock=self._clock, observers=(self._export, _log_event),
                                  queue_metrics=self.metrics.queue_metrics(),
                                  pending=self._pending,
                                  stuck_handler_sec=config.pending.stuck_handler_sec)
        self._serving = Serving(self.client, name=name, metrics=self.metrics, clock=self._clock,
                                on_change=lambda: self._changes.add("reconcile"))
        self._streams = Streams(self.client, delivery=self._delivery, metrics=self.metrics,
                                clock=self._clock, gone=self._serving.gone, name=name,
                                track_progress=leader_election is not None,
                                accept=accepts(config.shard))
        self._health = Health(name=name, clock=self._clock, workers=config.workers,
                              unhealthy_after_sec=config.unhealthy_after_sec,
                              running=self._running,
                              ended_workers=self._delivery.ended_workers,
                              held=self._pending.held,
                              held_unready_after_sec=config.pending.unready_after_sec,
                              pending_detail=self._pending_detail, role=self._role)
        self.metrics.track_pending(self._pending_stats)
        shard = config.shard
        if shard.count > 1:
            self.metrics.set_shard(shard.index, shard.count)
            if leader_election is not None:  # each shard has its own leader
                leader_election = dataclasses.replace(
                    leader_election, name=f"{leader_election.name}-shard-{shard.index}")
        self.leader_election = leader_election
        """The Lease this controller competes for (None: it always delivers); sharded
        (``config.shard``), the name given with ``-shard-<index>`` added."""
        self._elector: LeaderElector | None = None
        self._resumed: dict[str, str] | None = None  # the checkpoint taken over, once done
        self._final: list[tuple[str, SharedInformer, StreamHandler]] | None = None  # stopping
        if leader_election is not None:
            self._delivery.set_leading(False)  # a standby until the Lease is won
            self.metrics.set_leader(leader_election.name, False)

    def __repr__(self) -> str:
        return f"<Controller {self.name} {self._state}, {len(self._streams)} informers>"

    def _forked(self) -> bool:
        """Whether this process is a fork of the one that started the controller."""
        return self._pid is not None and self._pid != os.getpid()

    def _fork_problem(self) -> str:
        return (f"controller {self.name} was started in process {self._pid}, and this process "
                f"({os.getpid()}) is a fork of it: the controller's threads do not run here. "
                "Start a controller in each process after the fork instead (gunicorn: in the "
                "post_fork hook or on first use, not at import with preload_app; uWSGI: "
                "lazy-apps, or a postfork hook); see docs/embedding.md")

    def _check_process(self) -> None:
        """Raise RuntimeError in a forked child of the process that started it."""
        if self._forked():
            raise RuntimeError(self._fork_problem())

    def _warn_forked(self) -> None:
        if not self._fork_warned:
            self._fork_warned = True
            logger.warning("%s", self._fork_problem())

    # ------------------------------------------------------------ registration

    def add_event_handler(self, handler: EventHandler | HandlerFunc) -> None:
        """Register a handler: an object with ``on_matched(event)``, or a callable.

        Handlers are called in registration order for each event. Register
        them before :meth:`start` (or before entering ``with``): one added
        while running receives only the events not yet delivered (among them,
        perhaps, none of the initial ADDED events), and a warning says so.
        Raises TypeError for anything else.
        """
        self._check_process()
        callee = describe_callee(handler, "on_matched")
        with self._lock:
            self._delivery.add_handler(callee)
            started = self._state != "new"
        if started:
            logger.warning("controller %s: handler %s was added after start(): it does not "
                           "receive the events delivered before (register handlers before "
                           "start, or before entering 'with')", self.name, callee.name)

    def add_json_middleware(self, middleware: JSONMiddleware | MiddlewareFunc) -> None:
        """Register a middleware: ``process_before_json(event) -> (object, keep)``, or a callable.

        Middlewares run in registration order, once per event, before the
        handlers (and the JSON export): the object they return replaces the
        event's object; ``keep=False`` drops the event. Raises TypeError for
        anything else.
        """
        self._delivery.add_middleware(describe_callee(middleware, "process_before_json"))

    def set_ready_callback(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` once, when every initial informer has synced.

        It runs on the controller's readiness thread; an exception is logged.
        Set it before :meth:`start`; set later, it is called at once if the
        controller is already ready.
        """
        self._health.set_ready_callback(callback)

    # ------------------------------------------------------------------ status

    def is_ready(self) -> bool:
        """True once every initial informer synced, while none has been unhealthy too long.

        An informer (the CRD and namespace watchers included) is unhealthy
        while its list or watch keeps failing, or before its first sync; "too
        long" is ``config.unhealthy_after_sec``.
        """
        if self._forked():
            self._warn_forked()
            return False
        return self._health.is_ready()

    @property
    def stopped(self) -> bool:
        """True once :meth:`stop` was called (by anyone: a handler, auto shutdown, a signal)."""
        return self._health.stopped

    @property
    def events_file(self) -> Path | None:
        """The JSON event file (``json_export: true``), once :meth:`start` opened it.

        It stays set after :meth:`stop`. Rotated files sit beside it (``.1``, ``.2``...);
        docs/export.md describes a line. None with ``export.output: stdout`` (the lines go
        to standard output).
        """
        return self._export.path

    @property
    def metrics_address(self) -> tuple[str, int] | None:
        """``(host, port)`` the metrics and probes are served on while the controller runs.

        The actual port when ``metrics.port`` is 0; None when metrics are disabled,
        before :meth:`start` and after :meth:`stop`.
        """
        server = self._server
        if server is None or self._health.stopped:
            return None
        try:
            return server.address
        except RuntimeError:
            return None

    def wait_until_ready(self, timeout: float | None = None) -> bool:
        """Block until ready (True), or until ``timeout`` seconds passed or stop (False)."""
        self._check_process()
        return self._health.wait_until_ready(timeout)

    def get_active_informers(self) -> ActiveInformers:
        """Running informers for the configuration, and for resources added at runtime.

        An informer serving both counts as config-driven. The controller's own
        watchers of namespaces and CRDs are not counted.
        """
        with self._lock:
            return ActiveInformers(*self._streams.counts())

    def informers(self) -> dict[str, SharedInformer]:
        """The running informers by description (``v1/pods in default ...``), for inspection."""
        self._check_process()
        with self._lock:
            return self._streams.informers()

    def is_leader(self) -> bool:
        """Whether this controller delivers events: always True without
        ``leader_election``; with it, True only while it holds the Lease."""
        return self._delivery.leading

    @property
    def leader(self) -> str | None:
        """The identity holding the Lease as last seen (None without ``leader_election``,
        before the first read, and while the Lease is released)."""
        elector = self._elector
        return None if elector is None else elector.leader

    def _role(self) -> str:
        """The readiness answer's role ("" without leader election)."""
        election = self.leader_election
        if election is None:
            return ""
        where = f"lease {election.namespace}/{election.name}"
        if self._delivery.leading:
            return f"leader ({where}, identity {election.identity})"
        leader = self.leader
        return f"standby ({where}, leader {leader or 'none yet'})"

    def pending_events(self) -> int:
        """Events received and not yet delivered to every handler."""
        return self._delivery.pending_events()

    def _oldest_pending_age(self) -> float:
        """Seconds the oldest event not yet delivered has waited (0 when none)."""
        oldest = self._delivery.oldest_pending_since()
        return 0.0 if oldest is None else max(0.0, self._clock.now() - oldest)

    def _pending_stats(self) -> PendingStats:
        """The pending events as the metrics show them (read when scraped)."""
        return PendingStats(
            events=self._pending.events, bytes=self._pending.bytes,
            oldest_age=self._oldest_pending_age(), held_informers=len(self._pending.held()),
            stuck_handlers=len(self._delivery.stuck()))

    def _pending_detail(self) -> str:
        """What is pending and which handlers are stuck, for the readiness reason."""
        text = (f"{self._pending.events} events ({self._pending.bytes / (1024 * 1024):.1f} MiB) "
                f"pending, the oldest for {self._oldest_pending_age():.1f}s")
        now = self._clock.now()
        stuck = [f"handler {b.callee} running for {now - b.since:.1f}s on {b.gvr} {b.key}"
                 for b in self._delivery.stuck()]
        return "; ".join([text, *stuck])

    # --------------------------------------------------------------- resources

    def add_resources(self, resources: Iterable[ResourceConfig | Mapping[str, Any]]) -> None:
        """Stage more resources to watch; :meth:`start_informers` starts them.

        Each item is a :class:`~faro.config.ResourceConfig` or a mapping in the
        resource-centric format (``{"gvr": "v1/configmaps", "namespace_names":
        ["default"]}``). Raises :class:`~faro.config.ConfigError` (naming the
        item) for an invalid item or one that duplicates a watched entry; then
        nothing is staged.
        """
        self._check_process()
        with self._lock:
            self._entries.stage(resources)

    def start_informers(self) -> None:
        """Start informers for the resources staged by :meth:`add_resources`.

        Before :meth:`start` it only commits them (start starts everything).
        Raises :class:`~faro.config.ConfigError` if a staged resource is one the
        cluster can never serve (a typo in a built-in group); the other staged
        resources are started all the same.
        """
        self._check_process()
        with self._lock:
            staged = self._entries.commit()
            if self._state != "started":
                return
            errors = self._serving.check(staged)
            self._entries.discard(bad for bad, _ in errors)
            self._serving.ensure_watchers(self._entries.watched)
            self._reconcile()
        if errors:
            raise _unservable("add_resources", errors)

    def remove_resources(self, resources: Iterable[ResourceConfig | Mapping[str, Any]]) -> None:
        """Stop watching the given entries (as given to :meth:`add_resources` or configured).

        Informers no entry needs any more are stopped (events they already
        delivered to the queue are still handed to handlers). Raises
        :class:`~faro.config.ConfigError` naming an item that matches no
        watched entry; then nothing is removed.
        """
        self._check_process()
        with self._lock:
            self._entries.remove(resources)
            if self._state == "started":
                self._reconcile()

    # --------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Discover the cluster's resources, start informers and workers, and return.

        With ``config.metrics.enabled`` it first starts serving metrics and the
        probes (see :attr:`metrics_address`), before anything else.

        Raises :class:`~faro.server.MetricsServerError` when the metrics port
        cannot be bound (then nothing was started),
        :class:`~faro.config.ConfigError` when the configuration names a
        resource the cluster can never serve (a built-in group without it; the
        message lists close matches), the client's errors when the cluster
        cannot be reached, and RuntimeError when called twice. Resources of
        CRDs that are not installed yet are not an error: their informers start
        when the CRD is Established.

        :meth:`stop` may be called while it runs (from another thread, or a
        signal handler): then start returns early, without an error, and the
        controller is stopped. It does not wait for the cluster's answers meanwhile:
        discovery runs without the controller's lock, and the wait for the CRD and
        namespace watchers' first lists ends at the stop.
        """
        with self._lock:
            if self._state != "new":
                self._check_process()
                raise RuntimeError(f"{self!r} was already started")
            self._state = "starting"
            self._pid = os.getpid()
            with _RUNNING_LOCK:  # from here the exit hook stops it (a start ends early)
                _RUNNING.add(self)
            try:
                self._start_server()
                self._export.open()
                self._entries.commit()
                watched = self._entries.watched
            except BaseException:
                self._abandon_start()
                raise
        # The slow part, without the lock: stop() need not wait for the cluster's answer.
        logger.debug("controller %s: reading the cluster's resources (discovery)", self.name)
        try:
            errors = self._serving.check(watched)
        except BaseException as error:
            with self._lock:
                stopped = self._state != "starting"
                if not stopped:
                    self._abandon_start()
            if stopped and isinstance(error, Exception):
                logger.debug("controller %s: stopped while starting (%s)", self.name, error)
                self._close_stopped_start()
                return
            raise
        failure: BaseException | None = None
        with self._lock:
            if self._state != "starting":  # stop() was called meanwhile and closed the rest
                logger.info("controller %s: stopped while starting", self.name)
                self._close_stopped_start()
                return
            if errors:
                self._abandon_start()
                raise _unservable(self.config.source, errors)
            self._state = "started"
            self._health.mark_started()
            try:
                self._delivery.start()
                # Waits for the watchers' first lists; a stop() (Serving.interrupt) ends it.
                self._serving.ensure_watchers(self._entries.watched)
                if not self._health.stopped:
                    self._reconcile()
                    initial = [watched.informer for watched in self._running()]
                    self._health.watch_thread("manager", self._spawn(self._manage, "changes"))
                    self._start_elector()
                    self._spawn(lambda: self._health.await_ready(initial), "ready")
            except BaseException as error:
                failure = error
        if failure is not None:  # stopped without the lock: stop() joins threads that take it
            self.stop(self.exit_timeout)
            raise failure
        if self._health.stopped:  # stop() was called meanwhile: it does the rest
            logger.info("controller %s: stopped while starting", self.name)
            return
        logger.info("controller %s started: %d informers", self.name, len(self._streams))

    def _close_stopped_start(self) -> None:
        """What a start stopped early may have opened after the stop closed it (a stop()
        from a signal handler on the starting thread, while the lock was held)."""
        self._export.close()
        self._stop_server()

    def _abandon_start(self) -> None:
        """Undo the first steps of a start that failed (lock held): it may be started again."""
        self._state = "new"
        self._pid = None
        with _RUNNING_LOCK:
            _RUNNING.discard(self)
        self._stop_server(forget=True)
        self._export.close()

    def run(self) -> None:
        """Start (unless started), then block until :meth:`stop` or ``auto_shutdown_sec``.

        After ``auto_shutdown_sec`` seconds (when it is not 0) it stops the
        controller itself. Raises what :meth:`start` raises. Interrupted (Ctrl-C's
        KeyboardInterrupt, or any exception a signal handler raises), it stops the
        controller, delivering what is queued for at most ``exit_timeout`` seconds,
        and raises the exception again.
        """
        self._check_process()
        try:
            if self._state == "new":
                self.start()
            limit = self.config.auto_shutdown_sec
            if self._health.wait_stopped(limit if limit > 0 else None):
                return
        except BaseException:
            if self._state != "new":  # a start that failed has undone itself
                self.stop(self.exit_timeout)
            raise
        logger.info("controller %s: auto shutdown after %ss", self.name, limit)
        self.stop()

    def stop(self, timeout: float | None = 30.0) -> bool:
        """Stop informers, deliver what is queued, and end every thread; idempotent.

        Waits at most ``timeout`` seconds in all (None: no limit). The metrics
        server stops last (until then /healthz and /readyz answer 503). Returns True
        if every thread ended in time; otherwise False, after logging which
        handler is still running for which object (its worker thread, a daemon, is
        left behind). Events waiting for a retry are not delivered (logged). Safe to
        call from a handler (it does not wait for the worker it runs on), and while
        :meth:`start` runs on another thread (start then returns early). In a process
        forked from the one that started it, it only logs that and returns True: the
        threads and connections are the parent's.
        """
        if self._forked():  # the parent's threads and sockets: not this process's to stop
            self._warn_forked()
            return True
        now = self._clock.now
        deadline = None if timeout is None else now() + timeout

        def remaining() -> float | None:
            return None if deadline is None else max(0.0, deadline - now())

        first = self._health.mark_stopped()  # start() and run() see it without the lock
        with _RUNNING_LOCK:
            _RUNNING.discard(self)
        self._changes.shut_down()
        self._serving.interrupt()  # ends a start() waiting for the watchers' first lists
        wait = remaining()
        if not self._lock.acquire(timeout=-1 if wait is None else wait):
            # A re-plan (or add_resources) is waiting for the API server's answer.
            logger.warning("controller %s: stop() timed out waiting for a change of informers "
                           "that is waiting for the API server; the stop goes on when it "
                           "returns", self.name)
            self._stop_later(first)
            return False
        return self._stop_locked(first, remaining)

    def _stop_later(self, first: bool) -> None:
        """Finish the stop on a daemon thread once the lock is free (stop() timed out)."""
        def finish() -> None:
            self._lock.acquire()
            self._stop_locked(first, lambda: None)
        # RuntimeError: the interpreter is shutting down; nothing is left to finish for.
        with contextlib.suppress(RuntimeError):
            threading.Thread(target=finish, name=f"{self.name}-stop", daemon=True).start()

    def _stop_locked(self, first: bool, remaining: Callable[[], float | None]) -> bool:
        """The stop, called with the lock held (released here, before any waiting)."""
        try:
            self._state = "stopped"
            self._final = self._streams.positions()  # the last checkpoints are of these
            informers = self._streams.take_all() + [w for w, _ in self._serving.watchers()]
        finally:
            self._lock.release()
        self._delivery.release_producers()  # an informer waiting for room must not wait now
        finished = _stop_together(informers, remaining)
        for informer in informers:
            self.metrics.retire_informer(informer)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(remaining())
                finished = finished and not thread.is_alive()
        finished = self._delivery.stop(remaining()) and finished
        elector = self._elector
        if elector is not None:  # after the drain: release the Lease (with the last
            # checkpoint), a standby takes over
            finished = elector.stop(remaining()) and finished
        self._export.close()  # after the workers: every delivered event was written
        self._stop_server()  # last: a scrape during shutdown still answers
        if first:
            logger.info("controller %s stopped%s", self.name,
                        "" if finished else " (some threads did not end in time)")
        return finished

    def __enter__(self) -> Controller:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        """Stop: with the default 30 s, or ``exit_timeout`` when the block raised."""
        self.stop() if exc_type is None else self.stop(self.exit_timeout)

    # -------------------------------------------------------- threads, server, export

    def _spawn(self, target: Callable[[], None], role: str) -> threading.Thread:
        thread = threading.Thread(target=target, name=f"{self.name}-{role}", daemon=True)
        self._threads.append(thread)
        thread.start()
        return thread

    def _start_server(self) -> None:
        """Serve metrics and probes if the configuration asks (raises MetricsServerError)."""
        settings = self.config.metrics
        if not settings.enabled:
            return
        server = MetricsServer(self.metrics.registry, host=settings.bind_addr,
                               port=settings.port, path=settings.path,
                               healthz=self._health.liveness, readyz=self._health.readiness,
                               name=self.name)
        server.start()
        self._server = server

    def _stop_server(self, *, forget: bool = False) -> None:
        server = self._server
        if server is not None:
            server.stop()
            if forget:
                self._server = None

    # ---------------------------------------------------------------- leading

    def _start_elector(self) -> None:
        """Compete for the Lease (with ``leader_election``), once the informers started."""
        election = self.leader_election
        if election is None:
            return
        elector = self._elector = LeaderElector(
            self.client.api_client, election, on_started_leading=self._started_leading,
            on_stopped_leading=self._stopped_leading, on_new_leader=self._new_leader,
            refresh_credentials=self.client.refresh_credentials,
            annotations=self._lease_annotations, on_observe=self._observe_checkpoint,
            clock=self._clock)
        elector.start()
        assert elector.thread is not None
        self._health.watch_thread("leader election", elector.thread)

    def _started_leading(self) -> None:
        """The elector won the Lease (its thread): deliver, and resume from the checkpoint
        on the manager thread (the elector must get back to renewing)."""
        assert self.leader_election is not None
        self._delivery.set_leading(True)
        self.metrics.set_leader(self.leader_election.name, True)
        logger.info("controller %s: leading (lease %s/%s): delivering events", self.name,
                    self.leader_election.namespace, self.leader_election.name)
        self._changes.add(_TAKE_OVER)

    def _take_over(self) -> None:
        """Resume each informer from the checkpoint (lock held): watch again from its
        version; an informer the checkpoint does not name reports its whole cache as
        initial ADDED events (the first leader, or a resource new to this configuration)."""
        elector = self._elector
        if elector is None or not self._delivery.leading:
            return  # lost it again meanwhile
        versions = decode_checkpoint(elector.annotations.get(ANNOTATION))
        resumed = deleted = 0
        for key, informer, handler in self._streams.positions():
            version = versions.get(key)
            if version:
                # Deletions seen while standing by first: the watch from the checkpoint
                # reports them again, unless the server no longer has that version.
                deleted += informer.run_locked(partial(handler.report_tombstones, version))
                informer.rewind(version)
                resumed += 1
            else:
                handler.forget_tombstones()  # the whole cache is reported instead
                informer.resend(handler)
        self._resumed = versions
        logger.info("controller %s: took over: %d informers resume from the checkpoint "
                    "(%d deletions seen meanwhile reported), %d report their cache", self.name,
                    resumed, deleted, len(self._streams) - resumed)

    def _observe_checkpoint(self, annotations: dict[str, str]) -> None:
        """The Lease as read (the elector's thread): a standby forgets the deletions it saw
        that the leader's checkpoint says were delivered."""
        if self._delivery.leading:
            return
        versions = decode_checkpoint(annotations.get(ANNOTATION))
        for key, _, handler in self._streams.positions():
            version = versions.get(key)
            if version:
                handler.prune_tombstones(version)

    def _lease_annotations(self) -> dict[str, str]:
        """The checkpoint to write with the Lease (the elector's thread): per informer, the
        version up to which every event was delivered; an informer still rewinding, or
        with nothing delivered since, keeps the version it resumed from. Nothing before
        the take-over is done (the old leader's checkpoint stays)."""
        resumed = self._resumed
        if resumed is None or (not self._delivery.leading and self._final is None):
            return {}
        positions = self._final if self._final is not None else self._streams.positions()
        versions: dict[str, str] = {}
        for key, informer, handler in positions:
            delivered = None if informer.rewinding else handler.progress.mark(handler.version)
            version = delivered or resumed.get(key)
            if version:
                versions[key] = version
        return {ANNOTATION: encode_checkpoint(versions)}

    def _stopped_leading(self) -> None:
        assert self.leader_election is not None
        self._resumed = None
        self._delivery.set_leading(False)
        self.metrics.set_leader(self.leader_election.name, False)
        logger.info("controller %s: not leading (lease %s/%s): standing by, delivering "
                    "nothing", self.name, self.leader_election.namespace,
                    self.leader_election.name)

    def _new_leader(self, identity: str) -> None:
        assert self.leader_election is not None
        if identity != self.leader_election.identity:
            logger.info("controller %s: %s leads (lease %s/%s)", self.name, identity,
                        self.leader_election.namespace, self.leader_election.name)

    # ---------------------------------------------------------------- informers

    def _manage(self) -> None:
        """Reconcile the informers whenever namespaces or CRDs changed (coalesced)."""
        while True:
            try:
                item = self._changes.get()
            except ShutDown:
                return
            try:
                with self._lock:
                    if self._state == "started":
                        self._take_over() if item == _TAKE_OVER else self._reconcile()
            except Exception:
                logger.exception("controller %s: %s failed", self.name,
                                 "taking over" if item == _TAKE_OVER else "updating informers")
            finally:
                self._changes.done(item)

    def _running(self) -> list[Watched]:
        """Every running informer (streams and watchers), for the health probes."""
        return self._streams.watched() + [
            Watched(f"{w.resource} (the controller's watcher)", w, started_at)
            for w, started_at in self._serving.watchers()]

    def _reconcile(self) -> None:
        """Start, stop and update informers to match the plan (lock held)."""
        entries = self._entries.watched

        def planned() -> Plan:
            return plan_informers(entries, self._serving.snapshot(e.gvr for e in entries),
                                  self._serving.namespaces())

        plan = planned()
        # A shared informer (one for many namespaces) needs a cluster-wide list: where the
        # credentials forbid it, plan again with one informer per namespace.
        if self._serving.learn_cluster_list(i.key.gvr for i in plan.informers if i.shared):
            self._serving.ensure_watchers(entries)  # the namespaces patterns now need
            plan = planned()
        for warning in plan.warnings:
            if warning.config not in self._warned:
                self._warned.add(warning.config)
                logger.warning("%s: %s", warning.config.source, warning.message)
        self._streams.apply(plan, entries)


_TAKE_OVER = "take over"
"""The manager's work item when the controller has just won the Lease."""

_RUNNING: weakref.WeakSet[Controller] = weakref.WeakSet()
"""The controllers started and not yet stopped: what the interpreter-exit hook stops.

faro's only process-wide state. Weak: it keeps no controller alive (a running one is kept
alive by its own threads anyway); a controller enters it when its start begins (a start
still under way then returns early) and leaves it when its stop begins (or its start
fails), so the hook never stops one twice, nor one being stopped.
"""
_RUNNING_LOCK = threading.Lock()


def _stop_running_controllers() -> None:
    """The interpreter-exit hook: stop every running controller, with its exit drain.

    All of them together take at most the longest ``exit_timeout``. A Ctrl-C during the
    drain ends it (the remaining controllers' daemon threads end with the interpreter).
    """
    with _RUNNING_LOCK:
        controllers = list(_RUNNING)
    began = time.monotonic()
    for controller in controllers:
        timeout = max(0.0, began + controller.exit_timeout - time.monotonic())
        logger.info("controller %s: the program is ending without stop(): stopping, "
                    "delivering what is queued for at most %.3g s", controller.name, timeout)
        try:
            controller.stop(timeout)
        except KeyboardInterrupt:
            return
        except Exception:
            logger.exception("controller %s: stopping at exit failed", controller.name)


def _forget_running_controllers() -> None:
    """After a fork, in the child: the parent's controllers have no threads here."""
    _RUNNING.clear()


# Before the interpreter joins non-daemon threads (see the module docstring); Python 3.9+
# has it everywhere, atexit is the fallback.
_register_exit_hook = getattr(threading, "_register_atexit", atexit.register)
_register_exit_hook(_stop_running_controllers)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_running_controllers)


def _log_event(event: MatchedEvent) -> None:
    if not event_logger.isEnabledFor(logging.INFO):  # before reading the event's fields
        return
    write = info_writer(event_logger)  # faro run's handlers only: no LogRecord needed
    if write is not None:
        write(f"CONFIG [{event.event_type.value}] {event.gvr} {event.key} "
              f"(UID: {event.uid or '-'})")
    else:
        event_logger.info("CONFIG [%s] %s %s (UID: %s)", event.event_type.value, event.gvr,
                          event.key, event.uid or "-")


def _stop_together(informers: list[SharedInformer], remaining: Callable[[], float | None]
                   ) -> bool:
    """Stop ``informers`` at once, then wait for each while ``remaining()`` allows."""
    for informer in informers:
        informer.stop(timeout=0)
    return all([informer.stop(remaining()) for informer in informers])


class _JSONExport:
    """The delivery observer writing each event to the JSON event file (``json_export``), or
    to standard output (``export.output: stdout``).

    :meth:`open` (at start) opens the file when the configuration asks for one (or takes
    standard output); :meth:`close` (at stop) closes it and keeps its :attr:`path`. Workers
    only make the line;
    a :class:`~faro._batch.LineBatcher` writes the lines in batches, at most 0.1 s after
    they were made (and all of them at close), so a crash loses at most that much and never
    part of a line. A line that cannot be written is counted (``faro_export_errors_total``);
    the exporter logs why.
    """

    def __init__(self, config: Config, metrics: ControllerMetrics, clock: Clock) -> None:
        self._config = config
        self._metrics = metrics
        self._clock = clock
        self._exporter: EventExporter | StreamExporter | None = None
        self._batcher: LineBatcher[bytes] | None = None
        self._closed_path: Path | None = None

    @property
    def path(self) -> Path | None:
        """The file written to (while open) or last written to (after close), else None."""
        exporter = self._exporter
        if isinstance(exporter, EventExporter):
            return exporter.path
        return self._closed_path

    def open(self) -> None:
        if not self._config.json_export:
            return
        exporter: EventExporter | StreamExporter
        if self._config.export.output == "stdout":
            exporter = StreamExporter()
        else:
            exporter = EventExporter.from_config(self._config, clock=self._clock)
        self._exporter = exporter
        self._batcher = LineBatcher(lambda lines: self._write(exporter, lines), name="export")

    def _write(self, exporter: EventExporter | StreamExporter, lines: list[bytes]) -> None:
        for _ in range(len(lines) - exporter.write_lines(lines)):
            self._metrics.count_export_error()

    def __call__(self, event: MatchedEvent) -> None:
        batcher = self._batcher
        if batcher is not None:
            batcher.add(orjson.dumps(event_record(event)) + b"\n")

    def close(self) -> None:
        batcher, self._batcher = self._batcher, None
        if batcher is not None:
            batcher.close()  # every line made so far is written
        exporter, self._exporter = self._exporter, None
        if isinstance(exporter, EventExporter):
            self._closed_path = exporter.path
        if exporter is not None:
            exporter.close()


def _unservable(source: str, errors: Sequence[tuple[NormalizedConfig, str]]) -> ConfigError:
    """One ConfigError naming every entry the cluster can never serve (``errors`` not empty)."""
    (first, problem), rest = errors[0], errors[1:]
    return ConfigError(source, first.source, problem,
                       [ConfigError(source, entry.source, why) for entry, why in rest])
