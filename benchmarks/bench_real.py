"""Benchmarks against a real kube-apiserver: ``real_sync`` and ``real_latency``.

The cluster: ``$FARO_E2E_KUBECONFIG`` when set; otherwise the one ``make
cluster-up`` started, when ``tests/cluster/cluster.py status`` says it runs
(its admin kubeconfig, ``.cluster/kubeconfig``); otherwise every row says
``skipped: no real cluster (make cluster-up)`` and the other benchmarks run.
The harness never starts or stops a cluster. Everything it creates lives in a
namespace of its own with a unique name (``faro-bench-sync-...``,
``faro-bench-latency-...``), deleted at the end (the harness waits until it is
gone, so its cleanup does not load the server during what is measured next).

- ``real_sync``: the harness creates ``objects`` ~1 KB ConfigMaps in a fresh
  namespace (``CREATE_THREADS`` threads through one urllib3 pool, the
  kubeconfig's TLS client certificate; the time taken is a row of its own).
  Then each variant runs in a fresh process, interleaved, ``repeat`` times,
  best kept: the time from starting the informer to a full cache (every
  ConfigMap in the namespace, the root-CA publisher's ``kube-root-ca.crt``
  included, handed to the add handler). faro and the official client's
  informer are ``clients.py VARIANT sync``; client-go is
  ``clientgo/bin/clientgo-bench sync`` with ``--client defaults`` (the
  baseline: client-go as a program gets it, protobuf and a streaming list),
  ``--client json`` (the same in JSON) and ``--client list-watch`` (JSON,
  no streaming list: a LIST, which client-go sends with resourceVersion=0 so
  that the watch cache answers it whole in one response, then a WATCH; faro
  lists in consistent pages of 500).
- ``real_latency``: for each run a fresh client process starts an informer
  on the namespace with a label selector no object matches yet (its list is
  empty) and says when it has synced; 1 s later the harness creates ``rate``
  ConfigMaps per second for ``seconds`` seconds carrying that label, paced
  against a monotonic schedule (the k-th due at start + k/rate; a late one
  is sent at once), one request at a time over a kept-alive connection. Each
  carries the annotation ``faro.bench/written``: the harness's ``time.time()``
  just before it sends the create. The client records ``time.time()`` (Go:
  ``time.Now()``, the same wall clock) in its handler. The latency reported
  is from that send to the handler call, as ``controller_latency`` measures
  from the simulator's in-process create: it includes the server's whole
  write path (authentication, admission, the etcd commit, the watch cache's
  fan-out), the same for every client. The JSON also has it from the
  create's response reaching the writer (``from_response``); the watch event
  often reaches the handler before that response reaches the writer, so
  that figure is near zero, sometimes negative. p50 and p99 over every event
  of every run of a variant (runs pooled). Baseline: client-go (``--client
  defaults``), measured in the same run; two rows give the writer's create
  round trip (send to response) for reference.
"""

from __future__ import annotations

import contextlib
import functools
import os
import queue
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
from bench_controller import _percentile
from bench_informer import (
    CLIENTGO,
    CLIENTS,
    BenchError,
    _finish_client,
    _kill,
    clientgo_binary,
)
from bench_sim import configmap
from pacing import Schedule

TOP = Path(__file__).resolve().parents[1]
CLUSTER_PY = TOP / "tests" / "cluster" / "cluster.py"
KUBECONFIG_ENV = "FARO_E2E_KUBECONFIG"
SKIPPED = "skipped: no real cluster (make cluster-up)"
WRITTEN_ANNOTATION = "faro.bench/written"
RUN_LABEL = "faro.bench/run"

SYNC_OBJECTS = 10_000
CREATE_THREADS = 16
LATENCY_RATE = 50.0  # creates per second
LATENCY_SECONDS = 10.0
SYNC_TIMEOUT = 600.0
SYNCED_TIMEOUT = 120.0  # a latency client's start to its sync
SETTLE = 1.0  # seconds between a latency client's sync and the first write
NAMESPACE_GONE_TIMEOUT = 300.0

