"""Watch fan-out: open watches, the events each one is sent, bookmarks, and 410 Gone.

Contract:

- :meth:`WatchHub.open` places a watcher in the history: ``resourceVersion`` unset or
  ``0`` (or ``sendInitialEvents=true``) starts with the current state as ADDED events,
  N with every change after N. A compacted N is refused with 410 Expired; a future N is
  accepted (the watch waits for changes after it), as the real watch cache does.
- Every change is delivered to every watcher whose :class:`Selection` it concerns, in
  resourceVersion order, as the watch cache's filter sees it: an object that starts
  matching arrives as ADDED, one that stops matching as DELETED. An object is
  encoded once, at commit; every watcher's line wraps those bytes (:meth:`Change.line`).
- A watcher that falls behind a compaction gets 410 Expired in its stream.
- :class:`WatchStream` is what one HTTP watch stream sends, batch by batch, with
  BOOKMARK events scheduled as the watch cache schedules them, until the watch ends
  cleanly (timeout, dropped, CRD deleted) or must be cut (abrupt drop, restart).
- Faults act on the open watches: drop them (cleanly or abruptly), make them send a
  malformed line, park new ones (hold) until released, end new ones at once (close),
  or send every event about one object as a line the test made (rewrite).
- Thread-safe: the hub's state is guarded by the store's shared condition; a watcher's
  flags change only under it, through the hub.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from faro.clock import Clock
from faro.testing._errors import ApiError, expired
from faro.testing._resources import ResourceType
from faro.testing._selection import Lister, Selection
from faro.testing._storage import Change, Storage, VersionedStorage, dumps, parse_rv, watch_line

_INITIAL_EVENTS_END = {"k8s.io/initial-events-end": "true"}
_MALFORMED_LINE = b'{"type":"MODIFIED","object":{"kind":\n'
_INITIAL_BATCH = 512  # initial ADDED events written per socket call
_CHANGES_BATCH = 1024  # changes taken from the history at once


def bookmark_line(rt: ResourceType, rv: int, *, initial_events_end: bool = False) -> bytes:
    """A BOOKMARK event at ``rv``; ``initial_events_end`` marks the end of the initial events."""
    metadata: dict[str, object] = {"resourceVersion": str(rv)}
    if initial_events_end:
        metadata["annotations"] = _INITIAL_EVENTS_END
    return watch_line("BOOKMARK", dumps({"kind": rt.kind, "apiVersion": rt.api_version,
                                         "metadata": metadata}))


def error_line(error: ApiError) -> bytes:
    """An ERROR event carrying ``error``'s Status."""
    return watch_line("ERROR", dumps(error.status()))


def next_bookmark(now: float, interval: float, end: float) -> float | None:
    """When a watch ending at ``end`` gets its next bookmark, or None (no more bookmarks).

    The real watch cache's rule (cacheWatcher.nextBookmarkTime): ``interval`` from now, but
    no later than 2 s before the watch's timeout; once that moment has passed, none.
    """
    at = min(now + interval, end - 2.0)
    return at if at > now else None


