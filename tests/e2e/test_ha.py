"""High availability end to end: replicas of ``faro run --leader-elect`` as separate processes.

Against the TLS simulator or, with ``FARO_E2E_KUBECONFIG``, the real control plane,
unchanged. Each test uses a namespace of its own for the Lease and the objects it watches.
Timings are short (lease 4 s, renew deadline 3 s, retry 1 s) so a failover takes seconds.
"""

from __future__ import annotations

import signal
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.e2e.test_faro_command import Faro, configmap, manifest, namespace
from tests.integration.kube import DEADLINE, Kubectl, eventually

pytestmark = [pytest.mark.kubectl, pytest.mark.e2e, pytest.mark.cluster]

LEASE_DURATION = 4.0
RETRY_PERIOD = 1.0
ELECTION = ["--leader-elect", "--leader-elect-resource-name", "faro-e2e",
            "--leader-elect-lease-duration", f"{LEASE_DURATION:g}",
            "--leader-elect-renew-deadline", "3", "--leader-elect-retry-period",
            f"{RETRY_PERIOD:g}", "--metrics-port", "0"]


class Replica:
    """One ``faro run --leader-elect`` process, named by its POD_NAME."""

    def __init__(self, name: str, process: Faro) -> None:
        self.name = name
        self.process = process
        self.metrics = process.metrics_url()

    def __repr__(self) -> str:
        return f"<Replica {self.name}>"

    def readyz(self) -> str:
        """The /readyz answer ("" once the process no longer answers)."""
        url = self.metrics.rsplit("/", 1)[0] + "/readyz"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return str(response.read().decode().strip())
        except urllib.error.HTTPError as error:
            return str(error.read().decode().strip())
        except OSError:
            return ""

    def leads(self) -> bool:
        return self.readyz().startswith("ok: leader")

    def events(self) -> list[dict[str, Any]]:
        """The JSON event lines written so far (whole lines only)."""
        files = sorted(self.process.output_dir.glob("events-*.json"))
        data = b"".join(file.read_bytes() for file in files)
        return [orjson.loads(line) for line in data.split(b"\n")[:-1] if line.strip()]


@pytest.fixture
def replicas(tmp_path: Path, kubeconfig: str
             ) -> Iterator[Callable[..., list[Replica]]]:
    started: list[Faro] = []

    def start(ns: str, count: int, shards: int = 1) -> list[Replica]:
        """``count`` replicas; with ``shards``, replica i serves shard i % shards."""
        config = {"json_export": True,
                  "namespaces": [{"name_selector": ns, "resources": {"v1/configmaps": {}}}]}
        made = []
        for index in range(count):
            name = f"replica-{index}"
            sharding = ["--shards", str(shards), "--shard-index", str(index % shards)] \
                if shards > 1 else []
            process = Faro(tmp_path / name, kubeconfig, config,
                           [*ELECTION, "--leader-elect-resource-namespace", ns, *sharding],
                           env={"POD_NAME": name})
            started.append(process)
            made.append(Replica(name, process))
        return made

    yield start
    for process in started:
        process.close()


def leaders(replicas: list[Replica]) -> list[Replica]:
    return [replica for replica in replicas if replica.leads()]


def test_three_replicas_one_leads_and_a_standby_takes_over_after_kill_9(
        kubectl: Kubectl, names: Callable[[str], str],
        replicas: Callable[..., list[Replica]]) -> None:
    ns = names("ha")
    kubectl.apply(manifest(namespace(ns)))
    started = replicas(ns, 3)
    (leader,) = eventually(lambda: leaders(started) or None, "a leader")
    # Exactly one, and it stays the only one over several renewals.
    deadline = time.monotonic() + 3 * RETRY_PERIOD
    while time.monotonic() < deadline:
        assert leaders(started) == [leader]
    lease = kubectl.json("get", "lease", "faro-e2e", "-n", ns)
    assert lease["spec"]["holderIdentity"] == leader.name
    kubectl.apply(manifest(configmap("before", ns, "1")))
    eventually(lambda: any(e["name"] == "before" for e in leader.events()),
               "the leader's event line")
    standbys = [r for r in started if r is not leader]
    assert all(r.readyz().startswith("ok: standby") for r in standbys)
    assert all(not r.events() for r in standbys)

    leader.process.reader.process.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    leader.process.reader.process.wait(timeout=DEADLINE)
    (successor,) = eventually(lambda: leaders(standbys) or None, "a new leader")
    took = time.monotonic() - killed_at
    # A killed leader releases nothing: its Lease expires. The standbys' acquire attempts
    # come every retry period with up to 120 % jitter.
    assert took < LEASE_DURATION + 2.2 * RETRY_PERIOD + 2.0, took
    print(f"failover after kill -9: {took:.2f} s")
    lease = kubectl.json("get", "lease", "faro-e2e", "-n", ns)
    assert lease["spec"]["holderIdentity"] == successor.name
    assert lease["spec"]["leaseTransitions"] >= 1
    kubectl.apply(manifest(configmap("after", ns, "1")))
    eventually(lambda: any(e["name"] == "after" for e in successor.events()),
               "the new leader's event line")
    other = next(r for r in standbys if r is not successor)
    assert not any(e["name"] == "after" for e in other.events())


