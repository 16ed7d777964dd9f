"""The OpenAPI v3 documents the simulated server publishes.

kubectl reads ``/openapi/v3`` to learn, per kind, whether the server validates
fields itself (the ``fieldValidation`` query parameter on PATCH) and which patch
types it accepts. The documents describe exactly that: every served resource
with its operations, GVK extensions and parameters. They carry no schemas, so
kubectl's strategic-merge computation falls back to its compiled-in types for
built-in kinds and to JSON merge patches for custom resources, which is what it
does against a server without OpenAPI schemas.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import orjson

from faro.testing._resources import ResourceType

_PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
)


def gv_path(group: str, version: str) -> str:
    """The index key of a group/version: ``api/v1`` or ``apis/apps/v1``."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


def index(resources: Iterable[ResourceType]) -> dict[str, Any]:
    """The ``/openapi/v3`` discovery index, with content hashes in the URLs."""
    by_gv: dict[str, list[ResourceType]] = {}
    for rt in resources:
        by_gv.setdefault(gv_path(rt.group, rt.version), []).append(rt)
    paths = {}
    for path, types in sorted(by_gv.items()):
        digest = hashlib.sha256(orjson.dumps(document(types))).hexdigest()[:32].upper()
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": paths}


def document(resources: Iterable[ResourceType]) -> dict[str, Any]:
    """The OpenAPI v3 document of one group/version's resources."""
    paths: dict[str, Any] = {}
    for rt in sorted(resources, key=lambda r: r.plural):
        prefix = f"/apis/{rt.group}/{rt.version}" if rt.group else f"/api/{rt.version}"
        scope = f"{prefix}/namespaces/{{namespace}}" if rt.namespaced else prefix
        gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
        item_ops = {
            "get": _operation(rt, "read", gvk),
            "put": _operation(rt, "replace", gvk),
            "delete": _operation(rt, "delete", gvk),
            "patch": _patch_operation(rt, gvk),
        }
        paths[f"{scope}/{rt.plural}/{{name}}"] = item_ops
        paths[f"{scope}/{rt.plural}"] = {
            "get": _operation(rt, "list", gvk),
            "post": _operation(rt, "create", gvk),
        }
        if rt.has_status:
            paths[f"{scope}/{rt.plural}/{{name}}/status"] = {
                "get": _operation(rt, "read", gvk, "Status"),
                "put": _operation(rt, "replace", gvk, "Status"),
                "patch": _patch_operation(rt, gvk, "Status"),
            }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "unversioned"},
        "paths": paths,
        "components": {"schemas": {}},
    }


def _operation(
    rt: ResourceType, verb: str, gvk: dict[str, str], suffix: str = ""
) -> dict[str, Any]:
    action = {"read": "get", "replace": "put", "delete": "delete", "list": "list",
              "create": "post", "patch": "patch"}[verb]
    return {
        "operationId": f"{verb}{rt.kind}{suffix}",
        "parameters": _parameters(rt, verb),
        "responses": {"200": {"description": "OK"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
    }


def _patch_operation(rt: ResourceType, gvk: dict[str, str], suffix: str = "") -> dict[str, Any]:
    operation = _operation(rt, "patch", gvk, suffix)
    # The strategic type is accepted for built-in kinds but not listed: kubectl
    # computes strategic patches from OpenAPI schemas when it is listed, and these
    # documents carry none, so it must use its compiled-in types instead.
    operation["requestBody"] = {
        "content": {t: {"schema": {"type": "object"}} for t in _PATCH_TYPES},
        "required": True,
    }
    return operation


def _parameters(rt: ResourceType, verb: str) -> list[dict[str, Any]]:
    names = ["pretty"]
    if verb in ("create", "replace", "patch"):
        names += ["dryRun", "fieldManager", "fieldValidation"]
    if verb == "patch":
        names.append("force")
    if verb == "list":
        names += ["allowWatchBookmarks", "continue", "fieldSelector", "labelSelector", "limit",
                  "resourceVersion", "resourceVersionMatch", "sendInitialEvents",
                  "timeoutSeconds", "watch"]
    return [{"name": n, "in": "query", "schema": {"type": "string"}} for n in names]