# variant -> how to run it: ("python", clients.py variant) or ("go", --client value)
SYNC_VARIANTS: dict[str, tuple[str, str]] = {
    CLIENTGO: ("go", "defaults"),
    "faro": ("python", "faro"),
    "client-go-json": ("go", "json"),
    "client-go-json-list": ("go", "list-watch"),
    "official-informer": ("python", "official-informer"),
}
LATENCY_VARIANTS: dict[str, tuple[str, str]] = {
    CLIENTGO: ("go", "defaults"),
    "faro": ("python", "faro"),
    "faro-controller": ("python", "faro-controller"),
}
DESCRIPTIONS = {
    CLIENTGO: "client-go, its defaults: protobuf, streaming list",
    "faro": "faro SharedInformer, JSON, LIST in pages of 500 + WATCH",
    "faro-controller": "faro Controller, 3 workers",
    "client-go-json": "client-go, JSON, streaming list",
    "client-go-json-list": "client-go, JSON, LIST at resourceVersion 0 + WATCH",
    "official-informer": "official kubernetes.informer",
}


# ----------------------------------------------------------------------------- cluster


@functools.cache
def find_cluster() -> tuple[str | None, str]:
    """(the admin kubeconfig, where it came from), or (None, why there is none)."""
    given = os.environ.get(KUBECONFIG_ENV)
    if given:
        return given, f"${KUBECONFIG_ENV}"
    if not CLUSTER_PY.exists():
        return None, SKIPPED
    try:
        status = subprocess.run([sys.executable, str(CLUSTER_PY), "status"],
                                capture_output=True, text=True, timeout=60, check=False)
        if status.returncode != 0:
            return None, SKIPPED
        env = subprocess.run([sys.executable, str(CLUSTER_PY), "env"],
                             capture_output=True, text=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        return None, SKIPPED
    for line in env.stdout.splitlines():
        prefix = f"export {KUBECONFIG_ENV}="
        if line.startswith(prefix) and Path(line[len(prefix):]).exists():
            return line[len(prefix):], "tests/cluster/cluster.py (make cluster-up)"
    return None, SKIPPED


class Api:
    """Raw JSON requests with the kubeconfig's server and credentials (one urllib3 pool)."""

    def __init__(self, kubeconfig: str, pool_size: int = CREATE_THREADS) -> None:
        from kubernetes import client, config

        configuration = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        configuration.connection_pool_maxsize = pool_size
        self.client = client.ApiClient(configuration)
        self.pool = self.client.rest_client.pool_manager
        self.server: str = configuration.host

    def request(self, method: str, path: str, body: bytes | None = None,
                query: list[tuple[str, str]] | None = None,
                timeout: float = 60.0) -> tuple[int, Any]:
        import urllib3

        verb, url, headers, _, _ = self.client.param_serialize(
            method, path, query_params=query or [],
            header_params={"Accept": "application/json", "Content-Type": "application/json"},
            auth_settings=["BearerToken"])
        response = self.pool.request(verb, url, headers=headers, body=body, retries=False,
                                     timeout=urllib3.Timeout(connect=10.0, read=timeout))
        data = orjson.loads(response.data) if response.data else None
        return response.status, data

    def check(self, method: str, path: str, body: bytes | None = None,
              query: list[tuple[str, str]] | None = None,
              ok: tuple[int, ...] = (200, 201)) -> Any:
        status, data = self.request(method, path, body, query)
        if status not in ok:
            message = data.get("message") if isinstance(data, dict) else data
            raise BenchError(f"{method} {path}: {status} {message}")
        return data


def _namespace(api: Api, prefix: str) -> str:
    name = f"{prefix}-{secrets.token_hex(4)}"
    api.check("POST", "/api/v1/namespaces", orjson.dumps(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))
    return name


def _delete_namespace(api: Api, name: str) -> None:
    """Delete the namespace and wait until it is gone (its objects deleted by the server)."""
    status, _ = api.request("DELETE", f"/api/v1/namespaces/{name}")
    if status not in (200, 202, 404):
        print(f"real cluster: deleting namespace {name}: status {status}", file=sys.stderr)
        return
    deadline = time.monotonic() + NAMESPACE_GONE_TIMEOUT
    while time.monotonic() < deadline:
        if api.request("GET", f"/api/v1/namespaces/{name}")[0] == 404:
            return
        time.sleep(0.5)
    print(f"real cluster: namespace {name} still terminating after "
          f"{NAMESPACE_GONE_TIMEOUT:.0f} s; not waiting longer", file=sys.stderr)


def _object(namespace: str, name: str, index: int) -> dict[str, Any]:
    """``bench_sim.configmap``'s ~1 KB ConfigMap, in ``namespace``."""
    obj = configmap(index)
    obj["metadata"]["name"] = name
    obj["metadata"]["namespace"] = namespace
    return obj


def _create_many(api: Api, namespace: str, count: int) -> dict[str, Any]:
    """Create ``count`` ConfigMaps with ``CREATE_THREADS`` threads; the time it took."""
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    bodies = [orjson.dumps(_object(namespace, f"cm-{i:06d}", i)) for i in range(count)]

    def create(part: int) -> None:
        for body in bodies[part::CREATE_THREADS]:
            api.check("POST", path, body)

    started = time.perf_counter()
    with ThreadPoolExecutor(CREATE_THREADS) as pool:
        list(pool.map(create, range(CREATE_THREADS)))
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rate": count / seconds}


def _count(api: Api, namespace: str) -> int:
    """ConfigMaps in the namespace (a one-item LIST and its remainingItemCount)."""
    data = api.check("GET", f"/api/v1/namespaces/{namespace}/configmaps", query=[("limit", "1")])
    remaining = data["metadata"].get("remainingItemCount")
    if remaining is not None:
        return len(data["items"]) + int(remaining)
    return len(api.check("GET", f"/api/v1/namespaces/{namespace}/configmaps")["items"])


def _wait_root_ca(api: Api, namespace: str, timeout: float = 30.0) -> bool:
    """Wait until the root-CA publisher has put ``kube-root-ca.crt`` into the namespace."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        path = f"/api/v1/namespaces/{namespace}/configmaps/kube-root-ca.crt"
        if api.request("GET", path)[0] == 200:
            return True
        time.sleep(0.2)
    return False


def _skipped(benchmark: str, why: str) -> list[dict[str, Any]]:
    print(f"{benchmark}: {why}", file=sys.stderr, flush=True)
    return [{"benchmark": benchmark, "variant": why, "value": None, "unit": "",
             "baseline": "client-go", "baseline_value": None, "ratio": None,
             "target": "(reference)", "met": None, "skipped": True}]


def _cluster_or_skip(benchmark: str) -> tuple[str | None, list[dict[str, Any]]]:
    kubeconfig, source = find_cluster()
    if kubeconfig is None:
        return None, _skipped(benchmark, source)
    try:
        Api(kubeconfig).check("GET", "/version")
    except Exception as error:  # any failure to reach it means: skip
        return None, _skipped(benchmark, f"skipped: the cluster of {source} does not "
                                         f"answer: {str(error)[:200]}")
    return kubeconfig, []


# -------------------------------------------------------------------------- clients


def _command(variant: str, variants: dict[str, tuple[str, str]], mode: str,
             kubeconfig: str, namespace: str, count: int) -> list[str] | None:
    """The client's command line, or None when client-go cannot be built."""
    kind, name = variants[variant]
    if kind == "go":
        binary, _ = clientgo_binary()
        if binary is None:
            return None
        command = [str(binary), mode, "--client", name]
    else:
        command = [sys.executable, str(CLIENTS), name, mode]
    return [*command, "--kubeconfig", kubeconfig, "--namespace", namespace,
            "--count", str(count), "--timeout", str(SYNC_TIMEOUT)]


def _unbuilt() -> str:
    return clientgo_binary()[1]


# ----------------------------------------------------------------------------- sync


def run_sync(objects: int = SYNC_OBJECTS, repeat: int = 3) -> list[dict[str, Any]]:
    """Initial sync of ``objects`` ConfigMaps on the real server, every variant."""
    kubeconfig, skipped = _cluster_or_skip("real_sync")
    if kubeconfig is None:
        return skipped
    api = Api(kubeconfig)
    samples: dict[str, list[dict[str, Any]]] = {v: [] for v in SYNC_VARIANTS}
    namespace = _namespace(api, "faro-bench-sync")
    try:
        print(f"real_sync: creating {objects:,} ConfigMaps in {namespace} ...",
              file=sys.stderr, flush=True)
        created = _create_many(api, namespace, objects)
        root_ca = _wait_root_ca(api, namespace)
        total = _count(api, namespace)
        stored = api.check("GET", f"/api/v1/namespaces/{namespace}/configmaps/cm-000000")
        stored_bytes = len(orjson.dumps(stored))
        print(f"real_sync: created in {created['seconds']:.1f} s; {total:,} ConfigMaps in "
              f"the namespace", file=sys.stderr, flush=True)
        for _ in range(repeat):
            for variant in SYNC_VARIANTS:
                command = _command(variant, SYNC_VARIANTS, "sync", kubeconfig, namespace, total)
                if command is None:
                    samples[variant].append({"error": _unbuilt()})
                    continue
                proc = subprocess.Popen(command, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
                try:
                    result = _finish_client(proc, SYNC_TIMEOUT + 60)
                finally:
                    _kill(proc)
                if "error" not in result and result["objects"] != total:
                    raise BenchError(f"{variant}: cache holds {result['objects']} of {total}")
                samples[variant].append(result)
    finally:
        _delete_namespace(api, namespace)

    def best(variant: str) -> float | None:
        values = [float(r["sync_seconds"]) for r in samples[variant] if "error" not in r]
        return min(values) if values else None

    base = best(CLIENTGO)
    what = f"{objects:,} x ~1 KB ConfigMaps + kube-root-ca.crt" if root_ca else \
        f"{objects:,} x ~1 KB ConfigMaps"
    rows: list[dict[str, Any]] = [{
        "benchmark": "real_sync",
        "variant": f"setup: creating {objects:,} ConfigMaps ({CREATE_THREADS} threads, "
                   f"{created['rate']:,.0f}/s)",
        "unit": "s", "value": round(created["seconds"], 3), "baseline": "-",
        "baseline_value": None, "ratio": None, "target": "(reference)", "met": None,
        "objects_in_namespace": total, "stored_bytes_per_object": stored_bytes,
    }]
    for variant in SYNC_VARIANTS:
        if variant == CLIENTGO:
            continue
        value = best(variant)
        row: dict[str, Any] = {
            "benchmark": "real_sync",
            "variant": f"{variant} ({DESCRIPTIONS[variant]}; {what})",
            "unit": "s",
            "baseline": f"{CLIENTGO}: {DESCRIPTIONS[CLIENTGO]}",
            "baseline_value": None if base is None else round(base, 3),
            "target": "(reference)",
            "met": None,
            "samples": [None if "error" in r else round(float(r["sync_seconds"]), 3)
                        for r in samples[variant]],
            "baseline_samples": [None if "error" in r else round(float(r["sync_seconds"]), 3)
                                 for r in samples[CLIENTGO]],
            "runs": samples[variant],
            "baseline_runs": samples[CLIENTGO],
        }
        if value is None:
            error = samples[variant][0]["error"]
            row.update(value=None, ratio=None, error=error)
            row["variant"] += f" unavailable: {error}"
        else:
            row.update(value=round(value, 3),
                       ratio=None if base is None else round(value / base, 3))
        if base is None:
            row["baseline"] += f" unavailable: {samples[CLIENTGO][0].get('error')}"
        rows.append(row)
    return rows


# -------------------------------------------------------------------------- latency


class _Client:
    """A latency client process: its stdout lines in a queue, its stderr in a file."""

    def __init__(self, command: list[str]) -> None:
        self.stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed by close())
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self.stderr,
                                     text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def line(self, timeout: float) -> dict[str, Any]:
        """The next JSON line; raises if the client ends or is silent first."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise BenchError(f"client {self.proc.args[1:3]}: no answer within "
                             f"{timeout:.0f} s: {self._errors()}") from None
        if line is None:
            self.proc.wait()
            raise BenchError(f"client {self.proc.args[1:3]} exited with status "
                             f"{self.proc.returncode}: {self._errors()}")
        result: dict[str, Any] = orjson.loads(line)
        return result

    def _errors(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().strip()[-1000:]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # our own child, by its handle
        self.proc.wait()
        self.stderr.close()


def _write(api: Api, namespace: str, run: str, rate: float,
           count: int) -> dict[str, Any]:
    """Create ``count`` labelled ConfigMaps at ``rate``/s; every write's send and response."""
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    objects = []
    for k in range(count):
        obj = _object(namespace, f"{run}-{k:05d}", k)
        obj["metadata"]["labels"][RUN_LABEL] = run
        objects.append(obj)
    sent: dict[str, float] = {}
    answered: dict[str, float] = {}
    wall = time.time
    schedule = Schedule(count, rate)
    for k in schedule:
        obj = objects[k]
        name = obj["metadata"]["name"]
        written = wall()
        obj["metadata"]["annotations"] = {WRITTEN_ANNOTATION: repr(written)}
        api.check("POST", path, orjson.dumps(obj))
        answered[name] = wall()
        sent[name] = written
    first, last = min(sent.values()), max(sent.values())
    return {"sent": sent, "answered": answered,
            "rate": round((count - 1) / (last - first), 1) if count > 1 else 0.0,
            **schedule.lateness()}


def _latency_once(api: Api, kubeconfig: str, namespace: str, variant: str, run: str,
                  rate: float, count: int) -> dict[str, Any]:
    command = _command(variant, LATENCY_VARIANTS, "latency", kubeconfig, namespace, count)
    if command is None:
        return {"error": _unbuilt()}
    command += ["--label-selector", f"{RUN_LABEL}={run}"]
    if LATENCY_VARIANTS[variant][0] == "python":
        command += ["--announce-sync", "--names"]
    client = _Client(command)
    try:
        first = client.line(SYNCED_TIMEOUT)
        if "error" in first:
            return first
        if not first.get("synced"):
            raise BenchError(f"{variant}: expected the synced line, got {first}")
        time.sleep(SETTLE)
        writer = _write(api, namespace, run, rate, count)
        result = client.line(60.0)
    finally:
        client.close()
    if "error" in result:
        return result
    if result["events"] < count:
        raise BenchError(f"{variant}: {result['events']} of {count} events")
    from_send: list[float] = []
    from_response: list[float] = []
    for name, millis in zip(result["names"], result["latencies_ms"], strict=True):
        from_send.append(float(millis))
        round_trip = (writer["answered"][name] - writer["sent"][name]) * 1000.0
        from_response.append(float(millis) - round_trip)
    round_trips = [(writer["answered"][n] - writer["sent"][n]) * 1000.0 for n in writer["sent"]]
    return {"from_send": from_send, "from_response": from_response,
            "round_trips": round_trips, "writer_rate": writer["rate"],
            "writer_max_late_ms": writer["max_late_ms"],
            "writer_late_writes": writer["late_writes"],
            "requests": result.get("requests")}


def run_latency(rate: float = LATENCY_RATE, seconds: float = LATENCY_SECONDS,
                repeat: int = 3) -> list[dict[str, Any]]:
    """p50 and p99 from the create's send to the handler call, every variant."""
    kubeconfig, skipped = _cluster_or_skip("real_latency")
    if kubeconfig is None:
        return skipped
    api = Api(kubeconfig)
    count = round(rate * seconds)
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in LATENCY_VARIANTS}
    namespace = _namespace(api, "faro-bench-latency")
    try:
        for attempt in range(repeat):
            for variant in LATENCY_VARIANTS:
                run = f"r{attempt}-{variant}"
                print(f"real_latency: {variant}, run {attempt + 1} of {repeat} ...",
                      file=sys.stderr, flush=True)
                runs[variant].append(_latency_once(api, kubeconfig, namespace, variant, run,
                                                   rate, count))
    finally:
        _delete_namespace(api, namespace)

    def pooled(variant: str, key: str) -> list[float]:
        return sorted(v for r in runs[variant] if "error" not in r for v in r[key])

    def per_run(variant: str, key: str, fraction: float) -> list[float | None]:
        return [None if "error" in r else round(_percentile(sorted(r[key]), fraction), 3)
                for r in runs[variant]]

    good = [r for rs in runs.values() for r in rs if "error" not in r]
    achieved = min((r["writer_rate"] for r in good), default=0.0)
    base = pooled(CLIENTGO, "from_send")
    base_response = pooled(CLIENTGO, "from_response")
    rows: list[dict[str, Any]] = []
    for variant in LATENCY_VARIANTS:
        if variant == CLIENTGO:
            continue
        ordered = pooled(variant, "from_send")
        responses = pooled(variant, "from_response")
        for name, fraction in (("p50", 0.5), ("p99", 0.99)):
            base_value = _percentile(base, fraction) if base else None
            row: dict[str, Any] = {
                "benchmark": "real_latency",
                "variant": (f"{variant} {name} ({DESCRIPTIONS[variant]}; {rate:g} creates/s x "
                            f"{seconds:g} s, writer >= {achieved:,.1f}/s; create sent to "
                            f"handler)"),
                "unit": "ms",
                "baseline": f"{CLIENTGO} {name}: {DESCRIPTIONS[CLIENTGO]}",
                "baseline_value": None if base_value is None else round(base_value, 3),
                "target": "(reference)",
                "met": None,
                "samples": per_run(variant, "from_send", fraction),
                "baseline_samples": per_run(CLIENTGO, "from_send", fraction),
                "from_response": (round(_percentile(responses, fraction), 3)
                                  if responses else None),
                "baseline_from_response": (round(_percentile(base_response, fraction), 3)
                                           if base_response else None),
                "events": len(ordered),
                "max_ms": round(ordered[-1], 3) if ordered else None,
                "baseline_max_ms": round(base[-1], 3) if base else None,
                "writer_rates": [r["writer_rate"] for r in good],
                "writer_max_late_ms": max((r["writer_max_late_ms"] for r in good), default=None),
                "writer_late_writes": sum(r["writer_late_writes"] for r in good),
            }
            if ordered:
                value = _percentile(ordered, fraction)
                row.update(value=round(value, 3),
                           ratio=(round(value / base_value, 3)
                                  if base_value is not None and base_value > 0 else None))
                if base_value is not None:
                    row["minus_client_go_ms"] = round(value - base_value, 3)
            else:
                error = next((r["error"] for r in runs[variant] if "error" in r), None)
                row.update(value=None, ratio=None, error=error)
                row["variant"] += f" unavailable: {error}"
            if base_value is None:
                error = next((r["error"] for r in runs[CLIENTGO] if "error" in r), None)
                row["baseline"] += f" unavailable: {error}"
            rows.append(row)
    trips = sorted(v for r in good for v in r["round_trips"])
    for name, fraction in (("p50", 0.5), ("p99", 0.99)):
        rows.append({
            "benchmark": "real_latency",
            "variant": f"writer: create round trip {name} (send to response, for reference)",
            "unit": "ms",
            "value": round(_percentile(trips, fraction), 3) if trips else None,
            "baseline": "-", "baseline_value": None, "ratio": None,
            "target": "(reference)", "met": None,
        })
    with contextlib.suppress(KeyError, IndexError):
        rows[0]["client_go_requests"] = next(r["requests"] for r in runs[CLIENTGO]
                                             if "error" not in r)
    return rows
