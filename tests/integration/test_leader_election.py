"""Leader election (faro.leaderelection) against the simulator over real HTTP.

Short timings (lease 1 s, renew deadline 0.6 s, retry 0.2 s); every wait is a condition
with a deadline (``eventually``), never a sleep.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from faro.leaderelection import LeaderElectionConfig, LeaderElector, micro_time
from faro.testing import SimulatedCluster
from tests.integration.helpers import DEADLINE, eventually

LEASE = ("coordination.k8s.io/v1", "Lease")
TIMINGS = {"lease_duration": 1.0, "renew_deadline": 0.6, "retry_period": 0.2}


class Recorder:
    """Callbacks that record (wall time, what) and can be told to raise."""

    def __init__(self, raises: bool = False) -> None:
        self.raises = raises
        self.events: list[tuple[float, str]] = []
        self.lock = threading.Lock()

    def _add(self, what: str) -> None:
        with self.lock:
            self.events.append((time.time(), what))
        if self.raises:
            raise RuntimeError(f"callback {what} fails on purpose")

    def started(self) -> None:
        self._add("started")

    def stopped(self) -> None:
        self._add("stopped")

    def new_leader(self, identity: str) -> None:
        self._add(f"leader:{identity}")

    def count(self, what: str) -> int:
        with self.lock:
            return sum(1 for _, seen in self.events if seen == what)

    def last(self, what: str) -> float:
        with self.lock:
            return [at for at, seen in self.events if seen == what][-1]


@pytest.fixture
def electors(cluster: SimulatedCluster) -> Iterator[list[tuple[LeaderElector, Recorder]]]:
    made: list[tuple[LeaderElector, Recorder]] = []
    yield made
    for elector, _ in made:
        assert elector.stop(DEADLINE)


def make(cluster: SimulatedCluster, made: list[tuple[LeaderElector, Recorder]], identity: str,
         *, raises: bool = False, name: str = "faro") -> tuple[LeaderElector, Recorder]:
    recorder = Recorder(raises)
    config = LeaderElectionConfig("default", name, identity, **TIMINGS)
    elector = LeaderElector(cluster.api_client, config, on_started_leading=recorder.started,
                            on_stopped_leading=recorder.stopped,
                            on_new_leader=recorder.new_leader)
    made.append((elector, recorder))
    elector.start()
    return elector, recorder


def lease(cluster: SimulatedCluster, name: str = "faro") -> dict[str, Any]:
    obj: dict[str, Any] = cluster.get(*LEASE, name, namespace="default")
    return obj


def leaders(made: list[tuple[LeaderElector, Recorder]]) -> list[LeaderElector]:
    return [elector for elector, _ in made if elector.is_leader()]


def test_exactly_one_of_three_leads_and_the_lease_names_it(
        cluster: SimulatedCluster, electors: list[tuple[LeaderElector, Recorder]]) -> None:
    for identity in ("a", "b", "c"):
        make(cluster, electors, identity)
    (leader,) = eventually(lambda: leaders(electors), what="a leader")
    identity = leader.config.identity
    spec = lease(cluster)["spec"]
    assert spec["holderIdentity"] == identity
    assert spec["leaseDurationSeconds"] == 1
    assert spec["leaseTransitions"] == 0
    for field in ("acquireTime", "renewTime"):  # MicroTime: RFC 3339, 6 digits, UTC
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", spec[field]), spec
    # Several renewals later: still exactly one leader, the same one, and every elector
    # has observed it.
    first_renew = spec["renewTime"]
    eventually(lambda: lease(cluster)["spec"]["renewTime"] != first_renew, what="a renewal")
    eventually(lambda: all(e.leader == identity for e, _ in electors), what="all observe it")
    assert leaders(electors) == [leader]
    assert lease(cluster)["spec"]["holderIdentity"] == identity
    for _, recorder in electors:
        assert recorder.count(f"leader:{identity}") == 1


def test_stop_releases_and_another_leads_within_lease_duration_plus_retry(
        cluster: SimulatedCluster, electors: list[tuple[LeaderElector, Recorder]]) -> None:
    for identity in ("a", "b", "c"):
        make(cluster, electors, identity)
    (leader,) = eventually(lambda: leaders(electors), what="a leader")
    recorder = next(r for e, r in electors if e is leader)
    stopped_at = time.monotonic()
    assert leader.stop(DEADLINE)
    assert not leader.is_leader()
    assert recorder.count("stopped") == 1
    (successor,) = eventually(lambda: leaders(electors), what="a successor")
    took = time.monotonic() - stopped_at
    assert successor is not leader
    assert took < TIMINGS["lease_duration"] + TIMINGS["retry_period"] * 2.2, took
    spec = lease(cluster)["spec"]
    assert spec["holderIdentity"] == successor.config.identity
    assert spec["leaseTransitions"] == 1


def test_released_lease_is_cleared(cluster: SimulatedCluster,
                                   electors: list[tuple[LeaderElector, Recorder]]) -> None:
    elector, recorder = make(cluster, electors, "only")
    eventually(elector.is_leader, what="leads")
    assert elector.stop(DEADLINE)
    spec = lease(cluster)["spec"]
    assert spec.get("holderIdentity") in ("", None)
    assert spec["leaseDurationSeconds"] == 1
    assert recorder.count("started") == recorder.count("stopped") == 1


def expiry(spec: dict[str, Any]) -> float:
    renewed = datetime.fromisoformat(spec["renewTime"].replace("Z", "+00:00"))
    return float(renewed.timestamp()) + float(spec["leaseDurationSeconds"])


def test_failing_renewals_stop_leading_before_the_lease_expires(
        cluster: SimulatedCluster, electors: list[tuple[LeaderElector, Recorder]]) -> None:
    elector, recorder = make(cluster, electors, "a")
    eventually(elector.is_leader, what="leads")
    cluster.fail_next(10_000, 500, path="/leases/faro", method="PUT")
    eventually(lambda: not elector.is_leader(), what="stops leading")
    eventually(lambda: recorder.count("stopped") == 1, what="on_stopped_leading")
    # The last successful renewal is what the Lease shows: the leader stopped before any
    # other replica could see it expire.
    assert recorder.last("stopped") < expiry(lease(cluster)["spec"])
    # The errors were logged and retried: once the server answers again, it leads again.
    assert recorder.count("started") == 1
    cluster.clear_faults()
    eventually(lambda: recorder.count("started") == 2, what="leads again after the errors")
    assert lease(cluster)["spec"]["holderIdentity"] == "a"


def test_takeover_by_another_holder_stops_leading_then_it_competes_again(
        cluster: SimulatedCluster, electors: list[tuple[LeaderElector, Recorder]]) -> None:
    elector, recorder = make(cluster, electors, "a")
    eventually(elector.is_leader, what="leads")
    obj = lease(cluster)
    obj["spec"]["holderIdentity"] = "intruder"
    obj["spec"]["leaseTransitions"] += 1
    # The intruder's clock is an hour behind: expiry must be judged from when the record
    # was seen changing locally, not from its renewTime.
    obj["spec"]["renewTime"] = micro_time(time.time() - 3600)
    taken_at = time.time()
    cluster.update(obj)
    eventually(lambda: recorder.count("stopped") == 1, what="on_stopped_leading")
    assert recorder.last("stopped") - taken_at < TIMINGS["lease_duration"]
    assert not elector.is_leader()
    assert elector.leader == "intruder"
    # The intruder never renews: once its record is lease_duration old (local clock), the
    # elector takes the Lease back.
    eventually(lambda: recorder.count("started") == 2, what="leads again")
    assert recorder.last("started") - taken_at >= TIMINGS["lease_duration"]
    spec = lease(cluster)["spec"]
    assert spec["holderIdentity"] == "a"
    assert spec["leaseTransitions"] == 2


def test_conflicting_electors_on_other_lease_names_are_independent(
        cluster: SimulatedCluster, electors: list[tuple[LeaderElector, Recorder]]) -> None:
    one, _ = make(cluster, electors, "a", name="one")
    two, _ = make(cluster, electors, "a", name="two")
    eventually(lambda: one.is_leader() and two.is_leader(), what="both lead")
    assert lease(cluster, "one")["spec"]["holderIdentity"] == "a"
    assert lease(cluster, "two")["spec"]["holderIdentity"] == "a"


def test_callbacks_that_raise_do_not_stop_the_elector(
        cluster: SimulatedCluster, electors: list[tuple[LeaderElector, Recorder]]) -> None:
    elector, recorder = make(cluster, electors, "a", raises=True)
    eventually(elector.is_leader, what="leads")
    assert recorder.count("started") == 1
    assert recorder.count("leader:a") == 1
    first_renew = lease(cluster)["spec"]["renewTime"]
    eventually(lambda: lease(cluster)["spec"]["renewTime"] != first_renew,
               what="renews after a raising callback")
    assert elector.is_leader()
    # Take it away: on_stopped_leading raises too, and the elector still competes.
    obj = lease(cluster)
    obj["spec"]["holderIdentity"] = "intruder"
    cluster.update(obj)
    eventually(lambda: recorder.count("stopped") == 1, what="on_stopped_leading")
    eventually(lambda: recorder.count("started") == 2, what="leads again")
    assert elector.stop(DEADLINE)
    assert recorder.count("stopped") == 2


def test_a_second_start_raises(cluster: SimulatedCluster,
                               electors: list[tuple[LeaderElector, Recorder]]) -> None:
    elector, _ = make(cluster, electors, "a")
    with pytest.raises(RuntimeError):
        elector.start()


@pytest.mark.parametrize(("changes", "field"), [
    ({"lease_duration": 0}, "lease_duration"),
    ({"renew_deadline": -1}, "renew_deadline"),
    ({"retry_period": 0}, "retry_period"),
    ({"lease_duration": 10.0, "renew_deadline": 10.0}, "lease_duration"),
    ({"renew_deadline": 2.4, "retry_period": 2.0}, "renew_deadline"),
    ({"name": ""}, "name"),
])
def test_config_validation_names_the_field(changes: dict[str, Any], field: str) -> None:
    arguments: dict[str, Any] = {"namespace": "default", "name": "faro", "identity": "a"}
    arguments.update(changes)
    with pytest.raises(ValueError, match=field):
        LeaderElectionConfig(**arguments)
