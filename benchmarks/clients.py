"""The measured clients of the informer benchmarks, one per process (clean RSS).

Usage: python benchmarks/clients.py VARIANT MODE --kubeconfig PATH --count N
       [--namespace bench] [--budget SECONDS] [--label-selector SELECTOR]
       [--announce-sync] [--names]

VARIANT is ``reader``, ``reader-cache``, ``plain-urllib3``, ``faro``,
``official-informer``, ``official-watch``, ``faro-controller`` or ``kopf``
(``kopf`` needs an interpreter with kopf installed: never a dependency of faro);
MODE is

- ``throughput``: LIST the (empty) namespace, WATCH from the listed
  resourceVersion and count the events of the burst the harness makes while
  the simulator holds that watch. Prints ``{"events": N, "seconds": S, ...}``,
  S from the first event to the last, both measured here. Counting stops at
  ``--count`` events, or at the first check (every 1,024 events) more than
  ``--budget`` seconds after the first event (``"capped": true``).
- ``sync``: start an informer on a namespace holding ``--count`` objects and
  wait until its cache holds them all. Prints ``{"sync_seconds": S,
  "rss_before": B, "rss_after": B, "objects": N}``: RSS (VmRSS) after the
  imports and the client's construction, and after the sync and ``gc.collect()``.
- ``latency`` (``reader``, ``faro``, ``faro-controller``): LIST, WATCH, and for
  each of the ``--count`` events the simulator's ``stream`` command writes,
  record ``time.time()`` minus the write time the object carries (annotation
  ``faro.bench/written``, ``time.time()`` in the simulator's process just
  before its create). Prints ``{"events": N, "latencies_ms": [...], ...}``.
  Against a real API server (``bench_real.py``) the writer is the harness,
  the annotation its ``time.time()`` just before it sends the create, and
  the client runs with ``--label-selector`` (its list is empty, every event
  comes from the watch), ``--announce-sync`` (print ``{"synced": true}`` on
  a line of its own once the informer or controller has synced, before the
  result line) and ``--names`` (the result also has ``"names"``: each
  event's object name, in the order of ``latencies_ms``).

Throughput results also carry ``first_wall`` and ``last_wall``: ``time.time()``
at the first and at the last counted event, to compare with the simulator's
clock (``controller_throughput`` times from the simulator's release).

Every variant counts in a callback (or loop body) that does nothing else.
The ``client-go`` variant of the informer benchmarks is a Go program,
``clientgo/main.go`` (``clientgo-bench MODE`` with the same options), that
follows this protocol and prints the same JSON line.
A variant that cannot run (faro not importable yet) prints ``{"error": ...}``
and exits with status 2.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

_CHECK_EVERY = 1023  # mask: look at the clock every 1,024 events
WRITTEN_ANNOTATION = "faro.bench/written"  # sim_server.py's stream command: the write time


class Counter:
    """Counts events until ``expected`` (or the time budget), then sets ``done``."""

    def __init__(self, expected: int, budget: float | None) -> None:
        self.expected = expected
        self.budget = budget if budget is not None else float("inf")
        self.count = 0
        self.events = 0  # the count when counting stopped
        self.first = 0.0
        self.last = 0.0
        self.first_wall = 0.0  # time.time() at the first and the last counted event
        self.last_wall = 0.0
        self.capped = False
        self.finished = False
        self.done = threading.Event()

    def hit(self, *_: Any) -> None:
        if self.finished:
            return
        self.count += 1
        count = self.count
        if count == 1:
            self.first = time.perf_counter()
            self.first_wall = time.time()
        if count >= self.expected:
            self._finish(time.perf_counter(), capped=False)
        elif not count & _CHECK_EVERY:
            now = time.perf_counter()
            if now - self.first > self.budget:
                self._finish(now, capped=True)

    def _finish(self, now: float, *, capped: bool) -> None:
        self.last = now
        self.last_wall = time.time()
        self.events = self.count
        self.capped = capped
        self.finished = True
        self.done.set()

    def result(self) -> dict[str, Any]:
        return {"events": self.events, "seconds": self.last - self.first,
                "capped": self.capped, "first_wall": self.first_wall,
                "last_wall": self.last_wall}


class ThreadedCounter(Counter):
    """A :class:`Counter` for handlers called on several threads at once (worker pools).

    ``next()`` on an ``itertools.count`` is one C call under the GIL, so no
    call is lost and no lock is taken per event.
    """

    def __init__(self, expected: int, budget: float | None) -> None:
        super().__init__(expected, budget)
        self._numbers = itertools.count(1)
        self._finish_lock = threading.Lock()

    def hit(self, *_: Any) -> None:
        if self.finished:
            return
        count = next(self._numbers)
        if count == 1:
            self.first = time.perf_counter()
            self.first_wall = time.time()
        if count >= self.expected:
            self._finish_once(count, capped=False)
        elif not count & _CHECK_EVERY and time.perf_counter() - self.first > self.budget:
            self._finish_once(count, capped=True)

    def _finish_once(self, count: int, *, capped: bool) -> None:
        with self._finish_lock:
            if not self.finished:
                self.count = count
                self._finish(time.perf_counter(), capped=capped)


class Latencies:
    """Records, per event, ``time.time()`` minus the write time the object carries.

    Safe on several threads (``list.append`` and ``next()`` on a count are
    atomic under the GIL); sets ``done`` at the ``expected``-th event.
    """

    def __init__(self, expected: int, names: bool = False) -> None:
        self.expected = expected
        self.samples: list[float] = []
        self.names: list[str] | None = [] if names else None
        self._numbers = itertools.count(1)
        self.done = threading.Event()

    def record(self, obj: Any) -> None:
        now = time.time()
        metadata = obj["metadata"]
        written = float(metadata["annotations"][WRITTEN_ANNOTATION])
        self.samples.append(now - written)
        if self.names is not None:
            self.names.append(metadata["name"])
        if next(self._numbers) == self.expected:
            self.done.set()

    def result(self) -> dict[str, Any]:
        samples = self.samples[:self.expected]
        result: dict[str, Any] = {"events": len(samples),
                                  "latencies_ms": [round(s * 1000.0, 4) for s in samples]}
        if self.names is not None:
            result["names"] = self.names[:self.expected]
        return result


def announce_sync() -> None:
    """Tell the harness the client has synced (``--announce-sync``): one line on stdout."""
    sys.stdout.write('{"synced": true}\n')
    sys.stdout.flush()


def rss() -> int:
    """This process's resident set size in bytes (VmRSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def api_client(kubeconfig: str) -> Any:
    from kubernetes import config

    return config.new_client_from_config(config_file=kubeconfig)


