"""Deletion: finalizers, graceful deletion, and the namespace controller's cleanup.

Contract, as kube-apiserver and its namespace controller behave:

- Preconditions (``uid``, ``resourceVersion``) that do not hold give 409 Conflict.
- An object with finalizers is only marked (``deletionTimestamp``, a MODIFIED change) and
  goes when an update empties its finalizers (:meth:`Deleter.complete`).
- A Pod is deleted gracefully with the grace period of a pod no node runs: marked first,
  then DELETED in that state.
- A deleted namespace turns Terminating at once; after ``cleanup_delay`` its objects are
  deleted (finalizers honoured), then the namespace itself once nothing holds it. That
  cleanup runs on a background thread, started on demand and stopped by :meth:`close`.
- Deleting a CRD withdraws its resources (:meth:`faro.testing._registry.Registry.withdraw`).
- Thread-safe: the store's shared condition guards every change.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from faro._names import KubeObject
from faro.clock import Clock
from faro.testing._errors import conflict, not_found
from faro.testing._metadata import rfc3339
from faro.testing._registry import Registry
from faro.testing._resources import CRDS, NAMESPACES, ResourceType
from faro.testing._storage import Entry, Key, VersionedStorage


class Deleter:
    """Deletes objects as the API server does, and empties terminating namespaces."""

    def __init__(self, cond: threading.Condition, storage: VersionedStorage, registry: Registry,
                 clock: Clock, *, cleanup_delay: float) -> None:
        self._cond = cond
        self._storage = storage
        self._registry = registry
        self._clock = clock
        self._cleanup_delay = cleanup_delay
        self._namespaces_due: dict[str, float] = {}  # namespace -> when its cleanup is due
        self._reaper: threading.Thread | None = None
        self._closed = False

    def reset(self) -> None:
        """Forget every pending namespace cleanup."""
        with self._cond:
            self._namespaces_due = {}

    def close(self) -> None:
        """Stop the background thread (namespace cleanup)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def delete(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        *,
        preconditions: Mapping[str, Any] | None = None,
        dry_run: bool = False,
    ) -> tuple[Entry, bool]:
        """Delete an object; returns (its last state, whether it is gone now)."""
        key = (namespace or "", name)
        with self._cond:
            entry = self._storage.get(rt.storage, key)
            if entry is None:
                raise not_found(rt.plural, rt.group, name)
            metadata = entry.obj["metadata"]
            for field_name, label, why in (
                    ("uid", "UID", "deleted and then recreated"),
                    ("resourceVersion", "ResourceVersion", "modified")):
                wanted = (preconditions or {}).get(field_name)
                if wanted and wanted != metadata.get(field_name):
                    # As the real server words it, naming the kind rather than the resource.
                    raise conflict(rt.kind, rt.group, name, f"the {label} in the precondition "
                                   f"({wanted}) does not match the {label} in record "
                                   f"({metadata.get(field_name, '')}). The object might have "
                                   f"been {why}")
            if dry_run:
                return entry, not metadata.get("finalizers")
            if metadata.get("deletionTimestamp"):
                return entry, False
            if rt is NAMESPACES:
                # Like the namespace controller: the namespace turns Terminating now,
                # its content goes a little later, then the namespace itself.
                self._namespaces_due[name] = self._clock.now() + self._cleanup_delay
                self._start_reaper()
                return self._mark_deleting(rt, key, entry), False
            if rt.group == "" and rt.plural == "pods":
                # Graceful deletion, with the grace period of a pod no node runs: marked (a
                # MODIFIED event), then gone in that state unless finalizers keep it.
                entry = self._mark_deleting(rt, key, entry)
                if entry.obj["metadata"].get("finalizers"):
                    return entry, False
                return self._remove(rt, key, entry), True
            if metadata.get("finalizers"):
                return self._mark_deleting(rt, key, entry), False
            return self._remove(rt, key, entry), True

    def complete(self, rt: ResourceType, key: Key, new: KubeObject, old: Entry) -> Entry | None:
        """Commit an update that empties the finalizers of an object marked for deletion.

        The object goes (a namespace once its content is gone too); returns its last
        state, or None when the update is no such thing (the caller commits it).
        """
        metadata = new["metadata"]
        if not (metadata.get("deletionTimestamp") and not metadata.get("finalizers")):
            return None
        with self._cond:
            if rt is NAMESPACES:
                entry = self._storage.commit(rt.storage, key, "MODIFIED", new, old)
                self._remove_namespace_if_done(key[1])
                return self._storage.objects(rt.storage).get(key, entry)
            return self._remove(rt, key, old, new)

    def _remove(
        self, rt: ResourceType, key: Key, old: Entry, final: KubeObject | None = None
    ) -> Entry:
        """Delete for good: a DELETED change, plus cascades for namespaces and CRDs."""
        if rt is CRDS:
            self._registry.withdraw(old.obj)
        entry = self._storage.commit(rt.storage, key, "DELETED",
                                     final or old.obj, old)
        if rt.namespaced:
            self._remove_namespace_if_done(key[0])
        return entry

    def _mark_deleting(self, rt: ResourceType, key: Key, entry: Entry) -> Entry:
        """Set deletionTimestamp (a MODIFIED change); caller holds the lock."""
        new = entry.obj
        new["metadata"]["deletionTimestamp"] = rfc3339(self._clock.time())
        if rt is not NAMESPACES:  # a namespace's deletion has no grace period
            new["metadata"]["deletionGracePeriodSeconds"] = 0
        if new["metadata"].get("generation"):  # as the real server's markAsDeleting
            new["metadata"]["generation"] += 1
        if rt is NAMESPACES:
            new.setdefault("status", {})["phase"] = "Terminating"
        return self._storage.commit(rt.storage, key, "MODIFIED", new, entry)

    # ------------------------------------------------------------ namespaces

    def _start_reaper(self) -> None:
        if self._reaper is None or not self._reaper.is_alive():
            self._reaper = threading.Thread(target=self._reap_namespaces,
                                            name="faro-sim-namespaces", daemon=True)
            self._reaper.start()

    def _reap_namespaces(self) -> None:
        """Thread body: finalize Terminating namespaces when their cleanup is due."""
        with self._cond:
            while not self._closed:
                now = self._clock.now()
                for name, due in sorted(self._namespaces_due.items()):
                    if due <= now:
                        del self._namespaces_due[name]
                        self._finalize_namespace(name)
                if self._namespaces_due:
                    self._clock.wait(self._cond,
                                     max(0.0, min(self._namespaces_due.values()) - now))
                else:
                    self._clock.wait(self._cond, None)

    def _finalize_namespace(self, name: str) -> None:
        key = ("", name)
        self._empty_namespace(name)
        entry = self._storage.get(NAMESPACES.storage, key)
        if entry is None:
            return
        new = entry.obj
        if not new["metadata"].get("deletionTimestamp"):
            return
        if (new.get("spec") or {}).get("finalizers"):
            new["spec"]["finalizers"] = []
            self._storage.commit(NAMESPACES.storage, key, "MODIFIED", new, entry)
        self._remove_namespace_if_done(name)

    def _remove_namespace_if_done(self, name: str) -> None:
        """Remove a Terminating namespace once nothing holds it any more."""
        key = ("", name)
        entry = self._storage.get(NAMESPACES.storage, key)
        if entry is None:
            return
        obj = entry.obj
        if (obj["metadata"].get("deletionTimestamp") and not obj["metadata"].get("finalizers")
                and not (obj.get("spec") or {}).get("finalizers")
                and not self._namespace_busy(name)):
            self._remove(NAMESPACES, key, entry)

    def _namespace_busy(self, namespace: str) -> bool:
        for storage in self._storage.storages():
            if storage == NAMESPACES.storage:
                continue
            for ns, _ in self._storage.objects(storage):
                if ns == namespace:
                    return True
        return False

    def _empty_namespace(self, namespace: str) -> None:
        """Delete every object of a namespace (finalizers honoured), as its controller does."""
        for storage in self._storage.storages():
            rt = self._registry.storage_type(storage)
            if rt is None or not rt.namespaced:
                continue
            objects = self._storage.objects(storage)
            for key in sorted(k for k in objects if k[0] == namespace):
                entry = objects.get(key)
                if entry is None:
                    continue
                obj = entry.obj
                if obj["metadata"].get("finalizers"):
                    if not obj["metadata"].get("deletionTimestamp"):
                        self._mark_deleting(rt, key, entry)
                    continue
                self._storage.commit(storage, key, "DELETED", obj, entry)
