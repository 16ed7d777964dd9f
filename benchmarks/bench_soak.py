"""Soak: faro's Controller against the simulator for a long time, with faults injected.

Not a test and not part of ``make bench``: ``python benchmarks/run.py --only soak
[--soak-seconds 600] [--soak-rate 200] [--soak-fault-every 20]``.

Three processes, as in the other controller benchmarks:

- The simulator (``sim_server.py``, command ``soak``, which runs :func:`write`
  there) writes ConfigMap changes in namespace ``bench`` at ``rate`` per second
  against a monotonic schedule (the k-th write is due at start + k/rate; a late
  one is written at once): a name drawn at random (fixed seed) from a pool of
  ``NAMES`` names is created when absent, else deleted (1 in 4) or updated, so
  the cluster holds a bounded number of objects (about 400 of 500). It records
  every write's (resourceVersion, name, type) to a file. Every ``fault_every``
  seconds (the first at half that) it injects a fault cycle:

  * a watch drop: abrupt (the TCP connections are cut, ``drop_watches(abrupt=True)``)
    when ``ABRUPT_SPACING`` seconds passed since the last abrupt one (the first
    cycle is abrupt), otherwise clean (the stream ends as at the server's
    timeout). An abrupt drop is a failure to the informer, which backs off
    before it reconnects, and its backoff only starts again from 0.8 s after two
    minutes without a failure (client-go's rule): abrupt drops every 20 s would
    push the reconnection delay to 30-60 s and leave the client disconnected most
    of the time.
  * on even cycles, also a compaction that the client cannot miss: before the
    drop the simulator holds new ``configmaps`` watches; once the client's new
    watch is parked it writes on for ``GAP`` seconds, forgets its change history
    (``compact()``) and releases the watch, which then fails with 410 Expired
    (an in-stream ERROR event): the informer must relist. On odd cycles the
    client resumes its watch from its last resourceVersion (no relist allowed).

- The client (``bench_soak.py client``, a fresh process) runs a real
  ``faro.Controller`` on ``v1/configmaps`` in ``bench`` with 3 workers and no
  outputs (``json_export`` off, no metrics server, no logging setup: the
  ``controller_throughput`` configuration, see ``clients._controller``). Its
  handler appends (name, resourceVersion, type) of every event to a deque that
  a sampler thread drains to a file every second (so the record costs the
  client no memory). Every ``sample_every`` seconds it prints a sample: its RSS
  (VmRSS), ``threading.active_count()`` and the OS thread count (``Threads`` in
  /proc/self/status), the events handled, the events pending, the informer's
  relists and watch restarts. It also records each relist's window from the
  informer's own log records: the resourceVersion its failed watch resumed
  from and the resourceVersion of the relist.

- The harness (:func:`run`) starts both, lets the writer run, then asks the
  client to wait until its informer has reached the last resourceVersion and
  nothing is pending, stops the controller, and compares what the simulator
  wrote with what the handler received (:func:`compare`).

A relist legitimately collapses the changes of its window into one event per
object (client-go's semantics, see docs/benchmarks.md "Soak"). For each object
the comparison replays the writes as the informer must see them: outside a
relist window each write is one event (ADDED, UPDATED, DELETED); inside one,
only the difference between the object's state before and after the window
(ADDED, UPDATED to the last state, or DELETED with ``final_state_unknown`` and
the last state the client knew; nothing if it was created and deleted inside
the window). ``lost``: expected events the handler never received. The other
writes of a window are ``coalesced by relist``, not lost.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import logging
import math
import os
import queue
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_informer import COMMAND_TIMEOUT, BenchError, SimProcess  # noqa: E402
from pacing import Schedule  # noqa: E402

NAMESPACE = "bench"
NAMES = 500  # the pool of ConfigMap names the writer draws from
DELETE_SHARE = 0.25  # a present object drawn is deleted with this probability, else updated
SEED = 20240601
GAP = 1.0  # seconds the writer goes on while the client's watch is parked, before compacting
ABRUPT_SPACING = 130.0  # seconds between abrupt drops (> the informer's 120 s backoff reset)
PARK_TIMEOUT = 60.0  # seconds the writer waits for the client's watch to be parked
READY_TIMEOUT = 120.0
SETTLE_TIMEOUT = 120.0  # seconds the client may take to catch up after the last write
HOLD_PATH = "configmaps"  # only the ConfigMap watches are parked
MIB = 1024 * 1024
_CODES = {"ADDED": "A", "UPDATED": "U", "DELETED": "D"}  # the handler's record; F: DELETED
# with final_state_unknown


# --------------------------------------------------------------- the simulator's side


def _configmap(name: str) -> dict[str, Any]:
    """A ConfigMap of about 1 KB as stored, like ``bench_sim.configmap``."""
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": NAMESPACE,
                         "labels": {"app": "soak"}},
            "data": {"payload": "x" * 560, "generation": "0"}}


class _Faults:
    """The fault cycles, advanced between writes (never blocking the writer)."""

    def __init__(self, cluster: Any, seconds: float, fault_every: float) -> None:
        self.cluster = cluster
        self.start = time.monotonic()  # set again by the writer when it starts
        self.every = fault_every
        self.next_at = fault_every / 2
        # A cycle needs a few seconds (reconnection after the informer's backoff, GAP).
        self.last_start = seconds - (GAP + 5.0)
        self.last_abrupt = -math.inf
        self.cycle = 0
        self.active: dict[str, Any] | None = None
        self.done: list[dict[str, Any]] = []

    def step(self, now: float) -> None:
        """Start a cycle when one is due, advance the one in progress."""
        active = self.active
        if active is not None:
            if active["phase"] == "parking":
                if self.cluster.held_watches >= 1:
                    active["parked_after_s"] = round(now - active["t"], 3)
                    active["phase"] = "gap"
                    active["gap_until"] = now + GAP
                elif now - active["t"] > PARK_TIMEOUT:
                    self._finish()
            elif now >= active["gap_until"]:
                self._finish()
            return
        if now < self.next_at or now > self.last_start:
            return
        abrupt = now - self.last_abrupt >= ABRUPT_SPACING
        compaction = self.cycle % 2 == 0
        record: dict[str, Any] = {
            "cycle": self.cycle, "t": round(now, 3), "drop": "abrupt" if abrupt else "clean",
            "compaction": compaction, "rv_drop": self.cluster.resource_version,
        }
        if compaction:
            self.cluster.hold_watches(path=HOLD_PATH)
        record["watches_dropped"] = self.cluster.drop_watches(abrupt=abrupt)
        if abrupt:
            self.last_abrupt = now
        self.cycle += 1
        while self.next_at <= now:
            self.next_at += self.every
        if compaction:
            record.update(phase="parking", parked_after_s=None)
            self.active = record
        else:
            self.done.append(record)

    def _finish(self) -> None:
        """Compact and release the parked watch (it then gets 410 Expired)."""
        active = self.active
        assert active is not None
        active["rv_compact"] = self.cluster.resource_version
        self.cluster.compact()
        active["released"] = self.cluster.release_watches()
        for transient in ("phase", "gap_until"):
            active.pop(transient, None)
        self.done.append(active)
        self.active = None

    def close(self) -> None:
        """Complete a cycle still in progress when the writes end."""
        if self.active is not None:
            if self.active["phase"] == "parking" and \
                    self.cluster.wait_for_held_watches(1, PARK_TIMEOUT):
                self.active["parked_after_s"] = round(
                    time.monotonic() - self.start - self.active["t"], 3)
            self._finish()


def write(cluster: Any, rate: float, seconds: float, fault_every: float, log_path: str,
          names: int = NAMES) -> dict[str, Any]:
    """The soak's writer, run by ``sim_server.py``'s ``soak`` command (see the module doc).

    Writes every change's ``[resourceVersion, name, type]`` (type ``A``, ``M``
    or ``D``) to ``log_path`` as JSON; returns a summary with the fault cycles.
    """
    rng = random.Random(SEED)
    pool = [f"soak-{i:04d}" for i in range(names)]
    current: dict[str, dict[str, Any]] = {}
    log: list[tuple[int, str, str]] = []
    counts = {"A": 0, "M": 0, "D": 0}
    faults = _Faults(cluster, seconds, fault_every)
    count = round(rate * seconds)
    monotonic = time.monotonic
    schedule = Schedule(count, rate)
    start = faults.start = schedule.start
    for _ in schedule:
        faults.step(monotonic() - start)
        name = pool[rng.randrange(names)]
        obj = current.get(name)
        if obj is None:
            stored = cluster.create(_configmap(name))
            kind = "A"
        elif rng.random() < DELETE_SHARE:
            stored = cluster.delete("v1", "ConfigMap", name, NAMESPACE)
            kind = "D"
        else:
            obj["data"]["generation"] = str(int(obj["data"]["generation"]) + 1)
            stored = cluster.update(obj)
            kind = "M"
        if kind == "D":
            del current[name]
        else:
            current[name] = stored
        counts[kind] += 1
        log.append((int(stored["metadata"]["resourceVersion"]), name, kind))
    elapsed = monotonic() - start
    faults.close()
    Path(log_path).write_bytes(orjson.dumps(log))
    return {"writes": len(log), "by_type": counts, "objects": len(current),
            "rate": round((count - 1) / elapsed, 1) if count > 1 and elapsed > 0 else 0.0,
            **schedule.lateness(), "seconds": round(elapsed, 3),
            "final_rv": cluster.resource_version, "faults": faults.done}


# ------------------------------------------------------------------- the client's side


def _status() -> tuple[int, int]:
    """(VmRSS in bytes, Threads) from /proc/self/status."""
    rss = threads = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
        elif line.startswith("Threads:"):
            threads = int(line.split()[1])
    return rss, threads


class _RelistLog(logging.Handler):
    """Each relist's window, from the reflector's own INFO records.

    ``watch from resourceVersion S: ...; relisting`` (a watch that got 410)
    gives where the informer's knowledge ended; ``relisted (REASON): N objects
    at resourceVersion L`` that the relist knows everything up to L.
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.windows: list[dict[str, Any]] = []
        self.warnings: list[str] = []
        self.warning_count = 0
        self._start: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message, args = str(record.msg), record.args
            if record.levelno >= logging.WARNING:
                self.warning_count += 1
                if len(self.warnings) < 20:
                    self.warnings.append(record.getMessage()[:300])
            if not isinstance(args, tuple):
                return
            if message.startswith("informer %s: watch from resourceVersion %s") and \
                    "relisting" in message:
                self._start[str(args[0])] = int(str(args[1]))
            elif message.startswith("informer %s: relisted (%s)"):
                name = str(args[0])
                self.windows.append({"informer": name, "reason": str(args[1]),
                                     "objects": int(str(args[2])),
                                     "from": self._start.pop(name, None),
                                     "to": int(str(args[3])), "at": time.time()})
        except Exception:  # a benchmark's log handler must never break the informer
            self.handleError(record)


