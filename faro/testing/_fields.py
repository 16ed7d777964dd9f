"""The fields each resource supports in field selectors, and their values for an object.

As on kube-apiserver, every resource supports ``metadata.name`` and
``metadata.namespace``; some built-in kinds support more (their registry
strategies' selectable fields). ``kubectl describe`` relies on this: it lists a
described object's Events with ``involvedObject.*`` field selectors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from faro.testing._resources import ResourceType

_Getter = Callable[[Mapping[str, Any]], str]


def _at(*path: str, default: str = "") -> _Getter:
    """A getter for the value at ``path``, rendered as the server renders it."""

    def get(obj: Mapping[str, Any]) -> str:
        value: Any = obj
        for key in path:
            if not isinstance(value, Mapping):
                return default
            value = value.get(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    return get


def _pod_ips(obj: Mapping[str, Any]) -> str:
    ips = (obj.get("status") or {}).get("podIPs") or []
    return ",".join(str(ip.get("ip", "")) for ip in ips if isinstance(ip, Mapping))


_EXTRA: dict[tuple[str, str], dict[str, _Getter]] = {
    ("", "events"): {
        "involvedObject.kind": _at("involvedObject", "kind"),
        "involvedObject.namespace": _at("involvedObject", "namespace"),
        "involvedObject.name": _at("involvedObject", "name"),
        "involvedObject.uid": _at("involvedObject", "uid"),
        "involvedObject.apiVersion": _at("involvedObject", "apiVersion"),
        "involvedObject.resourceVersion": _at("involvedObject", "resourceVersion"),
        "involvedObject.fieldPath": _at("involvedObject", "fieldPath"),
        "reason": _at("reason"),
        "reportingComponent": _at("reportingController"),  # the field's name differs
        "source": _at("source", "component"),
        "type": _at("type"),
    },
    ("", "pods"): {
        "spec.nodeName": _at("spec", "nodeName"),
        "spec.restartPolicy": _at("spec", "restartPolicy"),
        "spec.schedulerName": _at("spec", "schedulerName"),
        "spec.serviceAccountName": _at("spec", "serviceAccountName"),
        "spec.hostNetwork": _at("spec", "hostNetwork", default="false"),
        "status.phase": _at("status", "phase"),
        "status.podIP": _at("status", "podIP"),
        "status.podIPs": _pod_ips,
        "status.nominatedNodeName": _at("status", "nominatedNodeName"),
    },
    ("", "secrets"): {"type": _at("type", default="Opaque")},
    ("", "namespaces"): {"status.phase": _at("status", "phase")},
    ("apps", "replicasets"): {"status.replicas": _at("status", "replicas", default="0")},
    ("batch", "jobs"): {"status.successful": _at("status", "succeeded", default="0")},
}


def selectable(rt: ResourceType) -> tuple[str, ...]:
    """The field names ``rt`` supports in field selectors, metadata first."""
    extra = () if rt.custom else tuple(_EXTRA.get(rt.storage, {}))
    return ("metadata.name", "metadata.namespace", *extra)


def field_values(rt: ResourceType, obj: Mapping[str, Any]) -> dict[str, str]:
    """The values of ``obj``'s selectable fields, for matching a field selector."""
    metadata = obj.get("metadata") or {}
    values = {"metadata.name": str(metadata.get("name", "")),
              "metadata.namespace": str(metadata.get("namespace") or "")}
    if not rt.custom:
        for name, get in _EXTRA.get(rt.storage, {}).items():
            values[name] = get(obj)
    return values
