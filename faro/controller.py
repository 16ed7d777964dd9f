"""The Controller: configuration in, informers running, matched events out to your handlers.

A :class:`Controller` turns a :class:`~faro.config.Config` into informers (one
per resource, namespace and server-side selectors, shared by every entry that
asks for that stream), keeps that set right while the cluster changes
(namespaces matching a pattern come and go, CRDs are installed, changed and
deleted) and delivers every matched change to the registered handlers, per
object in order, one worker per object at a time. docs/architecture.md states
the delivery contract; docs/controller.md shows the API in use.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

from kubernetes.client import ApiClient

from faro._delivery import Delivery, describe_callee
from faro.cache import SharedInformer
from faro.cache.store import KubeObject
from faro.cache.transform import strip_managed_fields
from faro.client import KubernetesClient
from faro.clock import Clock
from faro.config import Config, ConfigError, NormalizedConfig, ResourceConfig
from faro.discovery import Discovery, DiscoveryError
from faro.events import (
    EventHandler,
    EventType,
    HandlerFunc,
    JSONMiddleware,
    MatchedEvent,
    MiddlewareFunc,
)
from faro.export import EventExporter
from faro.gvr import GroupVersionResource
from faro.metrics import ControllerMetrics
from faro.server import MetricsServer
from faro.workqueue import ShutDown, WorkQueue

logger = logging.getLogger("faro.controller")
event_logger = logging.getLogger("faro.events")
"""One INFO line per matched event (after the middlewares), as the Go original logs them."""

__all__ = ["ActiveInformers", "Controller"]

_CRDS = GroupVersionResource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
_NAMESPACES = GroupVersionResource("", "v1", "namespaces")

WATCHER_SYNC_TIMEOUT = 10.0
"""Seconds start() waits for the CRD and namespace watchers' first list."""


class ActiveInformers(NamedTuple):
    """How many informers run: for the configuration, and for resources added at runtime."""

    config_driven: int
    dynamic: int


@dataclass(frozen=True, slots=True)
class _StreamKey:
    """What makes two entries share one informer: the same list/watch request.

    ``origin`` is the uid and scope of the CRD that serves a custom resource
    (empty for built-in resources), so a CRD deleted and created again, or one
    whose scope changed, gets a fresh informer.
    """

    gvr: GroupVersionResource
    namespace: str | None
    label_selector: str | None
    field_selector: str | None
    origin: str = ""

    def __str__(self) -> str:
        text = str(self.gvr) + (f" in {self.namespace}" if self.namespace else "")
        if self.label_selector:
            text += f" labels {self.label_selector!r}"
        if self.field_selector:
            text += f" fields {self.field_selector!r}"
        return text