class _Recorder:
    """The handler's record: a deque drained to a file by the sampler thread."""

    def __init__(self, path: str) -> None:
        self.pending: collections.deque[tuple[str, str, str]] = collections.deque()
        self.file = open(path, "w")  # noqa: SIM115 (closed by close())
        self.drained = 0

    def handle(self, event: Any) -> None:
        metadata = event.object["metadata"]
        code = "F" if event.final_state_unknown else _CODES[str(event.event_type)]
        self.pending.append((metadata["name"], metadata["resourceVersion"], code))

    def drain(self) -> None:
        pending, lines = self.pending, []
        while pending:
            name, rv, code = pending.popleft()
            lines.append(f"{name} {rv} {code}\n")
        if lines:
            self.file.write("".join(lines))
            self.file.flush()
            self.drained += len(lines)

    @property
    def handled(self) -> int:
        return self.drained + len(self.pending)

    def close(self) -> None:
        self.drain()
        self.file.close()


def _informer(controller: Any) -> Any:
    informers = list(controller.informers().values())
    if len(informers) != 1:
        raise RuntimeError(f"expected one informer, got {len(informers)}")
    return informers[0]


def _emit(message: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps(message).decode() + "\n")
    sys.stdout.flush()


def client(args: argparse.Namespace) -> int:
    """The measured process: a Controller, its sampler, and the ``finish RV`` command."""
    from clients import _controller

    relists = _RelistLog()
    reflector_logger = logging.getLogger("faro")
    reflector_logger.setLevel(logging.INFO)
    reflector_logger.addHandler(relists)
    recorder = _Recorder(args.events_file)
    controller = _controller(args, recorder.handle)
    if not controller.wait_until_ready(READY_TIMEOUT):
        _emit({"error": f"controller not ready within {READY_TIMEOUT:.0f} s"})
        return 2
    informer = _informer(controller)
    started = time.monotonic()
    stop_sampling = threading.Event()

    def sample() -> dict[str, Any]:
        rss, threads = _status()
        health = informer.health()
        return {"t": round(time.monotonic() - started, 3), "rss": rss,
                "threads": threading.active_count(), "os_threads": threads,
                "handled": recorder.handled, "pending": controller.pending_events(),
                "relists": sum(health.relists.values()),
                "watch_restarts": sum(health.watch_restarts.values())}

    def sampler() -> None:
        next_sample = 0.0
        while True:
            recorder.drain()
            now = time.monotonic() - started
            if now >= next_sample:
                _emit({"sample": sample()})
                next_sample += args.sample_every
            if stop_sampling.wait(min(1.0, max(0.0, next_sample - now))):
                return

    thread = threading.Thread(target=sampler, name="soak-sampler", daemon=True)
    _emit({"ready": True, "rss": _status()[0]})
    thread.start()
    for line in sys.stdin:
        words = line.split()
        if words[:1] != ["finish"]:
            continue
        target = int(words[1])
        deadline = time.monotonic() + SETTLE_TIMEOUT
        caught_up = False
        while time.monotonic() < deadline:
            rv = informer.health().last_sync_resource_version
            if rv is not None and int(rv) >= target and controller.pending_events() == 0:
                caught_up = True
                break
            time.sleep(0.05)
        time.sleep(0.2)  # the last handler call returns and is recorded
        last = sample()  # while the sampler thread still runs, as in every other sample
        stop_sampling.set()
        thread.join()
        health = informer.health()
        stop_started = time.monotonic()
        stopped = controller.stop(timeout=30)
        stop_seconds = time.monotonic() - stop_started
        time.sleep(0.5)
        recorder.close()
        _emit({"result": {
            "caught_up": caught_up, "last": last, "stopped": stopped,
            "stop_seconds": round(stop_seconds, 3),
            "threads_after_stop": threading.active_count(),
            "os_threads_after_stop": _status()[1],
            "handled": recorder.drained, "relists": health.relists,
            "watch_restarts": health.watch_restarts, "informer_events": health.events,
            "informer": health.name, "windows": relists.windows,
            "warnings_logged": relists.warning_count, "warnings": relists.warnings,
        }})
        break
    os._exit(0)  # informer threads may still sit in a read: leave without joining them


