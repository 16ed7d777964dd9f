"""Storage and versioning: the objects of every resource, the resourceVersion, the history.

Contract (etcd's, as kube-apiserver sees it):

- One global, strictly increasing resourceVersion: every committed change takes the next
  number and produces exactly one :class:`Change` in the history, so the history is a
  contiguous run of resourceVersions.
- The history keeps at least ``history_size`` changes; older ones are compacted.
  :attr:`VersionedStorage.oldest` is the oldest resourceVersion a reader can still resume
  from; the state at any resourceVersion from there on can be rebuilt (:meth:`snapshot`).
- An object is stored only as its compact JSON encoding (an :class:`Entry`), made once at
  commit and shared by the objects, the history, every list response and watcher; it is
  decoded only where a rule reads it (updates, patches, selectors, deletion).
- Thread-safe: every method takes the condition it was given (a reentrant one, shared with
  the rest of the store); a commit notifies it, so watchers waiting on it wake up.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from faro._names import KubeObject
from faro.clock import Clock
from faro.testing._errors import ApiError, too_large_resource_version

Key = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped objects
Storage = tuple[str, str]  # (group, plural): every served version of a resource shares one

_SNAPSHOTS_KEPT = 8


def dumps(obj: Any) -> bytes:
    """JSON-encode as the simulator sends it."""
    return orjson.dumps(obj)


def watch_line(type_: str, encoded_object: bytes) -> bytes:
    """One watch event as the JSON line the server streams."""
    return b'{"type":"' + type_.encode() + b'","object":' + encoded_object + b"}\n"


def with_rv(obj: Mapping[str, Any], rv: int) -> KubeObject:
    """A shallow copy of ``obj`` whose ``metadata.resourceVersion`` is ``rv``."""
    return {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(rv)}}


def parse_rv(text: str) -> int:
    """A resourceVersion string as an int; raises ApiError 400 if malformed."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0 or not text.isdigit():
        raise ApiError(400, f'invalid resource version: resourceVersion: Invalid value: "{text}": '
                       f'strconv.ParseUint: parsing "{text}": invalid syntax', reason="BadRequest")
    return value


_API_VERSION = re.compile(rb'\{"apiVersion":"([^"\\]*)"')
_TYPE_META = re.compile(rb'\{"apiVersion":"[^"\\]*","kind":"[^"\\]*",')


@dataclass(frozen=True, slots=True)
class Entry:
    """A committed object, kept only as its compact JSON encoding (for its stored apiVersion).

    The encoding is what responses and watch events carry; the object is decoded
    when a rule must read it (:attr:`obj`).
    """

    raw: bytes

    @classmethod
    def of(cls, obj: KubeObject) -> Entry:
        # orjson's bytes keep its whole output buffer (8 KiB for a 1 KB object): the
        # stored copy is the size of the encoding.
        return cls(bytes(memoryview(dumps(obj))))

    @property
    def obj(self) -> KubeObject:
        """The object, decoded anew on every read: the caller's own, free to change."""
        obj: KubeObject = orjson.loads(self.raw)
        return obj

    def list_item(self) -> bytes:
        """The encoding as an item of a built-in kind's list: without apiVersion and kind.

        The real server encodes typed list items with an empty TypeMeta (custom
        resources' items keep theirs).
        """
        head = _TYPE_META.match(self.raw)
        if head is not None:  # the usual order: cut the two keys out of the bytes
            return b"{" + self.raw[head.end():]
        return dumps({k: v for k, v in self.obj.items() if k not in ("apiVersion", "kind")})

    def encoded_as(self, api_version: str) -> bytes:
        """The encoding with ``apiVersion`` rewritten (CRD ``None`` conversion)."""
        head = _API_VERSION.match(self.raw)
        if head is not None:  # the usual order: apiVersion first, compare and splice bytes
            if head[1] == api_version.encode():
                return self.raw
            return b'{"apiVersion":' + dumps(api_version) + self.raw[head.end():]
        obj = self.obj
        if obj.get("apiVersion") == api_version:
            return self.raw
        return dumps({**obj, "apiVersion": api_version})


class Change:
    """One committed change: ADDED, MODIFIED or DELETED of one object.

    ``new`` is the object after the change (for DELETED: the last state with the
    deletion's resourceVersion); ``old`` is the state before (None for ADDED).
    Both are the storage's entries, shared with the objects and the other changes.
    """

    __slots__ = ("key", "new", "old", "rv", "storage", "type")

    def __init__(
        self, rv: int, type_: str, storage: Storage, key: Key, new: Entry, old: Entry | None
    ) -> None:
        self.rv = rv
        self.type = type_
        self.storage = storage
        self.key = key
        self.new = new
        self.old = old

    def line(self, type_: str, api_version: str) -> bytes:
        """The watch event line (JSON + newline) of this change, seen as ``type_``."""
        if type_ == "DELETED" and self.type != "DELETED":
            # An object that stopped matching a selector: its previous state
            # with this change's resourceVersion, as the real server sends it.
            assert self.old is not None
            return watch_line(type_, Entry.of(with_rv(self.old.obj, self.rv))
                              .encoded_as(api_version))
        return watch_line(type_, self.new.encoded_as(api_version))