@dataclass(eq=False)
class _Stream:
    """One running informer and the configuration entries it serves."""

    key: _StreamKey
    informer: SharedInformer
    cluster_scoped: bool
    configs: tuple[NormalizedConfig, ...]
    dynamic: bool
    started_at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class _Served:
    """Whether (and how) the cluster serves a resource right now."""

    namespaced: bool
    origin: str = ""


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
    more thread reacts to namespaces and CRDs and one waits for readiness. The
    controller installs no signal handler and keeps no global state: two
    controllers in one process are independent.

    Delivery (see docs/architecture.md): every event that passes the filters
    reaches every handler, per object in resourceVersion order; two workers
    never handle one object at once; a handler that raises gets the event
    again after a backoff, up to ``config.max_retries`` retries.
    """

    def __init__(self, client: KubernetesClient | ApiClient, config: Config, *,
                 metrics: ControllerMetrics | None = None, clock: Clock | None = None,
                 name: str = "faro") -> None:
        self.client = client if isinstance(client, KubernetesClient) else \
            KubernetesClient(client)
        self.config = config
        self.name = name
        self.metrics = metrics if metrics is not None else ControllerMetrics()
        self._delivery = Delivery(name=name, workers=config.workers,
                                  max_retries=config.max_retries, metrics=self.metrics,
                                  clock=clock, queue_metrics=self.metrics.queue_metrics())
        self._delivery.observers = (self._export, _log_event)
        self._lock = threading.RLock()  # state below; reconcile holds it while it works
        self._configs: dict[NormalizedConfig, bool] = dict.fromkeys(config.normalized, False)
        self._staged: dict[NormalizedConfig, bool] = {}  # add_resources before start_informers
        self._streams: dict[_StreamKey, _Stream] = {}
        self._crds: SharedInformer | None = None
        self._namespaces: SharedInformer | None = None
        self._state = "new"  # new -> started -> stopped
        self._started_at = 0.0
        self._ready_callback: Callable[[], object] | None = None
        self._ready = threading.Event()
        self._stopped = threading.Event()
        self._changes: WorkQueue[str] = WorkQueue(f"{name}-changes",
                                                  metrics=self.metrics.queue_metrics())
        self._threads: list[threading.Thread] = []
        self._manager: threading.Thread | None = None
        self._server: MetricsServer | None = None
        self._exporter: EventExporter | None = None
        self._events_file: Path | None = None
        self._warned_cluster_scoped: set[NormalizedConfig] = set()
        self._builtin: dict[GroupVersionResource, _Served] = {}  # found at start: fixed
        self._crd_groups: set[str] = set()  # groups seen defined by a CRD

    def __repr__(self) -> str:
        return f"<Controller {self.name} {self._state}, {len(self._streams)} informers>"

    # ------------------------------------------------------------ registration

    def add_event_handler(self, handler: EventHandler | HandlerFunc) -> None:
        """Register a handler: an object with ``on_matched(event)``, or a callable.

        Handlers are called in registration order for each event. Register
        them before :meth:`start` (or before entering ``with``): one added
        while running receives only the events not yet delivered (among them,
        perhaps, none of the initial ADDED events), and a warning says so.
        Raises TypeError for anything else.
        """
        callee = describe_callee(handler, "on_matched")
        with self._lock:
            self._delivery.handlers = (*self._delivery.handlers, callee)
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
        callee = describe_callee(middleware, "process_before_json")
        with self._lock:
            self._delivery.middlewares = (*self._delivery.middlewares, callee)

    def set_ready_callback(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` once, when every initial informer has synced.

        It runs on the controller's readiness thread; an exception is logged.
        Set it before :meth:`start`; set later, it is called at once if the
        controller is already ready.
        """
        with self._lock:
            self._ready_callback = callback
            ready = self._ready.is_set()
        if ready:
            self._call_ready_callback(callback)

    # ------------------------------------------------------------------ status

    def is_ready(self) -> bool:
        """True once every initial informer synced, while none has been unhealthy too long.

        An informer (the CRD and namespace watchers included) is unhealthy
        while its list or watch keeps failing, or before its first sync; "too
        long" is ``config.unhealthy_after_sec``.
        """
        return self._readiness()[0]

    def _readiness(self) -> tuple[bool, str]:
        """``is_ready()`` and why not (the /readyz answer); never waits for the lock."""
        if self._stopped.is_set():
            return False, "controller stopped"
        if self._state == "new":
            return False, "controller not started yet"
        limit = self.config.unhealthy_after_sec
        now = time.time()
        unsynced: list[str] = []
        unhealthy: list[str] = []
        for description, informer, started_at in self._watched():
            health = informer.health()
            if not health.synced:
                unsynced.append(description)
            since = started_at if not health.synced else health.failing_since
            if since is not None and now - since > limit:
                problem = "not synced" if not health.synced else "failing"
                error = f": {health.last_error}" if health.last_error else ""
                unhealthy.append(f"informer {description} {problem} for {now - since:.1f}s "
                                 f"(unhealthy_after_sec {limit:g}){error}")
        if not self._ready.is_set():
            # An initial informer that never syncs (a 403 for a resource the identity may
            # not read) keeps the controller unready for good: say why, not only which.
            waiting = f": {', '.join(unsynced)}" if unsynced else ""
            return False, "; ".join([f"informers not synced yet{waiting}", *unhealthy])
        if unhealthy:
            return False, "; ".join(unhealthy)
        return True, "ok"

    def _liveness(self) -> tuple[bool, str]:
        """Started, not stopped, and every thread alive (the /healthz answer); never waits."""
        if self._stopped.is_set():
            return False, "controller stopped"
        if self._state != "started":
            return True, "starting"
        dead: list[str] = []
        ended = self._delivery.ended_workers()
        if ended:
            dead.append(f"{ended} of {self.config.workers} worker threads")
        manager = self._manager
        if manager is not None and not manager.is_alive():
            dead.append(f"the manager thread {manager.name}")
        for description, informer, _ in self._watched():
            health = informer.health()
            # Not running after it started: its thread ended. A stream stopped meanwhile
            # (removed from the plan) is not a death: check it is still ours.
            if health.started_at is not None and not health.running and \
                    self._owns(informer) and not self._stopped.is_set():
                dead.append(f"the informer thread of {description}")
        if dead:
            return False, "dead: " + ", ".join(dead)
        return True, "ok"

    def _watched(self) -> list[tuple[str, SharedInformer, float]]:
        """Every running informer (streams and watchers): description, informer, start time.

        Read without the lock (which reconcile and start hold while they talk to the
        API server): copying a dict is atomic under the GIL.
        """
        streams = list(self._streams.values())
        watched = [(str(s.key), s.informer, s.started_at) for s in streams]
        watched += [(f"{w.resource} (the controller's watcher)", w, self._started_at)
                    for w in (self._crds, self._namespaces) if w is not None]
        return watched

    def _owns(self, informer: SharedInformer) -> bool:
        return informer is self._crds or informer is self._namespaces or any(
            s.informer is informer for s in list(self._streams.values()))

    @property
    def stopped(self) -> bool:
        """True once :meth:`stop` was called (by anyone: a handler, auto shutdown, a signal)."""
        return self._stopped.is_set()

    @property
    def events_file(self) -> Path | None:
        """The JSON event file (``json_export: true``), once :meth:`start` opened it.

        It stays set after :meth:`stop`. Rotated files sit beside it (``.1``, ``.2``...);
        docs/export.md describes a line.
        """
        exporter = self._exporter
        return exporter.path if exporter is not None else self._events_file

    @property
    def metrics_address(self) -> tuple[str, int] | None:
        """``(host, port)`` the metrics and probes are served on while the controller runs.

        The actual port when ``metrics.port`` is 0; None when metrics are disabled,
        before :meth:`start` and after :meth:`stop`.
        """
        server = self._server
        if server is None or self._stopped.is_set():
            return None
        try:
            return server.address
        except RuntimeError:
            return None

    def wait_until_ready(self, timeout: float | None = None) -> bool:
        """Block until ready (True), or until ``timeout`` seconds passed or stop (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._ready.is_set():
            if self._stopped.is_set():
                return False
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            self._ready.wait(0.5 if remaining is None else min(remaining, 0.5))
        return self.is_ready()

    def get_active_informers(self) -> ActiveInformers:
        """Running informers for the configuration, and for resources added at runtime.

        An informer serving both counts as config-driven. The controller's own
        watchers of namespaces and CRDs are not counted.
        """
        with self._lock:
            streams = list(self._streams.values())
        dynamic = sum(1 for s in streams if s.dynamic)
        return ActiveInformers(len(streams) - dynamic, dynamic)

    def informers(self) -> dict[str, SharedInformer]:
        """The running informers by description (``v1/pods in default ...``), for inspection."""
        with self._lock:
            return {str(key): stream.informer for key, stream in self._streams.items()}

    def pending_events(self) -> int:
        """Events received and not yet delivered to every handler."""
        return self._delivery.pending_events()

    # --------------------------------------------------------------- resources

    def add_resources(self, resources: Iterable[ResourceConfig | Mapping[str, Any]]) -> None:
        """Stage more resources to watch; :meth:`start_informers` starts them.

        Each item is a :class:`~faro.config.ResourceConfig` or a mapping in the
        resource-centric format (``{"gvr": "v1/configmaps", "namespace_names":
        ["default"]}``). Raises :class:`~faro.config.ConfigError` (naming the
        item) for an invalid item or one that duplicates a watched entry; then
        nothing is staged.
        """
        staged: dict[NormalizedConfig, bool] = {}
        for path, normalized in _normalized(resources, "add_resources"):
            with self._lock:
                clash = self._find(normalized, (self._configs, self._staged, staged))
            if clash is not None:
                raise ConfigError("add_resources", path, f"duplicates {clash.source}")
            staged[normalized] = True
        with self._lock:
            self._staged.update(staged)

    def start_informers(self) -> None:
        """Start informers for the resources staged by :meth:`add_resources`.

        Before :meth:`start` it only commits them (start starts everything).
        Raises :class:`~faro.config.ConfigError` if a staged resource is one the
        cluster can never serve (a typo in a built-in group); the other staged
        resources are started all the same.
        """
        with self._lock:
            staged, self._staged = self._staged, {}
            self._configs.update(staged)
            if self._state != "started":
                return
            errors = self._check_resources(staged)
            for bad in errors:
                del self._configs[bad[0]]
            self._ensure_watchers()
            self._reconcile()
        if errors:
            raise ConfigError("add_resources", errors[0][0].source, errors[0][1])

    def remove_resources(self, resources: Iterable[ResourceConfig | Mapping[str, Any]]) -> None:
        """Stop watching the given entries (as given to :meth:`add_resources` or configured).

        Informers no entry needs any more are stopped (events they already
        delivered to the queue are still handed to handlers). Raises
        :class:`~faro.config.ConfigError` naming an item that matches no
        watched entry; then nothing is removed.
        """
        remove: list[NormalizedConfig] = []
        for path, normalized in _normalized(resources, "remove_resources"):
            with self._lock:
                found = self._find(normalized, (self._configs, self._staged))
            if found is None:
                raise ConfigError("remove_resources", path, "matches no watched resource")
            remove.append(found)
        with self._lock:
            for normalized in remove:
                self._configs.pop(normalized, None)
                self._staged.pop(normalized, None)
            if self._state == "started":
                self._reconcile()

    @staticmethod
    def _find(normalized: NormalizedConfig,
              pools: Iterable[Mapping[NormalizedConfig, bool]]) -> NormalizedConfig | None:
        for pool in pools:
            for existing in pool:
                if existing == normalized:
                    return existing
        return None

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
        """
        with self._lock:
            if self._state != "new":
                raise RuntimeError(f"{self!r} was already started")
            self._start_server()
            try:
                if self.config.json_export:
                    self._exporter = EventExporter.from_config(self.config)
                self._configs.update(self._staged)
                self._staged = {}
                errors = self._check_resources(self._configs)
                if errors:
                    raise ConfigError(self.config.source, errors[0][0].source, errors[0][1])
            except BaseException:
                self._stop_server(forget=True)
                self._close_exporter()
                raise
            self._state = "started"
            self._started_at = time.time()
            try:
                self._delivery.start()
                self._ensure_watchers()
                self._reconcile()
                initial = list(self._streams.values())
                self._manager = self._spawn(self._manage, "changes")
                self._spawn(lambda: self._await_ready(initial), "ready")
            except BaseException:
                self._state = "new"
                self.stop()
                raise
        logger.info("controller %s started: %d informers", self.name, len(initial))

    def run(self) -> None:
        """Start (unless started), then block until :meth:`stop` or ``auto_shutdown_sec``.

        After ``auto_shutdown_sec`` seconds (when it is not 0) it stops the
        controller itself. Raises what :meth:`start` raises.
        """
        if self._state == "new":
            self.start()
        limit = self.config.auto_shutdown_sec
        if self._stopped.wait(limit if limit > 0 else None):
            return
        logger.info("controller %s: auto shutdown after %ss", self.name, limit)
        self.stop()

    def stop(self, timeout: float | None = 30.0) -> bool:
        """Stop informers, deliver what is queued, and end every thread; idempotent.

        Waits at most ``timeout`` seconds in all (None: no limit). The metrics
        server stops last (until then /healthz and /readyz answer 503). Returns True
        if every thread ended in time; otherwise False, after logging which
        handler is still running for which object (its worker thread is left
        behind). Events waiting for a retry are not delivered (logged). Safe to
        call from a handler (it does not wait for the worker it runs on).
        """
        deadline = None if timeout is None else time.monotonic() + timeout

        def remaining() -> float | None:
            return None if deadline is None else max(0.0, deadline - time.monotonic())

        with self._lock:
            first = not self._stopped.is_set()
            self._stopped.set()
            self._state = "stopped"
            self._changes.shut_down()
            streams = list(self._streams.values())
            self._streams.clear()
            watchers = [w for w in (self._crds, self._namespaces) if w is not None]
        informers = [s.informer for s in streams] + watchers
        for informer in informers:
            informer.stop(timeout=0)
        finished = all([informer.stop(remaining()) for informer in informers])
        for informer in informers:
            self.metrics.retire_informer(informer)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(remaining())
                finished = finished and not thread.is_alive()
        finished = self._delivery.stop(remaining()) and finished
        self._close_exporter()  # after the workers: every delivered event was written
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
        self.stop()

    # ------------------------------------------------------------------ threads

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
                               healthz=self._liveness, readyz=self._readiness, name=self.name)
        server.start()
        self._server = server

    def _export(self, event: MatchedEvent) -> None:
        """The delivery observer that writes the JSON event file (when there is one)."""
        exporter = self._exporter
        if exporter is not None and not exporter.export(event):
            self.metrics.export_errors_total.inc()

    def _close_exporter(self) -> None:
        exporter, self._exporter = self._exporter, None
        if exporter is not None:
            self._events_file = exporter.path
            exporter.close()

    def _stop_server(self, *, forget: bool = False) -> None:
        server = self._server
        if server is not None:
            server.stop()
            if forget:
                self._server = None

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
                        self._reconcile()
            except Exception:
                logger.exception("controller %s: updating informers failed", self.name)
            finally:
                self._changes.done(item)

    def _await_ready(self, initial: list[_Stream]) -> None:
        """Wait until every initial informer synced (or was stopped), then signal readiness."""
        for stream in initial:
            informer = stream.informer
            while not informer.wait_for_sync(0.5):
                if self._stopped.is_set():
                    return
                if self._streams.get(stream.key) is not stream:
                    break  # removed before it synced (its CRD or namespace went away)
        for watcher in (self._crds, self._namespaces):
            while watcher is not None and not watcher.wait_for_sync(0.5):
                if self._stopped.is_set():
                    return
        with self._lock:
            if self._stopped.is_set():
                return
            self._ready.set()
            callback = self._ready_callback
        logger.info("controller %s is ready", self.name)
        if callback is not None:
            self._call_ready_callback(callback)

    def _call_ready_callback(self, callback: Callable[[], object]) -> None:
        try:
            callback()
        except Exception:
            logger.exception("controller %s: the ready callback failed", self.name)

    # ----------------------------------------------------------- informer plan

    @property
    def _discovery(self) -> Discovery:
        return self.client.discovery

    def _check_resources(self, configs: Iterable[NormalizedConfig]
                         ) -> list[tuple[NormalizedConfig, str]]:
        """Entries naming a resource the cluster can never serve, with the reason.

        Built-in resources found are remembered (how the cluster serves them
        does not change); the others are left to CRDs (and aggregated APIs).
        Raises :class:`~faro.discovery.DiscoveryError` when discovery fails.
        """
        errors: list[tuple[NormalizedConfig, str]] = []
        discovery = self._discovery
        for config in configs:
            gvr = config.gvr
            if gvr in self._builtin:
                continue
            if not self._can_only_be_built_in(gvr.group):
                continue
            resource = discovery.find(gvr)
            if resource is not None:
                self._builtin[gvr] = _Served(resource.namespaced)
                continue
            matches = discovery.close_matches(gvr)
            hint = f"; did you mean {', '.join(matches)}?" if matches else ""
            errors.append((config, f"the cluster does not serve {gvr}{hint}"))
        return errors

    def _can_only_be_built_in(self, group: str) -> bool:
        """Whether no CRD or API service can add resources to ``group``.

        The core group and groups without a dot are Kubernetes' own. A
        ``*.k8s.io`` group counts as built in once the cluster serves it, unless
        a CRD defines it (Gateway API, CSI snapshots): before their CRDs are
        installed such groups are not served at all.
        """
        if group == "" or "." not in group:
            return True
        if not group.endswith(".k8s.io") or group in self._crd_groups:
            return False
        return any(r.gvr.group == group for r in self._discovery.resources())

    def _ensure_watchers(self) -> None:
        """Start the CRD and namespace watchers the configuration needs (lock held)."""
        api_client = self.client.api_client
        needs_crds = any(c.gvr not in self._builtin for c in self._configs)
        needs_namespaces = any(c.namespace_pattern is not None for c in self._configs)
        for needed, attribute, gvr in ((needs_crds, "_crds", _CRDS),
                                       (needs_namespaces, "_namespaces", _NAMESPACES)):
            if not needed or getattr(self, attribute) is not None:
                continue
            watcher = SharedInformer(api_client, gvr, name=f"{self.name}-{gvr.resource}",
                                     transform=_slim_definition,
                                     refresh_credentials=self.client.refresh_credentials)
            watcher.add_event_handler(on_add=self._changed, on_update=self._changed,
                                      on_delete=self._changed)
            setattr(self, attribute, watcher)
            watcher.start()
            self.metrics.track_informer(watcher)
            # The plan depends on what they hold: wait for their first list (bounded).
            if not watcher.wait_for_sync(timeout=WATCHER_SYNC_TIMEOUT):
                logger.warning("controller %s: %s did not sync in %.0f s (health: %s); the "
                               "informers that depend on it start when it does", self.name,
                               gvr, WATCHER_SYNC_TIMEOUT, watcher.health().last_error)

    def _changed(self, *_args: object) -> None:
        self._changes.add("reconcile")

    def _served(self, gvr: GroupVersionResource) -> _Served | None:
        """How the cluster serves ``gvr`` now, or None (a CRD not installed, or not serving it)."""
        builtin = self._builtin.get(gvr)
        if builtin is not None:
            return builtin
        crd = self._crd_of(gvr) if self._crds is not None else None
        if crd is not None:
            self._crd_groups.add(gvr.group)
            spec = crd.get("spec") or {}
            conditions = (crd.get("status") or {}).get("conditions") or ()
            established = any(c.get("type") == "Established" and c.get("status") == "True"
                              for c in conditions)
            served = any(v.get("name") == gvr.version and v.get("served")
                         for v in spec.get("versions") or ())
            if not (established and served):
                return None
            scope = spec.get("scope", "Namespaced")
            uid = (crd.get("metadata") or {}).get("uid", "")
            return _Served(scope == "Namespaced", f"{uid}/{scope}")
        if gvr.group in self._crd_groups:
            return None  # a CRD's group: its CRD is gone
        try:  # not a CRD: an aggregated API, perhaps
            resource = self._discovery.find(gvr)
        except DiscoveryError as exc:
            logger.warning("controller %s: %s", self.name, exc)
            return None
        return None if resource is None else _Served(resource.namespaced, "aggregated")

    def _crd_of(self, gvr: GroupVersionResource) -> KubeObject | None:
        assert self._crds is not None
        crd = self._crds.store.get_by_name(f"{gvr.resource}.{gvr.group}")
        if crd is None:
            return None
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        if spec.get("group") != gvr.group or names.get("plural") != gvr.resource:
            return None
        return crd

    def _plan(self) -> dict[_StreamKey, tuple[list[NormalizedConfig], bool]]:
        """The informers the entries need now: key -> (entries, cluster scoped)."""
        namespaces: list[str] = []
        if self._namespaces is not None:
            namespaces = [str((obj.get("metadata") or {}).get("name", ""))
                          for obj in self._namespaces.store.list()]
        plan: dict[_StreamKey, tuple[list[NormalizedConfig], bool]] = {}
        cluster_wide: set[_StreamKey] = set()
        wanted: list[tuple[_StreamKey, NormalizedConfig, bool]] = []
        for config in self._configs:
            served = self._served(config.gvr)
            if served is None:
                continue
            base = _StreamKey(config.gvr, None, config.label_selector, config.field_selector,
                              served.origin)
            if not served.namespaced:
                self._warn_cluster_scoped(config)
                keys = [base]
            elif config.namespace_pattern is not None:
                keys = [replace(base, namespace=ns) for ns in namespaces
                        if config.matches_namespace(ns)]
            elif config.namespace is not None:
                keys = [replace(base, namespace=config.namespace)]
            else:
                keys = [base]
                cluster_wide.add(base)
            wanted.extend((key, config, not served.namespaced) for key in keys)
        for key, config, cluster_scoped in wanted:
            # A namespace's stream is served by the all-namespaces stream with the same request.
            base = replace(key, namespace=None)
            if key.namespace is not None and base in cluster_wide:
                key = base
            plan.setdefault(key, ([], cluster_scoped))[0].append(config)
        return plan

    def _warn_cluster_scoped(self, config: NormalizedConfig) -> None:
        if (config.namespace or config.namespace_pattern) and \
                config not in self._warned_cluster_scoped:
            self._warned_cluster_scoped.add(config)
            logger.warning("%s: %s is cluster-scoped: the namespace filter does not apply; "
                           "one informer watches it cluster-wide", config.source, config.gvr)

    def _reconcile(self) -> None:
        """Start, stop and update informers to match the plan (lock held)."""
        plan = self._plan()
        for key in [k for k in self._streams if k not in plan]:
            stream = self._streams.pop(key)
            gone = self._gone(stream)
            stream.informer.stop()
            self.metrics.retire_informer(stream.informer)
            logger.info("controller %s: stopped the informer for %s%s", self.name, key,
                        f" ({gone})" if gone else "")
            if gone:
                self._deleted_unseen(stream)
        for key, (configs, cluster_scoped) in plan.items():
            dynamic = all(self._configs[config] for config in configs)
            running = self._streams.get(key)
            if running is not None:
                running.configs, running.dynamic = tuple(configs), dynamic
                continue
            informer = SharedInformer(
                self.client.api_client, key.gvr, namespace=key.namespace,
                label_selector=key.label_selector, field_selector=key.field_selector,
                refresh_credentials=self.client.refresh_credentials,
                name=f"{key.gvr}@{key.namespace}" if key.namespace else str(key.gvr))
            stream = _Stream(key, informer, cluster_scoped, tuple(configs), dynamic)
            informer.add_event_handler(_StreamHandler(self, stream))
            self._streams[key] = stream
            informer.start()
            self.metrics.track_informer(informer)
            logger.info("controller %s: started an informer for %s", self.name, key)

    def _gone(self, stream: _Stream) -> str:
        """Why a stream's objects no longer exist ("" when they may: the entry was removed)."""
        key = stream.key
        if key.origin:
            served = self._served(key.gvr)
            if served is None:
                return "the cluster stopped serving it (its CRD was deleted or changed)"
            if served.origin != key.origin:
                return "its CRD was replaced"
        if key.namespace is not None and self._namespaces is not None and \
                self._namespaces.store.get_by_name(key.namespace) is None and \
                any(c.namespace_pattern for c in stream.configs):
            return f"namespace {key.namespace} was deleted"
        return ""

    def _deleted_unseen(self, stream: _Stream) -> None:
        """Report the objects a stopped stream still held as deleted (final state unknown)."""
        handler = _StreamHandler(self, stream)
        for obj in stream.informer.store.list():
            handler.on_delete(obj, True)


