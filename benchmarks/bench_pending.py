"""The pending bound: RSS of a controller whose handler never returns, under a write stream.

Not part of ``make bench``: ``python benchmarks/run.py --only pending [--pending-seconds S]
[--pending-rate R]``.

The simulator (``sim_server.py``'s ``stream R S``) creates ~1 KB ConfigMaps at R per second for
S seconds (2,000/s for 30 s by default). The client (``bench_pending.py client``, a fresh
process) runs a ``faro.Controller`` on them, 3 workers, whose one handler blocks for ever, so
every event but the three in the workers' hands stays pending. It samples its RSS (VmRSS),
``faro_pending_events`` and ``faro_pending_bytes`` every second. Two variants in the same run:
the default ``pending`` settings (the bound), and every bound off (``0``: what faro did before
it had one). Reported: RSS at the end and its growth over the last half of the stream, the
pending events and bytes at the end, and RSS per pending event.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_informer import COMMAND_TIMEOUT, BenchError, SimProcess  # noqa: E402
from bench_soak import _row as _soak_row  # noqa: E402
from bench_soak import _status  # noqa: E402

MIB = 1024 * 1024
UNBOUNDED = {"max_events": 0, "max_bytes": 0, "max_events_per_informer": 0,
             "max_bytes_per_informer": 0}


def client(args: argparse.Namespace) -> int:
    """The measured process: prints ``{"ready": ...}``, then a sample per second until stdin
    closes, then ``{"result": ...}`` (and exits without stopping: its handler never returns)."""
    from clients import api_client

    from faro import Config, Controller, KubernetesClient

    blocked = threading.Event()  # never set
    config = Config.from_dict({
        "workers": 3, "resources": [{"gvr": "v1/configmaps", "namespace_names": ["bench"]}],
        "pending": UNBOUNDED if args.unbounded else {}})
    controller = Controller(KubernetesClient(api_client(args.kubeconfig)), config)
    controller.add_event_handler(lambda event: blocked.wait())
    controller.start()
    if not controller.wait_until_ready(60):
        print(orjson.dumps({"error": "not ready in 60 s"}).decode(), flush=True)
        return 2
    registry = controller.metrics.registry
    started = time.monotonic()
    samples: list[dict[str, Any]] = []
    done = threading.Event()

    def sample() -> dict[str, Any]:
        return {"t": round(time.monotonic() - started, 2), "rss": _status()[0],
                "pending": int(registry.get_sample_value("faro_pending_events") or 0),
                "bytes": int(registry.get_sample_value("faro_pending_bytes") or 0),
                "held": int(registry.get_sample_value("faro_pending_held_informers") or 0)}

    def sampler() -> None:
        while not done.wait(1.0):
            samples.append(sample())

    print(orjson.dumps({"ready": True, "rss": _status()[0]}).decode(), flush=True)
    thread = threading.Thread(target=sampler, daemon=True)
    thread.start()
    sys.stdin.read()  # until the harness closes it
    done.set()
    thread.join()
    samples.append(sample())
    print(orjson.dumps({"result": {"samples": samples, "config": config.to_dict()["pending"]}}
                       ).decode(), flush=True)
    os._exit(0)  # the handler never returns: leave without stopping


def _measure(rate: float, seconds: float, unbounded: bool) -> dict[str, Any]:
    with SimProcess(history_size=10_000) as sim:
        sim.command("reset")
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "client", "--kubeconfig",
             sim.kubeconfig, *(["--unbounded"] if unbounded else [])],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdin is not None and proc.stdout is not None
            ready = orjson.loads(proc.stdout.readline() or b"{}")
            if "ready" not in ready:
                raise BenchError(f"bench_pending client: {ready}")
            writer = sim.command(f"stream {rate:g} {seconds:g}", timeout=seconds + COMMAND_TIMEOUT)
            proc.stdin.close()
            result = orjson.loads(proc.stdout.readline() or b"{}")["result"]
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()  # our own child, by its handle
                proc.wait()
    return {"ready_rss": ready["rss"], "writer": writer, **result}


def _row(variant: str, value: Any, unit: str, **fields: Any) -> dict[str, Any]:
    return _soak_row(variant, value, unit, benchmark="pending", **fields)


def _growth(samples: list[dict[str, Any]]) -> float:
    """RSS growth while the bound held the informer (or over the second half of the samples,
    when it never did), MiB/s."""
    held = [s for s in samples if s["held"]]
    half = held if len(held) >= 2 else samples[len(samples) // 2:]
    if len(half) < 2 or half[-1]["t"] <= half[0]["t"]:
        return 0.0
    return (half[-1]["rss"] - half[0]["rss"]) / MIB / (half[-1]["t"] - half[0]["t"])


def run(rate: float = 2000.0, seconds: float = 30.0) -> list[dict[str, Any]]:
    """Both variants, one after the other; the rows of the table."""
    bounded = _measure(rate, seconds, unbounded=False)
    unbounded = _measure(rate, seconds, unbounded=True)
    rows: list[dict[str, Any]] = []
    for name, got in (("default bound", bounded), ("no bound", unbounded)):
        print(f"pending, {name}: t (s), RSS (MiB), pending events, held informers\n" + "\n".join(
            f"{s['t']:6.1f} {s['rss'] / MIB:8.1f} {s['pending']:8d} {s['held']:3d}"
            for s in got["samples"]), file=sys.stderr, flush=True)
    what = f"{rate:g} creates/s for {seconds:g} s, handler blocked"
    for name, got in (("default bound", bounded), ("no bound (all 0)", unbounded)):
        last = got["samples"][-1]
        grown = last["rss"] - got["ready_rss"]
        rows += [
            _row(f"{name}: RSS at the end ({what})", round(last["rss"] / MIB, 1), "MiB",
                 baseline="RSS when ready", baseline_value=round(got["ready_rss"] / MIB, 1),
                 writes=got["writer"]["events"], writer_rate=got["writer"]["rate"],
                 series=got["samples"]),
            _row(f"{name}: RSS growth " + ("while held" if name == "default bound"
                                           else "over the last half"),
                 round(_growth(got["samples"]), 2),
                 "MiB/s", target="0 with the bound" if name == "default bound" else "(reported)",
                 met=abs(_growth(got["samples"])) < 0.5 if name == "default bound" else None),
            _row(f"{name}: pending at the end ({_mib(last['bytes'])} of JSON)",
                 last["pending"], "events", held_informers=last["held"],
                 config=got["config"]),
            _row(f"{name}: RSS per pending event", round(grown / max(1, last["pending"])),
                 "bytes", baseline="JSON bytes per pending event",
                 baseline_value=round(last["bytes"] / max(1, last["pending"]))),
        ]
    return rows


def _mib(size: int) -> str:
    return f"{size / MIB:.1f} MiB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    client_parser = sub.add_parser("client", help="the measured process (run by the harness)")
    client_parser.add_argument("--kubeconfig", required=True)
    client_parser.add_argument("--unbounded", action="store_true")
    args = parser.parse_args()
    return client(args)


if __name__ == "__main__":
    sys.exit(main())