class Watcher:
    """One open watch: what it selects, where it is in the history, and its state.

    Its stream advances it; the hub drops, parks and releases it, under the store's lock.
    """

    __slots__ = ("_abrupt", "_cursor", "_dropped", "_end_at", "_garbage", "_held", "_on_abrupt",
                 "epoch", "opened_at", "selection")

    def __init__(self, selection: Selection, cursor: int, epoch: int, opened_at: int,
                 on_abrupt: Callable[[], None] | None = None) -> None:
        self.selection = selection
        self.epoch = epoch  # the hub's epoch at opening; a restart starts a new one
        self.opened_at = opened_at  # the server's resourceVersion when the watch began
        self._cursor = cursor  # every change up to this resourceVersion was seen
        self._on_abrupt = on_abrupt
        self._dropped = False
        self._abrupt = False
        self._garbage = 0  # malformed lines to send
        self._end_at: int | None = None  # end cleanly once every change up to it was seen
        self._held = False  # parked by a hold: sends nothing until released

    @property
    def resource(self) -> ResourceType:
        return self.selection.resource

    @property
    def cursor(self) -> int:
        """The resourceVersion up to which this watcher has seen every change."""
        return self._cursor

    @property
    def dropped(self) -> bool:
        return self._dropped

    @property
    def abrupt(self) -> bool:
        """Whether it was dropped by cutting its connection."""
        return self._abrupt

    @property
    def held(self) -> bool:
        return self._held

    @property
    def garbage(self) -> int:
        """How many malformed lines it has yet to send."""
        return self._garbage

    @property
    def at_end(self) -> bool:
        """Whether it has seen every change up to the one it must end after."""
        return self._end_at is not None and self._cursor >= self._end_at

    @property
    def end_at(self) -> int | None:
        return self._end_at

    def select(self, change: Change) -> bytes | None:
        """The line this watcher must see for ``change``, or None.

        Selector semantics follow the API server's watch cache: an object that
        starts matching arrives as ADDED, one that stops matching as DELETED.
        """
        selection = self.selection
        if change.storage != selection.resource.storage:
            return None
        if selection.namespace is not None and change.key[0] != selection.namespace:
            return None
        filters = selection.filters  # without selectors, nothing is decoded
        now = change.type != "DELETED" and (not filters or selection.matches(change.new.obj))
        before = change.old is not None and (not filters or selection.matches(change.old.obj))
        if now:
            type_ = "MODIFIED" if before else "ADDED"
        elif before:
            type_ = "DELETED"
        else:
            return None
        return change.line(type_, selection.resource.api_version)

    def advance(self, rv: int) -> None:
        """Every change up to ``rv`` was sent."""
        self._cursor = rv

    def drop(self, *, abrupt: bool = False) -> None:
        """End the watch: cleanly, or (``abrupt``) by cutting its connection."""
        self._dropped = True
        self._abrupt = self._abrupt or abrupt
        if abrupt and self._on_abrupt is not None:
            self._on_abrupt()

    def end_after(self, rv: int) -> None:
        """End the watch cleanly once it has seen every change up to ``rv``."""
        self._end_at = rv

    def park(self) -> None:
        self._held = True

    def release(self) -> bool:
        """Let a parked watcher stream; returns whether it was parked."""
        held, self._held = self._held, False
        return held

    def add_garbage(self) -> None:
        self._garbage += 1

    def take_garbage(self) -> bool:
        """Whether a malformed line is due (counted as sent)."""
        if not self._garbage:
            return False
        self._garbage -= 1
        return True


