"""Informer benchmarks: event throughput, memory per cached object, initial sync time.

Every process is separate: the simulated API server runs in ``sim_server.py``
(driven over stdin/stdout), and each measured client run is a fresh
``clients.py`` process, so the clients' CPU time and RSS are their own.

- ``informer_throughput``: the namespace is empty, the simulator holds watches,
  the client starts (its LIST is empty, its WATCH is parked), the simulator
  creates ``events`` ~1 KB ConfigMaps in-process and then releases the watch:
  the client receives the whole burst back to back from the change history.
  Rate = events / (last event - first event), both timed inside the client.
  Baseline: ``reader`` (urllib3 + orjson, ``reader.py``'s decoding).
- ``informer_memory`` and ``informer_sync`` (the same client runs): the
  simulator holds ``objects`` ConfigMaps; the client measures its RSS after
  imports and construction, the time from ``start()`` to a full cache, and its
  RSS after that and ``gc.collect()``. Baseline: the official client's
  ``kubernetes.informer.SharedInformer``.

Every benchmark also runs ``client-go``: a client-go SharedInformer in Go
(``clientgo/main.go``, its own Go module), driven with the same arguments and
printing the same JSON line as the ``clients.py`` variants. It is built on
demand into ``clientgo/bin/`` (``go build``, ``CGO_ENABLED=0``), again only
when ``main.go``, ``go.mod`` or ``go.sum`` changed; without ``go`` on PATH (and
no up-to-date binary) its rows say so and the others still run. Every other
row carries client-go's figure from the same run in its JSON
(``client_go_value``, ``ratio_to_client_go``).

Variants run interleaved, ``repeat`` times each; the best run of each is kept.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
SIM_SERVER = HERE / "sim_server.py"
CLIENTS = HERE / "clients.py"

CLIENTGO = "client-go"  # the variant name of the Go client
CLIENTGO_DIR = HERE / "clientgo"  # its Go module
CLIENTGO_SOURCES = ("main.go", "go.mod", "go.sum")
CLIENTGO_BIN = CLIENTGO_DIR / "bin" / "clientgo-bench"  # gitignored
CLIENTGO_STAMP = CLIENTGO_BIN.with_name("clientgo-bench.sha256")  # hash of the sources built
CLIENTGO_BUILD_TIMEOUT = 1800.0  # a cold build downloads and compiles client-go

THROUGHPUT_VARIANTS = ("reader", "faro", CLIENTGO, "reader-cache", "plain-urllib3",
                       "official-informer", "official-watch")
CACHE_VARIANTS = ("official-informer", "faro", CLIENTGO)
THROUGHPUT_BUDGET = 3.0  # seconds of counting after the first event, for every variant
THROUGHPUT_TARGET = 0.8  # faro events/s >= 0.8 x reader
MEMORY_TARGET = 0.5  # faro bytes per object <= 0.5 x official informer
SYNC_TARGET = 0.5  # faro sync time <= 0.5 x official informer
HELD_TIMEOUT = 60.0  # seconds a client may take to list and open its watch
POLL = 0.5  # seconds between checks that a child waited on is still alive
START_TIMEOUT = 60.0  # seconds sim_server.py may take to start serving
SYNC_TIMEOUT = 300.0  # seconds a client may take to sync, and more for many objects:
SYNC_TIMEOUT_PER_OBJECT = 0.001  # (1,000 s for 1M)
COMMAND_TIMEOUT = 900.0  # seconds sim_server.py may take to answer a command (load 1M: ~1 min)


class BenchError(RuntimeError):
    """A benchmark process failed."""


def exit_reason(status: int) -> str:
    """A child's end in words, from its Popen.returncode."""
    if status >= 0:
        return f"exited with status {status}"
    name = signal.Signals(-status).name
    return f"was killed by {name}" + (" (out of memory?)" if name == "SIGKILL" else "")