def test_a_write_burst_across_kill_9_loses_no_change(
        kubectl: Kubectl, names: Callable[[str], str],
        replicas: Callable[..., list[Replica]]) -> None:
    """Objects change before, during and after the leader's death; the replicas' event
    files together hold every object's final version (duplicates allowed: at least once)."""
    ns = names("burst")
    kubectl.apply(manifest(namespace(ns)))
    started = replicas(ns, 3)
    (leader,) = eventually(lambda: leaders(started) or None, "a leader")
    count = 20
    final: dict[str, str] = {}

    def write(round_: int) -> None:
        applied = orjson.loads(kubectl.ok("apply", "-o", "json", "-f", "-", stdin=manifest(
            *[configmap(f"cm-{n:02}", ns, str(round_), round=str(round_))
              for n in range(count)])))
        for item in applied.get("items", [applied]):
            final[item["metadata"]["name"]] = item["metadata"]["resourceVersion"]

    write(1)
    # Only the test's own objects (a real cluster adds kube-root-ca.crt to every namespace).
    eventually(lambda: set(final) <= {e["name"] for e in leader.events()}, "round 1 delivered")
    leader.process.reader.process.send_signal(signal.SIGKILL)
    leader.process.reader.process.wait(timeout=DEADLINE)
    standbys = [r for r in started if r is not leader]
    for round_ in (2, 3):  # while nobody leads (the killed leader's Lease has not expired)
        write(round_)
    (successor,) = eventually(lambda: leaders(standbys) or None, "a new leader")
    write(4)

    def delivered() -> dict[str, set[str]]:
        versions: dict[str, set[str]] = {}
        for replica in started:
            for event in replica.events():
                if event["name"] in final:
                    versions.setdefault(event["name"], set()).add(event["resourceVersion"])
        return versions

    eventually(lambda: all(final[name] in delivered().get(name, set()) for name in final),
               "every object's final version delivered")
    # Round 2 and 3 happened while nobody led: the new leader delivered them from the
    # checkpoint, not only the final state.
    rounds = {event["labels"].get("round") for event in successor.events()}
    assert {"2", "3", "4"} <= rounds, rounds
    twice = {(e["name"], e["resourceVersion"]) for e in successor.events()} & \
        {(e["name"], e["resourceVersion"]) for e in leader.events()}
    print(f"events of the test's objects delivered by both leaders: {len(twice)} "
          f"(of {count * 4} changes)")


def test_two_shards_of_two_replicas_deliver_each_object_from_exactly_one_shard(
        kubectl: Kubectl, names: Callable[[str], str],
        replicas: Callable[..., list[Replica]]) -> None:
    ns = names("shards")
    kubectl.apply(manifest(namespace(ns)))
    started = replicas(ns, 4, shards=2)  # replicas 0 and 2 serve shard 0, 1 and 3 shard 1

    def leaders_by_shard() -> dict[int, Replica] | None:
        leading = {index % 2: r for index, r in enumerate(started) if r.leads()}
        return leading if len(leading) == 2 and len(leaders(started)) == 2 else None

    by_shard = eventually(leaders_by_shard, "a leader in each shard")
    for index, leader in by_shard.items():
        assert f"lease {ns}/faro-e2e-shard-{index}," in leader.readyz()
    created = [configmap(f"cm-{n:02}", ns, "1") for n in range(30)]
    kubectl.apply(manifest(*created))
    wanted = {obj["metadata"]["name"] for obj in created}

    def delivered() -> dict[str, list[str]]:
        by_name: dict[str, list[str]] = {}
        for replica in started:
            for event in replica.events():
                if event["name"] in wanted:
                    by_name.setdefault(event["name"], []).append(replica.name)
        return by_name

    eventually(lambda: set(delivered()) == wanted, "every object delivered")
    for name, by in delivered().items():
        assert len(by) == 1, (name, by)  # one ADDED, from one replica
        shard = zlib.crc32(f"{ns}/{name}".encode()) % 2
        assert by == [by_shard[shard].name], (name, by, shard)
    assert len({tuple(by) for by in delivered().values()}) == 2  # both shards had some