def server_and_token(kubeconfig: str) -> tuple[str, str]:
    import yaml

    data = yaml.safe_load(Path(kubeconfig).read_text())
    return data["clusters"][0]["cluster"]["server"], data["users"][0]["user"]["token"]


def wait(counter: Counter, timeout: float) -> None:
    if not counter.done.wait(timeout):
        raise SystemExit(f"clients: {counter.count} of {counter.expected} events "
                         f"within {timeout:.0f} s")


# ------------------------------------------------------------------------- throughput


def _reader_watch(args: argparse.Namespace) -> Any:
    """urllib3: LIST the namespace (paged), then open a WATCH from the listed resourceVersion."""
    import urllib3
    from reader import list_resource_version, open_watch

    server, token = server_and_token(args.kubeconfig)
    http = urllib3.PoolManager()
    url = f"{server}/api/v1/namespaces/{args.namespace}/configmaps"
    _, rv = list_resource_version(http, url, token)
    return open_watch(http, f"{url}?watch=true&resourceVersion={rv}", token)


def throughput_reader(args: argparse.Namespace) -> dict[str, Any]:
    """urllib3 + orjson, chunked decoding of our own (reader.py): LIST, then WATCH from its RV."""
    from reader import read_chunked

    response = _reader_watch(args)
    events, _, first, last = read_chunked(response, args.count, args.budget)
    last_wall = time.time()
    return {"events": events, "seconds": last - first,
            "capped": events < args.count, "first_wall": last_wall - (last - first),
            "last_wall": last_wall}


def throughput_reader_cache(args: argparse.Namespace) -> dict[str, Any]:
    """The reader, also keeping every decoded object in a dict by namespace/name.

    The least work any cache of decoded objects does: the difference to
    ``reader`` is the cost of keeping the objects (allocation, garbage collector).
    """
    from reader import read_chunked

    response = _reader_watch(args)
    cache: dict[str, Any] = {}

    def keep(event: dict[str, Any]) -> None:
        metadata = event["object"]["metadata"]
        cache[f"{metadata['namespace']}/{metadata['name']}"] = event["object"]

    events, _, first, last = read_chunked(response, args.count, args.budget, keep)
    return {"events": events, "seconds": last - first,
            "capped": events < args.count}


