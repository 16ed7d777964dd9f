"""Controllers with leader election against the simulator: one delivers, the others stand by.

Short timings (lease 1 s, renew deadline 0.6 s, retry 0.2 s); every wait is a condition with
a deadline, never a sleep.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from faro import Config, Controller, KubernetesClient, LeaderElectionConfig
from faro.testing import SimulatedCluster
from tests.integration.controller_helpers import Events
from tests.integration.helpers import DEADLINE, configmap, eventually

TIMINGS = {"lease_duration": 1.0, "renew_deadline": 0.6, "retry_period": 0.2}
STREAM = "v1/configmaps in default"  # the informer, as the checkpoint names it
CONFIG = {"resources": [{"gvr": "v1/configmaps", "namespace_names": ["default"]}],
          "metrics": {"enabled": True, "port": 0, "bind_addr": "127.0.0.1"}}


class Replica:
    """One controller competing for the Lease ``faro`` in default, with its handler."""

    def __init__(self, cluster: SimulatedCluster, identity: str) -> None:
        self.cluster = cluster
        self.identity = identity
        self.events = Events(identity)
        election = LeaderElectionConfig("default", "faro", identity, **TIMINGS)
        self.controller = Controller(KubernetesClient(cluster.api_client),
                                     Config.from_dict(CONFIG), name=f"test-{identity}",
                                     leader_election=election)
        self.controller.add_event_handler(self.events)

    def __repr__(self) -> str:
        return f"<Replica {self.identity}>"

    def caches(self, name: str) -> bool:
        """Whether its informer holds ConfigMap ``name`` in the version the cluster has."""
        (informer,) = self.controller.informers().values()
        cached = informer.store.get(f"default/{name}")
        try:
            version = self.cluster.get("v1", "ConfigMap", name, namespace="default")[
                "metadata"]["resourceVersion"]
        except Exception:  # deleted
            return cached is None
        return cached is not None and cached["metadata"]["resourceVersion"] == version

    def get(self, path: str) -> tuple[int, str]:
        address = self.controller.metrics_address
        assert address is not None
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{address[1]}{path}",
                                        timeout=DEADLINE) as response:
                return response.status, response.read().decode().rstrip("\n")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode().rstrip("\n")


@pytest.fixture
def replicas(cluster: SimulatedCluster) -> Iterator[list[Replica]]:
    made = [Replica(cluster, identity) for identity in ("a", "b", "c")]
    for replica in made:
        replica.controller.start()
    yield made
    for replica in made:
        assert replica.controller.stop(DEADLINE), f"{replica} did not stop in time"


@pytest.fixture
def pair(cluster: SimulatedCluster) -> Iterator[list[Replica]]:
    """Two replicas, not started."""
    made = [Replica(cluster, identity) for identity in ("a", "b")]
    yield made
    for replica in made:
        assert replica.controller.stop(DEADLINE), f"{replica} did not stop in time"


def checkpoint(cluster: SimulatedCluster) -> dict[str, str]:
    """The versions in the Lease's checkpoint annotation ({} before the first)."""
    try:
        lease = cluster.get("coordination.k8s.io/v1", "Lease", "faro", namespace="default")
    except Exception:
        return {}
    text = (lease["metadata"].get("annotations") or {}).get("faro/checkpoint")
    streams: dict[str, str] = orjson.loads(text)["streams"] if text else {}
    return streams


def checkpointed(cluster: SimulatedCluster, obj: dict[str, Any]) -> None:
    """Wait until the leader's checkpoint is at ``obj``'s version or later."""
    version = int(obj["metadata"]["resourceVersion"])
    eventually(lambda: int(checkpoint(cluster).get(STREAM, "0")) >= version,
               what=f"a checkpoint at {version} or later")


def leaders(replicas: list[Replica]) -> list[Replica]:
    return [r for r in replicas if r.controller.is_leader()]