def peak_rss(pid: int) -> int:
    """The largest RSS of a running process so far (VmHWM, bytes); 0 if unknown."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


class SimProcess:
    """``sim_server.py`` in a subprocess, driven one command at a time.

    Every wait on it has a deadline and notices within ``POLL`` seconds that it died
    (the OOM killer's SIGKILL, say): :class:`BenchError` names it, how it ended, and
    the largest RSS seen.
    """

    def __init__(self, history_size: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(SIM_SERVER), "--history-size", str(history_size)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        self.peak_rss = 0  # bytes: the largest VmHWM seen while waiting on it
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, name="sim-stdout", daemon=True).start()
        info = self._reply("start", START_TIMEOUT)
        self.url: str = info["url"]
        self.kubeconfig: str = info["kubeconfig"]

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put("")  # end of file

    def check(self, doing: str) -> None:
        """Raise BenchError if the simulator is gone (``doing``: what it was asked)."""
        if self.proc.poll() is not None:
            peak = f"; largest RSS seen {self.peak_rss / 2**30:.1f} GiB" if self.peak_rss else ""
            raise BenchError(f"sim_server.py (pid {self.proc.pid}) "
                             f"{exit_reason(self.proc.returncode)} {doing}{peak}")
        self.peak_rss = max(self.peak_rss, peak_rss(self.proc.pid))

    def _reply(self, what: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=POLL)
            except queue.Empty:
                self.check(f"during {what!r}")
                if time.monotonic() > deadline:
                    raise BenchError(f"sim_server.py: no answer to {what!r} within "
                                     f"{timeout:.0f} s") from None
                continue
            if not line:  # its stdout closed: it is ending
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=30)
                self.check(f"during {what!r}")
                raise BenchError(f"sim_server.py closed its stdout during {what!r}")
            reply: dict[str, Any] = orjson.loads(line)
            if "error" in reply:
                raise BenchError(f"sim_server.py: {reply['error']}")
            return reply

    def command(self, text: str, timeout: float = COMMAND_TIMEOUT) -> dict[str, Any]:
        """Send one command; its answer, or BenchError (died, no answer in ``timeout`` s)."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(text + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            self.check(f"before {text!r}")
            raise
        return self._reply(text, timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                assert self.proc.stdin is not None
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()  # this process's own child, by its handle
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> SimProcess:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _sources_hash() -> str:
    digest = hashlib.sha256()
    for name in CLIENTGO_SOURCES:
        digest.update(name.encode() + b"\0" + (CLIENTGO_DIR / name).read_bytes() + b"\0")
    return digest.hexdigest()


@functools.cache
def clientgo_binary() -> tuple[Path | None, str]:
    """The client-go benchmark client, built if its sources changed: (path, "") or (None, why).

    Prints one line on stderr when it builds, and when the client-go rows are skipped.
    """
    wanted = _sources_hash()
    if CLIENTGO_BIN.exists() and CLIENTGO_STAMP.exists() \
            and CLIENTGO_STAMP.read_text().strip() == wanted:
        return CLIENTGO_BIN, ""
    go = shutil.which("go")
    if go is None:
        why = "`go` is not on PATH (needed to build benchmarks/clientgo)"
        print(f"client-go rows skipped: {why}", file=sys.stderr, flush=True)
        return None, why
    print(f"building {CLIENTGO_BIN.relative_to(HERE.parent)} (go build; the first build "
          "downloads and compiles client-go, minutes) ...", file=sys.stderr, flush=True)
    CLIENTGO_BIN.parent.mkdir(exist_ok=True)
    partial = CLIENTGO_BIN.with_name(CLIENTGO_BIN.name + ".partial")
    env = {**os.environ, "CGO_ENABLED": "0"}
    try:
        build = subprocess.run([go, "build", "-trimpath", "-buildvcs=false", "-o", str(partial),
                                "."], cwd=CLIENTGO_DIR, env=env, capture_output=True, text=True,
                               timeout=CLIENTGO_BUILD_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:  # run() has killed its own child
        build = None
    if build is None or build.returncode != 0:
        output = "" if build is None else build.stderr.strip()
        last = output.splitlines()[-1][:200] if output else "no output"
        why = ("go build timed out" if build is None
               else f"go build failed (status {build.returncode}): {last}")
        print(f"client-go rows skipped: {why}", file=sys.stderr, flush=True)
        if output:
            print(output[-4000:], file=sys.stderr, flush=True)
        return None, why
    partial.replace(CLIENTGO_BIN)
    CLIENTGO_STAMP.write_text(wanted + "\n")
    return CLIENTGO_BIN, ""


def _unavailable(variant: str) -> dict[str, Any] | None:
    """The result of a run that cannot start (the client-go binary is missing), else None."""
    if variant == CLIENTGO:
        binary, why = clientgo_binary()
        if binary is None:
            return {"error": why}
    return None


def _start_client(variant: str, mode: str, kubeconfig: str, count: int,
                  budget: float | None = None,
                  timeout: float | None = None) -> subprocess.Popen[str]:
    if variant == CLIENTGO:  # same arguments, same JSON line (clientgo/main.go)
        binary, _ = clientgo_binary()
        command = [str(binary), mode]
    else:
        command = [sys.executable, str(CLIENTS), variant, mode]
    command += ["--kubeconfig", kubeconfig, "--count", str(count)]
    if budget is not None:
        command += ["--budget", str(budget)]
    if timeout is not None:
        command += ["--timeout", str(timeout)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _client_name(proc: subprocess.Popen[str]) -> str:
    """``VARIANT MODE`` of a client process."""
    args = [str(arg) for arg in proc.args]
    if Path(args[0]).name == CLIENTGO_BIN.name:
        return f"{CLIENTGO} {args[1]}"
    return " ".join(args[2:4])


def _finish_client(proc: subprocess.Popen[str], timeout: float,
                   sim: SimProcess | None = None) -> dict[str, Any]:
    """Wait for a client's JSON line; ``{"error": ...}`` results are returned, not raised.

    With ``sim``, the simulator is checked every ``POLL`` seconds meanwhile: its death
    is the BenchError (the client would only retry until its timeout).
    """
    name = _client_name(proc)
    deadline = time.monotonic() + timeout
    while True:
        try:
            out, err = proc.communicate(timeout=POLL)
            break
        except subprocess.TimeoutExpired:  # a retried communicate() loses no output
            if sim is not None:
                sim.check(f"while client {name} ran")
            if time.monotonic() > deadline:
                proc.kill()  # our own child, by its handle
                out, err = proc.communicate()
                raise BenchError(f"client {name} took over {timeout:.0f} s: "
                                 f"{err.strip()[-500:]}") from None
    lines = out.strip().splitlines()
    if not lines:
        if sim is not None:
            sim.check(f"while client {name} ran")
        raise BenchError(f"client {name} (pid {proc.pid}) {exit_reason(proc.returncode)} "
                         f"and gave no result: {err.strip()[-1000:]}")
    result: dict[str, Any] = orjson.loads(lines[-1])
    return result


def _kill(proc: subprocess.Popen[str]) -> None:
    """End a client that is still running (after a failure); our own child, by its handle."""
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


# -------------------------------------------------------------------------- throughput


def _throughput_once(sim: SimProcess, variant: str, events: int) -> dict[str, Any]:
    unavailable = _unavailable(variant)
    if unavailable is not None:
        return unavailable
    sim.command("reset")
    sim.command("hold")
    proc = _start_client(variant, "throughput", sim.kubeconfig, events, THROUGHPUT_BUDGET)
    try:
        # Poll the simulator's condition in short waits, so a client that fails
        # before it watches (faro not importable) is noticed at once.
        deadline = time.monotonic() + HELD_TIMEOUT
        while not sim.command("wait-held 1 0.2")["ok"]:
            if proc.poll() is not None:
                return _finish_client(proc, 10, sim)
            if time.monotonic() > deadline:
                raise BenchError(f"{variant}: no watch was parked within {HELD_TIMEOUT:.0f} s")
        sim.command(f"burst {events}")
        sim.command("release")
        result = _finish_client(proc, 120 + THROUGHPUT_BUDGET, sim)
    finally:
        _kill(proc)
    if "error" not in result and not result["capped"] and result["events"] < events:
        raise BenchError(f"{variant}: {result['events']} of {events} events")
    return result


def run_throughput(events: int = 50_000, repeat: int = 3) -> list[dict[str, Any]]:
    """Events/s of every variant for a burst of ``events`` ConfigMaps (best of ``repeat``)."""
    samples: dict[str, list[dict[str, Any]]] = {v: [] for v in THROUGHPUT_VARIANTS}
    with SimProcess(history_size=events + 1000) as sim:
        for _ in range(repeat):
            for variant in THROUGHPUT_VARIANTS:
                samples[variant].append(_throughput_once(sim, variant, events))
    best: dict[str, dict[str, Any] | None] = {}
    for variant, runs in samples.items():
        good = [r for r in runs if "error" not in r]
        best[variant] = max(good, key=_rate) if good else None
    baseline = best["reader"]
    if baseline is None:
        raise BenchError(f"reader failed: {samples['reader'][0].get('error')}")
    base_rate = _rate(baseline)
    clientgo = best[CLIENTGO]
    clientgo_rate = _rate(clientgo) if clientgo is not None else None
    rows = []
    for variant in THROUGHPUT_VARIANTS[1:]:
        result = best[variant]
        row: dict[str, Any] = {
            "benchmark": "informer_throughput",
            "variant": f"{variant} ({events} x ~1 KB ConfigMaps)",
            "unit": "events/s",
            "baseline": "reader: urllib3 + orjson",
            "baseline_value": round(base_rate),
            "target": f">= {THROUGHPUT_TARGET}x reader" if variant == "faro" else "(reference)",
            "samples": [round(_rate(r)) if "error" not in r else None
                        for r in samples[variant]],
            "baseline_samples": [round(_rate(r)) for r in samples["reader"]],
        }
        if result is None:
            row.update(value=None, ratio=None, met=False if variant == "faro" else None,
                       error=samples[variant][0]["error"])
            row["variant"] += f" unavailable: {samples[variant][0]['error']}"
        else:
            rate = _rate(result)
            ratio = rate / base_rate
            row.update(value=round(rate), ratio=round(ratio, 3),
                       met=ratio >= THROUGHPUT_TARGET if variant == "faro" else None)
            if variant != CLIENTGO:
                _compare_to_clientgo(row, rate, clientgo_rate)
            if result["capped"]:
                row["variant"] += (f" [capped: first {THROUGHPUT_BUDGET:g} s, "
                                   f"{result['events']} events]")
        rows.append(row)
    return rows


def _rate(result: dict[str, Any]) -> float:
    return float(result["events"]) / float(result["seconds"])


def _compare_to_clientgo(row: dict[str, Any], value: float, clientgo: float | None) -> None:
    """Add client-go's figure of the same benchmark and run to a row (JSON only)."""
    digits = 3 if row["unit"] == "s" else 0
    row["client_go_value"] = (None if clientgo is None
                              else round(clientgo, digits) if digits else round(clientgo))
    row["ratio_to_client_go"] = None if clientgo is None else round(value / clientgo, 3)


# ------------------------------------------------------------------- memory and sync


@functools.cache
def _cache_runs(objects: int, repeat: int) -> dict[str, list[dict[str, Any]]]:
    """Sync-mode client runs of every cache variant (made once for both benchmarks)."""
    samples: dict[str, list[dict[str, Any]]] = {v: [] for v in CACHE_VARIANTS}
    sync_timeout = max(SYNC_TIMEOUT, objects * SYNC_TIMEOUT_PER_OBJECT)
    with SimProcess(history_size=objects + 1000) as sim:
        sim.command("reset")
        sim.command(f"load {objects}")
        for _ in range(repeat):
            for variant in CACHE_VARIANTS:
                unavailable = _unavailable(variant)
                if unavailable is not None:
                    samples[variant].append(unavailable)
                    continue
                proc = _start_client(variant, "sync", sim.kubeconfig, objects,
                                     timeout=sync_timeout)
                try:
                    result = _finish_client(proc, sync_timeout + 60, sim)
                finally:
                    _kill(proc)
                if "error" not in result and result["objects"] != objects:
                    raise BenchError(f"{variant}: cache holds {result['objects']} of "
                                     f"{objects} objects")
                samples[variant].append(result)
    return samples


def _per_object(result: dict[str, Any], objects: int) -> float:
    return (float(result["rss_after"]) - float(result["rss_before"])) / objects


def _cache_rows(objects: int, repeat: int, benchmark: str) -> list[dict[str, Any]]:
    samples = _cache_runs(objects, repeat)
    if benchmark == "informer_memory":
        def measure(r: dict[str, Any]) -> float:
            return _per_object(r, objects)
        unit, target, digits = "bytes/object", MEMORY_TARGET, 0
        what = "RSS growth per cached object"
    else:
        def measure(r: dict[str, Any]) -> float:
            return float(r["sync_seconds"])
        unit, target, digits = "s", SYNC_TARGET, 3
        what = "start() to a full cache"
    def rounded(value: float) -> float:
        return round(value, digits) if digits else round(value)

    official = [measure(r) for r in samples["official-informer"] if "error" not in r]
    if not official:
        raise BenchError(f"official-informer failed: {samples['official-informer'][0]}")
    base = min(official)
    clientgo_values = [measure(r) for r in samples[CLIENTGO] if "error" not in r]
    clientgo = min(clientgo_values) if clientgo_values else None
    rows = []
    for variant in ("faro", CLIENTGO):
        runs = [r for r in samples[variant] if "error" not in r]
        is_faro = variant == "faro"
        row: dict[str, Any] = {
            "benchmark": benchmark,
            "variant": f"{variant} ({objects} x ~1 KB ConfigMaps, {what})",
            "unit": unit,
            "baseline": "official kubernetes.informer.SharedInformer",
            "baseline_value": rounded(base),
            "target": f"<= {target}x official" if is_faro else "(reference)",
            "baseline_samples": [rounded(v) for v in official],
        }
        if runs:
            values = [measure(r) for r in runs]
            value = min(values)
            row.update(value=rounded(value), ratio=round(value / base, 3),
                       met=value / base <= target if is_faro else None,
                       samples=[rounded(v) for v in values])
            if is_faro:
                _compare_to_clientgo(row, value, clientgo)
        else:
            error = samples[variant][0]["error"]
            row.update(value=None, ratio=None, met=False if is_faro else None, error=error)
            row["variant"] += f" unavailable: {error}"
        if benchmark == "informer_memory" and is_faro:
            row["runs"] = samples  # every run's rss_before, rss_after and sync_seconds
        rows.append(row)
    return rows


def run_memory(objects: int = 100_000, repeat: int = 3) -> list[dict[str, Any]]:
    """RSS per cached object, faro vs the official informer (best of ``repeat``)."""
    return _cache_rows(objects, repeat, "informer_memory")


def run_sync(objects: int = 100_000, repeat: int = 3) -> list[dict[str, Any]]:
    """Initial sync time, faro vs the official informer (best of ``repeat``)."""
    return _cache_rows(objects, repeat, "informer_sync")


def run_store_read(objects: int = 100_000, repeat: int = 3) -> list[dict[str, Any]]:
    """What a read of faro's store costs (it keeps JSON bytes), from the same runs as
    ``informer_memory``: µs per call against a plain dict's get in the same process."""
    runs = [r for r in _cache_runs(objects, repeat)["faro"] if "error" not in r]
    if not runs:
        raise BenchError(f"faro failed: {_cache_runs(objects, repeat)['faro'][0]}")
    rows = []
    for field, what in (("get_decoding_us", "store.get of an object not kept decoded"),
                        ("get_kept_us", "store.get of an object kept decoded"),
                        ("list_us_per_object", "store.list(), per object")):
        values = [float(r[field]) for r in runs]
        base = min(float(r["dict_get_us"]) for r in runs)
        value = min(values)
        rows.append({
            "benchmark": "store_read",
            "variant": f"faro {what} ({objects} objects)",
            "unit": "us",
            "baseline": "dict.get of the same keys",
            "baseline_value": round(base, 3),
            "value": round(value, 3),
            "ratio": round(value / base, 1),
            "target": "(reported)",
            "met": None,
            "samples": [round(v, 3) for v in values],
        })
    return rows
