"""Controller benchmarks: end-to-end event throughput and latency through faro's Controller.

Same machinery as ``bench_informer.py``: the simulated API server runs in
``sim_server.py`` (its own process, driven over stdin/stdout) and every
measured client run is a fresh ``clients.py`` process.

- ``controller_throughput``: the namespace is empty, the simulator holds
  watches, the client starts (its LIST is empty, its WATCH is parked), the
  simulator creates ``events`` ~1 KB ConfigMaps in-process and releases the
  watch. Rate = events / (the client's ``time.time()`` at its last counted
  event - the simulator's ``time.time()`` just before the release): the whole
  way from the server through the client (for ``faro-controller``: informer,
  per-object buffer, work queue, 3 workers, a no-op handler that counts;
  ``faro-run`` adds what ``faro run`` does: the JSON export, metrics and an
  event log line per event to a file). Same machine, same clock. Baseline:
  ``reader`` (urllib3 + orjson). The official client's informer and ``Watch``
  and, when an interpreter with kopf is given, kopf are reference rows.
- ``controller_latency``: the client watches the empty namespace; the
  simulator then creates ConfigMaps at a steady ``rate`` per second for
  ``seconds`` seconds (paced against a monotonic schedule), each carrying its
  write time (``time.time()`` in the simulator just before the create); the
  client records ``time.time()`` minus that at its handler call. p50 and p99
  over every event of every run of a variant (runs pooled; the JSON also has
  each run's and the maximum). The simulator's own garbage collector is off
  while it writes (see ``sim_server.py``), so its pauses are not measured;
  the client's are. Baseline:
  ``reader`` (write to decoded line); ``faro`` (the informer alone, write to
  ``on_add``) shows what the delivery adds.

Variants run interleaved, ``repeat`` times each.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from typing import Any

from bench_informer import (
    CLIENTS,
    COMMAND_TIMEOUT,
    HELD_TIMEOUT,
    BenchError,
    SimProcess,
    _finish_client,
    _kill,
)

THROUGHPUT_VARIANTS = ("reader", "faro-controller", "faro-run", "official-informer",
                       "official-watch", "kopf")
LATENCY_VARIANTS = ("reader", "faro", "faro-controller")
THROUGHPUT_BUDGET = 3.0  # seconds of counting after the first event, for every variant
THROUGHPUT_TARGET = 0.5  # faro-controller events/s >= 0.5 x reader
LATENCY_RATE = 2000.0  # events/s the simulator writes in controller_latency
LATENCY_P99_TARGET_MS = 1.0  # faro-controller's p99 at LATENCY_RATE (issue 16)
LATENCY_SECONDS = 5.0
KOPF_PYTHON_ENV = "BENCH_KOPF_PYTHON"
"""An interpreter that has kopf, orjson and PyYAML (kopf is never a dependency of faro)."""


def kopf_python(given: str | None = None) -> tuple[str | None, str]:
    """The interpreter to run the kopf client with, or None and why not."""
    given = given or os.environ.get(KOPF_PYTHON_ENV)
    if given:
        return given, ""
    if importlib.util.find_spec("kopf") is not None:
        return sys.executable, ""
    return None, (f"kopf is not installed here (give an interpreter that has kopf, orjson "
                  f"and PyYAML: --kopf-python PATH or {KOPF_PYTHON_ENV})")


def _start(python: str, variant: str, mode: str, kubeconfig: str, count: int,
           budget: float | None = None) -> subprocess.Popen[str]:
    command = [python, str(CLIENTS), variant, mode, "--kubeconfig", kubeconfig,
               "--count", str(count)]
    if budget is not None:
        command += ["--budget", str(budget)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_held(sim: SimProcess, proc: subprocess.Popen[str], variant: str) -> bool:
    """Wait until the client's watch is parked; False if the client exited first."""
    deadline = time.monotonic() + HELD_TIMEOUT
    while not sim.command("wait-held 1 0.2")["ok"]:
        if proc.poll() is not None:
            return False
        if time.monotonic() > deadline:
            raise BenchError(f"{variant}: no watch was parked within {HELD_TIMEOUT:.0f} s")
    return True