class WatchHub:
    """The open watches of a store and the faults that act on them."""

    def __init__(self, cond: threading.Condition, storage: VersionedStorage, lister: Lister,
                 clock: Clock) -> None:
        self._cond = cond
        self._storage = storage
        self._lister = lister
        self._clock = clock
        self._watchers: set[Watcher] = set()
        self._epoch = 0
        self._hold: re.Pattern[str] | None = None  # a fault: survives restart()
        self._close: re.Pattern[str] | None = None  # a fault: survives restart()
        self._rewrites: dict[str, Callable[[bytes], bytes]] = {}  # by object name
        self._closed = False
        self._opened = 0  # watch requests accepted since the hub was made

    # ----------------------------------------------------------------- open

    def open(
        self,
        selection: Selection,
        resource_version: str,
        *,
        target: str = "",
        send_initial_events: bool | None = None,
        bookmarks: bool = False,
        on_abrupt: Callable[[], None] | None = None,
    ) -> tuple[Watcher, list[bytes]]:
        """Register a watcher; returns it and the lines to send first.

        ``resource_version`` "" or "0" starts with the current state as ADDED
        events; N starts with every change after N (410 if compacted). A future N
        is accepted and the watch waits for changes after it, as the real
        server's watch cache does (only lists and gets answer 504 for it).
        ``send_initial_events`` (the streaming list; the caller checked the
        options): True starts with the current state, not older than N, as ADDED
        events (504 for a future N, after waiting); False starts with the
        changes after N, or from now when no N is given. Initial events end with
        a BOOKMARK annotated ``k8s.io/initial-events-end`` when ``bookmarks``.
        While :meth:`hold` is in force and its pattern matches the request
        ``target``, the watcher starts parked (``held``): its starting point is
        fixed now, its events flow once it is released. ``on_abrupt`` is called
        (under the lock) when the watch is cut.
        """
        latest = resource_version in ("", "0")
        if send_initial_events is None:
            send_initial_events = latest
        elif send_initial_events and not latest:
            self._storage.wait_for_rv(parse_rv(resource_version))
        if send_initial_events:
            with self._cond:
                at = self._storage.rv
                result = self._lister.list(selection)
                watcher = Watcher(selection, at, self._epoch, at, on_abrupt)
                self._register(watcher, target)
            initial = [watch_line("ADDED", raw) for raw in result.items]
            if bookmarks:
                # The end of the initial events, as the real server marks it for every watch
                # that starts with them and allows bookmarks.
                initial.append(bookmark_line(selection.resource, watcher.cursor,
                                             initial_events_end=True))
            return watcher, initial
        start = -1 if latest else parse_rv(resource_version)
        with self._cond:
            if start < 0:  # sendInitialEvents=false without a resourceVersion: from now
                start = self._storage.rv
            oldest = self._storage.oldest
            if start < oldest:
                raise expired(f"too old resource version: {start} ({oldest})")
            watcher = Watcher(selection, start, self._epoch, self._storage.rv, on_abrupt)
            self._register(watcher, target)
        return watcher, []

    def _register(self, watcher: Watcher, target: str) -> None:
        """Add an open watcher, parked if a hold matches, ended at once if a close matches;
        caller holds the lock."""
        self._opened += 1
        if self._close is not None and self._close.search(target):
            watcher.drop()
        elif self._hold is not None and self._hold.search(target):
            watcher.park()
            self._cond.notify_all()  # wake wait_held()
        self._watchers.add(watcher)

    def close(self, watcher: Watcher) -> None:
        """Forget a watcher whose stream has ended."""
        with self._cond:
            self._watchers.discard(watcher)

    # --------------------------------------------------------------- stream

    def next_changes(self, watcher: Watcher, deadline: float,
                     batch: int = _CHANGES_BATCH) -> list[Change]:
        """Block until changes after ``watcher.cursor`` exist, or ``deadline`` passes.

        Returns [] on timeout or when the watcher was dropped or has garbage to
        send (the caller checks its flags). Raises ApiError 410 when the changes
        the watcher needs were compacted away.
        """
        storage = self._storage
        with self._cond:
            while True:
                if watcher.dropped or watcher.garbage or watcher.epoch != self._epoch:
                    return []
                if watcher.at_end:
                    watcher.drop()
                    return []
                oldest = storage.oldest
                if watcher.cursor < oldest:
                    raise expired(f"too old resource version: {watcher.cursor} ({oldest})")
                if watcher.cursor < storage.rv:
                    return storage.changes_after(watcher.cursor, batch, watcher.end_at)
                remaining = deadline - self._clock.now()
                if remaining <= 0:
                    return []
                self._clock.wait(self._cond, remaining)

    def rewritten(self, change: Change, line: bytes) -> bytes:
        """``line`` (an event about ``change``'s object), or what a rewrite fault makes of it."""
        rewrite = self._rewrites.get(change.key[1]) if self._rewrites else None
        if rewrite is None:
            return line
        return rewrite(line.rstrip(b"\n")).rstrip(b"\n") + b"\n"

    def take_garbage(self, watcher: Watcher) -> bool:
        """Whether ``watcher`` must send a malformed line now (counted as sent)."""
        with self._cond:
            return watcher.take_garbage()

    def ended(self, watcher: Watcher) -> bool:
        """Whether ``watcher`` was dropped or outlived a restart."""
        return watcher.dropped or watcher.epoch != self._epoch

    def must_cut(self, watcher: Watcher) -> bool:
        """Whether ``watcher``'s connection must be cut rather than its stream ended cleanly."""
        return watcher.abrupt or watcher.epoch != self._epoch

    # ------------------------------------------------------------ lifecycle

    def restart(self) -> None:
        """Cut every open watch, as when a real server process dies, and forget them."""
        with self._cond:
            for watcher in self._watchers:
                watcher.drop(abrupt=True)
            self._epoch += 1
            self._watchers = set()
            self._cond.notify_all()

    def close_all(self) -> None:
        """The store is closing: parked watchers stop waiting."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def withdraw(self, types: set[ResourceType]) -> None:
        """End (cleanly) the watches of resource types that are no longer served."""
        with self._cond:
            for watcher in self._watchers:
                if watcher.resource in types:
                    watcher.drop()

    def end_storage(self, storage: Storage) -> None:
        """End the watches of ``storage`` cleanly once they have seen every change so far."""
        with self._cond:
            for watcher in self._watchers:
                if watcher.resource.storage == storage:
                    watcher.end_after(self._storage.rv)
            self._cond.notify_all()

    # --------------------------------------------------------------- faults

    @property
    def count(self) -> int:
        """How many watches are open (held ones included)."""
        with self._cond:
            return len(self._watchers)

    def drop(self, *, abrupt: bool = False) -> int:
        """End every open watch stream; returns how many were open."""
        with self._cond:
            for watcher in self._watchers:
                watcher.drop(abrupt=abrupt)
            self._cond.notify_all()
            return len(self._watchers)

    def inject_garbage(self) -> int:
        """Make every open watch stream send one malformed line; returns how many."""
        with self._cond:
            for watcher in self._watchers:
                watcher.add_garbage()
            self._cond.notify_all()
            return len(self._watchers)

    @property
    def opened(self) -> int:
        """How many watch requests were accepted (opened) since the server started."""
        with self._cond:
            return self._opened

    def close_new(self, pattern: re.Pattern[str] | None) -> None:
        """End every new watch whose request target matches ``pattern`` as soon as it is
        opened (cleanly, without an event); None: stop doing so."""
        with self._cond:
            self._close = pattern

    def rewrite(self, name: str, rewrite: Callable[[bytes], bytes] | None) -> None:
        """Send every later watch event about objects named ``name`` as ``rewrite(line)``
        (the event's JSON line without its newline); None: stop rewriting them."""
        with self._cond:
            if rewrite is None:
                self._rewrites.pop(name, None)
            else:
                self._rewrites[name] = rewrite

    def clear_rewrites(self) -> None:
        with self._cond:
            self._rewrites = {}

    def hold(self, pattern: re.Pattern[str]) -> None:
        """Park every new watch whose request target matches ``pattern`` until released."""
        with self._cond:
            self._hold = pattern

    def release(self) -> int:
        """Stop holding new watches and let the parked ones stream; returns how many."""
        with self._cond:
            self._hold = None
            released = sum(1 for watcher in self._watchers if watcher.release())
            self._cond.notify_all()
            return released

    @property
    def held_count(self) -> int:
        """How many open watches are parked by :meth:`hold`."""
        with self._cond:
            return self._held()

    def _held(self) -> int:
        return sum(1 for w in self._watchers if w.held and not w.dropped)

    def wait_held(self, count: int, timeout: float) -> bool:
        """Wait until at least ``count`` watches are parked; False if ``timeout`` passes."""
        deadline = self._clock.now() + timeout
        with self._cond:
            while self._held() < count:
                remaining = deadline - self._clock.now()
                if remaining <= 0:
                    return False
                self._clock.wait(self._cond, remaining)
            return True

    def wait_released(self, watcher: Watcher, deadline: float) -> bool:
        """Block a parked watcher until it is released; returns False if it must end instead.

        It must end when it was dropped, the store restarted or closed, or
        ``deadline`` (its request timeout) passed while it was parked.
        """
        with self._cond:
            while watcher.held:
                if watcher.dropped or watcher.epoch != self._epoch or self._closed:
                    return False
                remaining = deadline - self._clock.now()
                if remaining <= 0:
                    return False
                self._clock.wait(self._cond, remaining)
            return not (watcher.dropped or watcher.epoch != self._epoch)


@dataclass(frozen=True)
class Batch:
    """Watch lines to write at once; ``raw`` ones are never rendered as Table rows."""

    lines: list[bytes]
    raw: bool = False


class WatchStream:
    """What one watch stream sends: its batches of lines, then a clean end or a cut.

    Iterate :meth:`batches` and write each batch; when it is exhausted, :attr:`cut` says
    whether to cut the connection (an abrupt drop, a restart) or end the stream cleanly.
    :meth:`close` forgets the watcher, however the stream ended.
    """

    def __init__(self, hub: WatchHub, watcher: Watcher, initial: list[bytes], *, end: float,
                 bookmark_interval: float | None, clock: Clock) -> None:
        self._hub = hub
        self._watcher = watcher
        self._initial = initial
        self._end = end
        self._interval = bookmark_interval
        self._clock = clock
        self.cut = False

    def batches(self, stopping: threading.Event) -> Iterator[Batch]:
        """The batches to send, until the watch ends or ``stopping`` is set."""
        hub, watcher, end = self._hub, self._watcher, self._end
        # A watch parked by a hold has its response head and nothing more until it is
        # released; it then streams from where it asked to start, at full speed.
        if watcher.held and not hub.wait_released(watcher, end):
            # Dropped, or its timeout passed while parked: cleanly, unless cut.
            self.cut = hub.must_cut(watcher)
            return
        if hub.ended(watcher):  # dropped before its first line (a close fault)
            self.cut = hub.must_cut(watcher)
            return
        for start in range(0, len(self._initial), _INITIAL_BATCH):
            yield Batch(self._initial[start:start + _INITIAL_BATCH])
        # Bookmarks as the real watch cache sends them (cacheWatcher.nextBookmarkTime): every
        # interval, and one 2 s before the watch's timeout, none after that; and only once
        # the resourceVersion has moved past both the one the watch started from and the one
        # the server had when the watch began (its replay of older changes does not count).
        interval = self._interval
        started_at = max(watcher.cursor, watcher.opened_at)
        bookmark_at = None if interval is None else next_bookmark(self._clock.now(), interval,
                                                                  end)
        while not stopping.is_set():
            if watcher.garbage and hub.take_garbage(watcher):
                yield Batch([_MALFORMED_LINE], raw=True)
                continue
            wake = end if bookmark_at is None else min(end, bookmark_at)
            try:
                changes = hub.next_changes(watcher, wake)
            except ApiError as error:  # the history this watcher needs is gone
                yield Batch([error_line(error)])
                break
            if hub.ended(watcher):
                self.cut = hub.must_cut(watcher)
                return
            if changes:
                lines = [hub.rewritten(c, line) for c in changes
                         if (line := watcher.select(c)) is not None]
                watcher.advance(changes[-1].rv)
                if lines:
                    yield Batch(lines)
                continue
            now = self._clock.now()
            if now >= end:
                break
            if interval is not None and bookmark_at is not None and now >= bookmark_at:
                if watcher.cursor > started_at:
                    yield Batch([bookmark_line(watcher.resource, watcher.cursor)], raw=True)
                bookmark_at = next_bookmark(now, interval, end)

    def close(self) -> None:
        self._hub.close(self._watcher)