def throughput_plain_reader(args: argparse.Namespace) -> dict[str, Any]:
    """urllib3's own streaming (``response.stream()``), line splitting, orjson."""
    response = _reader_watch(args)
    counter = Counter(args.count, args.budget)
    loads = orjson.loads
    partial = b""
    for data in response.stream(1 << 20):
        if partial:
            data = partial + data
        lines = data.split(b"\n")
        partial = lines.pop()
        for line in lines:
            if line:
                counter.hit(loads(line))
        if counter.finished:
            break
    return counter.result()


def throughput_faro(args: argparse.Namespace) -> dict[str, Any]:
    """faro's SharedInformer; on_add counts."""
    from faro.cache import SharedInformer

    counter = Counter(args.count, args.budget)
    informer = SharedInformer(api_client(args.kubeconfig), "v1/configmaps",
                              namespace=args.namespace)
    informer.add_event_handler(on_add=counter.hit)
    informer.start()
    wait(counter, args.timeout)
    return counter.result()


def throughput_official_informer(args: argparse.Namespace) -> dict[str, Any]:
    """kubernetes.informer.SharedInformer (typed objects); an ADDED handler counts."""
    from kubernetes import client
    from kubernetes.informer import ADDED, SharedInformer

    counter = Counter(args.count, args.budget)
    v1 = client.CoreV1Api(api_client(args.kubeconfig))
    informer = SharedInformer(list_func=v1.list_namespaced_config_map,
                              namespace=args.namespace)
    informer.add_event_handler(ADDED, counter.hit)
    informer.start()
    wait(counter, args.timeout)
    return counter.result()


def throughput_official_watch(args: argparse.Namespace) -> dict[str, Any]:
    """kubernetes.watch.Watch().stream (typed objects) from the listed resourceVersion."""
    from kubernetes import client, watch

    counter = Counter(args.count, args.budget)
    v1 = client.CoreV1Api(api_client(args.kubeconfig))
    rv = v1.list_namespaced_config_map(args.namespace).metadata.resource_version
    hit = counter.hit
    for event in watch.Watch().stream(v1.list_namespaced_config_map, args.namespace,
                                      resource_version=rv):
        hit(event)
        if counter.finished:
            break
    return counter.result()


def _controller(args: argparse.Namespace, handler: Callable[[Any], object],
                outputs: bool = False) -> Any:
    """faro's Controller on ``v1/configmaps`` in the namespace, 3 workers.

    With ``--label-selector``, the resource's ``label_selector`` is set to it.

    With ``outputs``, what ``faro run`` adds: the JSON export, metrics served on a free
    port, and ``setup_logging`` at info (an event line per event to the log file and to
    a console that is /dev/null); otherwise none of them.
    """
    import tempfile

    from faro import Config, Controller, KubernetesClient, setup_logging

    resource: dict[str, Any] = {"gvr": "v1/configmaps", "namespace_names": [args.namespace]}
    selector = getattr(args, "label_selector", None)  # bench_soak's client has no such option
    if selector:
        resource["label_selector"] = selector
    settings: dict[str, Any] = {"workers": int(os.environ.get("BENCH_WORKERS", "3")),
                                "resources": [resource]}
    if outputs:
        settings.update(json_export=True, output_dir=tempfile.mkdtemp(prefix="faro-bench-"),
                        metrics={"enabled": True, "port": 0, "bind_addr": "127.0.0.1"})
    config = Config.from_dict(settings)
    if outputs:
        setup_logging(config, console=open(os.devnull, "w"))  # noqa: SIM115 (process-long)
        if not getattr(args, "default_gc", False):
            from faro.cli._process import tune_gc

            tune_gc()  # as faro run does for its process
    controller = Controller(KubernetesClient(api_client(args.kubeconfig)), config)
    controller.add_event_handler(handler)
    controller.start()
    return controller


def throughput_faro_controller(args: argparse.Namespace) -> dict[str, Any]:
    """faro's Controller (informer, per-object buffer, queue, 3 workers); the handler counts."""
    counter = ThreadedCounter(args.count, args.budget)
    _controller(args, counter.hit)
    wait(counter, args.timeout)
    return counter.result()


