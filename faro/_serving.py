"""Cluster serving: how the cluster serves each configured resource, kept current by watchers.

Contract: :class:`Serving` answers, for the planner, how the cluster serves a resource
right now (:meth:`Serving.snapshot`) and which namespaces exist (:meth:`Serving.namespaces`).
Built-in resources are found once through discovery (their scope never changes); custom
resources are read from a CRD watcher, namespaces from a namespace watcher, each started
only when the configuration needs it; anything else (an aggregated API) is asked of
discovery. Every change the watchers see calls ``on_change`` (on the watcher's thread).

Whether the credentials may list a resource in all namespaces (so one shared informer can
serve namespaces matched by a pattern, or several listed ones) is learnt once per resource
by a one-item cluster-wide list (:meth:`Serving.learn_cluster_list`): 403 Forbidden means
no, and the snapshot then names the resource in ``cluster_list_forbidden``. A LIST is what
the informer itself would make, so the answer holds for any authorizer (RBAC, webhook,
node) on a real kube-apiserver and on the simulator alike. The namespace watcher is needed
only then: for patterns of resources served one informer per namespace.
It also tells which entries name a resource that can never exist (:meth:`Serving.check`)
and why a stopped informer's objects are gone (:meth:`Serving.gone`).

Not thread-safe by itself: the controller calls it under its lock (``on_change`` excepted),
but for :meth:`Serving.interrupt` and :meth:`Serving.watchers`, which any thread may call.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from faro._names import KubeObject
from faro._plan import Served, Snapshot, StreamKey
from faro.cache import SharedInformer
from faro.cache.listwatch import Interrupter, ListWatch
from faro.cache.transform import strip_managed_fields
from faro.client import KubernetesClient
from faro.clock import Clock
from faro.config import NormalizedConfig
from faro.discovery import Discovery, DiscoveryError
from faro.errors import ApiStatusError
from faro.gvr import GroupVersionResource
from faro.metrics import ControllerMetrics

logger = logging.getLogger("faro.controller")

CRDS = GroupVersionResource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
NAMESPACES = GroupVersionResource("", "v1", "namespaces")

WATCHER_SYNC_TIMEOUT = 10.0
"""Seconds :meth:`Serving.ensure_watchers` waits for a new watcher's first list."""


