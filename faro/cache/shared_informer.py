"""SharedInformer: one collection's local cache and change notifications, on its own thread.

One informer watches one resource (optionally in one namespace, with label
and field selectors evaluated by the server), keeps every object in a
:class:`~faro.cache.store.Store`, and tells its handlers about each change.
Several handlers share the one list/watch and the one cache.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from types import TracebackType
from typing import Any, TypeVar

from kubernetes.client import ApiClient

from faro._names import KubeObject, object_key
from faro.cache.backoff import Backoff
from faro.cache.handlers import ResourceEventHandler, ResourceEventHandlerFuncs
from faro.cache.health import InformerHealth
from faro.cache.listwatch import ListWatch
from faro.cache.reflector import Reflector
from faro.cache.store import IndexFunc, Store, Stored, decode
from faro.cache.transform import Transform, strip_managed_fields
from faro.clock import Clock, RealClock, wait_for
from faro.gvr import GroupVersionResource

T = TypeVar("T")

logger = logging.getLogger(__name__)


class SharedInformer:
    """Lists and watches one collection into a store and notifies handlers.

    Threading: :meth:`start` runs the list/watch loop on a new daemon thread
    named ``faro-informer-<name>``. Handlers are called on that thread, one
    change at a time, in the order the informer observed the changes, while it
    holds a lock that :meth:`add_event_handler` also takes (so a handler added
    late gets the current objects first, then every later change, nothing
    twice). Handlers should be quick (enqueue a key); a handler's exception is
    logged and counted, never fatal. Every other method may be called from any
    thread.

    The loop's rules (relists, backoff, credentials, malformed data) are the
    reflector's: see :mod:`faro.cache.reflector`. Objects in the store and in
    notifications are shared, read-only dicts.

    Parameters: ``api_client`` (the official client's, for host, TLS and
    credentials); ``resource`` (a :class:`GroupVersionResource` or a string
    like ``apps/v1/deployments``); ``namespace`` (None: all namespaces, or a
    cluster-scoped resource); ``label_selector`` and ``field_selector``
    (evaluated by the server); ``transform`` (applied to each object before it
    is stored; default :func:`strip_managed_fields`; None keeps objects
    whole); ``indexers`` (extra store indexes); ``page_size`` (LIST limit, 0
    for unpaged lists); ``watch_timeout`` (the range the server-side watch
    timeout is drawn from, seconds); ``backoff``; ``refresh_credentials`` (called
    after a 401 or 403, before retrying; re-read a rotated token there);
    ``accept`` (given an object's ``namespace/name`` key, whether to keep it: one that
    refuses is neither stored nor reported, a shard's filter); ``name`` (for logs,
    thread name and health); ``clock`` (default
    :class:`~faro.clock.RealClock`; :class:`faro.testing.FakeClock` in tests):
    every measurement and wait of the informer and its reflector (backoff, the
    timeouts of :meth:`wait_for_sync` and :meth:`stop`, the times in
    :meth:`health`).
    """

    def __init__(self, api_client: ApiClient, resource: GroupVersionResource | str, *,
                 namespace: str | None = None, label_selector: str | None = None,
                 field_selector: str | None = None,
                 transform: Transform | None = strip_managed_fields,
                 indexers: Mapping[str, IndexFunc] | None = None, page_size: int = 500,
                 watch_timeout: tuple[float, float] = (300.0, 600.0),
                 backoff: Backoff | None = None,
                 refresh_credentials: Callable[[], object] | None = None,
                 accept: Callable[[str], bool] | None = None,
                 name: str | None = None, clock: Clock | None = None) -> None:
        gvr = resource if isinstance(resource, GroupVersionResource) else \
            GroupVersionResource.parse(resource)
        self._listwatch = ListWatch(api_client, gvr, namespace=namespace,
                                    label_selector=label_selector, field_selector=field_selector)
        self.name = name or (f"{gvr}@{namespace}" if namespace else str(gvr))
        self._store = Store(indexers)
        self._lock = threading.RLock()
        self._clock: Clock = clock if clock is not None else RealClock()
        self._fanout = _Fanout(self.name)
        self._reflector = Reflector(
            self._listwatch, self._store, self._fanout, self._lock, name=self.name,
            page_size=page_size, watch_timeout=watch_timeout, backoff=backoff,
            transform=transform, refresh_credentials=refresh_credentials, accept=accept,
            clock=self._clock)
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._ended = threading.Condition()  # notified when the thread's loop has returned
        self._loop_ended = False

    # -------------------------------------------------------------- identity

    @property
    def resource(self) -> GroupVersionResource:
        return self._listwatch.resource

    @property
    def namespace(self) -> str | None:
        return self._listwatch.namespace

    @property
    def label_selector(self) -> str | None:
        return self._listwatch.label_selector

    @property
    def field_selector(self) -> str | None:
        return self._listwatch.field_selector

    @property
    def store(self) -> Store:
        """The local cache (read it from any thread; never write to it)."""
        return self._store

    def __repr__(self) -> str:
        return f"<SharedInformer {self._listwatch.describe()}>"

    # -------------------------------------------------------------- handlers

    def add_event_handler(
        self, handler: ResourceEventHandler | None = None, *,
        on_add: Callable[[KubeObject, bool], object] | None = None,
        on_update: Callable[[KubeObject, KubeObject], object] | None = None,
        on_delete: Callable[[KubeObject, bool], object] | None = None,
    ) -> ResourceEventHandler:
        """Register a handler object, or functions; returns what was registered.

        Added after the informer synced, the handler first receives
        ``on_add(obj, True)`` for every object in the store (on the calling
        thread), then every later change (on the informer's thread). Raises
        TypeError if both or neither of ``handler`` and the functions are given.
        """
        functions = (on_add, on_update, on_delete)
        if (handler is None) == all(f is None for f in functions):
            raise TypeError("give either a handler object or on_add/on_update/on_delete functions")
        registered: ResourceEventHandler = handler if handler is not None else \
            ResourceEventHandlerFuncs(on_add, on_update, on_delete)
        with self._lock:
            self.resend(registered)
            self._fanout.set_handlers((*self._fanout.handlers, registered))
        return registered

    def resend(self, handler: ResourceEventHandler) -> None:
        """Call ``handler.on_add(obj, True)`` for every object in the store, then its
        ``flush()`` if it has one, on the calling thread, under the informer's lock (no
        change is reported to any handler meanwhile). For a handler that must be told the
        whole state again (a controller that has just become the leader)."""
        with self._lock:
            for obj in self._store.list():
                self._call(handler.on_add, obj, True)
            flush = getattr(handler, "flush", None)
            if callable(flush):
                self._fanout.call_flush(flush)

    def run_locked(self, function: Callable[[], T]) -> T:
        """Call ``function()`` on the calling thread under the informer's lock and return what
        it returns: no change is reported to any handler meanwhile (a handler's own report,
        made in order)."""
        with self._lock:
            return function()

    def rewind(self, resource_version: str) -> None:
        """Watch again from ``resource_version``, reporting every change since (any thread).

        The watch in progress ends (not a failure); one asked for during the first list
        starts after it; a version known to be no older than the informer's own is ignored.
        If the server no longer has it (410), the relist reports every object as updated.
        Raises ValueError for an empty version.
        """
        self._reflector.rewind(resource_version)

    @property
    def rewinding(self) -> bool:
        """True from :meth:`rewind` until the informer watches from that version."""
        return self._reflector.rewinding

    def remove_event_handler(self, handler: ResourceEventHandler) -> None:
        """Stop notifying ``handler``; raises ValueError if it is not registered."""
        with self._lock:
            handlers = self._fanout.handlers
            if handler not in handlers:
                raise ValueError(f"{handler!r} is not a handler of {self!r}")
            self._fanout.set_handlers(tuple(h for h in handlers if h is not handler))

    def _call(self, method: Callable[[KubeObject, bool], object], obj: KubeObject,
              flag: bool) -> None:
        try:
            method(obj, flag)
        except Exception:
            self._fanout.failed(method, "on_add", obj)

    # ------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start the list/watch thread and return at once.

        Raises RuntimeError if the informer was started before (an informer
        runs once; make a new one to start again).
        """
        with self._lock:
            if self._thread is not None or self._stopped:
                raise RuntimeError(f"{self!r} was already started")
            self._thread = threading.Thread(target=self._run_loop,
                                            name=f"faro-informer-{self.name}", daemon=True)
            self._thread.start()

    def _run_loop(self) -> None:
        try:
            self._reflector.run()
        finally:
            with self._ended:
                self._loop_ended = True
                self._ended.notify_all()

    def stop(self, timeout: float | None = 5.0) -> bool:
        """Stop the thread and wait for it (at most ``timeout`` seconds of the clock; None: no
        limit).

        Interrupts a list or watch request in progress by shutting its connection
        down, whether it is waiting for the server's response head or reading the
        body, so this normally returns well within a second. Only a TCP connection
        still being established, or a request through an HTTP or SOCKS proxy that
        has no response head yet, cannot be interrupted: then this returns
        False after ``timeout`` and the daemon thread ends once that request does
        (connect timeout 10 s, LIST read timeout 60 s).
        Returns True if the thread has ended. Idempotent; safe from any thread
        except a handler (the informer's own thread), where it does not wait.
        """
        self._stopped = True
        self._reflector.stop()
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return thread is None
        with self._ended:
            ended = wait_for(self._clock, self._ended, lambda: self._loop_ended, timeout)
        if ended:
            thread.join()  # its loop has returned: the thread is ending now
        return not thread.is_alive()

    def run(self) -> None:
        """Start, then block until another thread calls :meth:`stop`."""
        self.start()
        assert self._thread is not None
        self._thread.join()

    def __enter__(self) -> SharedInformer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    @property
    def is_running(self) -> bool:
        """True while the list/watch thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    # ---------------------------------------------------------------- status

    def has_synced(self) -> bool:
        """True once the first list is in the store and its adds were delivered."""
        return self._reflector.has_synced()

    def wait_for_sync(self, timeout: float | None = None) -> bool:
        """Block until synced; False if ``timeout`` passed or the informer stopped first."""
        return self._reflector.wait_for_sync(timeout)

    @property
    def last_sync_resource_version(self) -> str | None:
        """The resourceVersion the store reflects (of the last list, event or bookmark)."""
        return self._reflector.last_sync_resource_version

    def health(self) -> InformerHealth:
        """A snapshot of this informer's state, for controllers, probes and metrics."""
        return replace(self._reflector.health(), running=self.is_running,
                       handler_errors=self._fanout.errors)


