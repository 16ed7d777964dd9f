"""Server-managed metadata: the fields of ``metadata`` the API server sets, never the client.

Contract, as kube-apiserver's generic registry sets them:

- :data:`SERVER_METADATA` names them; a client's values for them are ignored on create and
  replaced by the stored ones on update.
- ``uid`` and ``creationTimestamp`` are set on create (:func:`stamp_new`); timestamps are
  the clock's wall-clock time, to the second (:func:`rfc3339`).
- ``generation`` exists only for the kinds that keep one (:func:`tracks_generation`) and is
  bumped by the changes their strategy counts (:func:`bumps_generation`).
- ``managedFields`` gets one entry per manager, operation and subresource, describing the
  fields the write set (:func:`record_manager`).
- An update that changes nothing but the resourceVersion it was sent with is no change
  (:func:`unchanged`).

Functions change only the object they are given.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from faro._names import KubeObject
from faro.testing._resources import CRDS, ResourceType
from faro.testing._storage import dumps

SERVER_METADATA = frozenset(
    {"uid", "resourceVersion", "creationTimestamp", "generation", "managedFields",
     "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"}
)
_CORE_KINDS_WITH_GENERATION = ("pods", "podtemplates")


def rfc3339(seconds: float) -> str:
    """Wall-clock ``seconds`` as the API server formats timestamps (UTC, second precision)."""
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def stamp_new(rt: ResourceType, metadata: dict[str, Any], now: str) -> None:
    """Set a new object's ``uid``, ``creationTimestamp`` (``now``) and first ``generation``."""
    metadata["uid"] = str(uuid.uuid4())
    metadata["creationTimestamp"] = now
    if tracks_generation(rt):
        metadata["generation"] = 1


def spec_of(obj: Mapping[str, Any]) -> KubeObject:
    """Everything of an object but its metadata, status and type."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def tracks_generation(rt: ResourceType) -> bool:
    """Whether the real server keeps ``metadata.generation`` for this kind.

    Workload kinds, CRDs, custom resources, and (since 1.33/1.35) Pods and
    PodTemplates do; configmaps, secrets, services, namespaces and the other
    simple kinds have none.
    """
    return rt.custom or rt is CRDS or rt.group in ("apps", "batch") or (
        rt.group == "" and rt.plural in _CORE_KINDS_WITH_GENERATION)


def bumps_generation(rt: ResourceType, new: Mapping[str, Any], old: Mapping[str, Any],
                     subresource: str) -> bool:
    """Whether an update increments ``metadata.generation``, per the kind's strategy."""
    if subresource == "status" or not tracks_generation(rt):
        return False
    if rt.custom:  # everything but metadata (status included when it is no subresource)
        ignored = ("metadata", "apiVersion")  # versions differ only in apiVersion here
        return {k: v for k, v in new.items() if k not in ignored} != \
            {k: v for k, v in old.items() if k not in ignored}
    if rt.group == "apps" and rt.plural == "deployments" and (
            new["metadata"].get("annotations") != old["metadata"].get("annotations")):
        return True  # annotations are copied to ReplicaSets, so they count as spec
    return spec_of(new) != spec_of(old)


def unchanged(new: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    """Whether an update changes nothing but the resourceVersion it was sent with."""
    if spec_of(new) != spec_of(old) or new.get("status") != old.get("status"):
        return False
    a = {k: v for k, v in new["metadata"].items() if k != "resourceVersion"}
    b = {k: v for k, v in old["metadata"].items() if k != "resourceVersion"}
    return a == b


def _fields_v1(value: Any, top: bool = False) -> KubeObject:
    """A FieldsV1 set describing the fields present in ``value``."""
    if not isinstance(value, dict):
        return {}
    out: KubeObject = {} if top else {".": {}}
    for k, v in value.items():
        if isinstance(v, dict):
            out[f"f:{k}"] = _fields_v1(v)
        elif isinstance(v, list) and v and all(isinstance(i, dict) and "name" in i for i in v):
            out[f"f:{k}"] = {
                "k:" + dumps({"name": i["name"]}).decode(): _fields_v1(i) for i in v
            }
        else:
            out[f"f:{k}"] = {}
    return out


def record_manager(
    rt: ResourceType,
    obj: KubeObject,
    old: Mapping[str, Any] | None,
    manager: str,
    operation: str,
    subresource: str,
    now: str,
) -> None:
    """Update ``metadata.managedFields`` for a write by ``manager`` at ``now``, as the server
    does."""
    if subresource == "status":
        managed_part = {"status": obj.get("status")} if "status" in obj else {}
    else:
        metadata = {k: v for k, v in obj["metadata"].items()
                    if k not in SERVER_METADATA and k not in ("name", "namespace",
                                                              "generateName")}
        managed_part = {k: v for k, v in spec_of(obj).items()}
        if metadata:
            managed_part["metadata"] = metadata
    entries = [
        e for e in (old or {}).get("metadata", {}).get("managedFields", [])
        if not (e.get("manager") == manager and e.get("operation") == operation
                and e.get("subresource", "") == subresource)
    ] if old is not None else []
    if managed_part:
        entry: KubeObject = {
            "manager": manager,
            "operation": operation,
            "apiVersion": rt.api_version,
            "time": now,
            "fieldsType": "FieldsV1",
            "fieldsV1": _fields_v1(managed_part, top=True),
        }
        if subresource:
            entry["subresource"] = subresource
        entries.append(entry)
    obj["metadata"]["managedFields"] = entries
