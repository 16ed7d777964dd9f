"""The reflector: keeps a store equal to one collection on the API server.

It runs on one thread (the informer's) and repeats, until stopped:

1. LIST the collection in pages (``limit``/``continue``) at the newest
   resourceVersion. Each page goes into the store as it arrives (so only one
   page is held decoded at a time), compared with what the store holds: new
   objects are reported added (as initial adds until the first list is
   complete), objects whose resourceVersion changed updated (old and new). Once
   the last page is in, objects the list did not have are removed and reported
   deleted with ``final_state_unknown=True`` and the last state the store held.
   Until then the store may hold part of the list (client-go's indexer also
   fills one object at a time); :meth:`Reflector.has_synced` says when it is whole.
2. WATCH from the list's resourceVersion, with bookmarks and a randomized
   server timeout, applying each event to the store and reporting it. After a
   clean end of the stream it watches again from the last resourceVersion it
   saw (of an event or a bookmark); it never watches without one, so it never
   sees an initial watch's synthetic events.

Failures and what follows them:

- 410 Expired (an HTTP status or an in-stream ERROR event), or "too large
  resource version": relist. An expired continue token: one unpaged list, as
  client-go's pager does.
- A broken connection or an in-stream error: wait (backoff), then check with a
  one-item LIST that the server still has the last resourceVersion (a server
  whose storage was restored or replaced answers "too large" or 410, and then
  the reflector relists), then watch again.
- A watch that the server ends without an event (or bookmark) less than
  :data:`SHORT_WATCH` seconds after it began: a failure, so the next watch waits
  for the backoff (client-go's "very short watch").
- A line that is not JSON: logged, counted, and the watch is made again from the
  last resourceVersion after a backoff wait; a second one at the same
  resourceVersion (no event applied in between): relist instead.
- An event that cannot be decoded (nested deeper than orjson allows, no metadata
  or name, an unknown type, not an object): skipped, logged once with its object
  and resourceVersion as far as known, counted, and followed (after a backoff
  wait) by a relist, which moves past it: re-watching from before it would get it
  again. A listed item that cannot be decoded is skipped, logged and counted.
- An event whose resourceVersion is empty or missing is applied, but never becomes
  the version the next watch starts from; an event for the very version the
  store holds (same resourceVersion and uid, or, without resourceVersions, the
  same content) is no change and is not reported.
- Any other error: exponential backoff with jitter through tenacity (429 and
  503 wait what ``Retry-After`` says); 401 and 403 call ``refresh_credentials``
  first. The thread never dies from an exception while running.

Health: a run of failures (``consecutive_failures``, ``failing_since``) ends only
when a cycle completes: a list, an event or bookmark applied, or a watch that has
been up for :data:`SHORT_WATCH` seconds. A watch that opens (HTTP 200) and fails
again at once does not end it, so ``failing_since`` tells how long the informer has
been making no progress however often it reconnects.

Sharding: with ``accept`` (a predicate on ``namespace/name`` keys), objects it refuses are
neither stored nor reported, from lists and watches alike (their events still move the
resourceVersion on).

Rewind: :meth:`Reflector.rewind` (any thread) ends the watch in progress, without counting a
failure, and watches again from an older resourceVersion (after the first list, when it
comes during it), so every change since that version is reported again (a new leader
resuming from the old one's checkpoint), also those the store already holds (up to where the
rewind began). Objects the store holds in a newer version come back as updates to the older
one, then forward again. If the server no longer has that version
(410), the relist that follows reports every listed object, changed or not, as updated
with ``final_state_unknown`` (``Sink.resync``; added if not stored), and what it lacks as
deleted: the change since the checkpoint is known only as a final state.

:meth:`Reflector.stop` interrupts a request at any point (see
:class:`~faro.cache.listwatch.Interrupter`), waiting for its response head included.

Time comes from one :class:`~faro.clock.Clock` (default real time): the backoff's
measurements, every wait (backoff sleeps, ``wait_for_sync``), and the timestamps in
:meth:`Reflector.health` (its ``time()``, wall-clock seconds).
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from typing import Any, Protocol

import orjson
import tenacity

from faro._names import KubeObject, key_of, object_key, version_before
from faro.cache._decode import Undecodable, describe_raw, too_deep
from faro.cache._stream import LineStream
from faro.cache.backoff import Backoff
from faro.cache.health import InformerHealth
from faro.cache.listwatch import Interrupter, ListWatch
from faro.cache.store import Store, Stored, decode, encode
from faro.cache.transform import Transform
from faro.clock import Clock, ClockEvent, RealClock, wait_for
from faro.errors import ApiStatusError

logger = logging.getLogger(__name__)

WATCH_READ_GRACE = 30.0
"""Seconds a watch read may wait beyond the server-side timeout before it counts as hung."""

SHORT_WATCH = 1.0
"""Seconds a watch must stay up to count as a completed cycle without an event (client-go's
reflector treats a watch shorter than a second with no event as a failure too)."""


class Sink(Protocol):
    """Receives the reflector's notifications, on the reflector's thread, under its lock."""

    def add(self, obj: KubeObject, is_initial: bool) -> None: ...

    def update(self, old: Stored, new: KubeObject) -> None:
        """``old`` is the store's stored value: JSON bytes (decode lazily), or the dict."""

    def delete(self, obj: KubeObject, final_state_unknown: bool) -> None: ...

    def resync(self, old: Stored, new: KubeObject) -> None:
        """An update known only as a final state: a relist after a :meth:`Reflector.rewind`
        to a version the server no longer had reports every cached object so."""

    def flush(self) -> None:
        """The end of a batch of notifications (a read of the watch, a list page)."""