class Serving:
    """How the cluster serves resources, from discovery and the CRD and namespace watchers.

    ``name`` prefixes the watchers' names (``<name>-customresourcedefinitions``); they are
    tracked in ``metrics`` and run on ``clock``; ``on_change`` is called for every CRD or
    namespace change.
    """

    def __init__(self, client: KubernetesClient, *, name: str, metrics: ControllerMetrics,
                 clock: Clock, on_change: Callable[[], None]) -> None:
        self._client = client
        self._name = name
        self._metrics = metrics
        self._clock = clock
        self._on_change = on_change
        self._crds: SharedInformer | None = None
        self._namespaces: SharedInformer | None = None
        self._started: dict[SharedInformer, float] = {}  # watcher -> when it started
        self._builtin: dict[GroupVersionResource, Served] = {}  # found once: fixed
        self._crd_groups: set[str] = set()  # groups seen defined by a CRD
        self._cluster_list: dict[GroupVersionResource, bool] = {}  # may list all namespaces
        self._interrupted = threading.Event()  # the controller stops: no more watchers
        self._probe = Interrupter()  # aborts a cluster-wide list probe at stop

    @property
    def _discovery(self) -> Discovery:
        return self._client.discovery

    def watchers(self) -> list[tuple[SharedInformer, float]]:
        """The running watchers, each with when it started (wall-clock seconds)."""
        return list(self._started.items())  # a copy of a dict is atomic under the GIL

    def interrupt(self) -> None:
        """Ask every watcher to stop (without waiting for it) and start no more (any thread).

        For the controller's stop: an :meth:`ensure_watchers` waiting for a watcher's first
        list (the controller's start) returns at once. The caller still waits for the
        watchers' threads (:meth:`watchers`).
        """
        self._interrupted.set()
        self._probe.abort()
        for watcher in list(self._started):
            watcher.stop(timeout=0)

    # ------------------------------------------------------------------ checks

    def check(self, configs: Iterable[NormalizedConfig]) -> list[tuple[NormalizedConfig, str]]:
        """Entries naming a resource the cluster can never serve, with the reason.

        Built-in resources found are remembered; the others are left to CRDs (and
        aggregated APIs). Raises :class:`~faro.discovery.DiscoveryError` when discovery
        fails.
        """
        errors: list[tuple[NormalizedConfig, str]] = []
        discovery = self._discovery
        for config in configs:
            gvr = config.gvr
            if gvr in self._builtin or not self._can_only_be_built_in(gvr.group):
                continue
            resource = discovery.find(gvr)
            if resource is not None:
                self._builtin[gvr] = Served(resource.namespaced)
                continue
            matches = discovery.close_matches(gvr)
            hint = f"; did you mean {', '.join(matches)}?" if matches else ""
            errors.append((config, f"the cluster does not serve {gvr}{hint}"))
        return errors

    def _can_only_be_built_in(self, group: str) -> bool:
        """Whether no CRD or API service can add resources to ``group``.

        The core group and groups without a dot are Kubernetes' own. A ``*.k8s.io`` group
        counts as built in once the cluster serves it, unless a CRD defines it (Gateway
        API, CSI snapshots): before their CRDs are installed such groups are not served.
        """
        if group == "" or "." not in group:
            return True
        if not group.endswith(".k8s.io") or group in self._crd_groups:
            return False
        return any(r.gvr.group == group for r in self._discovery.resources())

    # ---------------------------------------------------------------- watchers

    def ensure_watchers(self, configs: Iterable[NormalizedConfig]) -> None:
        """Start the CRD and namespace watchers ``configs`` need and wait for their first
        list (bounded by :data:`WATCHER_SYNC_TIMEOUT`; none after :meth:`interrupt`)."""
        configs = list(configs)
        if self._crds is None and any(c.gvr not in self._builtin for c in configs) and \
                not self._interrupted.is_set():
            self._crds = self._watch(CRDS)
        if self._namespaces is None and not self._interrupted.is_set() and any(
                c.namespace_pattern is not None and self._cluster_list.get(c.gvr) is False
                for c in configs):  # patterns served one informer per matching namespace
            self._namespaces = self._watch(NAMESPACES)

    # ------------------------------------------------------ cluster-wide lists

    def learn_cluster_list(self, gvrs: Iterable[GroupVersionResource]) -> bool:
        """Learn whether the credentials may list each of ``gvrs`` in all namespaces (once
        per resource); True when one of them turned out forbidden (re-plan).

        One ``GET <collection>?limit=1`` each: 403 is a no, logged once; any other error
        leaves the question open (the shared informer is tried, and reports its errors in
        the health probes like any informer).
        """
        forbidden = False
        for gvr in dict.fromkeys(gvrs):
            if gvr in self._cluster_list or self._interrupted.is_set():
                continue
            try:
                ListWatch(self._client.api_client, gvr).list_page(limit=1,
                                                                  interrupter=self._probe)
            except ApiStatusError as exc:
                if exc.status != 403:
                    logger.debug("controller %s: listing %s in all namespaces failed (%s); "
                                 "trying one shared informer", self._name, gvr, exc)
                    continue
                self._cluster_list[gvr] = False
                forbidden = True
                logger.warning(
                    "controller %s: the credentials may not list %s in all namespaces (403 "
                    "Forbidden): its namespaces are served by one informer each, not by one "
                    "shared informer (allow list and watch of %s cluster-wide to save a "
                    "thread and a connection per namespace)", self._name, gvr, gvr.resource)
            except Exception as exc:  # the connection; an interrupted probe
                logger.debug("controller %s: listing %s in all namespaces failed (%s); "
                             "trying one shared informer", self._name, gvr, exc)
            else:
                self._cluster_list[gvr] = True
        return forbidden

    def _watch(self, gvr: GroupVersionResource) -> SharedInformer:
        watcher = SharedInformer(self._client.api_client, gvr,
                                 name=f"{self._name}-{gvr.resource}", transform=_slim_definition,
                                 refresh_credentials=self._client.refresh_credentials,
                                 clock=self._clock)
        watcher.add_event_handler(on_add=self._changed, on_update=self._changed,
                                  on_delete=self._changed)
        self._started[watcher] = self._clock.time()
        watcher.start()
        self._metrics.track_informer(watcher)
        if self._interrupted.is_set():  # interrupt() may have listed the watchers before
            watcher.stop(timeout=0)
            return watcher
        # The plan depends on what it holds: wait for its first list (bounded; interrupt()
        # ends the wait).
        logger.debug("controller %s: waiting for the first list of %s (at most %.0f s)",
                     self._name, gvr, WATCHER_SYNC_TIMEOUT)
        if not watcher.wait_for_sync(timeout=WATCHER_SYNC_TIMEOUT) and \
                not self._interrupted.is_set():
            logger.warning("controller %s: %s did not sync in %.0f s (health: %s); the "
                           "informers that depend on it start when it does", self._name, gvr,
                           WATCHER_SYNC_TIMEOUT, watcher.health().last_error)
        return watcher

    def _changed(self, *_args: object) -> None:
        self._on_change()

    # ----------------------------------------------------------------- answers

    def snapshot(self, gvrs: Iterable[GroupVersionResource]) -> Snapshot:
        """How the cluster serves each of ``gvrs`` now (those it does not serve are left out)."""
        served: dict[GroupVersionResource, Served] = {}
        for gvr in dict.fromkeys(gvrs):
            how = self.served(gvr)
            if how is not None:
                served[gvr] = how
        return Snapshot(served, cluster_list_forbidden=frozenset(
            gvr for gvr, allowed in self._cluster_list.items() if not allowed))

    def namespaces(self) -> list[str]:
        """The namespaces that exist (none known without the namespace watcher)."""
        if self._namespaces is None:
            return []
        return [str((obj.get("metadata") or {}).get("name", ""))
                for obj in self._namespaces.store.list()]

    def served(self, gvr: GroupVersionResource) -> Served | None:
        """How the cluster serves ``gvr`` now, or None (a CRD not installed, or not serving it)."""
        builtin = self._builtin.get(gvr)
        if builtin is not None:
            return builtin
        crd = self._crd_of(gvr)
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
            return Served(scope == "Namespaced", f"{uid}/{scope}")
        if gvr.group in self._crd_groups:
            return None  # a CRD's group: its CRD is gone
        try:  # not a CRD: an aggregated API, perhaps
            resource = self._discovery.find(gvr)
        except DiscoveryError as exc:
            logger.warning("controller %s: %s", self._name, exc)
            return None
        return None if resource is None else Served(resource.namespaced, "aggregated")

    def _crd_of(self, gvr: GroupVersionResource) -> KubeObject | None:
        if self._crds is None:
            return None
        crd = self._crds.store.get_by_name(f"{gvr.resource}.{gvr.group}")
        if crd is None:
            return None
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        if spec.get("group") != gvr.group or names.get("plural") != gvr.resource:
            return None
        return crd

    def gone(self, key: StreamKey, configs: Iterable[NormalizedConfig]) -> str:
        """Why the objects of a stopped informer no longer exist ("" when they may: its
        entries were removed, not its resource or namespace)."""
        if key.origin:
            served = self.served(key.gvr)
            if served is None:
                return "the cluster stopped serving it (its CRD was deleted or changed)"
            if served.origin != key.origin:
                return "its CRD was replaced"
        if key.namespace is not None and self._namespaces is not None and \
                self._namespaces.store.get_by_name(key.namespace) is None and \
                any(c.namespace_pattern for c in configs):
            return f"namespace {key.namespace} was deleted"
        return ""


def _slim_definition(obj: KubeObject) -> KubeObject:
    """What the watchers keep of a CRD or namespace: no managed fields, no schemas.

    A CRD's OpenAPI schemas are often most of its size, and the controller only reads
    names, scope, served versions and conditions.
    """
    strip_managed_fields(obj)
    for version in (obj.get("spec") or {}).get("versions") or ():
        if isinstance(version, dict):
            version.pop("schema", None)
    return obj
