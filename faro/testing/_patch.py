"""The three PATCH bodies kube-apiserver accepts, applied to decoded JSON documents.

* :func:`apply_merge_patch` — JSON merge patch (RFC 7386,
  ``application/merge-patch+json``).
* :func:`apply_json_patch` — JSON patch (RFC 6902, ``application/json-patch+json``).
* :func:`apply_strategic_merge_patch` — Kubernetes strategic merge patch
  (``application/strategic-merge-patch+json``), as the API server applies the
  bodies that ``kubectl apply`` (client-side), ``label``, ``annotate``, ``edit``
  and ``patch`` send for built-in kinds.

Documents are plain JSON values as ``json`` or ``orjson`` decode them: ``dict``,
``list``, ``str``, ``int``, ``float``, ``bool`` and ``None``.

Contract shared by the three functions: they never mutate their arguments, and
the value they return shares no ``dict`` or ``list`` with them, so a caller may
change the result freely (the simulator stamps ``resourceVersion`` into it).
A patch that cannot be applied raises :class:`PatchError`, whose message says
why; the server turns it into a ``Status`` response.

Strategic merge patch needs to know, per field, whether a list merges and by
which key. :data:`BUILTIN_MERGE_KEYS` is that table for the built-in kinds the
simulator serves, taken from the ``patchStrategy``/``patchMergeKey`` struct tags
of k8s.io/api 1.32; :func:`strategic_merge_keys` looks a kind up. The merge
rules follow k8s.io/apimachinery/pkg/util/strategicpatch as the server runs it
(parallel lists merged, unmatched nulls ignored).
"""

from __future__ import annotations

import json
import re
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, Literal, TypeAlias

__all__ = [
    "BUILTIN_MERGE_KEYS",
    "FieldStrategy",
    "PatchError",
    "PatchSchema",
    "apply_json_patch",
    "apply_merge_patch",
    "apply_strategic_merge_patch",
    "strategic_merge_keys",
]


class PatchError(ValueError):
    """A patch is malformed or cannot be applied to the document.

    ``str(error)`` is a sentence fit for the ``message`` of a ``Status``.
    """


# --------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------


def _copy(value: Any) -> Any:
    """A deep copy of a JSON value (containers are new, scalars are shared)."""
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


def _render(value: Any) -> str:
    """A compact JSON rendering of ``value`` for error messages."""
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=repr)
    except ValueError:  # circular structure: not JSON, but still worth a message
        text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def _json_equal(left: Any, right: Any) -> bool:
    """Whether two JSON values are equal as JSON (``true`` is not ``1``; ``1`` is ``1.0``)."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, (int, float)) and isinstance(right, (int, float)):
        return left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(
            _json_equal(item, right[key]) for key, item in left.items()
        )
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(
            _json_equal(a, b) for a, b in zip(left, right, strict=True)
        )
    return type(left) is type(right) and bool(left == right)


# --------------------------------------------------------------------------
# JSON merge patch (RFC 7386)
# --------------------------------------------------------------------------


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 JSON merge patch to ``target`` and return the result.

    A ``patch`` that is not an object replaces ``target`` wholesale. An object
    patch is merged member by member: ``null`` removes the member, an object
    merges recursively (into ``{}`` when the target member is absent or not an
    object, so nulls nested in it vanish too), anything else — arrays included —
    replaces the member. A non-object ``target`` counts as ``{}``.

    Never raises: every JSON value is a valid merge patch.
    """
    if not isinstance(patch, dict):
        return _copy(patch)
    result: dict[str, Any] = _copy(target) if isinstance(target, dict) else {}
    _merge_patch_into(result, patch)
    return result


def _merge_patch_into(result: dict[str, Any], patch: dict[str, Any]) -> None:
    """Merge object ``patch`` into ``result``, which this call owns and changes."""
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            member = result.get(key)
            if not isinstance(member, dict):
                member = {}
            _merge_patch_into(member, value)
            result[key] = member
        else:
            result[key] = _copy(value)


# --------------------------------------------------------------------------
# JSON patch (RFC 6902)
# --------------------------------------------------------------------------

_ARRAY_INDEX: Final = re.compile(r"0|[1-9][0-9]*")
_BAD_ESCAPE: Final = re.compile(r"~(?![01])")