# -------------------------------------------------------------------- the comparison


def _watch_event(code: str, state: int | None, rv: int) -> tuple[str, int]:
    """The handler event a watch delivers for one write, given the informer's state."""
    if code == "D":
        return ("D", rv)
    return ("A" if state is None else "U", rv)


def compare(writes: Iterable[tuple[int, str, str]],
            received: dict[str, list[tuple[str, int]]],
            windows: list[tuple[int, int]]) -> dict[str, Any]:
    """What the handler must have received, against what it did (see the module doc).

    ``writes``: the simulator's ``(rv, name, A|M|D)``; ``received``: per name the
    handler's ``(A|U|D|F, rv)`` in the order received (``F``: DELETED with
    final_state_unknown); ``windows``: each relist's ``(from, to]`` resourceVersions.
    """
    by_name: dict[str, list[tuple[int, str]]] = collections.defaultdict(list)
    for rv, name, code in writes:
        by_name[name].append((rv, code))
    bounds = [*sorted(windows, key=lambda w: w[1]), (math.inf, math.inf)]
    lost = unexpected = out_of_order = coalesced = via_relist = expected_total = 0
    examples: list[dict[str, Any]] = []
    for name in sorted(set(by_name) | set(received)):
        history = sorted(by_name.get(name, []))
        expected: list[tuple[str, int]] = []
        state: int | None = None
        i = 0
        for start, end in bounds:
            while i < len(history) and history[i][0] <= start:
                rv, code = history[i]
                expected.append(_watch_event(code, state, rv))
                state = None if code == "D" else rv
                i += 1
            before, first = state, i
            while i < len(history) and history[i][0] <= end:
                rv, code = history[i]
                state = None if code == "D" else rv
                i += 1
            inside = i - first
            if not inside:
                continue
            if before is None and state is None:
                coalesced += inside  # created and deleted within the window
                continue
            if before is None:
                expected.append(("A", state))  # type: ignore[arg-type]
            elif state is None:
                expected.append(("F", before))
            else:
                expected.append(("U", state))
            via_relist += 1
            coalesced += inside - 1
        got = [(code, int(rv)) for code, rv in received.get(name, [])]
        expected_total += len(expected)
        want, have = collections.Counter(expected), collections.Counter(got)
        missing, extra = want - have, have - want
        lost += sum(missing.values())
        unexpected += sum(extra.values())
        if not missing and not extra and got != expected:
            out_of_order += 1
        if (missing or extra) and len(examples) < 10:
            examples.append({"name": name, "missing": sorted(missing.elements())[:5],
                             "unexpected": sorted(extra.elements())[:5]})
    return {"expected": expected_total, "lost": lost, "unexpected": unexpected,
            "out_of_order_objects": out_of_order, "coalesced_by_relist": coalesced,
            "delivered_by_relist": via_relist, "examples": examples}


