"""Helpers for the informer tests: a recording handler and checks against the simulator.

``Recorder`` is a handler that keeps every notification (under a lock, with a
condition, so tests wait for what they expect with a deadline, never with
sleep). ``assert_in_sync`` waits until an informer's store holds exactly the
server's objects (compared as ``{key: resourceVersion}``). ``replay`` rebuilds
the state the notifications describe, checking each one against it, and
``Changes`` records what a test changed on the server, to prove that every
change was delivered exactly once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from faro._names import KubeObject, key_of
from faro.cache import Backoff, SharedInformer
from faro.gvr import GroupVersionResource
from faro.testing import SimulatedCluster
from tests.integration.helpers import DEADLINE, configmap, eventually

FAST = Backoff(initial=0.01, maximum=0.05)
"""Backoff for tests: the default starts at 0.8 s."""

KINDS = {"configmaps": "ConfigMap", "namespaces": "Namespace", "secrets": "Secret"}
"""Kinds of the resources the informer tests watch (``cluster.list_objects`` wants kinds)."""

def rv_of(obj: Mapping[str, Any]) -> int:
    """The object's resourceVersion as a number (0 when it has none: an empty or missing one)."""
    return int(obj["metadata"].get("resourceVersion") or 0)


# ------------------------------------------------------------------------------ the recorder


@dataclass(frozen=True)
class Note:
    """One notification: ``kind`` is add, update or delete.

    ``rv`` is the resourceVersion of the object given (the new one for an
    update); ``flag`` is ``is_initial`` for an add, ``final_state_unknown`` for
    a delete and None for an update; ``at`` is ``time.time()`` when it arrived.
    """

    kind: str
    key: str
    rv: int
    flag: bool | None
    obj: KubeObject
    old: KubeObject | None
    at: float
    thread: str

    def __repr__(self) -> str:
        flag = "" if self.flag is None else f" {self.flag}"
        old = f" from {rv_of(self.old)}" if self.old is not None else ""
        return f"<{self.kind} {self.key}@{self.rv}{old}{flag}>"


class Recorder:
    """A handler that records every notification; ``wait_for`` waits for a condition on them.

    ``fail`` (a predicate on the note) makes the handler raise after recording,
    to test that a failing handler does not hurt the informer. ``slow_initial``
    makes each initial add take that long (a slow handler: a workload, not a
    way to synchronise), to widen the window a late handler's replay spans.
    """

    def __init__(self, fail: Callable[[Note], bool] | None = None, *,
                 slow_initial: float = 0.0) -> None:
        self._cond = threading.Condition()
        self._notes: list[Note] = []
        self._fail = fail
        self._slow_initial = slow_initial

    def _record(self, kind: str, obj: KubeObject, old: KubeObject | None,
                flag: bool | None) -> None:
        note = Note(kind, key_of(obj), rv_of(obj), flag, obj, old, time.time(),
                    threading.current_thread().name)
        with self._cond:
            self._notes.append(note)
            self._cond.notify_all()
        if self._fail is not None and self._fail(note):
            raise RuntimeError(f"handler failure on purpose: {note!r}")

    def on_add(self, obj: KubeObject, is_initial: bool) -> None:
        self._record("add", obj, None, is_initial)
        if is_initial and self._slow_initial:
            time.sleep(self._slow_initial)

    def on_update(self, old: KubeObject, new: KubeObject) -> None:
        self._record("update", new, old, None)

    def on_delete(self, obj: KubeObject, final_state_unknown: bool) -> None:
        self._record("delete", obj, None, final_state_unknown)

    @property
    def notes(self) -> list[Note]:
        """Every notification so far, in order (a copy)."""
        with self._cond:
            return list(self._notes)

    def __len__(self) -> int:
        with self._cond:
            return len(self._notes)

    def wait_for(self, predicate: Callable[[list[Note]], object],
                 timeout: float = DEADLINE) -> list[Note]:
        """Wait until ``predicate(notes)`` is true; returns the notes then (fails at the
        deadline)."""
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self._notes), timeout):
                raise AssertionError(f"condition not met within {timeout}s; notes: "
                                     f"{self._notes[-30:]}")
            return list(self._notes)

    def wait_count(self, count: int, timeout: float = DEADLINE) -> list[Note]:
        """Wait until at least ``count`` notifications arrived."""
        return self.wait_for(lambda notes: len(notes) >= count, timeout)

    def wait_rv(self, key: str, rv: int, timeout: float = DEADLINE) -> Note:
        """Wait for a notification about ``key`` at resourceVersion ``rv``; returns it."""
        notes = self.wait_for(lambda ns: any(n.key == key and n.rv == rv for n in ns), timeout)
        return next(n for n in notes if n.key == key and n.rv == rv)

    def for_key(self, key: str) -> list[Note]:
        return [n for n in self.notes if n.key == key]


# ------------------------------------------------------------------------------ the checks


def store_state(informer: SharedInformer) -> dict[str, int]:
    """The informer's store as ``{key: resourceVersion}``."""
    return {key: rv_of(obj) for key, obj in informer.store.items().items()}