def apply_json_patch(target: Any, ops: Any) -> Any:
    """Apply an RFC 6902 JSON patch (a list of operations) and return the result.

    Supports ``add``, ``remove``, ``replace``, ``move``, ``copy`` and ``test``
    with RFC 6901 JSON pointers (``~0`` for ``~``, ``~1`` for ``/``; ``-`` as the
    array index one past the end, valid for ``add`` and as a ``move``/``copy``
    destination). Operations apply in order; the patch is atomic: when one
    fails, :class:`PatchError` names it and nothing is returned.

    Raises :class:`PatchError` when ``ops`` is not a list of operation objects,
    an operation lacks a member or names an unknown op, a pointer is malformed,
    a location does not exist (for ``add``: its parent), an array index is out
    of range, an object is moved into its own child, or a ``test`` fails.
    """
    if not isinstance(ops, list):
        raise PatchError(f"a JSON patch must be an array of operations, not {_render(ops)}")
    document = _copy(target)
    for number, operation in enumerate(ops):
        document = _apply_operation(document, operation, number)
    return document


def _apply_operation(document: Any, operation: Any, number: int) -> Any:
    """Apply one JSON patch operation to ``document`` (owned) and return the new root."""
    if not isinstance(operation, dict):
        raise PatchError(f"JSON patch operation {number} is not an object: {_render(operation)}")
    name = operation.get("op")
    where = f"JSON patch operation {number} ({name})"
    if name not in ("add", "remove", "replace", "move", "copy", "test"):
        raise PatchError(f"JSON patch operation {number} has unknown op {_render(name)}")
    path = _pointer(operation, "path", where)
    if name == "remove":
        if not path:
            raise PatchError(f"{where}: cannot remove the whole document")
        _remove(document, path, where)
        return document
    if name in ("move", "copy"):
        source = _pointer(operation, "from", where)
        if name == "copy":
            return _add(document, path, _copy(_locate(document, source, where)), where)
        if source == path:
            _locate(document, source, where)
            return document
        if path[: len(source)] == source:
            raise PatchError(f"{where}: cannot move {_unparse(source)} into its own child")
        return _add(document, path, _remove(document, source, where), where)
    if "value" not in operation:
        raise PatchError(f"{where}: missing member \"value\"")
    value = operation["value"]
    if name == "add":
        return _add(document, path, _copy(value), where)
    if name == "replace":
        return _replace(document, path, _copy(value), where)
    actual = _locate(document, path, where)
    if not _json_equal(actual, value):
        raise PatchError(
            f"{where}: test failed: {_unparse(path)} is {_render(actual)}, not {_render(value)}"
        )
    return document


def _pointer(operation: dict[str, Any], member: str, where: str) -> list[str]:
    """The reference tokens of the JSON pointer in ``operation[member]``."""
    if member not in operation:
        raise PatchError(f"{where}: missing member {_render(member)}")
    text = operation[member]
    if not isinstance(text, str):
        raise PatchError(f"{where}: {member} must be a string, not {_render(text)}")
    if text == "":
        return []
    if not text.startswith("/"):
        raise PatchError(f"{where}: JSON pointer {_render(text)} must be empty or start with \"/\"")
    if _BAD_ESCAPE.search(text):
        raise PatchError(
            f"{where}: JSON pointer {_render(text)} has a \"~\" not followed by 0 or 1"
        )
    return [token.replace("~1", "/").replace("~0", "~") for token in text[1:].split("/")]


def _unparse(tokens: list[str]) -> str:
    """The JSON pointer text of ``tokens``, quoted for messages."""
    return _render("".join("/" + t.replace("~", "~0").replace("/", "~1") for t in tokens))


def _index(token: str, length: int, where: str, tokens: list[str], *, end_ok: bool) -> int:
    """The array index ``token`` names in an array of ``length`` items."""
    if token == "-" and end_ok:
        return length
    if not _ARRAY_INDEX.fullmatch(token):
        raise PatchError(f"{where}: {_render(token)} in {_unparse(tokens)} is not an array index")
    index = int(token)
    if index > length or (index == length and not end_ok):
        raise PatchError(
            f"{where}: index {index} in {_unparse(tokens)} is out of range for an array "
            f"of {length} items"
        )
    return index


def _locate(document: Any, tokens: list[str], where: str) -> Any:
    """The value at ``tokens``; raises when it does not exist."""
    node = document
    for depth, token in enumerate(tokens):
        if isinstance(node, dict):
            if token not in node:
                raise PatchError(f"{where}: path {_unparse(tokens[: depth + 1])} does not exist")
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(token, len(node), where, tokens[: depth + 1], end_ok=False)]
        else:
            raise PatchError(
                f"{where}: path {_unparse(tokens[: depth + 1])} does not exist "
                f"({_unparse(tokens[:depth])} is not an object or array)"
            )
    return node