# -------------------------------------------------------------------------- throughput


def _throughput_once(sim: SimProcess, variant: str, events: int,
                     python: str) -> dict[str, Any]:
    sim.command("reset")
    sim.command("hold")
    proc = _start(python, variant, "throughput", sim.kubeconfig, events, THROUGHPUT_BUDGET)
    try:
        if not _wait_held(sim, proc, variant):
            return _finish_client(proc, 10, sim)
        sim.command(f"burst {events}")
        released = sim.command("release")["at"]
        result = _finish_client(proc, 120 + THROUGHPUT_BUDGET, sim)
    finally:
        _kill(proc)
    if "error" in result:
        return result
    if not result["capped"] and result["events"] < events:
        raise BenchError(f"{variant}: {result['events']} of {events} events")
    result["rate"] = result["events"] / (result["last_wall"] - released)
    result["first_after_release"] = result["first_wall"] - released
    return result


def run_throughput(events: int = 50_000, repeat: int = 3,
                   kopf: str | None = None) -> list[dict[str, Any]]:
    """End-to-end events/s of every variant for a burst of ``events`` (best of ``repeat``)."""
    kopf_interpreter, kopf_missing = kopf_python(kopf)
    samples: dict[str, list[dict[str, Any]]] = {v: [] for v in THROUGHPUT_VARIANTS}
    with SimProcess(history_size=events + 1000) as sim:
        for _ in range(repeat):
            for variant in THROUGHPUT_VARIANTS:
                if variant == "kopf":
                    if kopf_interpreter is None:
                        continue
                    try:
                        result = _throughput_once(sim, variant, events, kopf_interpreter)
                    except BenchError as error:  # a reference row: report, go on
                        result = {"error": str(error)}
                else:
                    result = _throughput_once(sim, variant, events, sys.executable)
                samples[variant].append(result)
    best: dict[str, dict[str, Any] | None] = {}
    for variant, runs in samples.items():
        good = [r for r in runs if "error" not in r]
        best[variant] = max(good, key=lambda r: float(r["rate"])) if good else None
    baseline = best["reader"]
    if baseline is None:
        raise BenchError(f"reader failed: {samples['reader'][0].get('error')}")
    base_rate = float(baseline["rate"])
    rows = []
    for variant in THROUGHPUT_VARIANTS[1:]:
        chosen = best[variant]
        target = variant == "faro-controller"
        row: dict[str, Any] = {
            "benchmark": "controller_throughput",
            "variant": f"{variant} ({events} x ~1 KB ConfigMaps, release to last handler call)",
            "unit": "events/s",
            "baseline": "reader: urllib3 + orjson",
            "baseline_value": round(base_rate),
            "target": f">= {THROUGHPUT_TARGET}x reader" if target else "(reference)",
            "samples": [round(r["rate"]) if "error" not in r else None
                        for r in samples[variant]],
            "baseline_samples": [round(r["rate"]) for r in samples["reader"]],
        }
        if chosen is None:
            if variant == "kopf" and kopf_interpreter is None:
                reason = kopf_missing
            else:
                reason = samples[variant][0]["error"] if samples[variant] else "no run"
            row.update(value=None, ratio=None, met=False if target else None, error=reason)
            row["variant"] = f"{variant} not run: {reason}"
        else:
            rate = float(chosen["rate"])
            ratio = rate / base_rate
            row.update(value=round(rate), ratio=round(ratio, 3),
                       met=ratio >= THROUGHPUT_TARGET if target else None,
                       rate_from_first_event=round(chosen["events"] / chosen["seconds"]))
            if chosen["capped"]:
                row["variant"] += (f" [capped: first {THROUGHPUT_BUDGET:g} s, "
                                   f"{chosen['events']} events]")
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- latency


