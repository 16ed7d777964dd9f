"""The simulated API server's storage layer, composed of one part per concept.

:class:`Store` is what the HTTP front end and :class:`~faro.testing.SimulatedCluster`
call: kube-apiserver's generic registry (create, get, list, watch, update, patch,
delete). It keeps the order in which a request passes through its parts (decode, admit,
check existence and resourceVersion preconditions, stamp metadata, commit, react), and
the rules live in the parts:

- :mod:`._storage` — objects, the resourceVersion counter and the change history;
- :mod:`._selection` — selectors, list resourceVersions, paging and continue tokens;
- :mod:`._watch` — open watches, event fan-out, bookmarks, 410 Gone;
- :mod:`._admission` — body decoding, name/label validation, defaults;
- :mod:`._metadata` — uid, timestamps, generation and managedFields;
- :mod:`._registry` — served resource types and CRDs;
- :mod:`._deletion` — finalizers, graceful deletion, namespace cleanup.

Contract: every method is thread-safe. The parts share one condition variable (on a
reentrant lock), which guards all the state; writers notify it and watchers wait on it.
Times and waits come from the ``clock`` (real time by default).
"""

from __future__ import annotations

import copy
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from faro._names import KubeObject
from faro.clock import Clock, RealClock
from faro.testing import _admission, _metadata, _patch
from faro.testing._deletion import Deleter
from faro.testing._errors import ApiError, already_exists, conflict, invalid, not_found
from faro.testing._registry import Registry
from faro.testing._resources import CRDS, NAMESPACES, ResourceType
from faro.testing._selection import (
    Lister,
    ListResult,
    Selection,
    check_watch_options,
    parse_selection,
)
from faro.testing._storage import Entry, VersionedStorage, dumps, watch_line, with_rv
from faro.testing._watch import Watcher, WatchHub, WatchStream

__all__ = [
    "DEFAULT_NAMESPACES",
    "Entry",
    "ListResult",
    "Selection",
    "Store",
    "Watcher",
    "check_watch_options",
    "dumps",
    "parse_selection",
    "watch_line",
]

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


