"""The served resource types: the built-in ones, and those CustomResourceDefinitions add.

Contract, as kube-apiserver with apiextensions-apiserver behaves:

- Built-in types are always served (:data:`faro.testing._resources.BUILTIN_RESOURCES`).
- A new, valid CRD is Established at once (:meth:`Registry.establish`: a MODIFIED change
  with its ``NamesAccepted`` and ``Established`` conditions and ``acceptedNames``); from
  then on each served version is a resource type, all sharing one storage.
- An update re-serves a CRD's versions (:meth:`Registry.serve`); watches of a version no
  longer served end cleanly. ``scope`` and ``group`` are immutable (422).
- Deleting a CRD (:meth:`Registry.withdraw`) deletes its objects (a DELETED change each),
  lets its watches see those and then end cleanly, and stops serving its types.
- Thread-safe: the store's shared condition guards the registry.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from faro.clock import Clock
from faro.testing._errors import ApiError, invalid
from faro.testing._metadata import rfc3339
from faro.testing._resources import (
    BUILTIN_RESOURCES,
    CRDS,
    ResourceType,
    crd_problems,
    resources_from_crd,
)
from faro.testing._storage import Entry, Storage, VersionedStorage
from faro.testing._watch import WatchHub


def causes(problems: list[str]) -> list[tuple[str, str]]:
    """(field, message) pairs from "field: message" strings."""
    return [(field, message) for field, _, message in (p.partition(": ") for p in problems)]


class Registry:
    """Served resource types by group/version/plural, and the CRDs that add them."""

    def __init__(self, cond: threading.Condition, storage: VersionedStorage, watches: WatchHub,
                 clock: Clock) -> None:
        self._cond = cond
        self._storage = storage
        self._watches = watches
        self._clock = clock
        self.reset()

    def reset(self) -> None:
        """Serve the built-in types only."""
        with self._cond:
            self._by_gvr: dict[tuple[str, str, str], ResourceType] = {}
            self._crd_types: dict[str, list[ResourceType]] = {}  # CRD name -> its types
            self._add(BUILTIN_RESOURCES)

    def _add(self, types: list[ResourceType] | tuple[ResourceType, ...]) -> None:
        for rt in types:
            self._by_gvr[(rt.group, rt.version, rt.plural)] = rt

    def _remove(self, types: list[ResourceType]) -> None:
        for rt in types:
            self._by_gvr.pop((rt.group, rt.version, rt.plural), None)

    # ----------------------------------------------------------------- reads

    def resolve(self, group: str, version: str, plural: str) -> ResourceType | None:
        with self._cond:
            return self._by_gvr.get((group, version, plural))

    def served(self) -> list[ResourceType]:
        """Every served resource type."""
        with self._cond:
            return list(self._by_gvr.values())

    def resource_for(self, api_version: str, kind: str) -> ResourceType:
        """The served resource of an object's apiVersion and kind; raises ApiError 404."""
        group, _, version = api_version.rpartition("/")
        with self._cond:
            for rt in self._by_gvr.values():
                if rt.group == group and rt.version == version and rt.kind == kind:
                    return rt
        raise ApiError(
            404,
            f'the server could not find the requested resource (kind "{kind}" in version '
            f'"{api_version}")',
        )

    def storage_type(self, storage: Storage) -> ResourceType | None:
        """A served type of ``storage`` (any of its versions), or None."""
        with self._cond:
            for rt in self._by_gvr.values():
                if rt.storage == storage:
                    return rt
            return None

    # ------------------------------------------------------------------ CRDs

    def check_new_crd(self, crd: Mapping[str, Any]) -> None:
        """422 for an invalid CRD."""
        problems = crd_problems(crd)
        if problems:
            raise invalid(CRDS.kind, CRDS.group, crd["metadata"]["name"], causes(problems))

    def check_crd_update(self, current: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        """422 for an invalid CRD, or one whose ``scope`` or ``group`` changes."""
        name = current["metadata"]["name"]
        problems = crd_problems(new)
        if current["spec"].get("scope") != (new.get("spec") or {}).get("scope"):
            problems.append("spec.scope: Invalid value: field is immutable")
        if (new.get("spec") or {}).get("group") != current["spec"].get("group"):
            problems.append("spec.group: Invalid value: field is immutable")
        if problems:
            raise invalid(CRDS.kind, CRDS.group, name, causes(problems))

    def establish(self, entry: Entry) -> Entry:
        """Accept a new CRD's names and mark it Established (a MODIFIED change); serve it."""
        crd = entry.obj
        stamp = rfc3339(self._clock.time())
        spec = crd["spec"]
        crd["status"] = {
            "acceptedNames": spec["names"],
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                 "message": "no conflicts found", "lastTransitionTime": stamp},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                 "message": "the initial names have been accepted", "lastTransitionTime": stamp},
            ],
            "storedVersions": [v["name"] for v in spec["versions"] if v.get("storage")],
        }
        key = ("", crd["metadata"]["name"])
        with self._cond:
            established = self._storage.commit(CRDS.storage, key, "MODIFIED", crd, entry)
            self.serve(established.obj)
            return established

    def serve(self, crd: Mapping[str, Any]) -> None:
        """Serve (or re-serve after a change) the resources of an established CRD."""
        name = crd["metadata"]["name"]
        conditions = (crd.get("status") or {}).get("conditions") or []
        if not any(c.get("type") == "Established" and c.get("status") == "True"
                   for c in conditions):
            return
        with self._cond:
            before = self._crd_types.get(name, [])
            after = resources_from_crd(crd)
            if before == after:
                return
            self._remove(before)
            self._crd_types[name] = after
            self._add(after)
            self._watches.withdraw(set(before) - set(after))

    def withdraw(self, crd: Mapping[str, Any]) -> None:
        """Stop serving a CRD: delete its objects and end their watches."""
        with self._cond:
            types = self._crd_types.pop(crd["metadata"]["name"], [])
            self._remove(types)
            if not types:
                return
            storage = types[0].storage
            for key, entry in sorted(self._storage.objects(storage).items()):
                self._storage.commit(storage, key, "DELETED", entry.obj, entry)
            # They see those DELETED events, then end cleanly.
            self._watches.end_storage(storage)
