"""The informer plan: which list/watch streams a set of configuration entries needs.

Contract: :func:`plan_informers` is a pure function of three inputs, the entries
(:class:`~faro.config.NormalizedConfig`), a :class:`Snapshot` of how the cluster serves
each resource (namespaced or cluster-scoped, the origin that served it, or not at all) and
the namespaces that exist (None: unknown). It returns a :class:`Plan`: the informers to
run, each keyed by the request it makes (:class:`StreamKey`) with the entries it serves
and why each is served the way it is, plus the warnings and the entries left unserved, as
data. No I/O, no threads, no logging.

The controller plans with a live snapshot and the namespaces its watcher holds; ``faro
validate`` plans without a cluster, with :data:`OFFLINE` (Kubernetes' own cluster-scoped
resources, everything else as its entry declares) and unknown namespaces, so a namespace
pattern stays one symbolic informer resolved at runtime.

The rules: entries asking for the same request (resource, namespace, label and field
selectors, origin) share one informer; an entry for one namespace (or a pattern) is served
by the all-namespaces informer of the same request when there is one (faro then filters
by namespace); a cluster-scoped resource gets one cluster-wide informer whatever the
namespace filter (a warning says so). Namespaces matched by a pattern, and two or more
namespaces listed with the same selectors, are served by one *shared* all-namespaces
informer that faro filters by namespace (one thread and one connection, however many
namespaces match), unless the snapshot says the credentials cannot list the resource
cluster-wide (:attr:`Snapshot.cluster_list_forbidden`): then each listed namespace gets its
own informer and a pattern becomes one informer per matching namespace. A single listed
namespace keeps its own informer (a namespaced Role is enough for it). Informers come in
the order their requests first appear in the entries.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace

from faro.config import NormalizedConfig
from faro.gvr import GroupVersionResource

__all__ = [
    "KUBERNETES_CLUSTER_SCOPED",
    "OFFLINE",
    "Plan",
    "PlanWarning",
    "PlannedEntry",
    "PlannedInformer",
    "Served",
    "Snapshot",
    "StreamKey",
    "plan_informers",
]


@dataclass(frozen=True, slots=True)
class Served:
    """How the cluster serves a resource: its scope, and what serves it.

    ``origin`` is empty for built-in resources, ``"<uid>/<scope>"`` for a CRD's (so a CRD
    deleted and created again, or one whose scope changed, gets fresh informers) and
    ``"aggregated"`` for an aggregated API's.
    """

    namespaced: bool
    origin: str = ""


@dataclass(frozen=True)
class Snapshot:
    """How the cluster serves each resource at one moment.

    ``served`` maps a resource to how it is served; a resource missing from it is not
    served, unless ``assume_served`` (planning without a cluster): then it counts as
    served, namespaced unless its entry declares ``scope: Cluster``.
    ``cluster_list_forbidden`` names the resources whose cluster-wide list is forbidden.
    """

    served: Mapping[GroupVersionResource, Served] = field(default_factory=dict)
    assume_served: bool = False
    cluster_list_forbidden: frozenset[GroupVersionResource] = frozenset()
    """Resources the credentials may not list in all namespaces: their namespaces are
    served by per-namespace informers instead of a shared one."""

    def lookup(self, entry: NormalizedConfig) -> Served | None:
        """How ``entry``'s resource is served, or None when it is not."""
        served = self.served.get(entry.gvr)
        if served is None and self.assume_served:
            return Served(entry.scope != "Cluster")
        return served


KUBERNETES_CLUSTER_SCOPED: frozenset[GroupVersionResource] = frozenset(
    GroupVersionResource.parse(text) for text in (
        "v1/namespaces", "v1/nodes", "v1/persistentvolumes", "v1/componentstatuses",
        "rbac.authorization.k8s.io/v1/clusterroles",
        "rbac.authorization.k8s.io/v1/clusterrolebindings",
        "storage.k8s.io/v1/storageclasses", "storage.k8s.io/v1/csidrivers",
        "storage.k8s.io/v1/csinodes", "storage.k8s.io/v1/volumeattachments",
        "apiextensions.k8s.io/v1/customresourcedefinitions",
        "admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
        "admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
        "apiregistration.k8s.io/v1/apiservices", "scheduling.k8s.io/v1/priorityclasses",
        "node.k8s.io/v1/runtimeclasses", "networking.k8s.io/v1/ingressclasses",
        "certificates.k8s.io/v1/certificatesigningrequests",
        "flowcontrol.apiserver.k8s.io/v1/flowschemas",
        "flowcontrol.apiserver.k8s.io/v1/prioritylevelconfigurations",
    ))