def test_one_replica_delivers_and_the_standbys_keep_warm_caches(
        cluster: SimulatedCluster, replicas: list[Replica]) -> None:
    (leader,) = eventually(lambda: leaders(replicas), what="a leader")
    standbys = [r for r in replicas if r is not leader]
    for replica in replicas:
        assert replica.controller.wait_until_ready(DEADLINE)
    cluster.create(configmap("seen", data={"n": "1"}))
    leader.events.wait_key("default/seen", "ADDED")
    # Warm caches: every standby's informer holds the object, and none delivered it.
    for standby in standbys:
        (informer,) = standby.controller.informers().values()
        eventually(lambda i=informer: i.store.get("default/seen") is not None,
                   what=f"{standby} caches the object")
        assert standby.events.events == []
        assert not standby.controller.is_leader()
        assert standby.controller.leader == leader.identity
    # The role is in /readyz (ready either way) and in faro_leader.
    assert leader.get("/readyz") == (200, "ok: leader (lease default/faro, identity "
                                          f"{leader.identity})")
    for standby in standbys:
        status, text = standby.get("/readyz")
        assert (status, text) == (200, f"ok: standby (lease default/faro, leader "
                                       f"{leader.identity})")
        assert 'faro_leader{lease="faro"} 0.0' in standby.get("/metrics")[1]
    assert 'faro_leader{lease="faro"} 1.0' in leader.get("/metrics")[1]


def test_a_stopped_leader_releases_and_a_standby_delivers_what_follows(
        cluster: SimulatedCluster, replicas: list[Replica]) -> None:
    (leader,) = eventually(lambda: leaders(replicas), what="a leader")
    cluster.create(configmap("before", data={"n": "1"}))
    leader.events.wait_key("default/before", "ADDED")
    stopped_at = time.monotonic()
    assert leader.controller.stop(DEADLINE)
    (successor,) = eventually(lambda: leaders(replicas), what="a successor")
    # Released, not expired: a standby takes it within a retry period or two.
    assert time.monotonic() - stopped_at < TIMINGS["lease_duration"]
    cluster.create(configmap("after", data={"n": "1"}))
    successor.events.wait_key("default/after", "ADDED")
    assert leader.events.of("default/after") == []
    assert [r for r in replicas if r.events.of("default/after")] == [successor]
    assert cluster.get("coordination.k8s.io/v1", "Lease", "faro",
                       namespace="default")["spec"]["holderIdentity"] == successor.identity


def test_a_leader_that_cannot_renew_stops_delivering_before_its_lease_expires(
        cluster: SimulatedCluster, replicas: list[Replica]) -> None:
    (leader,) = eventually(lambda: leaders(replicas), what="a leader")
    # Only the leader writes the Lease; its renewals fail from now on, the standbys' reads
    # still work.
    cluster.fail_next(100_000, 500, path="/leases/faro", method="PUT")
    failing_since = time.monotonic()
    eventually(lambda: not leader.controller.is_leader(), what="the leader stops leading")
    assert time.monotonic() - failing_since < TIMINGS["lease_duration"] + \
        TIMINGS["retry_period"]
    # Nobody may lead while the fault lasts; the old leader delivers nothing now.
    assert leaders(replicas) == []
    cluster.create(configmap("orphan", data={"n": "1"}))
    for replica in replicas:
        (informer,) = replica.controller.informers().values()
        eventually(lambda i=informer: i.store.get("default/orphan") is not None,
                   what=f"{replica} caches the object")
    assert all(r.events.of("default/orphan") == [] for r in replicas)
    assert "standby" in leader.get("/readyz")[1]
    cluster.clear_faults()
    (successor,) = eventually(lambda: leaders(replicas), what="a leader again")
    cluster.create(configmap("later", data={"n": "1"}))
    successor.events.wait_key("default/later", "ADDED")
    assert [r for r in replicas if r.events.of("default/later")] == [successor]


