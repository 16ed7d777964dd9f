"""Admission: what a write must pass before it is stored, and the defaults it is given.

Contract, as kube-apiserver's decoding, validation and registry strategies behave:

- :func:`check_body` turns a request body into a private copy of the object, refusing one
  of another apiVersion or kind (400, in the decoder's words).
- Names follow the kind's rule (DNS-1123 subdomain; label for namespaces; DNS-1035 label
  for services, see :mod:`faro._names`); label keys and values and annotation keys and
  their total size are checked on every write outside ``/status``. One 422 Invalid lists
  every problem, in the real server's words.
- A namespaced object needs its namespace to exist and not be terminating (404, or 403 as
  the NamespaceLifecycle admission plugin answers).
- Defaults and conversions (:func:`normalize`, :func:`defaults_on_create`): Secrets'
  ``stringData`` folded into ``data``; Services' type, session affinity and cluster IP;
  Namespaces' name label, ``kubernetes`` finalizer and phase; ``generateName``.

Functions raise :class:`ApiError` and change only the object they are given.
"""

from __future__ import annotations

import base64
import copy
import uuid
from collections.abc import Mapping
from typing import Any

import orjson

from faro._names import (
    KubeObject,
    dns1035_label_errors,
    dns1123_label_errors,
    dns1123_subdomain_errors,
    label_key_errors,
    label_value_errors,
)
from faro.testing._errors import ApiError, invalid, not_found, qualified, status_details
from faro.testing._resources import BUILTIN_RESOURCES, NAMESPACES, ResourceType
from faro.testing._storage import Entry, Key

_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_ANNOTATIONS_LIMIT = 262144  # bytes of all annotation keys and values together


def check_body(rt: ResourceType, body: Mapping[str, Any]) -> KubeObject:
    """A private deep copy of a request body, with apiVersion and kind checked."""
    if not isinstance(body, Mapping):
        raise ApiError(400, "the body of the request must be a JSON object")
    try:  # what is stored is its JSON: a round trip copies it many times faster
        obj: KubeObject = orjson.loads(orjson.dumps(body))
    except orjson.JSONEncodeError:  # orjson refuses it (a Mapping that is no dict, ...)
        obj = copy.deepcopy(dict(body))
    api_version = obj.get("apiVersion") or rt.api_version
    kind = obj.get("kind") or rt.kind
    if api_version != rt.api_version:
        raise ApiError(400, f"the API version in the data ({api_version}) does not match the "
                       f"expected API version ({rt.api_version})")
    if kind != rt.kind:
        version = api_version.rpartition("/")[2]
        if rt.custom:
            raise ApiError(400, f"the kind in the data ({kind}) does not match the expected kind "
                           f"({rt.kind})")
        if any(r.api_version == api_version and r.kind == kind for r in BUILTIN_RESOURCES):
            why = (f"converting ({version}.{kind}) to ({_internal_group(rt.group)}.{rt.kind}): "
                   "unknown conversion")
        else:
            why = (f'no kind "{kind}" is registered for version "{api_version}" in scheme '
                   '"pkg/runtime/scheme.go:111"')
        raise ApiError(400, f'{kind} in version "{version}" cannot be handled as a {rt.kind}: '
                       f"{why}")
    obj["apiVersion"] = api_version
    obj["kind"] = kind
    metadata = obj.get("metadata")
    if metadata is None:
        metadata = obj["metadata"] = {}
    if not isinstance(metadata, dict):
        raise ApiError(400, "metadata must be an object")
    return obj


def _internal_group(group: str) -> str:
    """The Go package of a group's internal types, as decoding errors name it (core, apps)."""
    return group.split(".")[0] if group else "core"


def check_namespace(metadata: Mapping[str, Any], namespace: str | None) -> str:
    """The namespace of a namespaced object: the request's, which the body may repeat."""
    given = metadata.get("namespace")
    if namespace is None:
        if not given:
            raise ApiError(400, "the namespace of the object is required")
        return str(given)
    if given and given != namespace:
        raise ApiError(400, "the namespace of the provided object does not match the namespace "
                       "sent on the request")
    return namespace


def new_name(rt: ResourceType, metadata: dict[str, Any]) -> str:
    """A new object's name, made from ``generateName`` when it has none; 422 without either."""
    name = metadata.get("name") or ""
    if not name and metadata.get("generateName"):
        name = metadata["generateName"] + "".join(
            _GENERATE_ALPHABET[b % len(_GENERATE_ALPHABET)] for b in uuid.uuid4().bytes[:5]
        )
        metadata["name"] = name
    if not name:
        raise invalid(rt.kind, rt.group, "", [("metadata.name", "Required value: name or "
                                               "generateName is required")])
    return str(name)