def _parent(document: Any, tokens: list[str], where: str) -> dict[str, Any] | list[Any]:
    """The container holding the location ``tokens`` (which is not the root)."""
    parent = _locate(document, tokens[:-1], where)
    if not isinstance(parent, (dict, list)):
        raise PatchError(
            f"{where}: cannot address {_unparse(tokens)}: "
            f"{_unparse(tokens[:-1])} is not an object or array"
        )
    return parent


def _add(document: Any, tokens: list[str], value: Any, where: str) -> Any:
    """RFC 6902 ``add``: insert into an array, set an object member, or replace the root."""
    if not tokens:
        return value
    parent = _parent(document, tokens, where)
    if isinstance(parent, dict):
        parent[tokens[-1]] = value
    else:
        parent.insert(_index(tokens[-1], len(parent), where, tokens, end_ok=True), value)
    return document


def _remove(document: Any, tokens: list[str], where: str) -> Any:
    """RFC 6902 ``remove`` of an existing, non-root location; returns the removed value."""
    parent = _parent(document, tokens, where)
    if isinstance(parent, dict):
        if tokens[-1] not in parent:
            raise PatchError(f"{where}: path {_unparse(tokens)} does not exist")
        return parent.pop(tokens[-1])
    return parent.pop(_index(tokens[-1], len(parent), where, tokens, end_ok=False))


def _replace(document: Any, tokens: list[str], value: Any, where: str) -> Any:
    """RFC 6902 ``replace`` of an existing location (the root included)."""
    if not tokens:
        return value
    parent = _parent(document, tokens, where)
    if isinstance(parent, dict):
        if tokens[-1] not in parent:
            raise PatchError(f"{where}: path {_unparse(tokens)} does not exist")
        parent[tokens[-1]] = value
    else:
        parent[_index(tokens[-1], len(parent), where, tokens, end_ok=False)] = value
    return document


# --------------------------------------------------------------------------
# Strategic merge patch: the per-kind field table
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldStrategy:
    """How strategic merge patch treats one field (Go tags ``patchStrategy``/``patchMergeKey``).

    ``strategy`` is ``"merge"`` (lists merge: lists of objects by ``merge_key``,
    lists of scalars as sets), ``"replace"`` (objects are replaced, not merged)
    or ``""`` (the default: objects merge, lists are replaced atomically).
    ``retain_keys`` records the ``retainKeys`` strategy; it only shapes the
    patches clients compute — the server honours a ``$retainKeys`` directive
    wherever one appears.
    """

    strategy: Literal["merge", "replace", ""] = ""
    merge_key: str | None = None
    retain_keys: bool = False


PatchSchema: TypeAlias = Mapping[str, FieldStrategy]
"""Field strategies by dotted field path from the object root, e.g.
``"spec.template.spec.containers.env"``. List items add no path segment, so the
fields of each container sit under ``...containers.<field>``. Fields not listed
get the default strategy."""

_MERGE_SET: Final = FieldStrategy("merge")


def _by(merge_key: str, *, retain_keys: bool = False) -> FieldStrategy:
    """A list of objects merged by ``merge_key``."""
    return FieldStrategy("merge", merge_key, retain_keys)


def _under(prefix: str, fields: Mapping[str, FieldStrategy]) -> dict[str, FieldStrategy]:
    """``fields`` with their paths moved under ``prefix``."""
    return {f"{prefix}.{path}": strategy for path, strategy in fields.items()}


# Building blocks of BUILTIN_MERGE_KEYS, read-only like it.
_OBJECT_META: Final[Mapping[str, FieldStrategy]] = MappingProxyType({
    "finalizers": _MERGE_SET,
    "ownerReferences": _by("uid"),
})

# core/v1 Container; EphemeralContainer has the same tagged fields.
_CONTAINER: Final[Mapping[str, FieldStrategy]] = MappingProxyType({
    "ports": _by("containerPort"),
    "env": _by("name"),
    "volumeMounts": _by("mountPath"),
    "volumeDevices": _by("devicePath"),
})