class _MalformedEvent(Exception):
    """A watch line that is not JSON (a broken line: the watch is made again)."""


class _PoisonEvent(Exception):
    """A watch event that cannot be decoded (skipped; a relist follows)."""

    def __init__(self, problem: str, where: str, line: bytes) -> None:
        super().__init__(f"watch event for {where} cannot be decoded ({problem})")
        self.problem = problem
        self.where = where
        self.line = line


class _ShortWatch(Exception):
    """The server ended a watch without an event right after it began."""


class _Stopped(Exception):
    """Raised inside the loop when stop() was called."""


class Reflector:
    """Keeps ``store`` in sync with the collection of ``listwatch``; see the module docstring.

    :meth:`run` blocks until :meth:`stop`; everything else may be called from
    any thread. Store changes and notifications to ``sink`` happen while
    ``lock`` is held, so a holder of ``lock`` sees the store and the
    notifications agree. ``clock`` (default :class:`~faro.clock.RealClock`)
    measures and waits: backoff, ``wait_for_sync`` timeouts, health timestamps.
    """

    def __init__(self, listwatch: ListWatch, store: Store, sink: Sink, lock: threading.RLock, *,
                 name: str, page_size: int = 500,
                 watch_timeout: tuple[float, float] = (300.0, 600.0),
                 backoff: Backoff | None = None, transform: Transform | None = None,
                 refresh_credentials: Callable[[], object] | None = None,
                 accept: Callable[[str], bool] | None = None,
                 clock: Clock | None = None) -> None:
        if page_size < 0:
            raise ValueError(f"page_size must not be negative, got {page_size}")
        low, high = watch_timeout
        if not 1 <= low <= high:
            raise ValueError(f"watch_timeout must be (low, high) with 1 <= low <= high, "
                             f"got {watch_timeout}")
        self._lw = listwatch
        self._clock: Clock = clock if clock is not None else RealClock()
        self._store = store
        self._sink = sink
        self._lock = lock
        self.name = name
        self._page_size = page_size
        self._watch_timeout = (low, high)
        self._backoff = (backoff or Backoff()).wait_strategy(clock=self._clock)
        self._transform = transform
        self._refresh_credentials = refresh_credentials
        self._accept = accept

        self._stop = ClockEvent(self._clock)  # also the interruptible backoff sleep
        self._stopping = False  # mirrors _stop, read per event in the hot loop
        self._synced = threading.Event()
        self._state = threading.Condition()  # notified when synced or stopped
        self._running = False
        self._interrupter = Interrupter()
        self._last_rv = ""
        self._needs_list = True
        self._list_reason = "initial"
        self._probe = False
        self._expired_streak = 0
        self._progressed = False  # the current watch applied an event or a bookmark
        self._malformed_at: str | None = None  # last_rv when the last broken line came
        self._rewind_to: str | None = None  # rewind() asked for a watch from this version
        self._report_all = False  # a relist after a rewind reports every object
        self._replay_until: str | None = None  # after a rewind: report events up to here
        # even when the store holds that very version (they were cached, not delivered)

        self._counter_lock = threading.Lock()
        self._consecutive_failures = 0
        self._last_error: str | None = None
        self._last_error_time: float | None = None
        self._failing_since: float | None = None
        self._started_at: float | None = None
        self._synced_at: float | None = None
        self._last_event_time: float | None = None
        self._events = 0
        self._malformed = 0
        self._decode_errors = 0
        self._watching_since: float | None = None  # clock.now() when the watch's head came
        self._watch_restarts: dict[str, int] = {}
        self._relists: dict[str, int] = {}
        self._transform_errors = 0

    # ------------------------------------------------------------ public API

    @property
    def last_sync_resource_version(self) -> str | None:
        """The resourceVersion of the last list, event or bookmark applied (None before)."""
        return self._last_rv or None

    def has_synced(self) -> bool:
        """True once the first list has been applied to the store and reported."""
        return self._synced.is_set()

    def wait_for_sync(self, timeout: float | None = None) -> bool:
        """Block until synced (True), or until ``timeout`` seconds of the clock pass or the
        reflector stops (False)."""
        with self._state:
            return wait_for(self._clock, self._state,
                            lambda: self._synced.is_set() or self._stop.is_set(), timeout) \
                and self._synced.is_set()

    def health(self) -> InformerHealth:
        """A snapshot of the reflector's state."""
        now = self._clock.now()
        with self._counter_lock:
            failures, failing_since = self._consecutive_failures, self._failing_since
            if failures and self._watching_since is not None \
                    and now - self._watching_since >= SHORT_WATCH:
                failures, failing_since = 0, None  # a watch up long enough: a cycle done
            return InformerHealth(
                name=self.name, running=self._running, synced=self._synced.is_set(),
                consecutive_failures=failures, last_error=self._last_error,
                last_error_time=self._last_error_time, last_event_time=self._last_event_time,
                last_sync_resource_version=self._last_rv or None, objects=len(self._store),
                events=self._events, malformed_lines=self._malformed,
                handler_errors=0, transform_errors=self._transform_errors,
                watch_restarts=dict(self._watch_restarts),
                relists=dict(self._relists), failing_since=failing_since,
                started_at=self._started_at, synced_at=self._synced_at,
                decode_errors=self._decode_errors)

    def run(self) -> None:
        """List and watch until :meth:`stop`; never raises."""
        self._running = True
        with self._counter_lock:
            self._started_at = self._clock.time()
        retrying = tenacity.Retrying(
            wait=self._backoff, sleep=self._sleep, reraise=True,
            retry=tenacity.retry_if_exception(lambda _exc: not self._stop.is_set()),
            before_sleep=self._on_failure)
        try:
            retrying(self._list_and_watch)
        except _Stopped:
            pass
        except Exception:  # only reachable while stopping: an error raced with stop()
            if not self._stop.is_set():  # pragma: no cover - retry covers every other case
                logger.exception("informer %s: unexpected end", self.name)
        finally:
            self._running = False

    def rewind(self, resource_version: str) -> None:
        """Watch again from ``resource_version`` (any thread): see the module docstring.

        Raises ValueError for an empty version (a watch without one replays every object).
        """
        if not resource_version:
            raise ValueError("rewind needs a resourceVersion")
        with self._counter_lock:
            self._rewind_to = resource_version
            watching = self._watching_since is not None
        if watching:
            self._interrupter.cut()

    @property
    def rewinding(self) -> bool:
        """True from :meth:`rewind` until the watch from that version is about to start."""
        with self._counter_lock:
            return self._rewind_to is not None

    def stop(self) -> None:
        """Ask :meth:`run` to return, interrupting a wait or a request in progress (any
        thread): a request waiting for its response head too."""
        self._stopping = True
        self._stop.set()
        with self._state:
            self._state.notify_all()
        self._interrupter.abort()

    # ---------------------------------------------------------------- the loop

    def _sleep(self, seconds: float) -> None:
        """Tenacity's sleep: ``seconds`` of the clock, cut short by :meth:`stop`."""
        self._stop.wait(seconds)

    def _check_stop(self) -> None:
        if self._stop.is_set():
            raise _Stopped

    def _list_and_watch(self) -> None:
        while True:
            self._check_stop()
            if self._probe and not self._needs_list:
                if self._last_rv:
                    self._check_resource_version()
                else:  # a server whose lists carry no resourceVersion: nothing to check
                    self._relist("no_resource_version")
            if self._needs_list:
                self._list()
            self._watch()

    def _on_failure(self, retry_state: tenacity.RetryCallState) -> None:
        """Record the failure (tenacity calls this before its backoff sleep)."""
        error = retry_state.outcome.exception() if retry_state.outcome else None
        wait = retry_state.next_action.sleep if retry_state.next_action else 0.0
        with self._counter_lock:
            self._consecutive_failures += 1
            self._last_error = _describe(error)
            self._last_error_time = self._clock.time()
            if self._failing_since is None:
                self._failing_since = self._last_error_time
            failures = self._consecutive_failures
        if isinstance(error, _MalformedEvent):
            if self._needs_list:
                logger.warning("informer %s: %s, again at resourceVersion %s; relisting in "
                               "%.2fs", self.name, error, self._last_rv, wait)
            else:
                logger.warning("informer %s: %s; watching again from resourceVersion %s in "
                               "%.2fs", self.name, error, self._last_rv, wait)
        elif isinstance(error, _PoisonEvent):
            logger.warning("informer %s: skipped a watch event that cannot be decoded (%s): "
                           "%s; relisting in %.2fs so that the cache converges: %r",
                           self.name, error.problem, error.where, wait, error.line[:200])
        elif isinstance(error, _ShortWatch):
            logger.warning("informer %s: %s (failure %d); watching again in %.2fs",
                           self.name, error, failures, wait)
        elif isinstance(error, ApiStatusError) and error.status == 400:
            # The server refuses the request itself (a field selector it cannot select on, a
            # malformed selector): asking again gives the same answer until it is changed.
            logger.error("informer %s: the server rejects its request: %s (failure %d); it "
                         "keeps failing until the request (its selectors) is changed; "
                         "retrying in %.2fs", self.name, _describe(error), failures, wait)
        else:
            logger.warning("informer %s: %s (failure %d); retrying in %.2fs",
                           self.name, _describe(error), failures, wait)
        if (isinstance(error, ApiStatusError) and error.is_unauthorized
                and self._refresh_credentials is not None):
            try:
                self._refresh_credentials()
                logger.info("informer %s: credentials re-read after HTTP %d",
                            self.name, error.status)
            except Exception as exc:
                logger.error("informer %s: re-reading credentials failed: %s",
                             self.name, _describe(exc))

    def _succeeded(self) -> None:
        if self._consecutive_failures:
            with self._counter_lock:
                self._consecutive_failures = 0
                self._failing_since = None

    def _count(self, counter: dict[str, int], reason: str) -> None:
        with self._counter_lock:
            counter[reason] = counter.get(reason, 0) + 1

    def _relist(self, reason: str) -> None:
        self._needs_list = True
        self._list_reason = reason

    # ------------------------------------------------------------------ list

    def _check_resource_version(self) -> None:
        """After a failure: does the server still serve our resourceVersion?"""
        try:
            self._lw.list_page(limit=1, resource_version=self._last_rv,
                               resource_version_match="NotOlderThan",
                               interrupter=self._interrupter)
        except ApiStatusError as exc:
            if exc.is_too_large_resource_version:
                logger.warning("informer %s: the server is behind resourceVersion %s (was its "
                               "storage replaced?); relisting", self.name, self._last_rv)
                self._relist("too_large_resource_version")
            elif exc.is_expired:
                self._relist("expired")
            else:
                raise
        self._probe = False

    def _list(self) -> None:
        count, resource_version = self._list_pages()
        self._check_stop()
        with self._lock:
            self._last_rv = resource_version
            self._sink.flush()  # the handlers learn the list's version
        if self._list_reason != "initial":
            self._count(self._relists, self._list_reason)
            logger.info("informer %s: relisted (%s): %d objects at resourceVersion %s",
                        self.name, self._list_reason, count, resource_version)
        else:
            logger.debug("informer %s: listed %d objects at resourceVersion %s",
                         self.name, count, resource_version)
        self._needs_list = False
        self._probe = False
        self._malformed_at = None
        self._report_all = False
        self._replay_until = None
        self._succeeded()
        if not self._synced.is_set():
            with self._counter_lock:
                self._synced_at = self._clock.time()
            with self._state:
                self._synced.set()
                self._state.notify_all()

    def _list_pages(self) -> tuple[int, str]:
        """LIST every page, applying each to the store as it arrives; then remove what the
        list did not have. Returns how many objects it listed and its resourceVersion.

        A page is decoded, transformed, stored as JSON bytes and reported before the next
        is read, so at most one page is ever held decoded (a list of a million objects
        costs their bytes, not their dicts).
        """
        seen: set[str] = set()
        token = ""
        while True:
            self._check_stop()
            try:
                page = self._lw.list_page(limit=self._page_size, continue_token=token,
                                          interrupter=self._interrupter)
            except ApiStatusError as exc:
                if not (token and exc.is_expired):
                    raise
                logger.info("informer %s: continue token expired after %d objects; "
                            "listing without pages", self.name, len(seen))
                if self._list_reason == "initial":
                    self._list_reason = "expired_continue"
                page = self._lw.list_page(interrupter=self._interrupter)
                seen = set()
                token = ""
            for item in page.undecodable:
                self._undecodable_item(item)
            self._apply_page(page.items, seen)
            if not page.continue_token:
                self._check_stop()
                self._remove_unseen(seen)
                return len(seen), page.resource_version
            token = page.continue_token

    def _apply_page(self, items: list[Any], seen: set[str]) -> None:
        """Store a listed page's objects, reporting each new one added (an initial add
        before the first sync) and each changed one updated."""
        transform = self._transform
        sink = self._sink
        every = self._report_all and self._list_reason != "initial"
        accept = self._accept
        with self._lock:
            initial = not self._synced.is_set()
            for item in items:
                if not isinstance(item, dict) or not isinstance(item.get("metadata"), dict):
                    self._malformed_item(item)
                    continue
                if transform is not None:
                    item = self._apply_transform(item)
                try:
                    key = key_of(item)
                except (KeyError, TypeError):
                    self._malformed_item(item)
                    continue
                if accept is not None and not accept(key):
                    continue  # another shard's
                seen.add(key)
                self._put(key, item, initial, every, every)
            sink.flush()

    def _put(self, key: str, obj: KubeObject, is_initial: bool, every: bool = False,
             unknown: bool = False) -> None:
        """Store ``obj`` under ``key`` (lock held) and report it: added if new, updated if
        another version than the one stored (or ``every`` time; resynced, when ``unknown``),
        nothing otherwise."""
        old, old_object = self._store.put_encoded(key, obj, encode(obj), keep_decoded=False)
        if old is None:
            self._sink.add(obj, is_initial)
        elif unknown:  # a relist after a rewind that found no history
            self._sink.resync(old if old_object is None else old_object, obj)
        elif every or _changed_stored(old, old_object, obj):
            self._sink.update(old if old_object is None else old_object, obj)

    def _remove_unseen(self, seen: set[str]) -> None:
        """Remove the objects a complete list did not have, reporting each deleted with
        ``final_state_unknown`` and the last state the store held."""
        with self._lock:
            store = self._store
            listed = store.keys()
            for key in [key for key in listed if key not in seen]:
                old, old_object = store.pop_encoded(key)
                if old is not None:
                    self._sink.delete(decode(old) if old_object is None else old_object, True)
            self._sink.flush()

    def _malformed_item(self, item: Any) -> None:
        self._count_decode_error()
        logger.error("informer %s: skipped a list item that is not a Kubernetes object: %.200r",
                     self.name, item)

    def _undecodable_item(self, item: Undecodable) -> None:
        self._count_decode_error()
        logger.error("informer %s: skipped a listed object that cannot be decoded (%s): %s",
                     self.name, item.problem, item.describe())

    # ----------------------------------------------------------------- watch

    def _watch(self) -> None:
        with self._counter_lock:
            rewind = self._rewind_to
        if rewind is not None:
            if version_before(rewind, self._last_rv):
                logger.info("informer %s: watching again from resourceVersion %s (was at %s)",
                            self.name, rewind, self._last_rv)
                with self._lock:
                    self._replay_until = self._last_rv
                    self._last_rv = rewind
                    self._sink.flush()  # the handlers learn the version went back
                self._report_all = True
            with self._counter_lock:  # rewinding until the version is the one watched from
                if self._rewind_to == rewind:
                    self._rewind_to = None
        low, high = self._watch_timeout
        timeout = int(random.uniform(low, high))
        try:
            stream = self._lw.watch(self._last_rv, timeout_seconds=timeout,
                                    read_timeout=timeout + WATCH_READ_GRACE,
                                    interrupter=self._interrupter)
        except ApiStatusError as exc:
            self._check_stop()
            if self._expired_or_too_large(exc):
                return
            raise
        except Exception:
            self._check_stop()
            if self._rewinding():
                return
            # A connection that failed before the server answered may be a server that
            # went away and came back with its storage replaced, just as a broken stream:
            # check the resourceVersion first here too, or the watch from a version the
            # new server has not reached yet would wait in silence.
            self._probe = True
            raise
        opened = self._clock.now()
        self._progressed = False
        with self._counter_lock:
            self._watching_since = opened
        try:
            self._consume(stream)
        except _Stopped:
            raise
        except _MalformedEvent:
            self._count_malformed()
            self._count(self._watch_restarts, "malformed")
            if self._malformed_at == self._last_rv:
                # The same broken line again, from the same place: it is in the server's
                # answer for good, and only a relist moves past it.
                self._relist("malformed")
            self._malformed_at = self._last_rv
            raise
        except _PoisonEvent:
            self._count_decode_error()
            self._count(self._watch_restarts, "decode_error")
            self._relist("decode_error")
            raise
        except ApiStatusError as exc:  # an ERROR event
            if self._expired_or_too_large(exc):
                return
            self._probe = True
            raise
        except Exception:
            self._check_stop()
            if self._rewinding():
                return
            self._probe = True
            self._count(self._watch_restarts, "error")
            raise
        finally:
            self._interrupter.track(None)
            stream.close()
            up = self._clock.now() - opened
            with self._counter_lock:
                self._watching_since = None
            if up >= SHORT_WATCH:
                self._succeeded()  # up long enough: a cycle, however it ended
        self._check_stop()
        self._expired_streak = 0
        self._count(self._watch_restarts, "closed")
        if not self._progressed and up < SHORT_WATCH:
            raise _ShortWatch(f"very short watch: the server ended it {up:.2f}s after it "
                              f"began, without an event")
        logger.debug("informer %s: watch ended cleanly at resourceVersion %s",
                     self.name, self._last_rv)

    def _rewinding(self) -> bool:
        """Whether a watch that just failed was cut by :meth:`rewind` (counted, no failure)."""
        with self._counter_lock:
            rewinding = self._rewind_to is not None
        if rewinding:
            self._count(self._watch_restarts, "rewind")
        return rewinding

    def _expired_or_too_large(self, exc: ApiStatusError) -> bool:
        """Schedule a relist for 410 or "too large"; True if that is what ``exc`` is."""
        if exc.is_expired:
            reason = "expired"
        elif exc.is_too_large_resource_version:
            reason = "too_large_resource_version"
        else:
            return False
        self._count(self._watch_restarts, reason)
        self._expired_streak += 1
        if self._expired_streak > 2:
            # A fresh list's resourceVersion expiring again and again: back off.
            self._relist(reason)
            raise exc
        logger.info("informer %s: watch from resourceVersion %s: %s; relisting",
                    self.name, self._last_rv, exc)
        self._relist(reason)
        return True

    def _consume(self, stream: LineStream) -> None:
        loads = orjson.loads
        store = self._store
        sink = self._sink
        transform = self._transform
        lock = self._lock
        accept = self._accept
        wall_clock = self._clock.time
        for lines in stream:
            applied = 0
            with lock:
                try:
                    for line in lines:
                        if self._stopping:  # a plain attribute: cheap enough per event
                            raise _Stopped
                        if not line or line.isspace():
                            continue
                        try:
                            event = loads(line)
                            kind = event["type"]
                            obj = event["object"]
                            # Checked before reading the resourceVersion: an ERROR
                            # event's object is a Status whose metadata is empty, so
                            # reading it first made every in-stream 410 "malformed"
                            # and the informer re-watched the expired version forever.
                            if kind == "ERROR":
                                raise ApiStatusError.from_status(500, obj,
                                                                 request="watch ERROR event")
                            metadata = obj["metadata"]
                            rv = metadata.get("resourceVersion")
                        except orjson.JSONDecodeError as exc:
                            if too_deep(exc):
                                raise _PoisonEvent("nested deeper than 1024 levels",
                                                   describe_raw(line), line) from None
                            raise _MalformedEvent(_malformed_message(line, exc)) from None
                        except (KeyError, TypeError, AttributeError):
                            raise _poison(line) from None
                        if kind == "BOOKMARK":
                            if rv and isinstance(rv, str):
                                self._last_rv = rv
                                self._progressed = True
                            continue
                        if kind != "ADDED" and kind != "MODIFIED" and kind != "DELETED":
                            raise _poison(line, f"unknown event type {kind!r}")
                        namespace = metadata.get("namespace")
                        name = metadata.get("name")
                        if not isinstance(name, str) or not name or not (
                                namespace is None or isinstance(namespace, str)):
                            raise _poison(line, "no metadata.name")
                        key = object_key(namespace, name)
                        if accept is not None and not accept(key):
                            if rv and isinstance(rv, str):
                                self._last_rv = rv  # another shard's: only the version
                                self._progressed = True
                            continue
                        if transform is not None:
                            obj = self._apply_transform(obj)
                        if kind == "DELETED":
                            store.pop_encoded(key)
                            sink.delete(obj, False)
                        elif self._replay_until is None:
                            self._put(key, obj, False)
                        elif kind == "ADDED":  # replayed: as the server says, stored or not
                            store.put_encoded(key, obj, encode(obj), keep_decoded=False)
                            sink.add(obj, False)
                        else:
                            self._put(key, obj, False, True)
                        if rv and isinstance(rv, str):
                            if self._replay_until is not None and \
                                    not version_before(rv, self._replay_until):
                                self._replay_until = None  # past where the rewind began
                            # An empty or missing one never becomes the version to watch
                            # from: a watch without one replays every object as ADDED.
                            self._last_rv = rv
                        applied += 1
                finally:
                    sink.flush()
                    if applied:
                        self._report_all = False  # the version was there: no relist
                        self._events += applied
                        self._last_event_time = wall_clock()
                        self._expired_streak = 0
                        self._progressed = True
                    if self._progressed and self._consecutive_failures:
                        self._succeeded()
            self._check_stop()
        if not stream.clean_end:  # pragma: no cover - the iterator raises instead
            raise ConnectionError("watch stream ended without its final chunk")

    def _apply_transform(self, obj: KubeObject) -> KubeObject:
        assert self._transform is not None
        try:
            return self._transform(obj)
        except Exception:
            return self._transform_failed(obj)

    def _transform_failed(self, obj: KubeObject) -> KubeObject:
        """Keep the object as it came (losing nothing) and report the transform's error."""
        with self._counter_lock:
            self._transform_errors += 1
        logger.exception("informer %s: the transform failed on %s; stored it untransformed",
                         self.name, _object_name(obj))
        return obj

    def _count_malformed(self) -> None:
        with self._counter_lock:
            self._malformed += 1

    def _count_decode_error(self) -> None:
        with self._counter_lock:
            self._decode_errors += 1