@dataclass(frozen=True)
class Snapshot:
    """The objects of one storage at resourceVersion ``rv``, sorted by key."""

    rv: int
    keys: list[Key]
    entries: list[Entry]


class VersionedStorage:
    """Objects by storage and key, the resourceVersion counter and the change history."""

    def __init__(self, cond: threading.Condition, clock: Clock, *, history_size: int,
                 too_large_wait: float) -> None:
        if history_size < 1:
            raise ValueError("history_size must be at least 1")
        self._cond = cond
        self._clock = clock
        self._history_size = history_size
        self._too_large_wait = too_large_wait
        self.reset()

    def reset(self) -> None:
        """Forget every object and the history; the resourceVersion starts again at 0."""
        with self._cond:
            self._rv = 0
            self._objects: dict[Storage, dict[Key, Entry]] = {}
            self._log: list[Change] = []
            self._first_rv = 1  # resourceVersion of _log[0], or rv + 1 when empty
            self._snapshots: OrderedDict[tuple[Storage, int], Snapshot] = OrderedDict()

    @property
    def rv(self) -> int:
        """The current resourceVersion (that of the latest change; 0 before any)."""
        return self._rv

    @property
    def oldest(self) -> int:
        """The oldest resourceVersion the history can resume from (older ones are compacted)."""
        return self._first_rv - 1

    # ----------------------------------------------------------------- reads

    def get(self, storage: Storage, key: Key) -> Entry | None:
        with self._cond:
            return self._objects.get(storage, {}).get(key)

    def objects(self, storage: Storage) -> Mapping[Key, Entry]:
        """The current objects of one storage (a live view: read it under the lock)."""
        return self._objects.get(storage, {})

    def storages(self) -> list[Storage]:
        """Every storage that has held an object."""
        with self._cond:
            return list(self._objects)

    def snapshot(self, storage: Storage, at: int) -> Snapshot | None:
        """The objects of one storage as they were at ``at`` (-1: now); None if compacted.

        The state now is always available, even when ``at`` equals it after a compaction.
        """
        with self._cond:
            if at < 0:
                at = self._rv
            if at < self.oldest and at != self._rv:
                return None
            cached = self._snapshots.get((storage, at))
            if cached is not None:
                self._snapshots.move_to_end((storage, at))
                return cached
            current = dict(self._objects.get(storage, {}))
            for change in reversed(self._log):
                if change.rv <= at:
                    break
                if change.storage != storage:
                    continue
                if change.old is None:
                    current.pop(change.key, None)
                else:
                    current[change.key] = change.old
            keys = sorted(current)
            snapshot = Snapshot(at, keys, [current[k] for k in keys])
            self._snapshots[(storage, at)] = snapshot
            while len(self._snapshots) > _SNAPSHOTS_KEPT:
                self._snapshots.popitem(last=False)
            return snapshot

    def changes_after(self, rv: int, limit: int, up_to: int | None = None) -> list[Change]:
        """At most ``limit`` changes after ``rv`` (and not after ``up_to``), oldest first.

        ``rv`` must not be older than :attr:`oldest`.
        """
        with self._cond:
            assert rv >= self.oldest
            start = rv + 1 - self._first_rv
            stop = start + limit
            if up_to is not None:
                stop = min(stop, up_to + 1 - self._first_rv)
            return self._log[start:stop]

    def wait_for_rv(self, requested: int) -> None:
        """Wait (up to ``too_large_wait``) until the storage reaches ``requested``.

        Raises the server's 504 "Too large resource version" error if it does not.
        """
        deadline = self._clock.now() + self._too_large_wait
        with self._cond:
            while self._rv < requested:
                remaining = deadline - self._clock.now()
                if remaining <= 0:
                    raise too_large_resource_version(requested, self._rv)
                self._clock.wait(self._cond, remaining)

    # ---------------------------------------------------------------- writes

    def commit(self, storage: Storage, key: Key, type_: str, obj: KubeObject,
               old: Entry | None) -> Entry:
        """Give ``obj`` the next resourceVersion and record the change; returns its entry.

        ``obj`` belongs to the storage from now on: nobody may change it any more.
        """
        with self._cond:
            self._rv += 1
            obj["metadata"]["resourceVersion"] = str(self._rv)
            entry = Entry.of(obj)
            objects = self._objects.setdefault(storage, {})
            if type_ == "DELETED":
                del objects[key]
            else:
                objects[key] = entry
            self._log.append(Change(self._rv, type_, storage, key, entry, old))
            if len(self._log) > self._history_size + max(1, self._history_size // 4):
                del self._log[: len(self._log) - self._history_size]
            self._first_rv = self._log[0].rv
            self._cond.notify_all()
            return entry

    def touch(self, storage: Storage) -> None:
        """Make ``storage`` known to :meth:`storages` (a write to it began)."""
        with self._cond:
            self._objects.setdefault(storage, {})

    def compact(self) -> None:
        """Forget the whole history: resuming from any older resourceVersion gives 410."""
        with self._cond:
            self._log.clear()
            self._first_rv = self._rv + 1
            self._snapshots.clear()
            self._cond.notify_all()