# core/v1 PodSpec. Lists not named here (tolerations, readinessGates, ...) are atomic.
_POD_SPEC: Final[Mapping[str, FieldStrategy]] = MappingProxyType({
    "containers": _by("name"),
    **_under("containers", _CONTAINER),
    "initContainers": _by("name"),
    **_under("initContainers", _CONTAINER),
    "ephemeralContainers": _by("name"),
    **_under("ephemeralContainers", _CONTAINER),
    "volumes": _by("name", retain_keys=True),
    "imagePullSecrets": _by("name"),
    "hostAliases": _by("ip"),
    "topologySpreadConstraints": _by("topologyKey"),
    "schedulingGates": _by("name"),
    "resourceClaims": _by("name", retain_keys=True),
})

# core/v1 PodTemplateSpec, as embedded in workload specs.
_POD_TEMPLATE: Final[Mapping[str, FieldStrategy]] = MappingProxyType({
    **_under("metadata", _OBJECT_META),
    **_under("spec", _POD_SPEC),
})

_STATUS_CONDITIONS: Final[Mapping[str, FieldStrategy]] = MappingProxyType(
    {"status.conditions": _by("type")}
)


def _schema(*parts: Mapping[str, FieldStrategy]) -> PatchSchema:
    """A kind's read-only schema: object metadata plus ``parts``."""
    fields = _under("metadata", _OBJECT_META)
    for part in parts:
        fields.update(part)
    return MappingProxyType(fields)


_METADATA_ONLY: Final = _schema()
_WORKLOAD: Final = _schema(_under("spec.template", _POD_TEMPLATE), _STATUS_CONDITIONS)

BUILTIN_MERGE_KEYS: Final[dict[tuple[str, str], PatchSchema]] = {
    ("", "Namespace"): _schema(_STATUS_CONDITIONS),
    ("", "ConfigMap"): _METADATA_ONLY,
    ("", "Secret"): _METADATA_ONLY,
    ("", "Service"): _schema({"spec.ports": _by("port")}, _STATUS_CONDITIONS),
    ("", "Pod"): _schema(
        _under("spec", _POD_SPEC),
        _STATUS_CONDITIONS,
        {
            "status.podIPs": _by("ip"),
            "status.hostIPs": _by("ip"),
            "status.resourceClaimStatuses": _by("name", retain_keys=True),
        },
    ),
    ("", "PodTemplate"): _schema(_under("template", _POD_TEMPLATE)),
    ("", "Event"): _METADATA_ONLY,
    ("events.k8s.io", "Event"): _METADATA_ONLY,
    ("", "ServiceAccount"): _schema({"secrets": _by("name")}),
    ("", "Endpoints"): _METADATA_ONLY,
    ("apps", "Deployment"): _schema(
        _WORKLOAD, {"spec.strategy": FieldStrategy(retain_keys=True)}
    ),
    ("apps", "ReplicaSet"): _WORKLOAD,
    ("apps", "StatefulSet"): _WORKLOAD,
    ("apps", "DaemonSet"): _WORKLOAD,
    ("batch", "Job"): _WORKLOAD,
    ("batch", "CronJob"): _schema(
        _under("spec.jobTemplate.metadata", _OBJECT_META),
        _under("spec.jobTemplate.spec.template", _POD_TEMPLATE),
    ),
    ("coordination.k8s.io", "Lease"): _METADATA_ONLY,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): _METADATA_ONLY,
}
"""Strategic-merge field strategies of the built-in kinds, by (API group, kind).

The core group is ``""``. Lists the Go types leave untagged — tolerations,
Endpoints subsets, Service status load balancer ingress, CRD conditions,
ServiceAccount imagePullSecrets, ... — are replaced atomically."""


def strategic_merge_keys(group: str, kind: str) -> PatchSchema | None:
    """The strategic-merge schema of built-in kind ``(group, kind)``.

    ``None`` means the kind has none (a custom resource): the real server
    refuses strategic merge patches for those with 415 UnsupportedMediaType.
    """
    return BUILTIN_MERGE_KEYS.get((group, kind))


# --------------------------------------------------------------------------
# Strategic merge patch: applying
# --------------------------------------------------------------------------

_DIRECTIVE: Final = "$patch"
_RETAIN_KEYS: Final = "$retainKeys"
_SET_ELEMENT_ORDER: Final = "$setElementOrder"
_DELETE_FROM_PRIMITIVE_LIST: Final = "$deleteFromPrimitiveList"

_Kind: TypeAlias = Literal["map", "scalar"]


