"""Object storage of the simulated API server, with etcd-like versioning.

Contract:
- One global, strictly increasing resourceVersion: every committed change takes
  the next number and produces exactly one :class:`Change` in the history, so
  the history is a contiguous run of resourceVersions.
- The history keeps at least ``history_size`` changes; older ones are compacted.
  A list or watch that needs a compacted change gets 410 Expired.
- Stored object dicts are never mutated after commit; each carries its JSON
  encoding, made once and shared by every list response and watcher.
- All methods are thread-safe. One condition variable guards the state; writers
  notify it and watchers wait on it.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import copy
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson

from faro._selectors import FieldSelector, LabelSelector
from faro.testing import _patch
from faro.testing._errors import (
    ApiError,
    already_exists,
    conflict,
    expired,
    invalid,
    not_found,
    qualified,
    status_details,
    too_large_resource_version,
)
from faro.testing._fields import field_values
from faro.testing._resources import (
    BUILTIN_RESOURCES,
    CRDS,
    NAMESPACES,
    ResourceType,
    crd_problems,
    resources_from_crd,
)

Key = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped objects
Storage = tuple[str, str]  # (group, plural)

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_SERVER_METADATA = frozenset(
    {"uid", "resourceVersion", "creationTimestamp", "generation", "managedFields",
     "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"}
)
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_CONTINUE_TOO_OLD = (
    "The provided continue parameter is too old to display a consistent list result. You can "
    "start a new list without the continue parameter, or use the continue token in this "
    "response to retrieve the remainder of the results. Continuing with the provided token "
    "results in an inconsistent list - objects that were created, modified, or deleted "
    "between the time the first chunk was returned and now may show up in the list."
)


def now_rfc3339() -> str:
    """The current UTC time as the API server formats timestamps (second precision)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def dumps(obj: Any) -> bytes:
    """JSON-encode as the simulator sends it."""
    return orjson.dumps(obj)


@dataclass(frozen=True, slots=True)
class Entry:
    """A committed object and its JSON encoding (for its stored apiVersion)."""

    obj: dict[str, Any]
    raw: bytes
    _item: list[bytes] = field(default_factory=list, compare=False, repr=False)

    @classmethod
    def of(cls, obj: dict[str, Any]) -> Entry:
        return cls(obj, dumps(obj))

    def list_item(self) -> bytes:
        """The encoding as an item of a built-in kind's list: without apiVersion and kind.

        The real server encodes typed list items with an empty TypeMeta (custom
        resources' items keep theirs). Made on first use and cached.
        """
        if not self._item:
            self._item.append(dumps({k: v for k, v in self.obj.items()
                                     if k not in ("apiVersion", "kind")}))
        return self._item[0]

    def encoded_as(self, api_version: str) -> bytes:
        """The encoding with ``apiVersion`` rewritten (CRD ``None`` conversion)."""
        if self.obj.get("apiVersion") == api_version:
            return self.raw
        return dumps({**self.obj, "apiVersion": api_version})


class Change:
    """One committed change: ADDED, MODIFIED or DELETED of one object.

    ``new`` is the object after the change (for DELETED: the last state with the
    deletion's resourceVersion); ``old`` is the state before (None for ADDED).
    Watch lines are encoded lazily and cached per (event type, apiVersion).
    """

    __slots__ = ("_lines", "key", "new", "old", "rv", "storage", "type")

    def __init__(
        self, rv: int, type_: str, storage: Storage, key: Key, new: Entry, old: Entry | None
    ) -> None:
        self.rv = rv
        self.type = type_
        self.storage = storage
        self.key = key
        self.new = new
        self.old = old
        self._lines: dict[tuple[str, str], bytes] = {}

    def line(self, type_: str, api_version: str) -> bytes:
        """The watch event line (JSON + newline) of this change, seen as ``type_``."""
        cache_key = (type_, api_version)
        line = self._lines.get(cache_key)
        if line is None:
            if type_ == "DELETED" and self.type != "DELETED":
                # An object that stopped matching a selector: its previous state
                # with this change's resourceVersion, as the real server sends it.
                assert self.old is not None
                entry = Entry.of(_with_rv(self.old.obj, self.rv))
            else:
                entry = self.new
            line = watch_line(type_, entry.encoded_as(api_version))
            self._lines[cache_key] = line
        return line


def watch_line(type_: str, encoded_object: bytes) -> bytes:
    """One watch event as the JSON line the server streams."""
    return b'{"type":"' + type_.encode() + b'","object":' + encoded_object + b"}\n"


def _with_rv(obj: Mapping[str, Any], rv: int) -> dict[str, Any]:
    return {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(rv)}}


@dataclass(eq=False)
class Watcher:
    """The state of one open watch stream (owned by one server thread)."""

    resource: ResourceType
    namespace: str | None
    labels: LabelSelector
    fields: FieldSelector
    cursor: int
    epoch: int
    dropped: bool = False
    abrupt: bool = False
    garbage: int = 0
    on_abrupt: Callable[[], None] | None = None
    end_at: int | None = None  # end cleanly once every change up to this one was seen
    held: bool = False  # parked by hold_watches(): sends nothing until released
    opened_at: int = 0  # the server's resourceVersion when the watch began

    def select(self, change: Change) -> bytes | None:
        """The line this watcher must see for ``change``, or None.

        Selector semantics follow the API server's watch cache: an object that
        starts matching arrives as ADDED, one that stops matching as DELETED.
        """
        if change.storage != self.resource.storage:
            return None
        if self.namespace is not None and change.key[0] != self.namespace:
            return None
        now = change.type != "DELETED" and self._matches(change.new.obj)
        before = change.old is not None and self._matches(change.old.obj)
        if now:
            type_ = "MODIFIED" if before else "ADDED"
        elif before:
            type_ = "DELETED"
        else:
            return None
        return change.line(type_, self.resource.api_version)

    def _matches(self, obj: Mapping[str, Any]) -> bool:
        metadata = obj["metadata"]
        if not self.labels.is_empty and not self.labels.matches(metadata.get("labels")):
            return False
        if self.fields.is_empty:
            return True
        return self.fields.matches(field_values(self.resource, obj))