"""Kubernetes' own cluster-scoped resources that a configuration may name."""

OFFLINE = Snapshot({gvr: Served(namespaced=False) for gvr in KUBERNETES_CLUSTER_SCOPED},
                   assume_served=True)
"""What is known of scope without a cluster: Kubernetes' own cluster-scoped resources;
every other resource is taken as served, with the scope its entry declares."""


@dataclass(frozen=True, slots=True)
class StreamKey:
    """One list/watch request; entries with equal keys share one informer.

    ``namespace_pattern`` is set only when namespaces are unknown (planning without a
    cluster): the symbolic informer that becomes one per matching namespace at runtime.
    """

    gvr: GroupVersionResource
    namespace: str | None
    label_selector: str | None
    field_selector: str | None
    origin: str = ""
    namespace_pattern: str | None = None

    def __str__(self) -> str:
        text = str(self.gvr) + (f" in {self.namespace}" if self.namespace else "")
        if self.namespace_pattern is not None:
            text += f" in namespaces matching {self.namespace_pattern!r}"
        if self.label_selector:
            text += f" labels {self.label_selector!r}"
        if self.field_selector:
            text += f" fields {self.field_selector!r}"
        return text


@dataclass(frozen=True, slots=True)
class PlannedEntry:
    """An entry an informer serves, with notes on how (``only namespace x (filtered by
    faro)``, ``names matching 'p' (client-side)``...)."""

    config: NormalizedConfig
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PlannedInformer:
    """One informer to run: its request, its scope and the entries it serves (in order)."""

    key: StreamKey
    cluster_scoped: bool
    entries: tuple[PlannedEntry, ...]

    @property
    def configs(self) -> tuple[NormalizedConfig, ...]:
        """The entries' configurations, in configuration order."""
        return tuple(entry.config for entry in self.entries)

    @property
    def shared(self) -> bool:
        """Whether it watches all namespaces only to serve entries limited to some (listed
        namespaces, patterns): faro filters by namespace; it needs a cluster-wide list."""
        return self.key.namespace is None and self.key.namespace_pattern is None and \
            not self.cluster_scoped and all(
                entry.config.namespace is not None or entry.config.namespace_pattern is not None
                for entry in self.entries)

    @property
    def target(self) -> str:
        """Where it watches: ``in namespace x``, ``in all namespaces``, ``cluster-wide ...``."""
        key = self.key
        if key.namespace is not None:
            return f"in namespace {key.namespace}"
        if key.namespace_pattern is not None:
            return (f"in namespaces matching {key.namespace_pattern!r} (resolved at runtime: "
                    "one informer per matching namespace)")
        if self.cluster_scoped:
            return "cluster-wide (Cluster-scoped)"
        if not self.shared:
            return "in all namespaces"
        names = list(dict.fromkeys(e.config.namespace for e in self.entries
                                   if e.config.namespace is not None))
        patterns = list(dict.fromkeys(e.config.namespace_pattern for e in self.entries
                                      if e.config.namespace_pattern is not None))
        parts = []
        if names:
            parts.append(("namespace " if len(names) == 1 else "namespaces ") + ", ".join(names))
        if patterns:
            parts.append("namespaces matching " + ", ".join(repr(p) for p in patterns))
        return "in all namespaces, filtered by faro to " + " and ".join(parts)


@dataclass(frozen=True, slots=True)
class PlanWarning:
    """Something the user should hear about an entry (the controller logs it once)."""

    config: NormalizedConfig
    message: str


@dataclass(frozen=True, slots=True)
class Plan:
    """The informers to run (in order), the warnings, and the entries nothing serves."""

    informers: tuple[PlannedInformer, ...] = ()
    warnings: tuple[PlanWarning, ...] = ()
    unserved: tuple[NormalizedConfig, ...] = ()

    def by_key(self) -> dict[StreamKey, PlannedInformer]:
        """The informers by request."""
        return {informer.key: informer for informer in self.informers}