def apply_strategic_merge_patch(
    target: dict[str, Any], patch: dict[str, Any], merge_keys: PatchSchema
) -> dict[str, Any]:
    """Apply a Kubernetes strategic merge patch to object ``target``; return the result.

    ``merge_keys`` describes the kind's fields (see :data:`PatchSchema`,
    :func:`strategic_merge_keys`). The rules, as kube-apiserver applies them:

    * Objects merge recursively; a ``null`` member deletes the key. Values new
      to the target are taken from the patch without their nulls.
    * Lists with strategy ``merge`` and a merge key merge item by item on that
      key (a matching item merges recursively, a new one is added); lists of
      scalars with strategy ``merge`` are merged as sets. Every other list is
      replaced by the patch's list.
    * Merged lists keep the patch's order for the patch's items and the
      target's order for the rest, as upstream interleaves them;
      ``$setElementOrder/<field>`` (a list of merge-key stubs or scalars) sets
      the final order of the items it names.
    * ``$patch: replace`` in an object replaces the object with the rest of the
      patch object; ``$patch: delete`` makes it ``{}`` (``$patch: delete`` in a
      value new to the target drops the key). As a list item,
      ``{"<key>": v, "$patch": "delete"}`` removes every item whose merge key is
      ``v`` and ``{"$patch": "replace"}`` makes the list the patch's other items.
      ``$patch: merge`` is rejected, as upstream does.
    * ``$deleteFromPrimitiveList/<field>: [...]`` removes those scalars from the
      list ``<field>`` (absent lists stay absent).
    * ``$retainKeys: [...]`` removes every key of the target object not listed;
      the patch object may only set listed keys.

    Raises :class:`PatchError` for malformed directives, list items without
    their merge key, mixed or nested lists, and ``$setElementOrder`` lists that
    disagree with the order of the patch's list.
    """
    if not isinstance(target, dict) or not isinstance(patch, dict):
        raise PatchError("a strategic merge patch and its target must be JSON objects")
    return _merge_map(_copy(target), patch, merge_keys, "")


def _join(path: str, key: str) -> str:
    """The dotted path of field ``key`` of the object at ``path``."""
    return f"{path}.{key}" if path else key


def _where(path: str) -> str:
    """``path`` named for an error message."""
    return path or "the object root"


def _clean(value: Any) -> tuple[Any, bool]:
    """A copy of patch ``value`` fit to store where the target had nothing to merge with.

    Drops nulls from objects, objects carrying ``$patch`` (wherever nested) and
    the other directive keys, as the server's decode into typed objects would.
    The flag is false when ``value`` itself is a ``$patch`` object and the key
    or list item holding it must go.
    """
    if isinstance(value, dict):
        if _DIRECTIVE in value:
            return None, False
        result: dict[str, Any] = {}
        for key, item in value.items():
            if item is None or _is_directive_key(key):
                continue
            cleaned, keep = _clean(item)
            if keep:
                result[key] = cleaned
        return result, True
    if isinstance(value, list):
        items = []
        for item in value:
            cleaned, keep = _clean(item)
            if keep:
                items.append(cleaned)
        return items, True
    return value, True


def _is_directive_key(key: str) -> bool:
    """Whether object key ``key`` is a strategic-merge directive rather than a field."""
    return (
        key in (_DIRECTIVE, _RETAIN_KEYS)
        or key.startswith(_SET_ELEMENT_ORDER)
        or key.startswith(_DELETE_FROM_PRIMITIVE_LIST)
    )


def _directive_field(key: str, prefix: str) -> str:
    """The field a ``<prefix>/<field>`` directive key names."""
    head, slash, field = key.partition("/")
    if not slash or head != prefix:
        what = "setElementOrder list" if prefix == _SET_ELEMENT_ORDER else "primitive list"
        raise PatchError(f"invalid patch format of {what}: {_render(key)}")
    return field


def _merge_map(
    original: dict[str, Any], patch: dict[str, Any], schema: PatchSchema, path: str
) -> dict[str, Any]:
    """Merge ``patch`` into ``original``, which this call owns and may change; return the result."""
    if _DIRECTIVE in patch:
        directive = patch[_DIRECTIVE]
        if directive == "replace":
            replaced, _ = _clean({k: v for k, v in patch.items() if k != _DIRECTIVE})
            return dict(replaced)
        if directive == "delete":
            return {}
        raise PatchError(
            f"{_where(path)}: unknown patch type {_render(directive)} in map {_render(patch)}"
        )
    if _RETAIN_KEYS in patch:
        _retain_keys(original, patch, path)
    done = _set_element_order(original, patch, schema, path)
    deletions: list[tuple[str, Any]] = []
    for key, value in patch.items():
        if key in done or key == _RETAIN_KEYS:
            continue
        if key.startswith(_DELETE_FROM_PRIMITIVE_LIST):
            deletions.append((_directive_field(key, _DELETE_FROM_PRIMITIVE_LIST), value))
            continue
        _merge_field(original, key, value, schema, path, delete_list=False)
    # Upstream visits keys in random order; deleting after adding is the
    # deterministic choice that lets a patch both add and remove set items.
    for key, value in deletions:
        _merge_field(original, key, value, schema, path, delete_list=True)
    return original