def throughput_faro_run(args: argparse.Namespace) -> dict[str, Any]:
    """faro's Controller as ``faro run`` runs it: JSON export, metrics and event log lines."""
    counter = ThreadedCounter(args.count, args.budget)
    _controller(args, counter.hit, outputs=True)
    wait(counter, args.timeout)
    return counter.result()


def throughput_kopf(args: argparse.Namespace) -> dict[str, Any]:
    """kopf (``@kopf.on.event``, an async handler that counts), standalone, no scanning.

    Run by an interpreter that has kopf (never a dependency of faro). Logs in
    with the kubeconfig's server and token; no peering, no k8s-event posting,
    no cluster scanning (the resource is named in full), namespace ``bench``.
    """
    import asyncio
    import logging

    import kopf

    server, token = server_and_token(args.kubeconfig)
    counter = Counter(args.count, args.budget)  # kopf calls async handlers on one thread
    registry = kopf.OperatorRegistry()
    hit = counter.hit

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=server, token=token, scheme="Bearer",
                                   default_namespace=args.namespace)

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.peering.standalone = True
        settings.posting.enabled = False
        settings.scanning.disabled = True
        settings.watching.client_timeout = 600
        settings.watching.server_timeout = 600

    @kopf.on.event("", "v1", "configmaps", registry=registry)
    async def on_event(type: str | None = None, **_: Any) -> None:
        if type == "ADDED":
            hit()

    logging.basicConfig(level=logging.WARNING)
    stop = threading.Event()

    def operate() -> None:
        asyncio.run(kopf.operator(registry=registry, standalone=True,
                                  namespaces=[args.namespace], stop_flag=stop))

    threading.Thread(target=operate, name="kopf", daemon=True).start()
    wait(counter, args.timeout)
    stop.set()
    return counter.result()


# ---------------------------------------------------------------------------- latency


def latency_reader(args: argparse.Namespace) -> dict[str, Any]:
    """The reader: write time to the decoded line."""
    from reader import read_chunked

    latencies = Latencies(args.count)
    response = _reader_watch(args)
    record = latencies.record
    read_chunked(response, args.count, None, lambda event: record(event["object"]))
    return latencies.result()


def latency_faro(args: argparse.Namespace) -> dict[str, Any]:
    """faro's SharedInformer: write time to the on_add call."""
    from faro.cache import SharedInformer

    latencies = Latencies(args.count, names=args.names)
    record = latencies.record
    informer = SharedInformer(api_client(args.kubeconfig), "v1/configmaps",
                              namespace=args.namespace, label_selector=args.label_selector)
    informer.add_event_handler(on_add=lambda obj, is_initial: record(obj))
    informer.start()
    if args.announce_sync:
        if not informer.wait_for_sync(timeout=args.timeout):
            raise SystemExit(f"clients: faro not synced within {args.timeout:.0f} s")
        announce_sync()
    if not latencies.done.wait(args.timeout):
        raise SystemExit(f"clients: {len(latencies.samples)} of {args.count} events")
    return latencies.result()


def latency_faro_controller(args: argparse.Namespace) -> dict[str, Any]:
    """faro's Controller: write time to the handler call on a worker."""
    latencies = Latencies(args.count, names=args.names)
    record = latencies.record
    controller = _controller(args, lambda event: record(event.object))
    if args.announce_sync:
        ready = threading.Event()
        controller.set_ready_callback(ready.set)
        if not ready.wait(args.timeout):
            raise SystemExit(f"clients: the controller not ready within {args.timeout:.0f} s")
        announce_sync()
    if not latencies.done.wait(args.timeout):
        raise SystemExit(f"clients: {len(latencies.samples)} of {args.count} events")
    return latencies.result()


# ------------------------------------------------------------------------------- sync


def sync_faro(args: argparse.Namespace) -> dict[str, Any]:
    """faro's SharedInformer: start() to wait_for_sync()."""
    from faro.cache import SharedInformer

    informer = SharedInformer(api_client(args.kubeconfig), "v1/configmaps",
                              namespace=args.namespace)
    informer.add_event_handler(on_add=lambda obj, is_initial: None)
    gc.collect()
    before = rss()
    started = time.perf_counter()
    informer.start()
    if not informer.wait_for_sync(timeout=args.timeout):
        raise SystemExit(f"clients: faro not synced within {args.timeout:.0f} s")
    seconds = time.perf_counter() - started
    gc.collect()
    after = rss()
    return {"sync_seconds": seconds, "rss_before": before, "rss_after": after,
            "objects": len(informer.store), **_store_reads(informer.store)}


