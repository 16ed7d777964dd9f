"""The resource types the simulated API server serves.

A :class:`ResourceType` describes one served resource at one group/version: its
kind, scope, verbs and short names, as discovery reports them. Built-in types are
constants; custom resources are derived from a CustomResourceDefinition with
:func:`resources_from_crd`. Instances are immutable and safe to share.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

ALL_VERBS: tuple[str, ...] = (
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
)
_NO_COLLECTION_DELETE = tuple(v for v in ALL_VERBS if v != "deletecollection")


@dataclass(frozen=True)
class ResourceType:
    """One resource served at one group/version.

    ``storage`` identifies where objects live: every served version of a custom
    resource shares one storage, and conversion between versions only rewrites
    ``apiVersion`` (the CRD ``None`` conversion strategy).
    """

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    has_status: bool = False
    custom: bool = False

    @property
    def api_version(self) -> str:
        """``v1`` for the core group, ``group/version`` otherwise."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def storage(self) -> tuple[str, str]:
        """The (group, plural) pair under which objects are stored."""
        return (self.group, self.plural)

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def scope(self) -> str:
        return "Namespaced" if self.namespaced else "Cluster"

    def discovery_entries(self) -> list[dict[str, Any]]:
        """Entries of this resource (and its status subresource) in an APIResourceList."""
        entry: dict[str, Any] = {
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(self.verbs),
        }
        if self.short_names:
            entry["shortNames"] = list(self.short_names)
        if self.categories:
            entry["categories"] = list(self.categories)
        entries = [entry]
        if self.has_status:
            entries.append(
                {
                    "name": f"{self.plural}/status",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": self.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
        return entries


def _builtin(
    group: str,
    version: str,
    plural: str,
    kind: str,
    *,
    namespaced: bool = True,
    short: tuple[str, ...] = (),
    all_category: bool = False,
    categories: tuple[str, ...] = (),
    status: bool = False,
    verbs: tuple[str, ...] = ALL_VERBS,
) -> ResourceType:
    return ResourceType(
        group=group,
        version=version,
        plural=plural,
        singular=kind.lower(),
        kind=kind,
        namespaced=namespaced,
        short_names=short,
        categories=("all",) if all_category else categories,
        verbs=verbs,
        has_status=status,
    )


BUILTIN_RESOURCES: tuple[ResourceType, ...] = (
    _builtin(
        "", "v1", "namespaces", "Namespace", namespaced=False, short=("ns",), status=True,
        verbs=_NO_COLLECTION_DELETE,
    ),
    _builtin("", "v1", "configmaps", "ConfigMap", short=("cm",)),
    _builtin("", "v1", "secrets", "Secret"),
    _builtin("", "v1", "services", "Service", short=("svc",), all_category=True, status=True),
    _builtin("", "v1", "pods", "Pod", short=("po",), all_category=True, status=True),
    _builtin("", "v1", "podtemplates", "PodTemplate"),
    _builtin("", "v1", "events", "Event", short=("ev",)),
    _builtin("", "v1", "serviceaccounts", "ServiceAccount", short=("sa",)),
    _builtin("", "v1", "endpoints", "Endpoints", short=("ep",)),
    _builtin("apps", "v1", "deployments", "Deployment", short=("deploy",), all_category=True,
             status=True),
    _builtin("apps", "v1", "replicasets", "ReplicaSet", short=("rs",), all_category=True,
             status=True),
    _builtin("apps", "v1", "statefulsets", "StatefulSet", short=("sts",), all_category=True,
             status=True),
    _builtin("apps", "v1", "daemonsets", "DaemonSet", short=("ds",), all_category=True,
             status=True),
    _builtin("batch", "v1", "jobs", "Job", all_category=True, status=True),
    _builtin("batch", "v1", "cronjobs", "CronJob", short=("cj",), all_category=True, status=True),
    _builtin("coordination.k8s.io", "v1", "leases", "Lease"),
    _builtin("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    _builtin("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
    _builtin("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False),
    _builtin("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding",
             namespaced=False),
    _builtin(
        "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition",
        namespaced=False, short=("crd", "crds"), categories=("api-extensions",), status=True,
    ),
)
"""Every built-in resource type, in the order discovery lists them."""

NAMESPACES = BUILTIN_RESOURCES[0]
CRDS = BUILTIN_RESOURCES[-1]

# Groups in kube-apiserver's discovery order (its group priorities; the core group is served
# separately under /api).
_BUILTIN_GROUP_ORDER = ("apps", "batch", "rbac.authorization.k8s.io", "apiextensions.k8s.io",
                        "coordination.k8s.io")


def resources_from_crd(crd: Mapping[str, Any]) -> list[ResourceType]:
    """The resource types a CRD serves: one per version with ``served: true``.

    The CRD is assumed valid (see :func:`crd_problems`).
    """
    spec = crd["spec"]
    names = spec["names"]
    served = []
    for version in spec["versions"]:
        if not version.get("served", False):
            continue
        subresources = version.get("subresources") or {}
        served.append(
            ResourceType(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                singular=names.get("singular") or names["kind"].lower(),
                kind=names["kind"],
                namespaced=spec["scope"] == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                has_status="status" in subresources,
                custom=True,
            )
        )
    return served


def crd_problems(crd: Mapping[str, Any]) -> list[str]:
    """Validation errors for a CustomResourceDefinition, as field-path messages.

    Covers what the simulator needs to serve the CRD: group, names, scope, and
    versions with exactly one storage version. An empty list means valid.
    """
    problems: list[str] = []
    spec = crd.get("spec")
    if not isinstance(spec, Mapping):
        return ["spec: Required value"]
    group = spec.get("group")
    names = spec.get("names")
    if not isinstance(group, str) or "." not in group:
        problems.append("spec.group: Invalid value: should be a domain with at least one dot")
    if not isinstance(names, Mapping):
        problems.append("spec.names: Required value")
        names = {}
    for field in ("plural", "kind"):
        if not isinstance(names.get(field), str) or not names.get(field):
            problems.append(f"spec.names.{field}: Required value")
    plural = names.get("plural")
    if isinstance(plural, str) and plural != plural.lower():
        problems.append("spec.names.plural: Invalid value: must be lowercase")
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        problems.append('spec.scope: Unsupported value: supported values: "Cluster", "Namespaced"')
    versions = spec.get("versions")
    if not isinstance(versions, list) or not versions:
        problems.append("spec.versions: Required value")
    else:
        storage = [v for v in versions if isinstance(v, Mapping) and v.get("storage")]
        if len(storage) != 1:
            problems.append("spec.versions: Invalid value: must have exactly one version marked "
                            "as storage version")
        for i, version in enumerate(versions):
            if not isinstance(version, Mapping) or not version.get("name"):
                problems.append(f"spec.versions[{i}].name: Required value")
    name = (crd.get("metadata") or {}).get("name")
    if not problems and name != f"{plural}.{group}":
        problems.append(f'metadata.name: Invalid value: "{name}": must be spec.names.plural'
                        "+\".\"+spec.group")
    return problems


def api_group_list(groups: Iterable[tuple[str, list[str]]]) -> dict[str, Any]:
    """An APIGroupList for (group, versions) pairs, versions in preference order.

    As from kube-apiserver, the groups in the list carry no ``kind`` and ``apiVersion``.
    """
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [api_group(name, versions, typed=False) for name, versions in groups],
    }


def api_group(name: str, versions: list[str], *, typed: bool = True) -> dict[str, Any]:
    """An APIGroup object; the first version is the preferred one."""
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    group: dict[str, Any] = {"kind": "APIGroup", "apiVersion": "v1"} if typed else {}
    group.update(name=name, versions=entries, preferredVersion=entries[0])
    return group


def group_order(group: str) -> tuple[int, str]:
    """Sort key listing built-in groups first, in the order the real server does."""
    if group in _BUILTIN_GROUP_ORDER:
        return (_BUILTIN_GROUP_ORDER.index(group), group)
    return (len(_BUILTIN_GROUP_ORDER), group)


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Kubernetes version ordering: GA > beta > alpha, higher numbers first.

    Returns a sort key where smaller sorts first (most preferred first).
    """
    match = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not match:
        return (3, 0, 0, version)
    major = int(match.group(1))
    stage = {"alpha": 2, "beta": 1, None: 0}[match.group(2)]
    minor = int(match.group(3) or 0)
    return (stage, -major, -minor, version)
