"""The simulated API server of the informer benchmarks, in a process of its own.

Usage: python benchmarks/sim_server.py [--history-size N]

Starts a plain-HTTP :class:`faro.testing.SimulatedCluster` on 127.0.0.1 and
prints one JSON line ``{"url": ..., "token": ..., "kubeconfig": ...}``. Then it
reads one command per line on stdin and answers each with one JSON line on
stdout (``{"error": "..."}`` when a command fails):

=====================  ====================================================
``reset``              empty cluster (``restart()``) plus an empty namespace
                       ``bench``; answers ``{"rv": N}``
``load N``             create N ~1 KB ConfigMaps (``bench_sim.configmap``) in
                       ``bench``, in-process; answers ``{"rv": N, "objects": N}``
``burst N``            the same as ``load N`` (named for the throughput runs)
``hold``               ``hold_watches()``: new watches are parked
``held``               answers ``{"held": N}``: watches parked now
``wait-held N [S]``    wait up to S seconds (default 60) until N watches are
                       parked; answers ``{"held": N, "ok": true|false}``
``release``            ``release_watches()``; answers ``{"released": N, "at": T}``,
                       T the ``time.time()`` just before the release
``stream R S``         create R*S ~1 KB ConfigMaps in ``bench`` at R per second
                       for S seconds, paced against a monotonic schedule (the
                       k-th is due at start + k/R; a late one is written at
                       once, no sleep). Each carries the annotation
                       ``faro.bench/written``: ``time.time()`` just before its
                       create. The server's garbage collector is off
                       meanwhile (collected and frozen before and after).
                       Answers ``{"events": N, "rate": achieved writes/s,
                       "max_late_ms": ..., "late_writes": writes over 1 ms
                       behind schedule, "seconds": ...}``
``soak R S P N PATH``  the soak's writer (``bench_soak.write``): ConfigMap
                       creates, updates and deletes over N names at R per
                       second for S seconds, a watch drop (and on every other
                       one a compaction) every P seconds; writes every
                       change's [rv, name, type] to PATH as JSON; answers
                       ``{"writes": N, "faults": [...], "final_rv": N, ...}``
``quit``               stop the cluster and exit (so does the end of stdin)
=====================  ====================================================
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_sim import configmap
from pacing import Schedule

from faro.testing import SimulatedCluster

NAMESPACE = "bench"
WRITTEN_ANNOTATION = "faro.bench/written"  # the stream command's write time (time.time())


class Session:
    """The cluster and the command handlers."""

    def __init__(self, cluster: SimulatedCluster) -> None:
        self.cluster = cluster
        self.next_index = 0

    def reset(self) -> dict[str, Any]:
        self.cluster.restart()
        gc.unfreeze()
        gc.collect()
        self.cluster.create({"apiVersion": "v1", "kind": "Namespace",
                             "metadata": {"name": NAMESPACE}})
        self.next_index = 0
        return {"rv": self.cluster.resource_version}

    def load(self, count: str) -> dict[str, Any]:
        started = time.perf_counter()
        create = self.cluster.create
        for i in range(self.next_index, self.next_index + int(count)):
            create(configmap(i))
        self.next_index += int(count)
        # The new objects would make the cyclic GC's next full collection (hundreds
        # of milliseconds) fall into the stream being measured: do it now, and keep
        # them out of later collections.
        gc.collect()
        gc.freeze()
        return {"rv": self.cluster.resource_version, "objects": self.next_index,
                "seconds": round(time.perf_counter() - started, 3)}

    def hold(self) -> dict[str, Any]:
        self.cluster.hold_watches()
        return {"ok": True}

    def held(self) -> dict[str, Any]:
        return {"held": self.cluster.held_watches}

    def wait_held(self, count: str, timeout: str = "60") -> dict[str, Any]:
        ok = self.cluster.wait_for_held_watches(int(count), float(timeout))
        return {"held": self.cluster.held_watches, "ok": ok}

    def release(self) -> dict[str, Any]:
        at = time.time()
        return {"released": self.cluster.release_watches(), "at": at}

    def stream(self, rate: str, seconds: str) -> dict[str, Any]:
        per_second = float(rate)
        count = round(per_second * float(seconds))
        objects = [configmap(i) for i in range(self.next_index, self.next_index + count)]
        self.next_index += count
        create = self.cluster.create
        wall, sleep = time.time, time.sleep
        # No collection of the server's own may stall the writes and the watch
        # being measured: collect and freeze now, and collect nothing meanwhile.
        gc.collect()
        gc.freeze()
        gc.disable()
        try:
            schedule = Schedule(count, per_second)
            first = last = 0.0
            for k in schedule:
                obj = objects[k]
                written = wall()
                obj["metadata"]["annotations"] = {WRITTEN_ANNOTATION: repr(written)}
                create(obj)
                if k == 0:
                    first = written
                last = written
            sleep(0.2)  # the last events reach the watchers before the collection below
        finally:
            gc.enable()
        gc.collect()
        gc.freeze()
        achieved = (count - 1) / (last - first) if count > 1 and last > first else 0.0
        return {"events": count, "rate": round(achieved, 1), **schedule.lateness(),
                "seconds": round(last - first, 3)}

    def soak(self, rate: str, seconds: str, fault_every: str, names: str,
             log_path: str) -> dict[str, Any]:
        from bench_soak import write

        return write(self.cluster, float(rate), float(seconds), float(fault_every), log_path,
                     names=int(names))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history-size", type=int, default=300_000,
                        help="changes the cluster remembers (default 300000)")
    args = parser.parse_args()
    with SimulatedCluster(history_size=args.history_size) as cluster:
        session = Session(cluster)
        commands = {
            "reset": session.reset, "load": session.load, "burst": session.load,
            "hold": session.hold, "held": session.held, "held?": session.held,
            "wait-held": session.wait_held, "release": session.release,
            "stream": session.stream, "soak": session.soak,
        }
        out = sys.stdout

        def answer(reply: dict[str, Any]) -> None:
            out.write(orjson.dumps(reply).decode() + "\n")
            out.flush()

        answer({"url": cluster.url, "token": cluster.token,
                "kubeconfig": cluster.kubeconfig_path})
        for text in sys.stdin:
            words = text.split()
            if not words:
                continue
            if words[0] == "quit":
                break
            handler = commands.get(words[0])
            if handler is None:
                answer({"error": f"unknown command {words[0]!r}"})
                continue
            try:
                answer(handler(*words[1:]))
            except Exception as error:  # report and go on: the harness decides
                answer({"error": f"{type(error).__name__}: {error}"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