def validate_new(rt: ResourceType, name: str, metadata: Mapping[str, Any]) -> None:
    """ObjectMeta validation of a new object: its name, labels and annotations.

    Every problem is reported in one 422, as from the real server.
    """
    if rt is NAMESPACES:
        problems = dns1123_label_errors(name)
    elif rt.plural == "services" and not rt.group:
        problems = dns1035_label_errors(name)
    else:
        problems = dns1123_subdomain_errors(name)
    causes = [("metadata.name", f'Invalid value: "{name}": {p}') for p in problems]
    causes += label_problems(metadata)
    if causes:
        raise invalid(rt.kind, rt.group, name, causes)


def validate_update(rt: ResourceType, name: str, metadata: Mapping[str, Any]) -> None:
    """ObjectMeta validation of an update: its labels and annotations (422)."""
    causes = label_problems(metadata)
    if causes:
        raise invalid(rt.kind, rt.group, name, causes)


def label_problems(metadata: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(field, message) for invalid label keys and values and annotation keys and size."""
    causes = []
    labels = metadata.get("labels")
    for key, value in (labels.items() if isinstance(labels, Mapping) else ()):
        causes += [("metadata.labels", f'Invalid value: "{key}": {p}')
                   for p in label_key_errors(key)]
        value = "" if value is None else str(value)
        causes += [("metadata.labels", f'Invalid value: "{value}": {p}')
                   for p in label_value_errors(value)]
    annotations = metadata.get("annotations")
    if isinstance(annotations, Mapping):
        size = 0
        for key, value in annotations.items():
            causes += [("metadata.annotations", f'Invalid value: "{key}": {p}')
                       for p in label_key_errors(str(key).lower())]
            size += len(str(key).encode()) + len(str(value or "").encode())
        if size > _ANNOTATIONS_LIMIT:
            causes.append(("metadata.annotations",
                           f"Too long: may not be more than {_ANNOTATIONS_LIMIT} bytes"))
    return causes


def check_namespace_open(rt: ResourceType, name: str, namespace: str,
                         entry: Entry | None) -> None:
    """Refuse a new object in a namespace that is missing (404) or terminating (403)."""
    if entry is None:
        raise not_found("namespaces", "", namespace)
    if entry.obj["metadata"].get("deletionTimestamp"):
        # As the NamespaceLifecycle admission plugin answers.
        details = status_details(name, rt.group, rt.plural, causes=[{
            "reason": "NamespaceTerminating",
            "message": f"namespace {namespace} is being terminated",
            "field": "metadata.namespace"}])
        raise ApiError(
            403,
            f'{qualified(rt.plural, rt.group)} "{name}" is forbidden: unable to create new '
            f"content in namespace {namespace} because it is being terminated",
            details=details,
        )


def normalize(rt: ResourceType, obj: KubeObject) -> None:
    """Conversions the real server applies on every write (Secret ``stringData``)."""
    if rt.group == "" and rt.plural == "secrets":
        string_data = obj.pop("stringData", None)
        if isinstance(string_data, Mapping) and string_data:
            data = obj.get("data")
            data = obj["data"] = dict(data) if isinstance(data, Mapping) else {}
            for k, v in string_data.items():
                data[k] = base64.b64encode(str(v).encode()).decode()


def defaults_on_create(rt: ResourceType, obj: KubeObject, objects: Mapping[Key, Entry]) -> None:
    """Fields the real server's strategies set on create, for the kinds that matter.

    ``objects`` are the stored objects of ``rt``: a Service gets a cluster IP none has.
    """
    if rt is NAMESPACES:
        labels = obj["metadata"].setdefault("labels", {})
        labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj["status"] = {"phase": "Active"}
    elif rt.group == "" and rt.plural == "secrets":
        obj.setdefault("type", "Opaque")
    elif rt.group == "" and rt.plural == "services":
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec["type"] == "ExternalName":  # a DNS alias: no cluster IP is allocated
            return
        if not spec.get("clusterIP"):
            used = {e.obj.get("spec", {}).get("clusterIP") for e in objects.values()}
            n = len(used) + 1
            while f"10.96.{n // 250}.{n % 250 + 1}" in used:
                n += 1
            spec["clusterIP"] = f"10.96.{n // 250}.{n % 250 + 1}"
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