def server_state(cluster: SimulatedCluster, resource: str | GroupVersionResource,
                 namespace: str | None = None,
                 match: Callable[[KubeObject], bool] | None = None) -> dict[str, int]:
    """The server's objects as ``{key: resourceVersion}`` (read from its storage, so that
    pending injected faults are not consumed); ``match`` filters them (selectors)."""
    gvr = resource if isinstance(resource, GroupVersionResource) else \
        GroupVersionResource.parse(resource)
    objects = cluster.list_objects(gvr.api_version, KINDS[gvr.resource], namespace)
    return {key_of(obj): rv_of(obj) for obj in objects if match is None or match(obj)}


def assert_in_sync(informer: SharedInformer, cluster: SimulatedCluster,
                   resource: str | GroupVersionResource | None = None,
                   namespace: str | None = None, *,
                   match: Callable[[KubeObject], bool] | None = None,
                   reached: int = 0, timeout: float = DEADLINE) -> dict[str, int]:
    """Wait until the store equals the server's objects (``{key: rv}``); returns that state.

    ``resource`` and ``namespace`` default to the informer's. ``reached``: also
    wait until the informer's resourceVersion is at least that (the last change
    a test made): a create and delete not seen yet leave the store equal too.
    Fails at the deadline with the difference.
    """
    resource = resource or informer.resource
    namespace = namespace if namespace is not None else informer.namespace
    deadline = time.monotonic() + timeout
    while True:
        expected = server_state(cluster, resource, namespace, match)
        actual = store_state(informer)
        if actual == expected and int(informer.last_sync_resource_version or 0) >= reached:
            return actual
        if time.monotonic() >= deadline:
            missing = {k: v for k, v in expected.items() if k not in actual}
            extra = {k: v for k, v in actual.items() if k not in expected}
            stale = {k: (actual[k], v) for k, v in expected.items()
                     if k in actual and actual[k] != v}
            raise AssertionError(
                f"store not in sync within {timeout}s: missing {missing}, extra {extra}, "
                f"stale (store, server) {stale}; reached {reached}? {informer.health()}")
        time.sleep(0.01)  # polling interval of a deadline-bounded poll


def replay(notes: Iterable[Note]) -> dict[str, int]:
    """The ``{key: rv}`` state the notifications describe, starting from nothing.

    Checks each notification against the state it applies to: an add is for an
    absent key, an update's old version is the one held, a delete is for a
    present key, and one with ``final_state_unknown`` carries the version held.
    """
    state: dict[str, int] = {}
    for note in notes:
        if note.kind == "add":
            assert note.key not in state, f"{note!r}: added while present at {state[note.key]}"
            state[note.key] = note.rv
        elif note.kind == "update":
            assert note.old is not None
            assert state.get(note.key) == rv_of(note.old), \
                f"{note!r}: old version is not the one held ({state.get(note.key)})"
            assert note.rv > rv_of(note.old), f"{note!r}: update goes backwards"
            state[note.key] = note.rv
        else:
            assert note.key in state, f"{note!r}: deleted while absent"
            if note.flag:
                assert note.rv == state[note.key], \
                    f"{note!r}: final_state_unknown delete is not the last known state"
            else:
                assert note.rv > state[note.key], f"{note!r}: delete goes backwards"
            del state[note.key]
    return state


def assert_forward(notes: Iterable[Note]) -> None:
    """No object's notifications go backwards in resourceVersion."""
    last: dict[str, int] = {}
    for note in notes:
        previous = last.get(note.key)
        if previous is not None:
            if note.kind == "delete" and note.flag:
                assert note.rv >= previous, f"{note!r} after version {previous}"
            else:
                assert note.rv > previous, f"{note!r} after version {previous}"
        last[note.key] = note.rv


@dataclass
class Changes:
    """What a test changed on the server: ``(kind, key, rv)`` per change, in order."""

    cluster: SimulatedCluster
    made: list[tuple[str, str, int]] = field(default_factory=list)

    def create(self, obj: KubeObject) -> KubeObject:
        created = self.cluster.create(obj)
        self.made.append(("add", key_of(created), rv_of(created)))
        return created

    def update(self, name: str, namespace: str, data: dict[str, str]) -> KubeObject:
        patched = self.cluster.patch("v1", "ConfigMap", name, {"data": data},
                                     namespace=namespace)
        self.made.append(("update", key_of(patched), rv_of(patched)))
        return patched

    def delete(self, name: str, namespace: str) -> KubeObject:
        gone = self.cluster.delete("v1", "ConfigMap", name, namespace)
        self.made.append(("delete", key_of(gone), rv_of(gone)))
        return gone

    def last_rv(self) -> int:
        return self.made[-1][2] if self.made else 0