def _log_event(event: MatchedEvent) -> None:
    if event_logger.isEnabledFor(logging.INFO):  # before reading the event's fields
        event_logger.info("CONFIG [%s] %s %s (UID: %s)", event.event_type.value, event.gvr,
                          event.key, event.uid or "-")


def _slim_definition(obj: dict[str, Any]) -> dict[str, Any]:
    """What the watchers keep of a CRD or namespace: no managed fields, no schemas.

    A CRD's OpenAPI schemas are often most of its size, and the controller only
    reads names, scope, served versions and conditions.
    """
    strip_managed_fields(obj)
    for version in (obj.get("spec") or {}).get("versions") or ():
        if isinstance(version, dict):
            version.pop("schema", None)
    return obj


def _normalized(resources: Iterable[ResourceConfig | Mapping[str, Any]], source: str
                ) -> Iterator[tuple[str, NormalizedConfig]]:
    """Each item's normalized entries with the item's path (``source[i]``); raises ConfigError."""
    for index, item in enumerate(resources):
        path = f"{source}[{index}]"
        resource = item if isinstance(item, ResourceConfig) else \
            ResourceConfig.from_dict(item, path=path, source=source)
        for normalized in resource.normalize(path=path, source=source):
            yield path, normalized


class _StreamHandler:
    """An informer's handler: matches each change to an entry and pushes a MatchedEvent.

    Runs on the informer's thread; cheap (no I/O, no waiting but the buffer's lock).
    """

    __slots__ = ("_filtered", "_gvr", "_push", "_stream")

    def __init__(self, controller: Controller, stream: _Stream) -> None:
        self._stream = stream
        self._gvr = str(stream.key.gvr)
        self._push = controller._delivery.push
        self._filtered = controller.metrics.events_filtered_total.labels(self._gvr)

    def on_add(self, obj: KubeObject, is_initial: bool) -> None:
        self._emit(EventType.ADDED, obj, None, is_initial, False)

    def on_update(self, old: KubeObject, new: KubeObject) -> None:
        self._emit(EventType.UPDATED, new, old, False, False)

    def on_delete(self, obj: KubeObject, final_state_unknown: bool) -> None:
        self._emit(EventType.DELETED, obj, None, False, final_state_unknown)

    def _emit(self, event_type: EventType, obj: KubeObject, old: KubeObject | None,
              is_initial: bool, final_state_unknown: bool) -> None:
        metadata = obj.get("metadata") or {}
        name = metadata.get("name") or ""
        namespace = metadata.get("namespace") or ""
        stream = self._stream
        for config in stream.configs:
            if (stream.cluster_scoped or config.matches_namespace(namespace)) and \
                    config.matches_name(name):
                break
        else:
            self._filtered.inc()
            return
        self._push(MatchedEvent(
            event_type, obj, self._gvr, f"{namespace}/{name}" if namespace else name, config,
            datetime.now(timezone.utc), old, is_initial, final_state_unknown))