def test_the_first_leader_reports_what_exists_as_initial_adds(
        cluster: SimulatedCluster, pair: list[Replica]) -> None:
    for name in ("one", "two"):
        cluster.create(configmap(name, data={"n": "1"}))
    for replica in pair:
        replica.controller.start()
    (leader,) = eventually(lambda: leaders(pair), what="a leader")
    for name in ("one", "two"):
        (event,) = leader.events.wait_key(f"default/{name}", "ADDED")
        assert event.is_initial
    # It checkpoints: one informer, at a version no older than the objects'.
    (version,) = eventually(lambda: checkpoint(cluster).values(), what="a checkpoint")
    newest = cluster.get("v1", "ConfigMap", "two", namespace="default")["metadata"]
    assert int(version) >= int(newest["resourceVersion"])


def test_a_new_leader_delivers_what_changed_after_the_old_one_stopped(
        cluster: SimulatedCluster, pair: list[Replica]) -> None:
    first, second = pair
    first.controller.start()
    eventually(first.controller.is_leader, what="the first leads")
    second.controller.start()
    before = cluster.create(configmap("before", data={"n": "1"}))
    first.events.wait_key("default/before", "ADDED")
    checkpointed(cluster, before)
    # Nobody may take the Lease for now: the first one's release fails too.
    cluster.fail_next(100_000, 500, path="/leases/faro", method="PUT")
    assert first.controller.stop(DEADLINE)
    written = checkpoint(cluster)
    # Changes while nobody leads: the standby caches them and delivers nothing.
    cluster.create(configmap("during", data={"n": "1"}))
    changed = cluster.get("v1", "ConfigMap", "before", namespace="default")
    changed["data"] = {"n": "2"}
    cluster.update(changed)
    eventually(lambda: second.caches("during") and second.caches("before"),
               what="the standby caches the changes")
    assert second.events.events == []
    assert checkpoint(cluster) == written  # a stopped leader writes no more
    cluster.clear_faults()
    eventually(second.controller.is_leader, what="the standby leads")
    # It resumes from the checkpoint: the changes nobody delivered, and nothing before.
    (added,) = second.events.wait_key("default/during", "ADDED")
    assert not added.is_initial
    (updated,) = second.events.wait_key("default/before", "UPDATED")
    assert updated.object["data"] == {"n": "2"}
    # Checkpoints move on from there.
    eventually(lambda: checkpoint(cluster) != written, what="a newer checkpoint")


def test_a_compacted_checkpoint_relists_and_reports_every_object(
        cluster: SimulatedCluster, pair: list[Replica]) -> None:
    first, second = pair
    first.controller.start()
    eventually(first.controller.is_leader, what="the first leads")
    second.controller.start()
    cluster.create(configmap("gone", data={"n": "1"}))
    kept = cluster.create(configmap("kept", data={"n": "1"}))
    first.events.wait_key("default/kept", "ADDED")
    checkpointed(cluster, kept)
    cluster.fail_next(100_000, 500, path="/leases/faro", method="PUT")
    assert first.controller.stop(DEADLINE)
    cluster.create(configmap("new", data={"n": "1"}))
    cluster.delete("v1", "ConfigMap", "gone", namespace="default")
    eventually(lambda: second.caches("new") and second.caches("gone"),
               what="the standby caches the changes")
    cluster.compact()  # the checkpoint's version is gone: the watch from it gets 410
    cluster.clear_faults()
    eventually(second.controller.is_leader, what="the standby leads")
    # The relist reports every object as it is now (what changed since is unknown).
    for name in ("new", "kept"):
        (event,) = second.events.wait_key(f"default/{name}", "UPDATED")
        assert event.final_state_unknown
    # A deletion the standby saw, which neither the cache nor the relist can tell any more,
    # is reported from what it kept of it.
    (deleted,) = second.events.wait_key("default/gone", "DELETED")
    assert not deleted.final_state_unknown
    (informer,) = second.controller.informers().values()
    assert informer.health().relists.get("expired") == 1
