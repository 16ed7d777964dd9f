"""Random changes interleaved with random faults: the informer's guarantees hold throughout.

Each example starts a fresh simulated cluster and informer, runs a random
sequence of creates, updates and deletes of a handful of names mixed with
faults (clean and abrupt watch drops, outages with or without a compaction,
bursts of 500s, malformed watch lines), then checks that:

- the store equals the server's objects;
- replaying the notifications from nothing yields that state (each update's
  old version is the one held, each delete is of a held object);
- no object's notifications go backwards in resourceVersion;
- every change the test made was delivered exactly once, unless a relist
  was needed (only after a compaction) and the change was superseded, or was
  a final deletion the relist reported with ``final_state_unknown``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from faro.cache import SharedInformer
from faro.testing import SimulatedCluster
from tests.integration.helpers import DEADLINE, configmap
from tests.integration.informer_helpers import (
    FAST,
    Changes,
    Recorder,
    assert_delivered_once,
    assert_forward,
    assert_in_sync,
    informer_threads,
    replay,
)

NAMES = st.sampled_from(["a", "b", "c", "d"])
WAIT = 5.0  # seconds an example may take to settle (a failing one waits it out, shrinking)


@dataclass(frozen=True)
class Put:
    """Create the object, or update it if it exists."""

    name: str


@dataclass(frozen=True)
class Delete:
    name: str


@dataclass(frozen=True)
class Drop:
    abrupt: bool


@dataclass(frozen=True)
class Outage:
    """The watch is down (parked) while ``changes`` are made; with ``compact`` the history
    is forgotten meanwhile, so the informer must relist."""

    changes: tuple[Put | Delete, ...]
    compact: bool


@dataclass(frozen=True)
class Burst:
    """The next ``count`` requests fail with 500; a drop makes the informer send some."""

    count: int
    abrupt: bool


@dataclass(frozen=True)
class Malformed:
    pass


CHANGES = st.one_of(st.builds(Put, NAMES), st.builds(Delete, NAMES))
FAULTS = st.one_of(
    st.builds(Drop, st.booleans()),
    st.builds(Outage, st.lists(CHANGES, max_size=4).map(tuple), st.booleans()),
    st.builds(Burst, st.integers(1, 4), st.booleans()),
    st.just(Malformed()),
)
STEPS = st.lists(st.one_of(CHANGES, CHANGES, FAULTS), min_size=1, max_size=12)


class Run:
    """One example: a cluster, an informer with a recorder, and what the test changed."""

    def __init__(self, cluster: SimulatedCluster) -> None:
        self.cluster = cluster
        self.changes = Changes(cluster)
        self.recorder = Recorder()
        self.present: set[str] = set()
        self.version = 0
        self.compacted = False
        self.informer = SharedInformer(cluster.api_client, "v1/configmaps", namespace="default",
                                       backoff=FAST, watch_timeout=(5, 10))
        self.informer.add_event_handler(self.recorder)

    def change(self, step: Put | Delete) -> None:
        if isinstance(step, Put):
            self.version += 1
            if step.name in self.present:
                self.changes.update(step.name, "default", {"v": str(self.version)})
            else:
                self.changes.create(configmap(step.name, data={"v": str(self.version)}))
                self.present.add(step.name)
        elif step.name in self.present:
            self.changes.delete(step.name, "default")
            self.present.discard(step.name)

    def fault(self, step: Any) -> None:
        cluster = self.cluster
        if isinstance(step, Drop):
            cluster.drop_watches(abrupt=step.abrupt)
        elif isinstance(step, Outage):
            with cluster.hold_watches():
                cluster.drop_watches()  # the informer watches again, and is parked
                assert cluster.wait_for_held_watches(1, DEADLINE), self.informer.health()
                for change in step.changes:
                    self.change(change)
                if step.compact:
                    cluster.compact()
                    self.compacted = True
                    cluster.drop_watches()  # the next watch gets 410
        elif isinstance(step, Burst):
            cluster.fail_next(step.count, 500, path="configmaps")
            cluster.drop_watches(abrupt=step.abrupt)
        else:
            cluster.inject_malformed_watch_line()

    def check(self) -> None:
        self.cluster.clear_faults()  # burst failures nobody asked for yet
        final = assert_in_sync(self.informer, self.cluster, reached=self.changes.last_rv(),
                               timeout=WAIT)
        notes = self.recorder.notes  # delivered before the resourceVersion moved on
        assert replay(notes) == final
        assert_forward(notes)
        initial = [n for n in notes if n.kind == "add" and n.flag]
        assert notes[:len(initial)] == initial  # the first list's adds come first
        relists = self.informer.health().relists
        if not self.compacted:
            assert relists == {}, relists
        later = notes[len(initial):]
        assert_delivered_once(later, self.changes.made, relisted=bool(relists))
        delivered = {(n.key, n.rv) for n in later}
        event(f"relists: {sum(relists.values())}")
        event(f"changes missed (superseded during a relist): "
              f"{sum((key, rv) not in delivered for _, key, rv in self.changes.made) > 0}")


@settings(max_examples=25, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(initial=st.sets(NAMES, max_size=3), steps=STEPS)
def test_random_changes_and_faults_keep_the_informer_exact(
        initial: set[str], steps: list[Any]) -> None:
    with SimulatedCluster(too_large_rv_wait=0.3) as cluster:
        run = Run(cluster)
        try:
            for name in sorted(initial):
                cluster.create(configmap(name, data={"v": "0"}))
                run.present.add(name)
            run.informer.start()
            assert run.informer.wait_for_sync(DEADLINE), run.informer.health()
            for step in steps:
                if isinstance(step, Put | Delete):
                    run.change(step)
                else:
                    run.fault(step)
            run.check()
        finally:
            assert run.informer.stop(timeout=DEADLINE)
    assert informer_threads() == []
