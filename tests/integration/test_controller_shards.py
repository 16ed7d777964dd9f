"""Sharded controllers against the simulator: each object is cached and delivered by the one
controller of its shard; with leader election, by the leader of its shard's Lease."""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import pytest

from faro import Config, Controller, KubernetesClient, LeaderElectionConfig
from faro._sharding import shard_of as faro_shard_of
from faro.testing import SimulatedCluster
from tests.integration.controller_helpers import Events
from tests.integration.helpers import DEADLINE, configmap, eventually

TIMINGS = {"lease_duration": 1.0, "renew_deadline": 0.6, "retry_period": 0.2}
NAMES = [f"cm-{n:02}" for n in range(24)]


def config(index: int, count: int = 2) -> Config:
    return Config.from_dict({
        "resources": [{"gvr": "v1/configmaps", "namespace_names": ["default"]}],
        "shard": {"index": index, "count": count}})


@pytest.fixture
def made() -> Iterator[list[tuple[Controller, Events]]]:
    controllers: list[tuple[Controller, Events]] = []
    yield controllers
    for controller, _ in controllers:
        assert controller.stop(DEADLINE), f"{controller!r} did not stop in time"


def start(cluster: SimulatedCluster, made: list[tuple[Controller, Events]], index: int,
          identity: str | None = None) -> tuple[Controller, Events]:
    events = Events(f"shard-{index}-{identity}")
    election = None if identity is None else \
        LeaderElectionConfig("default", "faro", identity, **TIMINGS)
    controller = Controller(KubernetesClient(cluster.api_client), config(index),
                            name=f"test-{index}-{identity}", leader_election=election)
    controller.add_event_handler(events)
    made.append((controller, events))
    controller.start()
    return controller, events


def shard_of(name: str) -> int:
    return zlib.crc32(f"default/{name}".encode()) % 2


def test_the_shard_is_the_crc32_of_the_key() -> None:
    # The documented contract, computable in any language: CRC-32 (IEEE) of
    # "namespace/name" as UTF-8, modulo the number of shards.
    assert faro_shard_of("default/cm-00", 2) == 0xFAF25F7D % 2
    assert faro_shard_of("default/cm-00", 7) == 0xFAF25F7D % 7
    assert all(faro_shard_of(f"default/{name}", 2) == shard_of(name) for name in NAMES)
    assert {shard_of(name) for name in NAMES} == {0, 1}  # both shards get objects


def test_two_shards_split_the_objects_and_each_caches_only_its_own(
        cluster: SimulatedCluster, made: list[tuple[Controller, Events]]) -> None:
    for name in NAMES[:12]:  # some before the start: the lists are split too
        cluster.create(configmap(name, data={"n": "1"}))
    shards = [start(cluster, made, index) for index in (0, 1)]
    for name in NAMES[12:]:
        cluster.create(configmap(name, data={"n": "1"}))
    for name in NAMES:
        owner, other = shards[shard_of(name)], shards[1 - shard_of(name)]
        owner[1].wait_key(f"default/{name}", "ADDED")
        assert other[1].of(f"default/{name}") == []
    for index, (controller, events) in enumerate(shards):
        (informer,) = controller.informers().values()
        mine = {name for name in NAMES if shard_of(name) == index}
        assert set(informer.store.keys()) == {f"default/{n}" for n in mine}
        assert {e.key for e in events.events} == {f"default/{n}" for n in mine}
        assert controller.metrics.registry.get_sample_value(
            "faro_shard", {"index": str(index), "shards": "2"}) == 1


def test_two_shards_with_two_replicas_each_have_a_leader_per_shard(
        cluster: SimulatedCluster, made: list[tuple[Controller, Events]]) -> None:
    replicas = [start(cluster, made, index, identity)
                for index in (0, 1) for identity in ("a", "b")]

    def leaders() -> list[tuple[Controller, Events]] | None:
        leading = [r for r in replicas if r[0].is_leader()]
        return leading if len(leading) == 2 else None

    leading = eventually(leaders, what="a leader in each shard")
    assert sorted(c.leader_election.name for c, _ in leading  # type: ignore[union-attr]
                  ) == ["faro-shard-0", "faro-shard-1"]
    for name in NAMES:
        cluster.create(configmap(name, data={"n": "1"}))
    for name in NAMES:
        leader = next(r for r in leading if r[0].leader_election.name  # type: ignore[union-attr]
                      == f"faro-shard-{shard_of(name)}")
        leader[1].wait_key(f"default/{name}", "ADDED")
    # Each object delivered exactly once, by its shard's leader.
    for name in NAMES:
        delivered = [events.name for _, events in replicas
                     for event in events.events if event.key == f"default/{name}"]
        assert len(delivered) == 1, (name, delivered)
    for index in (0, 1):
        lease = cluster.get("coordination.k8s.io/v1", "Lease", f"faro-shard-{index}",
                            namespace="default")
        assert lease["spec"]["holderIdentity"] in ("a", "b")