@dataclass
class ListResult:
    """One page of a list: encoded items and list metadata."""

    items: list[bytes]
    resource_version: int
    continue_token: str = ""
    remaining: int | None = None


@dataclass
class _Snapshot:
    keys: list[Key]
    entries: list[Entry]


@dataclass
class _Registry:
    """Served resource types by group/version/plural and by kind."""

    by_gvr: dict[tuple[str, str, str], ResourceType] = field(default_factory=dict)
    crd_types: dict[str, list[ResourceType]] = field(default_factory=dict)  # CRD name -> types

    def add(self, types: Iterable[ResourceType]) -> None:
        for rt in types:
            self.by_gvr[(rt.group, rt.version, rt.plural)] = rt


class Store:
    """Objects of every resource, their history, and the open watches."""

    def __init__(self, *, history_size: int = 10_000, too_large_wait: float = 3.0,
                 namespace_cleanup_delay: float = 1.0) -> None:
        if history_size < 1:
            raise ValueError("history_size must be at least 1")
        self.history_size = history_size
        self.too_large_wait = too_large_wait
        self.namespace_cleanup_delay = namespace_cleanup_delay
        self._closed = False
        self._reaper: threading.Thread | None = None
        self.cond = threading.Condition(threading.RLock())
        self.epoch = 0
        self._hold: re.Pattern[str] | None = None  # a fault: survives restart()
        self._reset()

    # ----------------------------------------------------------------- state

    def _reset(self) -> None:
        self.rv = 0
        self._objects: dict[Storage, dict[Key, Entry]] = {}
        self._log: list[Change] = []
        self._first_rv = 1  # resourceVersion of _log[0], or rv + 1 when empty
        self._snapshots: OrderedDict[tuple[Storage, int], _Snapshot] = OrderedDict()
        self._watchers: set[Watcher] = set()
        self._namespaces_due: dict[str, float] = {}
        self.registry = _Registry()
        self.registry.add(BUILTIN_RESOURCES)
        for name in DEFAULT_NAMESPACES:
            self.create(NAMESPACES, None, {"metadata": {"name": name}}, manager="kube-apiserver")

    def restart(self) -> None:
        """Lose every object and the history, and reset the resourceVersion counter.

        Open watches end abruptly, as when a real server process dies.
        """
        with self.cond:
            for watcher in self._watchers:
                watcher.dropped = watcher.abrupt = True
                if watcher.on_abrupt is not None:
                    watcher.on_abrupt()
            self.epoch += 1
            self._reset()
            self.cond.notify_all()

    def compact(self) -> None:
        """Forget the whole change history: resuming from any older resourceVersion gives 410."""
        with self.cond:
            self._log.clear()
            self._first_rv = self.rv + 1
            self._snapshots.clear()
            self.cond.notify_all()

    def drop_watches(self, *, abrupt: bool = False) -> int:
        """End every open watch stream; returns how many were open."""
        with self.cond:
            for watcher in self._watchers:
                watcher.dropped = True
                watcher.abrupt = watcher.abrupt or abrupt
                if abrupt and watcher.on_abrupt is not None:
                    watcher.on_abrupt()
            self.cond.notify_all()
            return len(self._watchers)

    def inject_garbage(self) -> int:
        """Make every open watch stream send one malformed line; returns how many."""
        with self.cond:
            for watcher in self._watchers:
                watcher.garbage += 1
            self.cond.notify_all()
            return len(self._watchers)

    @property
    def watch_count(self) -> int:
        with self.cond:
            return len(self._watchers)

    def hold_watches(self, pattern: re.Pattern[str]) -> None:
        """Park every new watch whose request target matches ``pattern`` until released."""
        with self.cond:
            self._hold = pattern

    def release_watches(self) -> int:
        """Stop holding new watches and let the parked ones stream; returns how many."""
        with self.cond:
            self._hold = None
            released = 0
            for watcher in self._watchers:
                if watcher.held:
                    watcher.held = False
                    released += 1
            self.cond.notify_all()
            return released

    @property
    def held_count(self) -> int:
        """How many open watches are parked by :meth:`hold_watches`."""
        with self.cond:
            return self._held()

    def _held(self) -> int:
        return sum(1 for w in self._watchers if w.held and not w.dropped)

    def wait_held(self, count: int, timeout: float) -> bool:
        """Wait until at least ``count`` watches are parked; False if ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while self._held() < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.cond.wait(remaining)
            return True

    def wait_released(self, watcher: Watcher, deadline: float) -> bool:
        """Block a parked watcher until it is released; returns False if it must end instead.

        It must end when it was dropped, the store restarted or closed, or
        ``deadline`` (its request timeout) passed while it was parked.
        """
        with self.cond:
            while watcher.held:
                if watcher.dropped or watcher.epoch != self.epoch or self._closed:
                    return False
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.cond.wait(remaining)
            return not (watcher.dropped or watcher.epoch != self.epoch)

    # -------------------------------------------------------------- registry

    def resolve(self, group: str, version: str, plural: str) -> ResourceType | None:
        with self.cond:
            return self.registry.by_gvr.get((group, version, plural))

    def served(self) -> list[ResourceType]:
        """Every served resource type."""
        with self.cond:
            return list(self.registry.by_gvr.values())

    def resource_for(self, api_version: str, kind: str) -> ResourceType:
        """The served resource of an object's apiVersion and kind; raises ApiError 404."""
        group, _, version = api_version.rpartition("/")
        with self.cond:
            for rt in self.registry.by_gvr.values():
                if rt.group == group and rt.version == version and rt.kind == kind:
                    return rt
        raise ApiError(
            404,
            f'the server could not find the requested resource (kind "{kind}" in version '
            f'"{api_version}")',
        )

    # ----------------------------------------------------------------- reads

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> Entry:
        with self.cond:
            entry = self._objects.get(rt.storage, {}).get((namespace or "", name))
        if entry is None:
            raise not_found(rt.plural, rt.group, name)
        return entry

    def list_page(
        self,
        rt: ResourceType,
        namespace: str | None,
        labels: LabelSelector,
        fields: FieldSelector,
        *,
        limit: int = 0,
        continue_token: str = "",
        resource_version: str = "",
        match: str = "",
        bare_items: bool = False,
        send_initial_events: bool | None = None,
    ) -> ListResult:
        """List with the API server's resourceVersion, paging and selector rules.

        ``bare_items`` encodes items without apiVersion and kind, as the real
        server's lists of built-in kinds have them. ``send_initial_events`` is the
        request's parameter (None: absent), which a list refuses.
        """
        _check_list_options(resource_version, match, continue_token, send_initial_events)
        if continue_token:
            at, after = _decode_continue(continue_token)
            if resource_version not in ("", "0"):
                raise ApiError(
                    400, "specifying resource version is not allowed when using continue"
                )
        else:
            at = self._list_rv(resource_version, match, limit)
            after = None
        with self.cond:
            if at < 0:  # a token for "the latest", as the real server hands out with a 410
                at = self.rv
            if at < self._first_rv - 1 and at != self.rv:
                if continue_token:
                    assert after is not None
                    error = expired(_CONTINUE_TOO_OLD)
                    error.list_continue = _encode_continue(-1, after)
                    raise error
                raise expired("The resourceVersion for the provided list is too old.")
            snapshot = self._snapshot(rt.storage, at)
        keys, entries = snapshot.keys, snapshot.entries
        lo, hi = 0, len(keys)
        if namespace is not None:
            lo = bisect.bisect_left(keys, (namespace, ""))
            hi = bisect.bisect_left(keys, (namespace + "\x00", ""))
        if after is not None:
            lo = max(lo, bisect.bisect_right(keys, after))
        watcher = Watcher(rt, namespace, labels, fields, at, 0)
        filtering = not (labels.is_empty and fields.is_empty)
        items: list[bytes] = []
        api_version = rt.api_version
        index = lo
        while index < hi:
            entry = entries[index]
            index += 1
            if filtering and not watcher._matches(entry.obj):
                continue
            items.append(entry.list_item() if bare_items else entry.encoded_as(api_version))
            if limit and len(items) >= limit:
                break
        result = ListResult(items, at)
        if limit and index < hi:
            result.continue_token = _encode_continue(at, keys[index - 1])
            if not filtering:
                result.remaining = hi - index
        return result

    def _list_rv(self, resource_version: str, match: str, limit: int = 0) -> int:
        """The resourceVersion a list without a continue token is served at.

        N with ``Exact``, or N with a limit and no match (the legacy rule), is
        served at exactly N; N otherwise at the latest (not older than N).
        """
        if resource_version in ("", "0"):
            return self.rv
        requested = parse_rv(resource_version)
        self.wait_for_rv(requested)
        exact = match == "Exact" or (not match and limit > 0)
        return requested if exact else self.rv

    def wait_for_rv(self, requested: int) -> None:
        """Wait (up to ``too_large_wait``) until the store reaches ``requested``.

        Raises the server's 504 "Too large resource version" error if it does not.
        """
        deadline = time.monotonic() + self.too_large_wait
        with self.cond:
            while self.rv < requested:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise too_large_resource_version(requested, self.rv)
                self.cond.wait(remaining)

    def _snapshot(self, storage: Storage, at: int) -> _Snapshot:
        """Sorted objects of one storage as they were at ``at``; caller holds the lock."""
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
        snapshot = _Snapshot(keys, [current[k] for k in keys])
        self._snapshots[(storage, at)] = snapshot
        while len(self._snapshots) > 8:
            self._snapshots.popitem(last=False)
        return snapshot

    # ----------------------------------------------------------------- watch

    def open_watch(
        self,
        rt: ResourceType,
        namespace: str | None,
        labels: LabelSelector,
        fields: FieldSelector,
        resource_version: str,
        target: str = "",
        send_initial_events: bool | None = None,
    ) -> tuple[Watcher, list[bytes]]:
        """Register a watcher; returns it and the synthetic ADDED lines to send first.

        ``resource_version`` "" or "0" starts with the current state as ADDED
        events; N starts with every change after N (410 if compacted). A future N
        is accepted and the watch waits for changes after it, as the real
        server's watch cache does (only lists and gets answer 504 for it).
        ``send_initial_events`` (the streaming list; the caller checked the
        options): True starts with the current state, not older than N, as ADDED
        events (504 for a future N, after waiting); False starts with the
        changes after N, or from now when no N is given.
        While :meth:`hold_watches` is in force and its pattern matches the
        request ``target``, the watcher starts parked (``held``): its starting
        point is fixed now, its events flow once it is released.
        """
        initial: list[bytes] = []
        latest = resource_version in ("", "0")
        if send_initial_events is None:
            send_initial_events = latest
        elif send_initial_events and not latest:
            self.wait_for_rv(parse_rv(resource_version))
        if send_initial_events:
            with self.cond:
                at = self.rv
                result = self.list_page(rt, namespace, labels, fields)
                watcher = Watcher(rt, namespace, labels, fields, at, self.epoch, opened_at=at)
                self._register(watcher, target)
            initial = [watch_line("ADDED", raw) for raw in result.items]
            return watcher, initial
        start = -1 if latest else parse_rv(resource_version)
        with self.cond:
            if start < 0:  # sendInitialEvents=false without a resourceVersion: from now
                start = self.rv
            if start < self._first_rv - 1:
                raise expired(f"too old resource version: {start} ({self._first_rv - 1})")
            watcher = Watcher(rt, namespace, labels, fields, start, self.epoch,
                              opened_at=self.rv)
            self._register(watcher, target)
        return watcher, initial

    def _register(self, watcher: Watcher, target: str) -> None:
        """Add an open watcher, parked if a hold matches; caller holds the lock."""
        if self._hold is not None and self._hold.search(target):
            watcher.held = True
            self.cond.notify_all()  # wake wait_held()
        self._watchers.add(watcher)

    def close_watch(self, watcher: Watcher) -> None:
        with self.cond:
            self._watchers.discard(watcher)

    def next_changes(self, watcher: Watcher, deadline: float, batch: int = 1024) -> list[Change]:
        """Block until changes after ``watcher.cursor`` exist, or ``deadline`` passes.

        Returns [] on timeout or when the watcher was dropped or has garbage to
        send (the caller checks its flags). Raises ApiError 410 when the changes
        the watcher needs were compacted away.
        """
        with self.cond:
            while True:
                if watcher.dropped or watcher.garbage or watcher.epoch != self.epoch:
                    return []
                if watcher.end_at is not None and watcher.cursor >= watcher.end_at:
                    watcher.dropped = True
                    return []
                if watcher.cursor < self._first_rv - 1:
                    raise expired(
                        f"too old resource version: {watcher.cursor} ({self._first_rv - 1})"
                    )
                if watcher.cursor < self.rv:
                    start = watcher.cursor + 1 - self._first_rv
                    stop = start + batch
                    if watcher.end_at is not None:
                        stop = min(stop, watcher.end_at + 1 - self._first_rv)
                    return self._log[start:stop]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self.cond.wait(remaining)

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
        obj = _check_body(rt, body)
        metadata = obj["metadata"]
        name = metadata.get("name") or ""
        if not name and metadata.get("generateName"):
            name = metadata["generateName"] + "".join(
                _GENERATE_ALPHABET[b % len(_GENERATE_ALPHABET)] for b in uuid.uuid4().bytes[:5]
            )
            metadata["name"] = name
        if not name:
            raise invalid(rt.kind, rt.group, "", [("metadata.name", "Required value: name or "
                                                   "generateName is required")])
        _validate_name(rt, name, metadata)
        if rt.namespaced:
            namespace = _check_namespace(metadata, namespace)
            metadata["namespace"] = namespace
        else:
            metadata.pop("namespace", None)
            namespace = ""
        given_rv = metadata.get("resourceVersion")
        for server_field in _SERVER_METADATA - {"deletionTimestamp", "deletionGracePeriodSeconds"}:
            metadata.pop(server_field, None)
        with self.cond:
            if rt.namespaced:
                ns = self._objects.get(NAMESPACES.storage, {}).get(("", namespace))
                if ns is None:
                    raise not_found("namespaces", "", namespace)
                if ns.obj["metadata"].get("deletionTimestamp"):
                    # As the NamespaceLifecycle admission plugin answers.
                    details = status_details(name, rt.group, rt.plural, causes=[{
                        "reason": "NamespaceTerminating",
                        "message": f"namespace {namespace} is being terminated",
                        "field": "metadata.namespace"}])
                    raise ApiError(
                        403,
                        f'{qualified(rt.plural, rt.group)} "{name}" is forbidden: unable to '
                        f"create new content in namespace {namespace} because it is being "
                        "terminated",
                        details=details,
                    )
            objects = self._objects.setdefault(rt.storage, {})
            key = (namespace, name)
            if not dry_run and isinstance(given_rv, str) and given_rv.isdigit() \
                    and int(given_rv):
                # etcd3 storage refuses it (before the existence check) with a plain error,
                # which the server answers as a 500 without a reason; a dry run never gets
                # that far.
                raise ApiError(500, "resourceVersion should not be set on objects to be "
                               "created", reason="Unknown")
            if key in objects:
                raise already_exists(rt.plural, rt.group, name)
            if rt is CRDS:
                problems = crd_problems(obj)
                if problems:
                    raise invalid(rt.kind, rt.group, name, _causes(problems))
            if rt.has_status:
                obj.pop("status", None)
            _normalize(rt, obj)
            _defaults_on_create(rt, obj, objects)
            metadata["uid"] = str(uuid.uuid4())
            metadata["creationTimestamp"] = now_rfc3339()
            if _tracks_generation(rt):
                metadata["generation"] = 1
            _record_manager(rt, obj, None, manager, operation, subresource="")
            if dry_run:
                return Entry.of(_with_rv(obj, self.rv))
            entry = self._commit(rt.storage, key, "ADDED", obj, None)
            if rt is CRDS:
                entry = self._establish(entry)
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
        obj = _check_body(rt, body)
        metadata = obj["metadata"]
        if metadata.get("name", name) != name:
            raise ApiError(400, f"the name of the object ({metadata['name']}) does not match "
                           f"the name on the URL ({name})")
        if rt.namespaced:
            _check_namespace(metadata, namespace)
        if subresource != "status":
            causes = _label_problems(metadata)
            if causes:
                raise invalid(rt.kind, rt.group, name, causes)
        with self.cond:
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
            if subresource == "status":
                new = copy.deepcopy(current)
                if "status" in obj:
                    new["status"] = obj["status"]
                else:
                    new.pop("status", None)
            else:
                new = obj
                for server_field in _SERVER_METADATA - {"managedFields"}:
                    if server_field in current["metadata"]:
                        metadata[server_field] = current["metadata"][server_field]
                    else:
                        metadata.pop(server_field, None)
                metadata["name"] = name
                if rt.namespaced:
                    metadata["namespace"] = current["metadata"]["namespace"]
                if rt.has_status:
                    if "status" in current:
                        new["status"] = current["status"]
                    else:
                        new.pop("status", None)
                if rt is CRDS:
                    self._check_crd_update(current, new)
            _normalize(rt, new)
            new["metadata"]["managedFields"] = current["metadata"].get("managedFields", [])
            if _same(new, current):
                return old
            if _bumps_generation(rt, new, current, subresource):
                new["metadata"]["generation"] = current["metadata"].get("generation", 1) + 1
            _record_manager(rt, new, current, manager, operation, subresource)
            if dry_run:
                return Entry.of(_with_rv(new, self.rv))
            return self._finish_update(rt, (namespace or "", name), new, old)

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
        with self.cond:
            if patch_type == "apply":
                return self._apply(rt, namespace, name, patch, manager, dry_run)
            current = self.get(rt, namespace, name).obj
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

        An object with finalizers is only marked (deletionTimestamp, a MODIFIED
        event) and goes when an update empties its finalizers. A namespace turns
        Terminating at once; after ``namespace_cleanup_delay`` its objects are
        deleted (finalizers honoured) and then the namespace itself.
        """
        with self.cond:
            entry = self.get(rt, namespace, name)
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
            key = (namespace or "", name)
            if metadata.get("deletionTimestamp"):
                return entry, False
            if rt is NAMESPACES:
                # Like the namespace controller: the namespace turns Terminating now,
                # its content goes a little later, then the namespace itself.
                self._namespaces_due[name] = time.monotonic() + self.namespace_cleanup_delay
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

    def delete_collection(
        self, rt: ResourceType, namespace: str | None, labels: LabelSelector,
        fields: FieldSelector,
    ) -> list[Entry]:
        """Delete every matching object; returns their last states."""
        with self.cond:
            result = self.list_page(rt, namespace, labels, fields)
            gone = []
            for raw in result.items:
                metadata = orjson.loads(raw)["metadata"]
                gone.append(self.delete(rt, metadata.get("namespace"), metadata["name"])[0])
            return gone

    # -------------------------------------------------------------- internals

    def _commit(
        self, storage: Storage, key: Key, type_: str, obj: dict[str, Any], old: Entry | None
    ) -> Entry:
        """Give ``obj`` the next resourceVersion and record the change; caller holds the lock."""
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        entry = Entry.of(obj)
        objects = self._objects.setdefault(storage, {})
        if type_ == "DELETED":
            del objects[key]
        else:
            objects[key] = entry
        self._log.append(Change(self.rv, type_, storage, key, entry, old))
        if len(self._log) > self.history_size + max(1, self.history_size // 4):
            del self._log[: len(self._log) - self.history_size]
        self._first_rv = self._log[0].rv
        self.cond.notify_all()
        return entry

    def _finish_update(
        self, rt: ResourceType, key: Key, new: dict[str, Any], old: Entry
    ) -> Entry:
        metadata = new["metadata"]
        if metadata.get("deletionTimestamp") and not metadata.get("finalizers"):
            if rt is NAMESPACES:
                entry = self._commit(rt.storage, key, "MODIFIED", new, old)
                self._remove_namespace_if_done(key[1])
                return self._objects[rt.storage].get(key, entry)
            return self._remove(rt, key, old, new)
        entry = self._commit(rt.storage, key, "MODIFIED", new, old)
        if rt is CRDS:
            self._register_crd(entry.obj)
        return entry

    def _remove(
        self, rt: ResourceType, key: Key, old: Entry, final: dict[str, Any] | None = None
    ) -> Entry:
        """Delete for good: a DELETED change, plus cascades for namespaces and CRDs."""
        if rt is CRDS:
            self._unregister_crd(old.obj)
        entry = self._commit(rt.storage, key, "DELETED", copy.deepcopy(final or old.obj), old)
        if rt.namespaced:
            self._remove_namespace_if_done(key[0])
        return entry

    def _mark_deleting(self, rt: ResourceType, key: Key, entry: Entry) -> Entry:
        """Set deletionTimestamp (a MODIFIED change); caller holds the lock."""
        new = copy.deepcopy(entry.obj)
        new["metadata"]["deletionTimestamp"] = now_rfc3339()
        if rt is not NAMESPACES:  # a namespace's deletion has no grace period
            new["metadata"]["deletionGracePeriodSeconds"] = 0
        if new["metadata"].get("generation"):  # as the real server's markAsDeleting
            new["metadata"]["generation"] += 1
        if rt is NAMESPACES:
            new.setdefault("status", {})["phase"] = "Terminating"
        return self._commit(rt.storage, key, "MODIFIED", new, entry)

    def _start_reaper(self) -> None:
        if self._reaper is None or not self._reaper.is_alive():
            self._reaper = threading.Thread(target=self._reap_namespaces,
                                            name="faro-sim-namespaces", daemon=True)
            self._reaper.start()

    def _reap_namespaces(self) -> None:
        """Thread body: finalize Terminating namespaces when their cleanup is due."""
        with self.cond:
            while not self._closed:
                now = time.monotonic()
                for name, due in sorted(self._namespaces_due.items()):
                    if due <= now:
                        del self._namespaces_due[name]
                        self._finalize_namespace(name)
                if self._namespaces_due:
                    self.cond.wait(max(0.0, min(self._namespaces_due.values()) - now))
                else:
                    self.cond.wait()

    def _finalize_namespace(self, name: str) -> None:
        key = ("", name)
        self._empty_namespace(name)
        entry = self._objects.get(NAMESPACES.storage, {}).get(key)
        if entry is None or not entry.obj["metadata"].get("deletionTimestamp"):
            return
        if (entry.obj.get("spec") or {}).get("finalizers"):
            new = copy.deepcopy(entry.obj)
            new["spec"]["finalizers"] = []
            self._commit(NAMESPACES.storage, key, "MODIFIED", new, entry)
        self._remove_namespace_if_done(name)

    def _remove_namespace_if_done(self, name: str) -> None:
        """Remove a Terminating namespace once nothing holds it any more."""
        key = ("", name)
        entry = self._objects.get(NAMESPACES.storage, {}).get(key)
        if entry is None:
            return
        obj = entry.obj
        if (obj["metadata"].get("deletionTimestamp") and not obj["metadata"].get("finalizers")
                and not (obj.get("spec") or {}).get("finalizers")
                and not self._namespace_busy(name)):
            self._remove(NAMESPACES, key, entry)

    def close(self) -> None:
        """Stop the store's background thread (namespace cleanup)."""
        with self.cond:
            self._closed = True
            self.cond.notify_all()

    def _namespace_busy(self, namespace: str) -> bool:
        for storage, objects in self._objects.items():
            if storage == NAMESPACES.storage:
                continue
            for ns, _ in objects:
                if ns == namespace:
                    return True
        return False

    def _empty_namespace(self, namespace: str) -> None:
        """Delete every object of a namespace (finalizers honoured), as its controller does."""
        for storage, objects in list(self._objects.items()):
            rt = self._storage_type(storage)
            if rt is None or not rt.namespaced:
                continue
            for key in sorted(k for k in objects if k[0] == namespace):
                entry = objects.get(key)
                if entry is None:
                    continue
                if entry.obj["metadata"].get("finalizers"):
                    if not entry.obj["metadata"].get("deletionTimestamp"):
                        self._mark_deleting(rt, key, entry)
                    continue
                self._commit(storage, key, "DELETED", copy.deepcopy(entry.obj), entry)

    def _storage_type(self, storage: Storage) -> ResourceType | None:
        for rt in self.registry.by_gvr.values():
            if rt.storage == storage:
                return rt
        return None

    def _establish(self, entry: Entry) -> Entry:
        """Accept a new CRD's names and mark it Established (a MODIFIED change)."""
        crd = copy.deepcopy(entry.obj)
        stamp = now_rfc3339()
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
        established = self._commit(CRDS.storage, key, "MODIFIED", crd, entry)
        self._register_crd(established.obj)
        return established

    def _register_crd(self, crd: Mapping[str, Any]) -> None:
        """Serve (or re-serve after a change) the resources of an established CRD."""
        name = crd["metadata"]["name"]
        conditions = (crd.get("status") or {}).get("conditions") or []
        if not any(c.get("type") == "Established" and c.get("status") == "True"
                   for c in conditions):
            return
        before = self.registry.crd_types.get(name, [])
        after = resources_from_crd(crd)
        if before == after:
            return
        for rt in before:
            self.registry.by_gvr.pop((rt.group, rt.version, rt.plural), None)
        self.registry.crd_types[name] = after
        self.registry.add(after)
        removed = set(before) - set(after)
        for watcher in self._watchers:
            if watcher.resource in removed:
                watcher.dropped = True

    def _unregister_crd(self, crd: Mapping[str, Any]) -> None:
        """Stop serving a CRD: delete its objects and end their watches."""
        types = self.registry.crd_types.pop(crd["metadata"]["name"], [])
        for rt in types:
            self.registry.by_gvr.pop((rt.group, rt.version, rt.plural), None)
        if not types:
            return
        storage = types[0].storage
        for key, entry in sorted(self._objects.get(storage, {}).items()):
            self._commit(storage, key, "DELETED", copy.deepcopy(entry.obj), entry)
        for watcher in self._watchers:  # they see those DELETED events, then end cleanly
            if watcher.resource.storage == storage:
                watcher.end_at = self.rv
        self.cond.notify_all()

    def _check_crd_update(self, current: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        name = current["metadata"]["name"]
        problems = crd_problems(new)
        if current["spec"].get("scope") != (new.get("spec") or {}).get("scope"):
            problems.append("spec.scope: Invalid value: field is immutable")
        if (new.get("spec") or {}).get("group") != current["spec"].get("group"):
            problems.append("spec.group: Invalid value: field is immutable")
        if problems:
            raise invalid(CRDS.kind, CRDS.group, name, _causes(problems))


# ------------------------------------------------------------------ helpers


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


def _causes(problems: list[str]) -> list[tuple[str, str]]:
    """(field, message) pairs from "field: message" strings."""
    return [(field, message) for field, _, message in (p.partition(": ") for p in problems)]


def _check_list_options(resource_version: str, match: str, continue_token: str,
                        send_initial_events: bool | None = None) -> None:
    """ListOptions validation as the real handler does it (422 Invalid ListOptions)."""
    problems = []
    if match:
        if not resource_version:
            problems.append("Forbidden: resourceVersionMatch is forbidden unless "
                            "resourceVersion is provided")
        if continue_token:
            problems.append("Forbidden: resourceVersionMatch is forbidden when continue is "
                            "provided")
        if match not in ("Exact", "NotOlderThan"):
            problems.append(f'Unsupported value: "{match}": supported values: "Exact", '
                            '"NotOlderThan", ""')
        if match == "Exact" and resource_version == "0":
            problems.append('Forbidden: resourceVersionMatch "exact" is forbidden for '
                            'resourceVersion "0"')
    causes = [("resourceVersionMatch", problem) for problem in problems]
    if send_initial_events is not None:
        causes.append(("sendInitialEvents", "Forbidden: sendInitialEvents is forbidden for list"))
    if causes:
        raise invalid("ListOptions", "meta.k8s.io", "", causes)


def check_watch_options(match: str, continue_token: str,
                        send_initial_events: bool | None) -> None:
    """A watch's ListOptions validation, as the real handler's (422 Invalid ListOptions)."""
    problems = []
    if send_initial_events is not None and match != "NotOlderThan":
        problems.append("Forbidden: sendInitialEvents requires setting resourceVersionMatch to "
                        "NotOlderThan")
    if match:
        if send_initial_events is None:
            problems.append("Forbidden: resourceVersionMatch is forbidden for watch unless "
                            "sendInitialEvents is provided")
        if match != "NotOlderThan":
            problems.append(f'Unsupported value: "{match}": supported values: "NotOlderThan"')
        if continue_token:
            problems.append("Forbidden: resourceVersionMatch is forbidden when continue is "
                            "provided")
    if problems:
        raise invalid("ListOptions", "meta.k8s.io", "",
                      [("resourceVersionMatch", problem) for problem in problems])


def _encode_continue(rv: int, last: Key) -> str:
    token = dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": [last[0], last[1]]})
    return base64.urlsafe_b64encode(token).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[int, Key]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = orjson.loads(raw)
        rv = int(data["rv"])
        start = (str(data["start"][0]), str(data["start"][1]))
    except (binascii.Error, ValueError, KeyError, TypeError, IndexError) as error:
        raise ApiError(400, f"invalid continue token: continue key is not valid: {error}") \
            from error
    if rv == 0:
        raise ApiError(400, "invalid continue token: continue key is not valid: incorrect "
                       "encoded start resourceVersion (version meta.k8s.io/v1)")
    return rv, start


def _check_body(rt: ResourceType, body: Mapping[str, Any]) -> dict[str, Any]:
    """A private deep copy of a request body, with apiVersion and kind checked."""
    if not isinstance(body, Mapping):
        raise ApiError(400, "the body of the request must be a JSON object")
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


def _check_namespace(metadata: dict[str, Any], namespace: str | None) -> str:
    given = metadata.get("namespace")
    if namespace is None:
        if not given:
            raise ApiError(400, "the namespace of the object is required")
        return str(given)
    if given and given != namespace:
        raise ApiError(400, "the namespace of the provided object does not match the namespace "
                       "sent on the request")
    return namespace


def _validate_name(rt: ResourceType, name: str, metadata: Mapping[str, Any] | None = None) -> None:
    """ObjectMeta validation of a new object: its name and (``metadata``) labels and annotations.

    Every problem is reported in one 422, as from the real server.
    """
    # Messages as apimachinery's IsDNS1123Label/IsDNS1035Label/IsDNS1123Subdomain.
    if rt is NAMESPACES:
        pattern, limit, what, examples = _LABEL, 63, (
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
            "'-', and must start and end with an alphanumeric character"), (
            "'my-name',  or '123-abc'")
    elif rt.plural == "services" and not rt.group:
        pattern, limit, what, examples = _DNS1035, 63, (
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
            "with an alphabetic character, and end with an alphanumeric character"), (
            "'my-name',  or 'abc-123'")
    else:
        pattern, limit, what, examples = _SUBDOMAIN, 253, (
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
            "'-' or '.', and must start and end with an alphanumeric character"), "'example.com'"
    problems = []
    if len(name) > limit:
        problems.append(f"must be no more than {limit} characters")
    if not pattern.fullmatch(name):
        problems.append(f"{what} (e.g. {examples}, regex used for validation is "
                        f"'{pattern.pattern}')")
    causes = [("metadata.name", f'Invalid value: "{name}": {p}') for p in problems]
    causes += _label_problems(metadata or {})
    if causes:
        raise invalid(rt.kind, rt.group, name, causes)


_QUALIFIED = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_QUALIFIED_TEXT = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    f"validation is '{_QUALIFIED.pattern}')")
_SUBDOMAIN_TEXT = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    f"for validation is '{_SUBDOMAIN.pattern}')")
_LABEL_VALUE_TEXT = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    f"'my_value',  or '12345', regex used for validation is '{_LABEL_VALUE.pattern}')")
_ANNOTATIONS_LIMIT = 262144  # bytes of all annotation keys and values together