def _store_reads(store: Any, reads: int = 20_000) -> dict[str, float]:
    """The cost of reading faro's store (it keeps JSON bytes and decodes on read), in µs:
    a get of an object not kept decoded, a get of one that is, list() per object, and a
    plain dict's get of the same keys (what a store of dicts costs)."""
    import random

    keys = store.keys()
    picked = random.Random(16).sample(keys, min(reads, len(keys)))
    plain = dict.fromkeys(keys)

    def per_call(call: Callable[[str], object], over: list[str]) -> float:
        began = time.perf_counter()
        for key in over:
            call(key)
        return (time.perf_counter() - began) / len(over) * 1e6

    decoding = per_call(store.get, picked)  # each read once: decoded every time
    hot = picked[:100] * (len(picked) // 100)  # 100 objects read again and again
    per_call(store.get, hot[:100])
    kept = per_call(store.get, hot)
    dict_get = per_call(plain.get, picked)
    began = time.perf_counter()
    listed = store.list()
    list_each = (time.perf_counter() - began) / max(1, len(listed)) * 1e6
    return {"get_decoding_us": decoding, "get_kept_us": kept, "list_us_per_object": list_each,
            "dict_get_us": dict_get}


def sync_official_informer(args: argparse.Namespace) -> dict[str, Any]:
    """kubernetes.informer.SharedInformer: start() to the ADDED handler's Nth call.

    It has no has_synced(): its initial LIST fills the cache (one replace) and
    then fires ADDED for every item, so the Nth ADDED marks a full cache.
    """
    from kubernetes import client
    from kubernetes.informer import ADDED, SharedInformer

    counter = Counter(args.count, None)
    v1 = client.CoreV1Api(api_client(args.kubeconfig))
    informer = SharedInformer(list_func=v1.list_namespaced_config_map,
                              namespace=args.namespace)
    informer.add_event_handler(ADDED, counter.hit)
    gc.collect()
    before = rss()
    started = time.perf_counter()
    informer.start()
    wait(counter, args.timeout)
    seconds = counter.last - started
    gc.collect()
    return {"sync_seconds": seconds, "rss_before": before, "rss_after": rss(),
            "objects": len(informer.cache.list_keys())}


VARIANTS: dict[tuple[str, str], Callable[[argparse.Namespace], dict[str, Any]]] = {
    ("reader", "throughput"): throughput_reader,
    ("reader-cache", "throughput"): throughput_reader_cache,
    ("plain-urllib3", "throughput"): throughput_plain_reader,
    ("faro", "throughput"): throughput_faro,
    ("official-informer", "throughput"): throughput_official_informer,
    ("official-watch", "throughput"): throughput_official_watch,
    ("faro-controller", "throughput"): throughput_faro_controller,
    ("faro-run", "throughput"): throughput_faro_run,
    ("kopf", "throughput"): throughput_kopf,
    ("reader", "latency"): latency_reader,
    ("faro", "latency"): latency_faro,
    ("faro-controller", "latency"): latency_faro_controller,
    ("faro", "sync"): sync_faro,
    ("official-informer", "sync"): sync_official_informer,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant", choices=sorted({v for v, _ in VARIANTS}))
    parser.add_argument("mode", choices=("throughput", "sync", "latency"))
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--namespace", default="bench")
    parser.add_argument("--budget", type=float, default=None,
                        help="throughput: stop counting this many seconds after the first event")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="give up after this many seconds")
    parser.add_argument("--label-selector", default=None,
                        help="latency (faro, faro-controller): the informer's label selector")
    parser.add_argument("--announce-sync", action="store_true",
                        help='latency (faro, faro-controller): print {"synced": true} once synced')
    parser.add_argument("--names", action="store_true",
                        help="latency: also report each event's object name")
    args = parser.parse_args()
    run = VARIANTS.get((args.variant, args.mode))
    if run is None:
        parser.error(f"no {args.mode} client for {args.variant}")
    try:
        result = run(args)
    except ImportError as error:
        sys.stdout.write(orjson.dumps({"error": f"ImportError: {error}"}).decode() + "\n")
        sys.stdout.flush()
        return 2
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    sys.stdout.flush()
    # Informer threads may sit in a blocking read: leave without joining them.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