def plan_informers(entries: Iterable[NormalizedConfig], snapshot: Snapshot,
                   namespaces: Collection[str] | None) -> Plan:
    """The informers ``entries`` need when the cluster serves resources as ``snapshot`` says
    and ``namespaces`` exist (None: unknown, so a pattern stays one symbolic informer)."""
    wanted: list[tuple[StreamKey, NormalizedConfig, bool]] = []  # (key, entry, cluster-scoped)
    warnings: list[PlanWarning] = []
    unserved: list[NormalizedConfig] = []
    forbidden = snapshot.cluster_list_forbidden
    for entry in entries:
        served = snapshot.lookup(entry)
        if served is None:
            unserved.append(entry)
            continue
        base = StreamKey(entry.gvr, None, entry.label_selector, entry.field_selector,
                         served.origin)
        if not served.namespaced:
            if entry.namespace is not None or entry.namespace_pattern is not None:
                warnings.append(PlanWarning(entry, (
                    f"{entry.gvr} is cluster-scoped: the namespace filter does not apply; one "
                    "informer watches it cluster-wide")))
            keys = [base]
        elif entry.namespace_pattern is not None:
            if entry.gvr not in forbidden:
                keys = [base]  # shared: one informer in all namespaces, filtered by faro
            elif namespaces is None:
                keys = [replace(base, namespace_pattern=entry.namespace_pattern)]
            else:
                keys = [replace(base, namespace=ns) for ns in namespaces
                        if entry.matches_namespace(ns)]
        elif entry.namespace is not None:
            keys = [replace(base, namespace=entry.namespace)]
        else:
            keys = [base]
        wanted.extend((key, entry, not served.namespaced) for key in keys)

    # A namespace's (or a pattern's) request is served by the all-namespaces request with the
    # same selectors when some entry makes it, and so are two or more namespaces' requests
    # with the same selectors when the credentials may list the resource cluster-wide.
    everywhere = {key for key, _, _ in wanted
                  if key.namespace is None and key.namespace_pattern is None}
    listed: dict[StreamKey, set[str]] = {}
    for key, _, _ in wanted:
        if key.namespace is not None and key.gvr not in forbidden:
            listed.setdefault(replace(key, namespace=None), set()).add(key.namespace)
    everywhere.update(base for base, names in listed.items() if len(names) > 1)

    def serving(key: StreamKey) -> StreamKey:
        base = replace(key, namespace=None, namespace_pattern=None)
        return base if base in everywhere else key

    requested = {key for key, _, _ in wanted}
    grouped: dict[StreamKey, list[tuple[NormalizedConfig, bool]]] = {}
    for key, _, _ in wanted:  # each at the place its request (or its first served) appears
        if serving(key) == key or serving(key) not in requested:
            grouped.setdefault(serving(key), [])
    for key, entry, cluster_scoped in wanted:
        group = grouped[serving(key)]
        if not any(served is entry for served, _ in group):
            group.append((entry, cluster_scoped))
    informers = []
    for key, group in grouped.items():
        cluster_scoped = all(scoped for _, scoped in group)
        informers.append(PlannedInformer(key, cluster_scoped, tuple(
            PlannedEntry(entry, _notes(entry, key, cluster_scoped))
            for entry, _ in group)))
    return Plan(tuple(informers), tuple(warnings), tuple(unserved))


def _notes(entry: NormalizedConfig, key: StreamKey, cluster_scoped: bool) -> tuple[str, ...]:
    """How the informer of ``key`` serves ``entry``: what faro filters itself, and why."""
    notes: list[str] = []
    everywhere = key.namespace is None and key.namespace_pattern is None
    if cluster_scoped and (entry.namespace is not None or entry.namespace_pattern is not None):
        notes.append("its namespace filter does not apply: the resource is cluster-scoped "
                     "(watched cluster-wide, as the controller warns)")
    else:
        if entry.namespace is not None and key.namespace is None:
            notes.append(f"only namespace {entry.namespace} (filtered by faro)")
        if entry.namespace_pattern is not None and everywhere:
            notes.append(f"only namespaces matching {entry.namespace_pattern!r} (filtered by "
                         "faro)")
    if entry.name_pattern is not None:
        notes.append(f"names matching {entry.name_pattern!r} (client-side)")
    if entry.scope is not None:
        notes.append(f"scope {entry.scope}")
    return tuple(notes)