def assert_delivered_once(notes: list[Note], changes: Iterable[tuple[str, str, int]], *,
                          relisted: bool) -> None:
    """Every change was delivered exactly once, or superseded while a relist was needed.

    A change is delivered when a notification carries its resourceVersion
    (an add or update at that version, or a delete event at the deletion's
    version). A change missing from the notifications is allowed only when a
    relist happened (``relisted``) and a later change of the same object
    exists, or it is the object's final deletion and the relist reported it
    (``final_state_unknown``) or never knew the object. No version is
    delivered twice.
    """
    delivered: dict[tuple[str, int], int] = {}
    for note in notes:
        if not (note.kind == "delete" and note.flag):
            delivered[(note.key, note.rv)] = delivered.get((note.key, note.rv), 0) + 1
    twice = {k: n for k, n in delivered.items() if n > 1}
    assert not twice, f"delivered more than once: {twice}"
    changes = list(changes)
    last_change: dict[str, int] = {}
    for _kind, key, rv in changes:
        last_change[key] = rv
    for kind, key, rv in changes:
        if (key, rv) in delivered:
            continue
        assert relisted, f"change {kind} {key}@{rv} never delivered, and no relist happened"
        if last_change[key] > rv:
            continue  # superseded by a later change, delivered by the relist
        assert kind == "delete", f"final change {kind} {key}@{rv} never delivered"
        known = [n for n in notes if n.key == key]
        assert not known or (known[-1].kind == "delete" and known[-1].flag), \
            f"final delete of {key}@{rv} not reported; its notes: {known}"


# ------------------------------------------------------------------------------ lifecycle


def informer_threads() -> list[str]:
    """Names of the informer threads alive now."""
    return [t.name for t in threading.enumerate() if t.name.startswith("faro-informer-")]


class Informers:
    """Makes informers with fast test defaults and stops every one of them at the end."""

    def __init__(self, cluster: SimulatedCluster) -> None:
        self.cluster = cluster
        self.made: list[SharedInformer] = []

    def make(self, resource: str = "v1/configmaps", api_client: Any = None,
             **options: Any) -> SharedInformer:
        options.setdefault("backoff", FAST)
        options.setdefault("watch_timeout", (5, 10))
        informer = SharedInformer(api_client or self.cluster.api_client, resource, **options)
        self.made.append(informer)
        return informer

    def started(self, resource: str = "v1/configmaps", recorder: Recorder | None = None,
                api_client: Any = None, **options: Any) -> SharedInformer:
        """A started, synced informer (with ``recorder`` registered before the start)."""
        informer = self.make(resource, api_client, **options)
        if recorder is not None:
            informer.add_event_handler(recorder)
        informer.start()
        assert informer.wait_for_sync(DEADLINE), informer.health()
        return informer

    def stop_all(self) -> None:
        stopped = [informer.stop(timeout=DEADLINE) for informer in self.made]
        assert all(stopped), "an informer thread did not end"


@contextmanager
def informers(cluster: SimulatedCluster) -> Iterator[Informers]:
    factory = Informers(cluster)
    try:
        yield factory
    finally:
        factory.stop_all()


def wait_watching(cluster: SimulatedCluster, count: int = 1) -> None:
    """Wait until ``count`` watch requests are registered on the server (right after an
    informer's start, its first watch; later, see :func:`fence`)."""
    eventually(lambda: cluster.watch_count >= count, interval=0.005)


class Producer:
    """Creates (and every third time updates) ConfigMaps in ``namespace`` on a thread until
    stopped (or ``limit`` were made), recording each change in ``changes``; ``count`` says
    how many it made."""

    def __init__(self, cluster: SimulatedCluster, namespace: str, prefix: str = "load", *,
                 limit: int | None = None) -> None:
        self.changes = Changes(cluster)
        self._limit = limit
        self._namespace = namespace
        self._prefix = prefix
        self._stop = threading.Event()
        self._made = threading.Condition()
        self.count = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="test-producer", daemon=True)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if self._limit is not None and self.count >= self._limit:
                    self._stop.wait()
                    break
                name = f"{self._prefix}-{self.count:05d}"
                self.changes.create(configmap(name, self._namespace, data={"n": "0"}))
                if self.count % 3 == 0:
                    self.changes.update(name, self._namespace, {"n": "1"})
                with self._made:
                    self.count += 1
                    self._made.notify_all()
                # Let the server's watch threads have the storage lock: the lock is not
                # fair, and a producer that retakes it at once starves them.
                time.sleep(0.0002)
        except BaseException as error:  # reported by stop()
            self.error = error

    def __enter__(self) -> Producer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_made(self, count: int, timeout: float = DEADLINE) -> None:
        """Wait until at least ``count`` objects were made."""
        with self._made:
            assert self._made.wait_for(lambda: self.count >= count or self.error is not None,
                                       timeout), f"only {self.count} objects made"

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(DEADLINE)
        assert not self._thread.is_alive(), "the producer did not stop"
        if self.error is not None:
            raise AssertionError(f"the producer failed: {self.error!r}") from self.error


def fence(recorder: Recorder, changes: Changes, name: str,
          namespace: str = "default") -> KubeObject:
    """Create a ConfigMap and wait until the informer delivered it: it has a live watch now.

    (``cluster.watch_count`` also counts a dropped watch whose server thread has not ended
    yet, so it cannot tell whether the informer watched again.)
    """
    created = changes.create(configmap(name, namespace))
    recorder.wait_rv(key_of(created), rv_of(created))
    return created
