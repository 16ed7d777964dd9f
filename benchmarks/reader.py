"""The baseline watch reader: plain urllib3 + orjson, run as its own process.

Usage: python benchmarks/reader.py URL TOKEN COUNT [--ca FILE]

Opens the watch URL, reads the chunked stream in large reads, splits lines
itself and decodes each with orjson, until COUNT events arrived. Prints one
JSON line: {"events": N, "seconds": S, "bytes": B} measured from sending the
request to decoding the last event. Other benchmarks compare against it;
``clients.py`` reuses :func:`read_chunked` and :func:`list_resource_version`
for its ``reader`` variant (LIST, then WATCH from the listed resourceVersion).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson
import urllib3


def open_watch(http: urllib3.PoolManager, url: str, token: str) -> Any:
    """Send a watch request; returns the response once its head arrived (status 200)."""
    response = http.request(
        "GET", url, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        preload_content=False, timeout=urllib3.Timeout(connect=5, read=120),
    )
    if response.status != 200:
        raise SystemExit(f"reader: HTTP {response.status}: {response.read()[:300]!r}")
    if response.headers.get("Transfer-Encoding", "").lower() != "chunked":
        raise SystemExit("reader: expected a chunked response")
    return response


def read_chunked(response: Any, count: int, budget: float | None = None,
                 each: Callable[[Any], object] | None = None) -> tuple[int, int, float, float]:
    """Decode watch events from a chunked response until ``count`` arrived.

    Returns (events, bytes received, first, last): ``first`` is the
    ``time.perf_counter()`` when the read holding the first event returned,
    ``last`` the time the last event was decoded. With ``budget`` (seconds),
    reading also stops at the first read that ends more than ``budget`` after
    ``first``. ``each``, if given, is called with every decoded event.
    """
    # Large reads straight from the connection's buffered socket, with our own
    # chunked-encoding and line decoding: http.client would return one chunk
    # (here: one event) per call.
    raw = response._fp.fp  # the connection's buffered reader
    clock = time.perf_counter
    events = 0
    received = 0
    first = 0.0
    buffer = b""  # undecoded chunked-encoding bytes
    line = b""  # an event line split across chunks
    loads = orjson.loads if each is None else (lambda line: each(orjson.loads(line)))
    done = False
    while events < count and not done:
        data = raw.read1(1 << 20)
        if not data:
            break
        arrived = clock()
        received += len(data)
        buffer = buffer + data if buffer else data
        pos = 0
        end = len(buffer)
        while True:
            eol = buffer.find(b"\r\n", pos)
            if eol < 0:
                break
            size = int(buffer[pos:eol], 16)
            start = eol + 2
            if start + size + 2 > end:
                break
            if size == 0:
                done = True
                break
            payload = buffer[start:start + size]
            pos = start + size + 2
            if line:
                payload = line + payload
                line = b""
            if payload[-1:] == b"\n" and payload.count(b"\n") == 1:
                loads(payload)
                events += 1
                continue
            parts = payload.split(b"\n")
            line = parts.pop()
            for part in parts:
                if part:
                    loads(part)
                    events += 1
        buffer = buffer[pos:]
        if not first and events:
            first = arrived
        if budget is not None and first and clock() - first > budget:
            break
    return events, received, first, clock()


def list_resource_version(http: urllib3.PoolManager, url: str, token: str,
                          limit: int = 500) -> tuple[int, str]:
    """LIST a collection in pages of ``limit`` (orjson); returns (items, resourceVersion)."""
    items = 0
    fields = {"limit": str(limit)}
    while True:
        response = http.request(
            "GET", url, fields=fields,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=urllib3.Timeout(connect=5, read=120),
        )
        if response.status != 200:
            raise SystemExit(f"reader: LIST HTTP {response.status}: {response.data[:300]!r}")
        body = orjson.loads(response.data)
        items += len(body.get("items") or [])
        metadata = body.get("metadata") or {}
        if not metadata.get("continue"):
            return items, str(metadata["resourceVersion"])
        fields = {"limit": str(limit), "continue": metadata["continue"]}


def read_events(url: str, token: str, count: int, ca: str | None = None) -> dict[str, float]:
    """Read ``count`` watch events from ``url``; returns events, seconds and bytes."""
    http = urllib3.PoolManager(ca_certs=ca) if ca else urllib3.PoolManager()
    started = time.perf_counter()
    response = open_watch(http, url, token)
    events, received, _, last = read_chunked(response, count)
    response.release_conn()
    return {"events": events, "seconds": last - started, "bytes": received}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("token")
    parser.add_argument("count", type=int)
    parser.add_argument("--ca")
    args = parser.parse_args()
    result = read_events(args.url, args.token, args.count, args.ca)
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    return 0 if result["events"] >= args.count else 1


if __name__ == "__main__":
    sys.exit(main())