def _object_name(obj: KubeObject) -> str:
    metadata = obj.get("metadata") or {}
    return object_key(metadata.get("namespace"), str(metadata.get("name", "?")))


def _changed(old: KubeObject, new: KubeObject) -> bool:
    """Whether ``new`` is another version of the object than ``old``: another uid or
    resourceVersion; without a resourceVersion on either side, other content."""
    old_metadata, new_metadata = old.get("metadata") or {}, new.get("metadata") or {}
    if old_metadata.get("uid") != new_metadata.get("uid"):
        return True
    old_rv = old_metadata.get("resourceVersion") or ""
    new_rv = new_metadata.get("resourceVersion") or ""
    if old_rv or new_rv:
        return bool(old_rv != new_rv)
    try:
        return bool(old != new)
    except RecursionError:
        return True


def _changed_stored(old: Stored, old_object: KubeObject | None, new: KubeObject) -> bool:
    """:func:`_changed` for a stored value (``old_object`` is it decoded, when at hand).

    Without the decoded object, the resourceVersion found in the JSON settles it when it
    differs from ``new``'s (another version); only a match is checked by decoding.
    """
    if old_object is not None:
        return _changed(old_object, new)
    if type(old) is bytes:
        metadata = new.get("metadata") or {}
        rv = metadata.get("resourceVersion")
        if isinstance(rv, str) and rv and _resource_version_in(old) != rv:
            return True
    return _changed(decode(old), new)


