"""Simulator emit rate: how fast one watcher receives a burst of ~1 KB ConfigMaps.

The simulator runs in this process and is pre-loaded with ``events`` ConfigMaps;
one watcher in a separate process (``reader.py``: urllib3 + orjson) reads them:

- ``resume``: a watch from the resourceVersion before the burst, so the burst
  comes out of the change history (the path an informer's watch takes);
- ``initial``: a watch from resourceVersion 0, so the burst is the synthetic
  ADDED events of the current state.

The baseline is the same reader on the same bytes served by a trivial server
that writes the whole pre-framed chunked body with one call: the ratio is the
share of the reader's ceiling the simulator reaches.
"""

from __future__ import annotations

import contextlib
import socket
import statistics
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import orjson

from faro.testing import SimulatedCluster

READER = Path(__file__).with_name("reader.py")
TARGET_EVENTS_PER_SECOND = 200_000


def configmap(i: int) -> dict[str, Any]:
    """A ConfigMap whose stored JSON (server metadata included) is about 1 KB."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"cm-{i:06d}", "namespace": "bench",
                     "labels": {"app": "bench", "shard": str(i % 16)}},
        "data": {"payload": "x" * 560, "index": str(i)},
    }


def _read(url: str, token: str, count: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, str(READER), url, token, str(count)],
        check=True, capture_output=True, text=True, timeout=600,
    )
    result: dict[str, float] = orjson.loads(out.stdout)
    if result["events"] < count:
        raise RuntimeError(f"reader got {result['events']} of {count} events")
    return result


class _RawServer:
    """Serves one pre-built chunked watch body to any GET, with a single sendall."""

    def __init__(self, lines: list[bytes]) -> None:
        body = b"".join(b"%x\r\n%b\r\n" % (len(line), line) for line in lines) + b"0\r\n\r\n"
        self.payload = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\n" + body)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                request = b""
                while b"\r\n\r\n" not in request:
                    data = conn.recv(65536)
                    if not data:
                        break
                    request += data
                with contextlib.suppress(OSError):
                    conn.sendall(self.payload)

    def close(self) -> None:
        self.sock.close()


def run(events: int = 50_000, repeat: int = 3) -> list[dict[str, Any]]:
    """Measure and return result rows (events/s, best of ``repeat``)."""
    with SimulatedCluster(history_size=events + 1000) as cluster:
        cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}})
        start_rv = cluster.resource_version
        for i in range(events):
            cluster.create(configmap(i))
        items = cluster.list_objects("v1", "ConfigMap", "bench")
        lines = [b'{"type":"ADDED","object":' + orjson.dumps(o) + b"}\n" for o in items]
        size = statistics.mean(len(orjson.dumps(o)) for o in items[:1000])
        base = f"{cluster.url}/api/v1/namespaces/bench/configmaps?watch=true"
        raw = _RawServer(lines)
        try:
            rates: dict[str, list[float]] = {"ceiling": [], "resume": [], "initial": []}
            urls = {
                "ceiling": f"http://127.0.0.1:{raw.port}/watch",
                "resume": f"{base}&resourceVersion={start_rv}",
                "initial": f"{base}&resourceVersion=0",
            }
            for _ in range(repeat):
                for name, url in urls.items():
                    result = _read(url, cluster.token, events)
                    rates[name].append(result["events"] / result["seconds"])
        finally:
            raw.close()
    ceiling = max(rates["ceiling"])
    rows = []
    for name in ("resume", "initial"):
        best = max(rates[name])
        rows.append({
            "benchmark": "sim_emit",
            "variant": f"{name} ({events} x {size:.0f} B ConfigMaps)",
            "value": round(best),
            "unit": "events/s",
            "baseline": "same reader, pre-framed bytes from a raw socket",
            "baseline_value": round(ceiling),
            "ratio": round(best / ceiling, 3),
            "target": f">= {TARGET_EVENTS_PER_SECOND} events/s",
            "met": best >= TARGET_EVENTS_PER_SECOND,
            "samples": [round(r) for r in rates[name]],
        })
    return rows