class Store:
    """Objects of every resource, their history, and the open watches."""

    def __init__(self, *, history_size: int = 10_000, too_large_wait: float = 3.0,
                 namespace_cleanup_delay: float = 1.0, clock: Clock | None = None) -> None:
        self._clock: Clock = clock if clock is not None else RealClock()
        cond = self._cond = threading.Condition(threading.RLock())
        self._storage = VersionedStorage(cond, self._clock, history_size=history_size,
                                         too_large_wait=too_large_wait)
        self._lister = Lister(self._storage)
        self._watches = WatchHub(cond, self._storage, self._lister, self._clock)
        self._registry = Registry(cond, self._storage, self._watches, self._clock)
        self._deleter = Deleter(cond, self._storage, self._registry, self._clock,
                                cleanup_delay=namespace_cleanup_delay)
        self._create_default_namespaces()

    @property
    def rv(self) -> int:
        """The current resourceVersion."""
        return self._storage.rv

    def _create_default_namespaces(self) -> None:
        for name in DEFAULT_NAMESPACES:
            self.create(NAMESPACES, None, {"metadata": {"name": name}}, manager="kube-apiserver")

    # ------------------------------------------------------------- lifecycle

    def restart(self) -> None:
        """Lose every object and the history, and reset the resourceVersion counter.

        Open watches end abruptly, as when a real server process dies.
        """
        with self._cond:
            self._watches.restart()
            self._storage.reset()
            self._registry.reset()
            self._deleter.reset()
            self._create_default_namespaces()
            self._cond.notify_all()

    def compact(self) -> None:
        """Forget the whole change history: resuming from any older resourceVersion gives 410."""
        self._storage.compact()

    def close(self) -> None:
        """Stop the store's background thread (namespace cleanup) and parked watches."""
        self._deleter.close()
        self._watches.close_all()

    # ----------------------------------------------------------------- reads

    def resolve(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._registry.resolve(group, version, plural)

    def served(self) -> list[ResourceType]:
        """Every served resource type."""
        return self._registry.served()

    def resource_for(self, api_version: str, kind: str) -> ResourceType:
        """The served resource of an object's apiVersion and kind; raises ApiError 404."""
        return self._registry.resource_for(api_version, kind)

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> Entry:
        entry = self._storage.get(rt.storage, (namespace or "", name))
        if entry is None:
            raise not_found(rt.plural, rt.group, name)
        return entry

    def list_page(
        self,
        selection: Selection,
        *,
        limit: int = 0,
        continue_token: str = "",
        resource_version: str = "",
        match: str = "",
        bare_items: bool = False,
        send_initial_events: bool | None = None,
    ) -> ListResult:
        """One page of a list (see :meth:`faro.testing._selection.Lister.list`)."""
        return self._lister.list(
            selection, limit=limit, continue_token=continue_token,
            resource_version=resource_version, match=match, bare_items=bare_items,
            send_initial_events=send_initial_events)

    def open_watch(
        self,
        selection: Selection,
        resource_version: str,
        *,
        end: float,
        target: str = "",
        send_initial_events: bool | None = None,
        bookmark_interval: float | None = None,
        on_abrupt: Callable[[], None] | None = None,
    ) -> WatchStream:
        """Open a watch that ends at ``end`` (clock time); its stream says what to send.

        ``bookmark_interval`` None: the watch does not allow bookmarks. See
        :meth:`faro.testing._watch.WatchHub.open` for where it starts.
        """
        watcher, initial = self._watches.open(
            selection, resource_version, target=target, send_initial_events=send_initial_events,
            bookmarks=bookmark_interval is not None, on_abrupt=on_abrupt)
        return WatchStream(self._watches, watcher, initial, end=end,
                           bookmark_interval=bookmark_interval, clock=self._clock)

    # ---------------------------------------------------------------- writes

    def create(
        self,
        rt: ResourceType,
        namespace: str | None,
        body: Mapping[str, Any],
        *,
        manager: str,
        dry_run: bool = False,
        operation: str = "Update",
    ) -> Entry:
        """Create an object (201 semantics); raises ApiError on conflict or invalid input.

        ``operation`` is recorded in ``managedFields`` (``Apply`` for server-side apply).
        """
        obj = _admission.check_body(rt, body)
        metadata = obj["metadata"]
        name = _admission.new_name(rt, metadata)
        _admission.validate_new(rt, name, metadata)
        if rt.namespaced:
            namespace = _admission.check_namespace(metadata, namespace)
            metadata["namespace"] = namespace
        else:
            metadata.pop("namespace", None)
            namespace = ""
        given_rv = metadata.get("resourceVersion")
        for server_field in _metadata.SERVER_METADATA - {"deletionTimestamp",
                                                         "deletionGracePeriodSeconds"}:
            metadata.pop(server_field, None)
        with self._cond:
            if rt.namespaced:
                _admission.check_namespace_open(
                    rt, name, namespace, self._storage.get(NAMESPACES.storage, ("", namespace)))
            self._storage.touch(rt.storage)
            key = (namespace, name)
            if not dry_run and isinstance(given_rv, str) and given_rv.isdigit() \
                    and int(given_rv):
                # etcd3 storage refuses it (before the existence check) with a plain error,
                # which the server answers as a 500 without a reason; a dry run never gets
                # that far.
                raise ApiError(500, "resourceVersion should not be set on objects to be "
                               "created", reason="Unknown")
            objects = self._storage.objects(rt.storage)
            if key in objects:
                raise already_exists(rt.plural, rt.group, name)
            if rt is CRDS:
                self._registry.check_new_crd(obj)
            if rt.has_status:
                obj.pop("status", None)
            _admission.normalize(rt, obj)
            _admission.defaults_on_create(rt, obj, objects)
            now = _metadata.rfc3339(self._clock.time())
            _metadata.stamp_new(rt, metadata, now)
            _metadata.record_manager(rt, obj, None, manager, operation, "", now)
            if dry_run:
                return Entry.of(with_rv(obj, self._storage.rv))
            entry = self._storage.commit(rt.storage, key, "ADDED", obj, None)
            if rt is CRDS:
                entry = self._registry.establish(entry)
            return entry

    def update(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        body: Mapping[str, Any],
        *,
        manager: str,
        subresource: str = "",
        dry_run: bool = False,
        operation: str = "Update",
    ) -> Entry:
        """Replace an object (PUT); a stale resourceVersion is 409 Conflict.

        On the main resource the status of kinds with a status subresource is
        kept; on ``/status`` only the status changes. A change that alters
        nothing commits nothing (no new resourceVersion, no event).
        """
        obj = _admission.check_body(rt, body)
        metadata = obj["metadata"]
        if metadata.get("name", name) != name:
            raise ApiError(400, f"the name of the object ({metadata['name']}) does not match "
                           f"the name on the URL ({name})")
        if rt.namespaced:
            _admission.check_namespace(metadata, namespace)
        if subresource != "status":
            _admission.validate_update(rt, name, metadata)
        with self._cond:
            old = self.get(rt, namespace, name)
            current = old.obj
            given_rv = metadata.get("resourceVersion")
            if given_rv and given_rv != current["metadata"]["resourceVersion"]:
                raise conflict(rt.plural, rt.group, name, "the object has been modified; please "
                               "apply your changes to the latest version and try again")
            if not given_rv and rt.custom:
                raise invalid(rt.kind, rt.group, name, [(
                    "metadata.resourceVersion",
                    "Invalid value: 0x0: must be specified for an update")])
            new = _updated(rt, obj, current, subresource)
            if rt is CRDS and subresource != "status":
                self._registry.check_crd_update(current, new)
            _admission.normalize(rt, new)
            new["metadata"]["managedFields"] = current["metadata"].get("managedFields", [])
            if _metadata.unchanged(new, current):
                return old
            if _metadata.bumps_generation(rt, new, current, subresource):
                new["metadata"]["generation"] = current["metadata"].get("generation", 1) + 1
            _metadata.record_manager(rt, new, current, manager, operation, subresource,
                                     _metadata.rfc3339(self._clock.time()))
            if dry_run:
                return Entry.of(with_rv(new, self._storage.rv))
            key = (namespace or "", name)
            entry = self._deleter.complete(rt, key, new, old)
            if entry is None:
                entry = self._storage.commit(rt.storage, key, "MODIFIED", new, old)
                if rt is CRDS:
                    self._registry.serve(entry.obj)
            return entry

    def patch(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        patch_type: str,
        body: bytes,
        *,
        manager: str,
        subresource: str = "",
        dry_run: bool = False,
    ) -> Entry:
        """Apply a JSON, merge, strategic-merge or apply patch atomically."""
        try:
            patch = orjson.loads(body) if patch_type != "apply" else _load_yaml(body)
        except (orjson.JSONDecodeError, ValueError) as error:
            raise ApiError(400, f"error decoding patch: {error}") from error
        with self._cond:
            if patch_type == "apply":
                return self._apply(rt, namespace, name, patch, manager, dry_run)
            current = self.get(rt, namespace, name).obj
            new = _patched(rt, current, patch_type, patch)
            new_metadata = new.setdefault("metadata", {})
            if isinstance(patch, dict) and "resourceVersion" not in (patch.get("metadata") or {}):
                new_metadata["resourceVersion"] = current["metadata"]["resourceVersion"]
            return self.update(rt, namespace, name, new, manager=manager,
                               subresource=subresource, dry_run=dry_run)

    def _apply(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        patch: Any,
        manager: str,
        dry_run: bool,
    ) -> Entry:
        """Server-side apply, simplified: create, or merge the applied fields."""
        if not isinstance(patch, dict):
            raise ApiError(400, "error decoding patch: apply configuration must be an object")
        patch.setdefault("metadata", {}).setdefault("name", name)
        try:
            current = self.get(rt, namespace, name).obj
        except ApiError:
            return self.create(rt, namespace, patch, manager=manager, dry_run=dry_run,
                               operation="Apply")
        schema = _patch.strategic_merge_keys(rt.group, rt.kind) if not rt.custom else None
        if schema is not None:
            new = _patch.apply_strategic_merge_patch(current, patch, schema)
        else:
            new = _patch.apply_merge_patch(current, patch)
        new["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        return self.update(rt, namespace, name, new, manager=manager, dry_run=dry_run,
                           operation="Apply")

    def delete(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        *,
        preconditions: Mapping[str, Any] | None = None,
        dry_run: bool = False,
    ) -> tuple[Entry, bool]:
        """Delete an object; returns (its last state, whether it is gone now).

        See :mod:`faro.testing._deletion` for finalizers, Pods and namespaces.
        """
        return self._deleter.delete(rt, namespace, name, preconditions=preconditions,
                                    dry_run=dry_run)

    def delete_collection(self, selection: Selection) -> list[Entry]:
        """Delete every matching object; returns their last states."""
        rt = selection.resource
        with self._cond:
            result = self.list_page(selection)
            gone = []
            for raw in result.items:
                metadata = orjson.loads(raw)["metadata"]
                gone.append(self.delete(rt, metadata.get("namespace"), metadata["name"])[0])
            return gone

    # -------------------------------------------------------- watch faults

    @property
    def watch_count(self) -> int:
        return self._watches.count

    def drop_watches(self, *, abrupt: bool = False) -> int:
        """End every open watch stream; returns how many were open."""
        return self._watches.drop(abrupt=abrupt)

    def inject_garbage(self) -> int:
        """Make every open watch stream send one malformed line; returns how many."""
        return self._watches.inject_garbage()

    def hold_watches(self, pattern: re.Pattern[str]) -> None:
        """Park every new watch whose request target matches ``pattern`` until released."""
        self._watches.hold(pattern)

    def release_watches(self) -> int:
        """Stop holding new watches and let the parked ones stream; returns how many."""
        return self._watches.release()

    @property
    def held_count(self) -> int:
        """How many open watches are parked by :meth:`hold_watches`."""
        return self._watches.held_count

    def wait_held(self, count: int, timeout: float) -> bool:
        """Wait until at least ``count`` watches are parked; False if ``timeout`` passes."""
        return self._watches.wait_held(count, timeout)


# ------------------------------------------------------------------ helpers


def _updated(rt: ResourceType, obj: KubeObject, current: Mapping[str, Any],
             subresource: str) -> KubeObject:
    """The object an update stores: ``obj`` with the server-managed fields of ``current``.

    On ``/status`` only the status comes from ``obj``; on the main resource the
    status of a kind with a status subresource is kept.
    """
    if subresource == "status":
        new = copy.deepcopy(dict(current))
        if "status" in obj:
            new["status"] = obj["status"]
        else:
            new.pop("status", None)
        return new
    metadata = obj["metadata"]
    for server_field in _metadata.SERVER_METADATA - {"managedFields"}:
        if server_field in current["metadata"]:
            metadata[server_field] = current["metadata"][server_field]
        else:
            metadata.pop(server_field, None)
    metadata["name"] = current["metadata"]["name"]
    if rt.namespaced:
        metadata["namespace"] = current["metadata"]["namespace"]
    if rt.has_status:
        if "status" in current:
            obj["status"] = current["status"]
        else:
            obj.pop("status", None)
    return obj


def _patched(rt: ResourceType, current: KubeObject, patch_type: str, patch: Any) -> KubeObject:
    """``current`` with a JSON, merge or strategic merge ``patch`` applied (400/415/422)."""
    try:
        if patch_type == "json":
            new = _patch.apply_json_patch(current, patch)
        elif patch_type == "merge":
            new = _patch.apply_merge_patch(current, patch)
        else:
            schema = None if rt.custom else _patch.strategic_merge_keys(rt.group, rt.kind)
            if schema is None:
                raise ApiError(415, "the body of the request was in an unknown format - "
                               "accepted media types include: application/json-patch+"
                               "json, application/merge-patch+json, application/apply-"
                               "patch+yaml")
            if not isinstance(patch, dict):
                raise _patch.PatchError("a strategic merge patch must be a JSON object")
            new = _patch.apply_strategic_merge_patch(current, patch, schema)
    except _patch.PatchError as error:
        raise ApiError(422 if patch_type == "json" else 400, str(error)) from error
    if not isinstance(new, dict):
        raise ApiError(422, "the patch did not produce an object")
    return new


def _load_yaml(body: bytes) -> Any:
    import yaml

    try:
        return yaml.safe_load(body)
    except yaml.YAMLError as error:
        raise ValueError(str(error)) from error
