"""Helpers for tests that talk raw HTTP to an API server (the simulator or a real one).

``RawClient`` sends JSON with a bearer token through urllib3; ``WatchStream`` reads
a watch on a thread so tests wait for events on a queue with a deadline, never
with sleep.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import orjson
import urllib3

DEADLINE = 10.0  # seconds any single expected event may take to arrive


class Response:
    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return orjson.loads(self.body)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.body[:200]!r}>"


class WatchStream:
    """Reads a watch response on a thread; events are taken with a deadline.

    ``next()`` returns the next decoded event, the string "<end>" when the server
    ended the stream cleanly, or "<malformed:...>" for a line that is not JSON.
    """

    def __init__(self, response: urllib3.BaseHTTPResponse) -> None:
        self.response = response
        self.status = response.status
        self._events: queue.Queue[Any] = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        buffer = b""
        try:
            for chunk in self.response.stream(65536, decode_content=False):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if not line:
                        continue
                    try:
                        self._events.put(orjson.loads(line))
                    except orjson.JSONDecodeError:
                        self._events.put(f"<malformed:{line[:40]!r}>")
            self._events.put("<end>")
        except Exception as error:  # connection cut: report it as an end of its own
            self._events.put(f"<error:{type(error).__name__}>")

    def next(self, timeout: float = DEADLINE) -> Any:
        try:
            return self._events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no watch event within {timeout}s") from None

    def take(self, count: int, timeout: float = DEADLINE) -> list[Any]:
        return [self.next(timeout) for _ in range(count)]

    def until(self, predicate: Callable[[Any], bool], timeout: float = DEADLINE) -> list[Any]:
        """Events up to and including the first that satisfies ``predicate``."""
        seen = []
        while True:
            event = self.next(timeout)
            seen.append(event)
            if predicate(event):
                return seen

    def assert_quiet(self, timeout: float = 0.3) -> None:
        """Assert no event is pending (used after a fence event proved delivery order)."""
        assert self._events.empty(), f"unexpected events: {list(self._events.queue)}"

    def close(self) -> None:
        self.response.release_conn()
        self.response.close()


class RawClient:
    """Raw HTTP access to the simulator (or any API server reachable with a token)."""

    def __init__(self, base_url: str, token: str | None) -> None:
        self.base = base_url
        self.token = token
        self.http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(30))
        self._streams: list[WatchStream] = []

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        headers.update(extra or {})
        return headers

    def url(self, path: str, params: dict[str, Any] | None = None) -> str:
        query = urlencode({k: v for k, v in (params or {}).items() if v is not None})
        return self.base + path + (f"?{query}" if query else "")

    def request(self, method: str, path: str, body: Any = None, *,
                params: dict[str, Any] | None = None, content_type: str = "application/json",
                headers: dict[str, str] | None = None) -> Response:
        data = None
        hdrs = self.headers(headers)
        if body is not None:
            data = body if isinstance(body, bytes) else orjson.dumps(body)
            hdrs["Content-Type"] = content_type
        r = self.http.request(method, self.url(path, params), body=data, headers=hdrs)
        return Response(r.status, r.headers, r.data)

    def get(self, path: str, **params: Any) -> Response:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any, **params: Any) -> Response:
        return self.request("POST", path, body, params=params)

    def put(self, path: str, body: Any, **params: Any) -> Response:
        return self.request("PUT", path, body, params=params)

    def patch(self, path: str, body: Any, content_type: str, **params: Any) -> Response:
        return self.request("PATCH", path, body, params=params, content_type=content_type)

    def delete(self, path: str, body: Any = None, **params: Any) -> Response:
        return self.request("DELETE", path, body, params=params)

    def watch(self, path: str, **params: Any) -> WatchStream:
        params["watch"] = "true"
        r = self.http.request("GET", self.url(path, params), headers=self.headers(),
                              preload_content=False, timeout=urllib3.Timeout(connect=5, read=60))
        stream = WatchStream(r)
        self._streams.append(stream)
        return stream

    def close(self) -> None:
        for stream in self._streams:
            stream.close()
        self.http.clear()


def configmap(name: str, namespace: str = "default", labels: dict[str, str] | None = None,
              data: dict[str, str] | None = None) -> dict[str, Any]:
    """A ConfigMap manifest."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        metadata["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data or {}}