def _key_problems(key: str) -> list[str]:
    """What is wrong with a label or annotation key (a qualified name), as kube-apiserver says."""
    parts = key.split("/")
    if len(parts) > 2:
        return [f"a valid label key {_QUALIFIED_TEXT} with an optional DNS subdomain prefix and "
                "'/' (e.g. 'example.com/MyName')"]
    problems = []
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            problems.append("prefix part must be non-empty")
        else:
            if len(prefix.encode()) > 253:
                problems.append("prefix part must be no more than 253 bytes")
            if not _SUBDOMAIN.fullmatch(prefix):
                problems.append(f"prefix part {_SUBDOMAIN_TEXT}")
    name = parts[-1]
    if not name:
        problems.append("name part must be non-empty")
    elif len(name.encode()) > 63:
        problems.append("name part must be no more than 63 bytes")
    if not _QUALIFIED.fullmatch(name):
        problems.append(f"name part {_QUALIFIED_TEXT}")
    return problems


def _label_problems(metadata: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(field, message) for invalid label keys and values and annotation keys and size."""
    causes = []
    labels = metadata.get("labels")
    for key, value in (labels.items() if isinstance(labels, Mapping) else ()):
        causes += [("metadata.labels", f'Invalid value: "{key}": {p}') for p in _key_problems(key)]
        value = "" if value is None else str(value)
        if len(value.encode()) > 63:
            causes.append(("metadata.labels", f'Invalid value: "{value}": must be no more than '
                           "63 bytes"))
        if not _LABEL_VALUE.fullmatch(value):
            causes.append(("metadata.labels", f'Invalid value: "{value}": {_LABEL_VALUE_TEXT}'))
    annotations = metadata.get("annotations")
    if isinstance(annotations, Mapping):
        size = 0
        for key, value in annotations.items():
            causes += [("metadata.annotations", f'Invalid value: "{key}": {p}')
                       for p in _key_problems(str(key).lower())]
            size += len(str(key).encode()) + len(str(value or "").encode())
        if size > _ANNOTATIONS_LIMIT:
            causes.append(("metadata.annotations",
                           f"Too long: may not be more than {_ANNOTATIONS_LIMIT} bytes"))
    return causes


def _normalize(rt: ResourceType, obj: dict[str, Any]) -> None:
    """Conversions the real server applies on every write (Secret ``stringData``)."""
    if rt.group == "" and rt.plural == "secrets":
        string_data = obj.pop("stringData", None)
        if isinstance(string_data, Mapping) and string_data:
            data = obj.get("data")
            data = obj["data"] = dict(data) if isinstance(data, Mapping) else {}
            for k, v in string_data.items():
                data[k] = base64.b64encode(str(v).encode()).decode()


def _defaults_on_create(rt: ResourceType, obj: dict[str, Any],
                        objects: Mapping[Key, Entry]) -> None:
    """Fields the real server's strategies set on create, for the kinds that matter."""
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


def _spec_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _tracks_generation(rt: ResourceType) -> bool:
    """Whether the real server keeps ``metadata.generation`` for this kind.

    Workload kinds, CRDs, custom resources, and (since 1.33/1.35) Pods and
    PodTemplates do; configmaps, secrets, services, namespaces and the other
    simple kinds have none.
    """
    return rt.custom or rt is CRDS or rt.group in ("apps", "batch") or (
        rt.group == "" and rt.plural in _CORE_KINDS_WITH_GENERATION)


_CORE_KINDS_WITH_GENERATION = ("pods", "podtemplates")


def _bumps_generation(rt: ResourceType, new: Mapping[str, Any], old: Mapping[str, Any],
                      subresource: str) -> bool:
    """Whether an update increments ``metadata.generation``, per the kind's strategy."""
    if subresource == "status" or not _tracks_generation(rt):
        return False
    if rt.custom:  # everything but metadata (status included when it is no subresource)
        ignored = ("metadata", "apiVersion")  # versions differ only in apiVersion here
        return {k: v for k, v in new.items() if k not in ignored} != \
            {k: v for k, v in old.items() if k not in ignored}
    if rt.group == "apps" and rt.plural == "deployments" and (
            new["metadata"].get("annotations") != old["metadata"].get("annotations")):
        return True  # annotations are copied to ReplicaSets, so they count as spec
    return _spec_of(new) != _spec_of(old)


def _same(new: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    """Whether an update changes nothing but the resourceVersion it was sent with."""
    if _spec_of(new) != _spec_of(old) or new.get("status") != old.get("status"):
        return False
    a = {k: v for k, v in new["metadata"].items() if k != "resourceVersion"}
    b = {k: v for k, v in old["metadata"].items() if k != "resourceVersion"}
    return a == b


def _fields_v1(value: Any, top: bool = False) -> dict[str, Any]:
    """A FieldsV1 set describing the fields present in ``value``."""
    if not isinstance(value, dict):
        return {}
    out: dict[str, Any] = {} if top else {".": {}}
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


def _record_manager(
    rt: ResourceType,
    obj: dict[str, Any],
    old: Mapping[str, Any] | None,
    manager: str,
    operation: str,
    subresource: str,
) -> None:
    """Update ``metadata.managedFields`` for a write by ``manager``, as the server does."""
    if subresource == "status":
        managed_part = {"status": obj.get("status")} if "status" in obj else {}
    else:
        metadata = {k: v for k, v in obj["metadata"].items()
                    if k not in _SERVER_METADATA and k not in ("name", "namespace",
                                                               "generateName")}
        managed_part = {k: v for k, v in _spec_of(obj).items()}
        if metadata:
            managed_part["metadata"] = metadata
    entries = [
        e for e in (old or {}).get("metadata", {}).get("managedFields", [])
        if not (e.get("manager") == manager and e.get("operation") == operation
                and e.get("subresource", "") == subresource)
    ] if old is not None else []
    if managed_part:
        entry: dict[str, Any] = {
            "manager": manager,
            "operation": operation,
            "apiVersion": rt.api_version,
            "time": now_rfc3339(),
            "fieldsType": "FieldsV1",
            "fieldsV1": _fields_v1(managed_part, top=True),
        }
        if subresource:
            entry["subresource"] = subresource
        entries.append(entry)
    obj["metadata"]["managedFields"] = entries


def _load_yaml(body: bytes) -> Any:
    import yaml

    try:
        return yaml.safe_load(body)
    except yaml.YAMLError as error:
        raise ValueError(str(error)) from error