# ----------------------------------------------------------------------- the harness


def _slope_per_hour(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, per hour."""
    if len(points) < 2:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return None
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / var * 3600.0


def _reader(proc: subprocess.Popen[str], messages: queue.Queue[dict[str, Any]]) -> None:
    """Forward the client's JSON lines; print samples as they come (progress)."""
    assert proc.stdout is not None
    for line in proc.stdout:
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if "sample" in message:
            s = message["sample"]
            print(f"  soak t={s['t']:7.1f} s  rss={s['rss'] / MIB:7.1f} MiB  "
                  f"threads={s['threads']}/{s['os_threads']}  handled={s['handled']:,}  "
                  f"relists={s['relists']}", file=sys.stderr, flush=True)
        messages.put(message)
    messages.put({"eof": True})


def _next(messages: queue.Queue[dict[str, Any]], key: str, timeout: float,
          samples: list[dict[str, Any]], stderr_path: Path) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            message = messages.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            raise BenchError(f"soak client: no {key} within {timeout:.0f} s") from None
        if "sample" in message:
            samples.append(message["sample"])
        elif key in message:
            return message
        elif "error" in message or "eof" in message:
            tail = stderr_path.read_text(errors="replace")[-1500:]
            raise BenchError(f"soak client: {message.get('error', 'exited')}: {tail}")
        if time.monotonic() > deadline:
            raise BenchError(f"soak client: no {key} within {timeout:.0f} s")


def _read_received(path: Path) -> dict[str, list[tuple[str, int]]]:
    received: dict[str, list[tuple[str, int]]] = collections.defaultdict(list)
    with path.open() as lines:
        for line in lines:
            name, rv, code = line.split()
            received[name].append((code, int(rv)))
    return received


def _windows(result: dict[str, Any], faults: list[dict[str, Any]]) -> tuple[
        list[tuple[int, int]], int]:
    """The relist windows; a window without a logged start takes the fault's drop rv.

    That start is an upper bound of where the informer's knowledge ended, so a
    write the informer missed between the two still counts as lost (never hidden).
    """
    windows, unknown = [], 0
    drops = sorted(f["rv_drop"] for f in faults)
    for window in result["windows"]:
        if window["informer"] != result["informer"]:
            continue
        start = window["from"]
        if start is None:
            unknown += 1
            earlier = [rv for rv in drops if rv <= window["to"]]
            start = earlier[-1] if earlier else window["to"]
        windows.append((int(start), int(window["to"])))
    return windows, unknown


def _series_table(samples: list[dict[str, Any]]) -> str:
    lines = [f"{'t (s)':>8}  {'RSS (MiB)':>9}  {'threads':>7}  {'OS threads':>10}  "
             f"{'events':>9}  {'pending':>7}  {'relists':>7}"]
    for s in samples:
        lines.append(f"{s['t']:8.1f}  {s['rss'] / MIB:9.2f}  {s['threads']:7d}  "
                     f"{s['os_threads']:10d}  {s['handled']:9,d}  {s['pending']:7d}  "
                     f"{s['relists']:7d}")
    return "\n".join(lines)


def _row(variant: str, value: Any, unit: str, *, baseline: str = "-",
         baseline_value: Any = None, target: str = "(reported)", met: bool | None = None,
         benchmark: str = "soak", **extra: Any) -> dict[str, Any]:
    """One row of the table (``bench_pending`` makes its rows with it too)."""
    ratio = None
    if isinstance(value, int | float) and isinstance(baseline_value, int | float) \
            and baseline_value:
        ratio = round(value / baseline_value, 3)
    return {"benchmark": benchmark, "variant": variant, "value": value, "unit": unit,
            "baseline": baseline, "baseline_value": baseline_value, "ratio": ratio,
            "target": target, "met": met, **extra}


def run(seconds: float = 600.0, rate: float = 200.0,
        fault_every: float = 20.0) -> list[dict[str, Any]]:
    """Run the soak once and report its rows (see the module doc)."""
    sample_every = 10.0 if seconds >= 120 else max(1.0, round(seconds / 10))
    warm_up = min(60.0, seconds / 5)
    history = round(rate * fault_every * 3) + 10_000
    with tempfile.TemporaryDirectory(prefix="faro-soak-") as tmp, \
            SimProcess(history_size=history) as sim:
        workdir = Path(tmp)
        events_file, log_file = workdir / "received.txt", workdir / "written.json"
        stderr_path = workdir / "client.stderr"
        sim.command("reset")
        with stderr_path.open("w") as stderr:
            proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "client",
                 "--kubeconfig", sim.kubeconfig, "--events-file", str(events_file),
                 "--sample-every", str(sample_every)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True)
        messages: queue.Queue[dict[str, Any]] = queue.Queue()
        samples: list[dict[str, Any]] = []
        threading.Thread(target=_reader, args=(proc, messages), daemon=True).start()
        try:
            ready = _next(messages, "ready", READY_TIMEOUT, samples, stderr_path)
            writer = sim.command(f"soak {rate:g} {seconds:g} {fault_every:g} {NAMES} "
                                 f"{log_file}", timeout=seconds + COMMAND_TIMEOUT)
            assert proc.stdin is not None
            proc.stdin.write(f"finish {writer['final_rv']}\n")
            proc.stdin.flush()
            result = _next(messages, "result", SETTLE_TIMEOUT + 60, samples,
                           stderr_path)["result"]
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()  # our own child, by its handle
                proc.wait()
        writes = [tuple(w) for w in orjson.loads(log_file.read_bytes())]
        received = _read_received(events_file)
    faults = writer["faults"]
    windows, unknown_starts = _windows(result, faults)
    check = compare(writes, received, windows)
    samples.append(result["last"])
    print("soak time series (client process):\n" + _series_table(samples) + "\n", flush=True)
    return _rows(seconds, rate, fault_every, warm_up, ready, samples, writer, result, check,
                 windows, unknown_starts)