class _Fanout:
    """Calls every handler for each notification (the reflector's sink; its thread, lock held).

    Keeps tuples of the handlers' bound methods (for function handlers, the
    functions themselves; a missing one is left out), rebuilt when handlers
    change, so a notification costs one call per handler.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.handlers: tuple[ResourceEventHandler, ...] = ()
        self.errors = 0
        self._adds: tuple[Callable[[KubeObject, bool], object], ...] = ()
        self._updates: tuple[tuple[Callable[[Any, KubeObject], object], bool], ...] = ()
        self._deletes: tuple[Callable[[KubeObject, bool], object], ...] = ()
        self._flushes: tuple[Callable[[], object], ...] = ()
        self._resyncs = False  # a handler has on_resync

    def set_handlers(self, handlers: tuple[ResourceEventHandler, ...]) -> None:
        self.handlers = handlers
        adds: list[Callable[[KubeObject, bool], object]] = []
        updates: list[tuple[Callable[[Any, KubeObject], object], bool]] = []
        deletes: list[Callable[[KubeObject, bool], object]] = []
        for handler in handlers:
            if isinstance(handler, ResourceEventHandlerFuncs):
                if handler.add is not None:
                    adds.append(handler.add)
                if handler.update is not None:
                    updates.append((handler.update, False))
                if handler.delete is not None:
                    deletes.append(handler.delete)
            else:
                adds.append(handler.on_add)
                stored = getattr(handler, "on_update_stored", None)
                updates.append((stored, True) if callable(stored) else (handler.on_update, False))
                deletes.append(handler.on_delete)
        self._adds, self._updates, self._deletes = tuple(adds), tuple(updates), tuple(deletes)
        flushes = (getattr(h, "flush", None) for h in handlers
                   if not isinstance(h, ResourceEventHandlerFuncs))
        self._flushes = tuple(flush for flush in flushes if callable(flush))
        self._resyncs = any(callable(getattr(h, "on_resync", None)) for h in handlers)

    def flush(self) -> None:
        """The end of a batch of notifications: call each handler's ``flush()``."""
        for flush in self._flushes:
            self.call_flush(flush)

    def call_flush(self, flush: Callable[[], object]) -> None:
        try:
            flush()
        except Exception:
            self.errors += 1
            logger.exception("informer %s: handler %r failed in flush", self.name, flush)

    def add(self, obj: KubeObject, is_initial: bool) -> None:
        for call in self._adds:
            try:
                call(obj, is_initial)
            except Exception:
                self.failed(call, "on_add", obj)

    def update(self, old: Stored, new: KubeObject) -> None:
        """``old`` is decoded once, only for a handler without ``on_update_stored``."""
        old_object: KubeObject | None = None
        for call, takes_stored in self._updates:
            try:
                if takes_stored:
                    call(old, new)
                else:
                    if old_object is None:
                        old_object = decode(old)
                    call(old_object, new)
            except Exception:
                self.failed(call, "on_update", new)

    def resync(self, old: Stored, new: KubeObject) -> None:
        """To handlers with ``on_resync(old, new)`` (``old`` as stored); an update to the
        others."""
        resyncs = self._resyncs
        if not resyncs:
            self.update(old, new)
            return
        for handler in self.handlers:
            on_resync = getattr(handler, "on_resync", None)
            try:
                if callable(on_resync):
                    on_resync(old, new)
                elif isinstance(handler, ResourceEventHandlerFuncs):
                    if handler.update is not None:
                        handler.update(decode(old), new)
                else:
                    handler.on_update(decode(old), new)
            except Exception:
                self.failed(handler, "on_update", new)

    def delete(self, obj: KubeObject, final_state_unknown: bool) -> None:
        for call in self._deletes:
            try:
                call(obj, final_state_unknown)
            except Exception:
                self.failed(call, "on_delete", obj)

    def failed(self, handler: object, method: str, obj: KubeObject) -> None:
        self.errors += 1
        metadata = obj.get("metadata") or {}
        logger.exception("informer %s: handler %r failed in %s for %s", self.name, handler,
                         method, object_key(metadata.get("namespace"),
                                            str(metadata.get("name", "?"))))
