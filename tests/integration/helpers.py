"""Helpers for tests that talk raw HTTP to an API server (the simulator or a real one).

``RawClient`` sends JSON with a bearer token through urllib3; ``WatchStream`` reads
a watch on a thread so tests wait for events on a queue with a deadline, never
with sleep.
"""

from __future__ import annotations

import contextlib
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
        """Cut the connection (unblocking the reader thread) and wait for the reader."""
        if self._thread.is_alive():
            # Raises once the stream ended and the connection went back to the pool.
            with contextlib.suppress(RuntimeError, ValueError, OSError):
                self.response.shutdown()
        self.response.close()
        self._thread.join(timeout=DEADLINE)


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


# ------------------------------------------------------------------ added for the fidelity tests


def eventually(predicate: Callable[[], Any], timeout: float = DEADLINE,
               interval: float = 0.01, *, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy (returned); fail naming ``what``."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout:g}s: {what}")
        time.sleep(interval)  # polling interval of a deadline-bounded poll, not synchronisation


def assert_status(response: Response, code: int, reason: str | None = None) -> dict[str, Any]:
    """Assert an error response is a real ``Status`` for HTTP ``code``; returns the body."""
    assert response.status == code, response
    assert response.headers.get("Content-Type", "").startswith("application/json"), response
    body = response.json()
    assert body["kind"] == "Status", body
    assert body["apiVersion"] == "v1", body
    assert body["status"] == "Failure", body
    assert body["code"] == code, body
    assert isinstance(body.get("message"), str) and body["message"], body
    if reason is not None:
        assert body["reason"] == reason, body
    return body


def crd(group: str = "example.com", plural: str = "widgets", kind: str = "Widget", *,
        scope: str = "Namespaced", versions: tuple[str, ...] = ("v1",),
        status: bool = False) -> dict[str, Any]:
    """A CustomResourceDefinition manifest; the first version is the storage version."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": scope,
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind,
                      "listKind": f"{kind}List"},
            "versions": [
                {"name": v, "served": True, "storage": i == 0,
                 "schema": {"openAPIV3Schema": {"type": "object",
                                                "x-kubernetes-preserve-unknown-fields": True}},
                 **({"subresources": {"status": {}}} if status else {})}
                for i, v in enumerate(versions)
            ],
        },
    }


class ChunkedWatch:
    """A watch read over a raw socket, one HTTP chunk at a time (to check the wire format).

    ``rcvbuf`` shrinks the socket's receive buffer, so that a reader that does not
    read makes the server's writes block (a slow watcher).
    """

    def __init__(self, base_url: str, token: str, path: str, params: dict[str, Any],
                 rcvbuf: int | None = None) -> None:
        import socket
        from urllib.parse import urlsplit

        url = urlsplit(base_url)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(DEADLINE)
        self.sock.connect((url.hostname, url.port))
        query = urlencode({**params, "watch": "true"})
        self.sock.sendall(
            f"GET {path}?{query} HTTP/1.1\r\nHost: {url.netloc}\r\n"
            f"Authorization: Bearer {token}\r\nAccept: application/json\r\n\r\n".encode())
        self.file = self.sock.makefile("rb")
        self.status_line = b""
        self.headers: dict[str, str] = {}

    def read_head(self) -> int:
        """Read the status line and headers; returns the status code."""
        self.status_line = self.file.readline()
        while True:
            line = self.file.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode().partition(":")
            self.headers[name.strip().lower()] = value.strip()
        return int(self.status_line.split()[1])

    def chunk(self) -> bytes | None:
        """The next chunk's payload, or None for the final (zero-length) chunk."""
        size_line = self.file.readline()
        if not size_line:
            raise ConnectionError("connection closed inside the chunked body")
        size = int(size_line.split(b";")[0].strip(), 16)
        if size == 0:
            self.file.readline()  # the CRLF after the last chunk (no trailers)
            return None
        payload = self.file.read(size)
        assert self.file.read(2) == b"\r\n", "chunk not terminated by CRLF"
        return payload

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def sim_client(**options: Any) -> Any:
    """A context manager: a SimulatedCluster made with ``options`` and a RawClient for it.

    Yields ``(cluster, client)``; on exit the client is closed and the cluster stopped.
    """
    from contextlib import contextmanager

    from faro.testing import SimulatedCluster

    @contextmanager
    def manage() -> Any:
        with SimulatedCluster(**options) as sim:
            client = RawClient(sim.url, sim.token)
            try:
                yield sim, client
            finally:
                client.close()

    return manage()


def create_configmap(api: RawClient, obj: dict[str, Any]) -> dict[str, Any]:
    """POST a ConfigMap manifest into its namespace; asserts 201 and returns the object."""
    namespace = obj["metadata"]["namespace"]
    response = api.post(f"/api/v1/namespaces/{namespace}/configmaps", obj)
    assert response.status == 201, response
    body: dict[str, Any] = response.json()
    return body
