"""Run faro's benchmarks and print a table (``make bench``).

Usage: python benchmarks/run.py [--only NAME ...] [--json PATH] [--events N] [--objects N]
                                [--repeat N] [--kopf-python PATH] [--real-objects N]
                                [--real-rate R] [--real-seconds S]
       python benchmarks/run.py --only soak [--soak-seconds S] [--soak-rate R]
                                [--soak-fault-every P]
       python benchmarks/run.py --only pending [--pending-rate R] [--pending-seconds S]

Every benchmark measures its own baseline in the same run and reports the ratio
to it, so results compare across machines; targets are reported, never asserted.
The soak (10 minutes by default) and the pending bound's memory (``bench_pending.py``,
about 70 s) run only when named: ``--only soak``, ``--only pending``.
``real_sync`` and ``real_latency`` run against a real kube-apiserver
(``$FARO_E2E_KUBECONFIG``, else the one ``make cluster-up`` started); without
one their rows say ``skipped: no real cluster (make cluster-up)``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_controller
import bench_informer
import bench_pending
import bench_real
import bench_sim
import bench_soak

BENCHMARKS: dict[str, Callable[[argparse.Namespace], list[dict[str, Any]]]] = {
    "sim_emit": lambda a: bench_sim.run(events=a.events, repeat=a.repeat),
    "informer_throughput": lambda a: bench_informer.run_throughput(events=a.events,
                                                                   repeat=a.repeat),
    # Both from the same client runs (made once when both are selected).
    "informer_memory": lambda a: bench_informer.run_memory(objects=a.objects, repeat=a.repeat),
    "informer_sync": lambda a: bench_informer.run_sync(objects=a.objects, repeat=a.repeat),
    "store_read": lambda a: bench_informer.run_store_read(objects=a.objects, repeat=a.repeat),
    "controller_throughput": lambda a: bench_controller.run_throughput(
        events=a.events, repeat=a.repeat, kopf=a.kopf_python),
    "controller_latency": lambda a: bench_controller.run_latency(repeat=a.repeat),
    # Against a real API server; each row says "skipped" when there is none.
    "real_sync": lambda a: bench_real.run_sync(objects=a.real_objects, repeat=a.repeat),
    "real_latency": lambda a: bench_real.run_latency(rate=a.real_rate, seconds=a.real_seconds,
                                                     repeat=a.repeat),
    "soak": lambda a: bench_soak.run(seconds=a.soak_seconds, rate=a.soak_rate,
                                     fault_every=a.soak_fault_every),
    "pending": lambda a: bench_pending.run(rate=a.pending_rate, seconds=a.pending_seconds),
}
OPT_IN = {"soak", "pending"}
"""Benchmarks that run only when named with ``--only`` (not in ``make bench``)."""


def _number(value: Any) -> str:
    return "n/a" if value is None else f"{value:,}"


def _table(rows: list[dict[str, Any]]) -> str:
    """Rows as an aligned text table."""
    headers = ("benchmark", "variant", "value", "unit", "baseline", "ratio", "target", "met")
    cells = [
        (r["benchmark"], r["variant"], _number(r["value"]), r["unit"],
         f"{_number(r['baseline_value'])} ({r['baseline']})", _number(r["ratio"]), r["target"],
         "-" if r["met"] is None else "yes" if r["met"] else "NO")
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]

    def line(values: tuple[str, ...]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    return "\n".join([line(headers), line(tuple("-" * w for w in widths)), *map(line, cells)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run faro's benchmarks.")
    parser.add_argument("--only", action="append", choices=sorted(BENCHMARKS),
                        help="run only this benchmark (repeatable)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--events", type=int, default=50_000,
                        help="objects per burst (default 50000)")
    parser.add_argument("--objects", type=int, default=100_000,
                        help="objects an informer caches in informer_memory and informer_sync "
                             "(default 100000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per variant; best is kept")
    parser.add_argument("--kopf-python", metavar="PATH",
                        help="controller_throughput: an interpreter with kopf, orjson and PyYAML "
                             f"for the kopf row (default: ${bench_controller.KOPF_PYTHON_ENV}, "
                             "else this one if it has kopf, else the row is not run)")
    parser.add_argument("--real-objects", type=int, default=bench_real.SYNC_OBJECTS,
                        help="real_sync: ConfigMaps created on the real server "
                             f"(default {bench_real.SYNC_OBJECTS})")
    parser.add_argument("--real-rate", type=float, default=bench_real.LATENCY_RATE,
                        help="real_latency: creates per second "
                             f"(default {bench_real.LATENCY_RATE:g})")
    parser.add_argument("--real-seconds", type=float, default=bench_real.LATENCY_SECONDS,
                        help="real_latency: seconds of writing per run "
                             f"(default {bench_real.LATENCY_SECONDS:g})")
    parser.add_argument("--soak-seconds", type=float, default=600.0,
                        help="soak (only with --only soak): how long the simulator writes "
                             "(default 600)")
    parser.add_argument("--soak-rate", type=float, default=200.0,
                        help="soak: writes per second (default 200)")
    parser.add_argument("--soak-fault-every", type=float, default=20.0,
                        help="soak: seconds between watch drops; every other one also "
                             "compacts (default 20)")
    parser.add_argument("--pending-rate", type=float, default=2000.0,
                        help="pending (only with --only pending): creates per second while "
                             "the handler is blocked (default 2000)")
    parser.add_argument("--pending-seconds", type=float, default=30.0,
                        help="pending: seconds of writing (default 30)")
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []
    started = time.time()
    for name in args.only or sorted(set(BENCHMARKS) - OPT_IN):
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows.extend(BENCHMARKS[name](args))
    print(_table(rows))
    if args.json:
        report = {
            "started": started,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "results": rows,
        }
        Path(args.json).write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