def _merge_field(
    original: dict[str, Any],
    key: str,
    value: Any,
    schema: PatchSchema,
    path: str,
    *,
    delete_list: bool,
) -> None:
    """Merge patch member ``key: value`` into ``original`` (``delete_list``: a parallel list)."""
    if value is None:
        original.pop(key, None)
        return
    current: Any = original.get(key)
    both_maps = isinstance(current, dict) and isinstance(value, dict)
    both_lists = isinstance(current, list) and isinstance(value, list)
    if not (both_maps or both_lists):
        if delete_list:
            return  # nothing to delete from
        cleaned, keep = _clean(value)
        if keep:
            original[key] = cleaned
        else:
            original.pop(key, None)
        return
    field_path = _join(path, key)
    field = schema.get(field_path)
    if both_maps:
        if field is not None and field.strategy == "replace":
            original[key] = _clean(value)[0]
        else:
            original[key] = _merge_map(current, value, schema, field_path)
    else:
        original[key] = _merge_list_field(
            current, value, field, schema, field_path, delete_list=delete_list
        )


def _merge_list_field(
    original: list[Any],
    patch: list[Any],
    field: FieldStrategy | None,
    schema: PatchSchema,
    path: str,
    *,
    delete_list: bool,
) -> list[Any]:
    """Merge or replace list ``original`` (owned) with ``patch`` per the field's strategy."""
    if delete_list or (field is not None and field.strategy == "merge"):
        merge_key = field.merge_key if field is not None else None
        merged, _ = _merge_list(original, patch, merge_key, schema, path, delete_list=delete_list)
        return merged
    return list(_clean(patch)[0])


def _merge_list(
    original: list[Any],
    patch: list[Any],
    merge_key: str | None,
    schema: PatchSchema,
    path: str,
    *,
    delete_list: bool,
) -> tuple[list[Any], list[Any]]:
    """Merge list ``patch`` into list ``original`` (owned) with strategy ``merge``.

    Returns the merged list and the ranking a ``$setElementOrder`` on the same
    field then uses for the items it does not name. Upstream ranks them by the
    target list's storage, which its in-place deletions compact and its appends
    refill: new items take the slots of deleted ones.
    """
    kind = _element_kind(path, original, patch)
    if kind is None:  # both empty
        return original, original
    if kind == "scalar":
        if delete_list:
            doomed = {_scalar_key(item) for item in patch}
            return [item for item in original if _scalar_key(item) not in doomed], original
        server, plain = original, patch
        merged = _deduplicate([*original, *patch])
        ranking = original
    else:
        if not merge_key:
            raise PatchError(f"{_where(path)}: cannot merge a list of objects without a merge key")
        server, plain, replaced = _list_directives(original, patch, merge_key, path)
        merged = _merge_by_key(server, plain, merge_key, schema, path)
        ranking = original if replaced else merged[: len(original)]
    return _order(merged, plain, server, merge_key, kind, path), ranking


def _list_directives(
    original: list[Any], patch: list[Any], merge_key: str, path: str
) -> tuple[list[Any], list[Any], bool]:
    """Apply the ``$patch`` items of a patch list of objects.

    Returns the target list left by them, the patch's other items, and whether
    a ``$patch: replace`` item made those other items the whole list.
    """
    plain: list[Any] = []
    replace = False
    for item in patch:
        if _DIRECTIVE not in item:
            plain.append(item)
            continue
        directive = item[_DIRECTIVE]
        if directive == "delete":
            if merge_key not in item:
                raise PatchError(
                    f"{_where(path)}: {_render(item)} does not contain declared merge key "
                    f"{_render(merge_key)}"
                )
            doomed = _scalar_key(item[merge_key])
            original = [
                kept
                for kept in original
                if merge_key not in kept or _scalar_key(kept[merge_key]) != doomed
            ]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise PatchError(f"{_where(path)}: merging lists cannot yet be specified in the patch")
        else:
            raise PatchError(
                f"{_where(path)}: unknown patch type {_render(directive)} in map {_render(item)}"
            )
    if replace:
        return list(_clean(plain)[0]), [], True
    return original, plain, False