def _latency_once(sim: SimProcess, variant: str, rate: float,
                  seconds: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """One client run: (its result, the simulator's writer report)."""
    count = round(rate * seconds)
    sim.command("reset")
    sim.command("hold")
    proc = _start(sys.executable, variant, "latency", sim.kubeconfig, count)
    try:
        if not _wait_held(sim, proc, variant):
            return _finish_client(proc, 10, sim), {}
        sim.command("release")
        time.sleep(0.5)  # the client is in its read loop before the first write
        writer = sim.command(f"stream {rate:g} {seconds:g}", timeout=seconds + COMMAND_TIMEOUT)
        result = _finish_client(proc, 60, sim)
    finally:
        _kill(proc)
    if "error" not in result and result["events"] < count:
        raise BenchError(f"{variant}: {result['events']} of {count} events")
    return result, writer


def _percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted values."""
    index = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


def run_latency(rate: float = LATENCY_RATE, seconds: float = LATENCY_SECONDS,
                repeat: int = 3) -> list[dict[str, Any]]:
    """p50 and p99 from the server's write to the handler call at ``rate`` events/s."""
    samples: dict[str, list[float]] = {v: [] for v in LATENCY_VARIANTS}
    per_run: dict[str, list[dict[str, float] | None]] = {v: [] for v in LATENCY_VARIANTS}
    errors: dict[str, str] = {}
    writers: list[dict[str, Any]] = []
    with SimProcess(history_size=round(rate * seconds) + 1000) as sim:
        for _ in range(repeat):
            for variant in LATENCY_VARIANTS:
                result, writer = _latency_once(sim, variant, rate, seconds)
                if "error" in result:
                    errors.setdefault(variant, result["error"])
                    per_run[variant].append(None)
                    continue
                writers.append(writer)
                values = sorted(result["latencies_ms"])
                samples[variant].extend(values)
                per_run[variant].append({"p50": _percentile(values, 0.5),
                                         "p99": _percentile(values, 0.99)})
    if not samples["reader"]:
        raise BenchError(f"reader failed: {errors.get('reader')}")
    achieved = min(w["rate"] for w in writers)
    late = max(w["max_late_ms"] for w in writers)
    base = sorted(samples["reader"])
    rows = []
    for variant in LATENCY_VARIANTS[1:]:
        ordered = sorted(samples[variant])
        for name, fraction in (("p50", 0.5), ("p99", 0.99)):
            base_value = _percentile(base, fraction)
            row: dict[str, Any] = {
                "benchmark": "controller_latency",
                "variant": (f"{variant} {name} ({rate:,.0f} events/s x {seconds:g} s, "
                            f"writer >= {achieved:,.1f}/s)"),
                "unit": "ms",
                "baseline": f"reader {name}: write to decoded line",
                "baseline_value": round(base_value, 3),
                "target": (f"<= {LATENCY_P99_TARGET_MS:g} ms" if variant == "faro-controller"
                           and name == "p99" else "(reference)"),
                "met": None,
                "samples": [None if r is None else round(r[name], 3) for r in per_run[variant]],
                "baseline_samples": [None if r is None else round(r[name], 3)
                                     for r in per_run["reader"]],
                "events": len(ordered),
                "max_ms": round(ordered[-1], 3) if ordered else None,
                "baseline_max_ms": round(base[-1], 3),
                "writer_rates": [w["rate"] for w in writers],
                "writer_max_late_ms": late,
                "writer_late_writes": sum(w["late_writes"] for w in writers),
            }
            if ordered:
                value = _percentile(ordered, fraction)
                row.update(value=round(value, 3),
                           ratio=round(value / base_value, 3) if base_value > 0 else None)
                if row["target"] != "(reference)":
                    row["met"] = value <= LATENCY_P99_TARGET_MS
            else:
                row.update(value=None, ratio=None, error=errors.get(variant))
                row["variant"] += f" unavailable: {errors.get(variant)}"
            rows.append(row)
    return rows