def _resource_version_in(stored: bytes) -> str:
    """The first ``"resourceVersion"`` string value in ``stored`` (JSON), or "".

    Normally the object's own; at worst a nested one, which can only make
    :func:`_changed_stored` report a change (a duplicate event reported once more),
    never hide one.
    """
    start = stored.find(b'"resourceVersion":"')
    if start < 0:
        return ""
    start += 19
    end = stored.find(b'"', start)
    return stored[start:end].decode(errors="replace") if end > 0 else ""


def _poison(line: bytes, problem: str = "") -> _PoisonEvent:
    """The error for an event ``line`` that decodes as JSON but cannot be used."""
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:  # pragma: no cover - it decoded a moment ago
        event = None
    obj = event.get("object") if isinstance(event, dict) else None
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    if not problem:
        if not isinstance(event, dict):
            problem = "not a JSON object"
        elif "type" not in event or "object" not in event:
            problem = "no type or no object"
        elif not isinstance(obj, dict):
            problem = "its object is not a JSON object"
        else:
            problem = "no metadata"
    if isinstance(metadata, dict):
        name = metadata.get("name")
        namespace = metadata.get("namespace")
        rv = metadata.get("resourceVersion")
        key = name if isinstance(name, str) and name else "(name unknown)"
        if isinstance(namespace, str) and namespace:
            key = f"{namespace}/{key}"
        where = f"{key} at resourceVersion {rv if isinstance(rv, str) and rv else 'unknown'}"
    else:
        where = describe_raw(line)
    return _PoisonEvent(problem, where, line)


def _malformed_message(line: bytes, problem: object) -> str:
    return f"malformed watch event ({problem}): {line[:200]!r}"


def _describe(error: BaseException | None) -> str:
    if error is None:
        return "unknown error"
    text = str(error) or type(error).__name__
    if isinstance(error, ApiStatusError):
        return text
    return f"{type(error).__name__}: {text}"