def _merge_by_key(
    original: list[Any], patch: list[Any], merge_key: str, schema: PatchSchema, path: str
) -> list[Any]:
    """Merge each patch object into the first target object with its merge key, or append it."""
    merged = list(original)
    for item in patch:
        if merge_key not in item:
            raise PatchError(
                f"{_where(path)}: {_render(item)} does not contain declared merge key "
                f"{_render(merge_key)}"
            )
        wanted = _scalar_key(item[merge_key])
        for position, existing in enumerate(merged):
            if merge_key in existing and _scalar_key(existing[merge_key]) == wanted:
                merged[position] = _merge_map(existing, item, schema, path)
                break
        else:
            merged.append(_clean(item)[0])
    return merged


def _set_element_order(
    original: dict[str, Any], patch: dict[str, Any], schema: PatchSchema, path: str
) -> set[str]:
    """Apply every ``$setElementOrder/<field>`` of ``patch`` together with ``<field>``.

    Returns the patch keys consumed (directives and the lists they ordered).
    """
    done: set[str] = set()
    for key, order in patch.items():
        if not key.startswith(_SET_ELEMENT_ORDER):
            continue
        done.add(key)
        field = _directive_field(key, _SET_ELEMENT_ORDER)
        field_path = _join(path, field)
        if not isinstance(order, list):
            raise PatchError(f"{_where(path)}: {key} must be a list, not {_render(order)}")
        current = _list_member(original, field, field_path)
        patch_list = _list_member(patch, field, field_path)
        strategy = schema.get(field_path)
        merge_key = strategy.merge_key if strategy is not None else None
        _check_order(patch_list or [], order, merge_key, field_path)
        if current is None and patch_list is None:
            continue
        done.add(field)
        merged: list[Any]
        ranking = current or []
        if patch_list is None:
            merged = ranking
        elif current is None:
            merged = _clean(patch_list)[0]
        elif strategy is not None and strategy.strategy == "merge":
            merged, ranking = _merge_list(
                current, patch_list, merge_key, schema, field_path, delete_list=False
            )
        else:
            merged = _clean(patch_list)[0]
        kind = _element_kind(field_path, current or [], patch_list or [])
        if kind is None:
            original[field] = merged
            continue
        if kind == "map" and not merge_key:
            raise PatchError(
                f"{_where(field_path)}: cannot order a list of objects without a merge key"
            )
        original[field] = _order(merged, order, ranking, merge_key, kind, field_path)
    return done


def _list_member(document: dict[str, Any], field: str, path: str) -> list[Any] | None:
    """``document[field]``, which must be a list when present; ``None`` when absent."""
    if field not in document:
        return None
    value = document[field]
    if not isinstance(value, list):
        raise PatchError(f"{_where(path)}: expected a list, not {_render(value)}")
    return value


def _check_order(
    patch_list: list[Any], order: list[Any], merge_key: str | None, path: str
) -> None:
    """Check that the patch list's items appear in ``$setElementOrder`` in the same order.

    Items carrying ``$patch: delete`` are ignored; the other items must be a
    subsequence of ``order``.
    """
    if not order or not patch_list:
        return
    items = patch_list
    if merge_key:
        for item in patch_list:
            if not isinstance(item, dict):
                raise PatchError(f"{_where(path)}: expected an object, not {_render(item)}")
        items = [item for item in patch_list if item.get(_DIRECTIVE) != "delete"]
    position = 0
    for entry in order:
        while (
            position < len(items) and isinstance(items[position], dict)
            and _DIRECTIVE in items[position]
        ):
            position += 1
        if position == len(items):
            return
        if _same_item(items[position], entry, merge_key, path):
            position += 1
    if position < len(items):
        raise PatchError(
            f"{_where(path)}: the order in patch list {_render(patch_list)} doesn't match "
            f"$setElementOrder list {_render(order)}"
        )


def _same_item(left: Any, right: Any, merge_key: str | None, path: str) -> bool:
    """Whether two list items are the same item (equal merge keys, or equal scalars)."""
    if not merge_key:
        return _scalar_key(left) == _scalar_key(right)
    return _item_key(left, merge_key, "map", path) == _item_key(right, merge_key, "map", path)