def _rows(seconds: float, rate: float, fault_every: float, warm_up: float,
          ready: dict[str, Any], samples: list[dict[str, Any]], writer: dict[str, Any],
          result: dict[str, Any], check: dict[str, Any], windows: list[tuple[int, int]],
          unknown_starts: int) -> list[dict[str, Any]]:
    faults = writer["faults"]
    first = samples[0]
    steady = [s for s in samples if s["t"] >= warm_up] or samples[-1:]
    last = samples[-1]
    rss_slope = _slope_per_hour([(s["t"], s["rss"] / MIB) for s in steady])
    thread_slope = _slope_per_hour([(s["t"], float(s["os_threads"])) for s in steady])
    threads = [s["os_threads"] for s in steady]
    compactions = sum(1 for f in faults if f["compaction"])
    abrupt = sum(1 for f in faults if f["drop"] == "abrupt")
    relists = sum(result["relists"].values())
    handled = result["handled"]
    what = (f"{seconds:g} s at {rate:g} writes/s over {NAMES} names, a fault every "
            f"{fault_every:g} s")
    series = [{k: s[k] for k in ("t", "rss", "threads", "os_threads", "handled", "pending",
                                 "relists", "watch_restarts")} for s in samples]
    bad = check["unexpected"] + check["out_of_order_objects"]
    return [
        _row(f"RSS after the {warm_up:g} s warm-up ({what})", round(steady[0]["rss"] / MIB, 2),
             "MiB", baseline="RSS before the first write",
             baseline_value=round(first["rss"] / MIB, 2)),
        _row("RSS at the end", round(last["rss"] / MIB, 2), "MiB",
             baseline="RSS after the warm-up", baseline_value=round(steady[0]["rss"] / MIB, 2),
             rss_max=round(max(s["rss"] for s in steady) / MIB, 2)),
        _row(f"RSS slope (least squares over {len(steady)} samples after the warm-up)",
             None if rss_slope is None else round(rss_slope, 2), "MiB/h", series=series,
             sample_every=series[1]["t"] - series[0]["t"] if len(series) > 1 else None),
        _row(f"OS threads, max after the warm-up (min {min(threads)})", max(threads),
             "threads", baseline="before the first write", baseline_value=first["os_threads"],
             target="no growth", met=max(threads) <= first["os_threads"],
             threading_active_count=[min(s["threads"] for s in steady),
                                     max(s["threads"] for s in steady)],
             after_stop=result["os_threads_after_stop"]),
        _row("OS threads slope after the warm-up",
             None if thread_slope is None else round(thread_slope, 2), "threads/h"),
        _row("events written by the simulator", writer["writes"], "events",
             baseline=f"requested: {rate:g}/s x {seconds:g} s",
             baseline_value=round(rate * seconds), by_type=writer["by_type"],
             writer_rate=writer["rate"], writer_max_late_ms=writer["max_late_ms"],
             writer_late_writes=writer["late_writes"], objects_at_end=writer["objects"]),
        _row("handler calls", handled, "events", baseline="expected (writes less coalesced)",
             baseline_value=check["expected"], caught_up=result["caught_up"],
             delivered_by_relist=check["delivered_by_relist"]),
        _row("events lost", check["lost"], "events", target="0", met=check["lost"] == 0,
             examples=check["examples"]),
        _row("unexpected handler calls + objects out of order", bad, "events",
             target="0", met=bad == 0, unexpected=check["unexpected"],
             out_of_order_objects=check["out_of_order_objects"]),
        _row("coalesced by relist (writes a relist legitimately skipped)",
             check["coalesced_by_relist"], "events"),
        _row(f"watch drops injected ({abrupt} abrupt, {len(faults) - abrupt} clean)",
             len(faults), "drops", faults=faults),
        _row("compactions injected (each forces a 410 and a relist)", compactions,
             "compactions"),
        _row(f"relists observed (informer health: {result['relists']})", relists, "relists",
             baseline="compactions injected", baseline_value=compactions,
             target="= compactions", met=relists == compactions,
             watch_restarts=result["watch_restarts"], windows=[list(w) for w in windows],
             windows_without_logged_start=unknown_starts,
             warnings_logged=result["warnings_logged"], warnings=result["warnings"],
             client_rss_at_ready=ready["rss"], stop_seconds=result["stop_seconds"],
             stopped_in_time=result["stopped"]),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    client_parser = sub.add_parser("client", help="the measured process (run by the harness)")
    client_parser.add_argument("--kubeconfig", required=True)
    client_parser.add_argument("--namespace", default=NAMESPACE)
    client_parser.add_argument("--events-file", required=True)
    client_parser.add_argument("--sample-every", type=float, default=10.0)
    run_parser = sub.add_parser("run", help="run the soak and print its rows as JSON")
    run_parser.add_argument("--seconds", type=float, default=600.0)
    run_parser.add_argument("--rate", type=float, default=200.0)
    run_parser.add_argument("--fault-every", type=float, default=20.0)
    args = parser.parse_args()
    if args.command == "client":
        return client(args)
    rows = run(args.seconds, args.rate, args.fault_every)
    with contextlib.suppress(BrokenPipeError):
        sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