def _retain_keys(original: dict[str, Any], patch: dict[str, Any], path: str) -> None:
    """Apply ``$retainKeys``: drop every key of ``original`` it does not list."""
    retained = patch[_RETAIN_KEYS]
    if not isinstance(retained, list):
        raise PatchError(
            f"{_where(path)}: invalid patch format of retainKeys: {_render(retained)} is not a list"
        )
    allowed = {key for key in retained if isinstance(key, str)}
    for key, value in patch.items():
        if value is None or key == _RETAIN_KEYS or key.startswith(
            (_SET_ELEMENT_ORDER, _DELETE_FROM_PRIMITIVE_LIST)
        ):
            continue
        if key not in allowed:
            raise PatchError(
                f"{_where(path)}: invalid patch format of retainKeys: the patch sets "
                f"{_render(key)}, which $retainKeys {_render(retained)} does not list"
            )
    for key in [key for key in original if key not in allowed]:
        del original[key]


def _element_kind(path: str, *lists: list[Any]) -> _Kind | None:
    """Whether the items of ``lists`` are objects or scalars; ``None`` when there are none."""
    seen: str | None = None
    for items in lists:
        for item in items:
            if isinstance(item, list):
                raise PatchError(f"{_where(path)}: lists of lists are not supported")
            category = _category(item)
            if seen is None:
                seen = category
            elif category != seen:
                raise PatchError(f"{_where(path)}: list element types are not identical")
    if seen is None:
        return None
    return "map" if seen == "object" else "scalar"


def _category(value: Any) -> str:
    """The JSON type of a non-list value, as the strategic merge compares it."""
    if isinstance(value, dict):
        return "object"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if value is None:
        return "null"
    return type(value).__name__


def _scalar_key(value: Any) -> Hashable:
    """A hashable identity of a scalar or merge-key value; ``true`` and ``1`` differ."""
    if isinstance(value, bool):
        return ("boolean", value)
    if isinstance(value, (int, float)):
        return ("number", value)
    if isinstance(value, str):
        return ("string", value)
    if value is None:
        return ("null", None)
    return ("json", _render(value))


def _item_key(item: Any, merge_key: str | None, kind: _Kind, path: str) -> Hashable:
    """The identity of a list item: its merge key's value, or the scalar itself."""
    if kind == "scalar":
        return _scalar_key(item)
    if not isinstance(item, dict) or merge_key is None or merge_key not in item:
        raise PatchError(
            f"{_where(path)}: {_render(item)} does not contain declared merge key "
            f"{_render(merge_key)}"
        )
    return _scalar_key(item[merge_key])


def _deduplicate(items: Iterable[Any]) -> list[Any]:
    """``items`` without repeats, first occurrences kept."""
    seen: set[Hashable] = set()
    unique = []
    for item in items:
        key = _scalar_key(item)
        if key not in seen:
            seen.add(key)
            unique.append(item)
    return unique


def _order(
    merged: list[Any],
    preferred: list[Any],
    server: list[Any],
    merge_key: str | None,
    kind: _Kind,
    path: str,
) -> list[Any]:
    """Order a merged list the way upstream does.

    Items named in ``preferred`` (the patch list, or ``$setElementOrder``) come
    in that order; the others keep their order in ``server`` (the target list).
    The two runs interleave: a remaining server item goes first only while it
    precedes the next preferred item in ``server``.
    """

    def key(item: Any) -> Hashable:
        return _item_key(item, merge_key, kind, path)

    def positions(items: list[Any]) -> dict[Hashable, int]:
        found: dict[Hashable, int] = {}
        for position, item in enumerate(items):
            found.setdefault(key(item), position)
        return found

    preferred_at = positions(preferred)
    server_at = positions(server)
    chosen = [item for item in merged if key(item) in preferred_at]
    rest = [item for item in merged if key(item) not in preferred_at]
    chosen.sort(key=lambda item: preferred_at[key(item)])
    rest.sort(key=lambda item: server_at.get(key(item), len(server_at)))
    result: list[Any] = []
    i = j = 0
    while i < len(rest) and j < len(chosen):
        left, right = server_at.get(key(rest[i])), server_at.get(key(chosen[j]))
        if left is not None and right is not None and left < right:
            result.append(rest[i])
            i += 1
        else:
            result.append(chosen[j])
            j += 1
    result.extend(rest[i:])
    result.extend(chosen[j:])
    return result
