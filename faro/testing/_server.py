"""HTTP front end of the simulated API server: routing, discovery, CRUD, list and watch.

One thread per connection (``ThreadingHTTPServer``), HTTP/1.1 keep-alive. Watch
streams use chunked transfer encoding with one chunk per event; a batch of
events ready at once is written with a single socket call. A watch parked by
``hold_watches`` gets its response head, then waits for its release; what a watch
stream sends, and when, is decided by :class:`faro.testing._watch.WatchStream`.
Faults configured on the :class:`Faults` object apply before authentication, as
a broken proxy or overloaded server would answer.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import re
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote

import orjson

from faro._names import KubeObject
from faro.clock import Clock, RealClock
from faro.testing import _openapi, _protobuf
from faro.testing._errors import (
    ApiError,
    method_not_allowed,
    not_found_generic,
    qualified,
    status_details,
)
from faro.testing._resources import (
    ResourceType,
    api_group,
    api_group_list,
    group_order,
    version_priority,
)
from faro.testing._selection import Selection, check_watch_options, parse_selection
from faro.testing._storage import Entry, dumps
from faro.testing._store import Store
from faro.testing._watch import error_line

# What /version answers, in kube-apiserver 1.37's form (served indented, as the real one is).
KUBERNETES_VERSION = {
    "major": "1",
    "minor": "37",
    "emulationMajor": "1",
    "emulationMinor": "37",
    "minCompatibilityMajor": "1",
    "minCompatibilityMinor": "36",
    "gitVersion": "v1.37.0",
    "gitCommit": "faro-simulator",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.26.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}
# Go's net/http buffers this much of a response before it gives up on a Content-Length and
# sends the body chunked; kube-apiserver sets no Content-Length itself.
_GO_RESPONSE_BUFFER = 2048
# kube-apiserver gzips a response bigger than this when the client accepts gzip (not watches).
_GZIP_THRESHOLD = 128 * 1024
_PLAIN_NOT_FOUND = b"404 page not found\n"
_DEFAULT_WATCH_TIMEOUT = 1800.0  # seconds; the server's default when timeoutSeconds is unset

_PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
}
_ANONYMOUS = frozenset({"/version", "/healthz", "/livez", "/readyz"})
# Built-in kinds whose storage answers a delete with the object instead of a Status
# (ReturnDeletedObject in their registry). Custom resources answer with a Status.
_RETURNS_DELETED_OBJECT = frozenset({("", "pods"), ("", "serviceaccounts")})


@dataclass
class _Rule:
    pattern: re.Pattern[str]
    method: str | None
    remaining: int | None  # None: until cleared

    def take(self, method: str, target: str) -> bool:
        if self.remaining == 0 or (self.method and self.method != method):
            return False
        if not self.pattern.search(target):
            return False
        if self.remaining is not None:
            self.remaining -= 1
        return True


@dataclass
class _Failure(_Rule):
    status: int = 500
    retry_after: int | None = None
    message: str = ""


@dataclass
class _Delay(_Rule):
    seconds: float = 0.0


class Faults:
    """Injected failures and latency, consulted for every request (thread-safe)."""

    def __init__(self) -> None:
        self._failures: list[_Failure] = []
        self._delays: list[_Delay] = []
        self._lock = threading.Lock()

    def add_failure(self, pattern: re.Pattern[str], method: str | None, count: int, status: int,
                    retry_after: int | None = None, message: str = "") -> None:
        """Answer the next ``count`` requests matching ``pattern`` (and ``method``) with
        ``status``."""
        with self._lock:
            self._failures.append(_Failure(pattern, method, count, status, retry_after, message))

    def add_delay(self, pattern: re.Pattern[str], method: str | None, count: int | None,
                  seconds: float) -> None:
        """Delay matching responses by ``seconds`` (the next ``count`` ones; None: all)."""
        with self._lock:
            self._delays.append(_Delay(pattern, method, count, seconds))

    def clear(self) -> None:
        """Remove every pending failure and delay."""
        with self._lock:
            self._failures.clear()
            self._delays.clear()

    def check(self, method: str, target: str) -> tuple[float, ApiError | None]:
        """The delay to apply and the error to answer (if any) for one request."""
        with self._lock:
            delay = sum(d.seconds for d in self._delays if d.take(method, target))
            for failure in self._failures:
                if failure.take(method, target):
                    return delay, ApiError(
                        failure.status,
                        failure.message or f"injected failure ({failure.status})",
                        retry_after=failure.retry_after,
                    )
            self._failures = [f for f in self._failures if f.remaining != 0]
            self._delays = [d for d in self._delays if d.remaining != 0]
        return delay, None


class SimServer(ThreadingHTTPServer):
    """The listening server; handler threads find the shared state here."""

    daemon_threads = True
    allow_reuse_address = True
    # The listen backlog Go's listeners (the API server's) ask for: the kernel's somaxconn, at
    # most 65535. socketserver's default of 5 resets connections arriving in a burst (2,000
    # informers starting at once).
    request_queue_size = 4096

    def __init__(
        self,
        address: tuple[str, int],
        store: Store,
        faults: Faults,
        token: Callable[[], str],
        bookmark_interval: float,
        expired_in_stream: bool,
        anonymous_auth: bool = False,
        clock: Clock | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(address, _Handler)
        self.store = store
        self.clock: Clock = clock if clock is not None else RealClock()
        self.faults = faults
        self.token = token
        self.bookmark_interval = bookmark_interval
        self.expired_in_stream = expired_in_stream
        self.anonymous_auth = anonymous_auth
        self.ssl_context = ssl_context
        self.stopping = threading.Event()
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Connections that fail (TLS handshakes, resets) are the client's business."""

    def close_connections(self) -> None:
        """Shut down every open client connection (unblocks their threads)."""
        with self.connections_lock:
            for conn in list(self.connections):
                _shutdown(conn)


def _shutdown(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)


@dataclass
class _Target:
    """A parsed resource URL."""

    resource: ResourceType
    namespace: str | None
    name: str | None
    subresource: str


class _PlainNotFound(Exception):
    """A path outside the API (an unknown group, say): Go's plain-text 404."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: SimServer
    server_version = "faro-sim"
    sys_version = ""
    _request_body: bytes | None = None

    # ------------------------------------------------------------ plumbing

    def setup(self) -> None:
        # Like Go's servers: no Nagle delay (40 ms with delayed ACKs) between a response's
        # header and body writes.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        context = self.server.ssl_context
        if context is not None:  # handshake here, on this connection's own thread
            from faro.testing._tls import answered_plain_http

            if answered_plain_http(self.request):
                raise ConnectionAbortedError("plain HTTP request on the HTTPS port")
            self.request = self.connection = context.wrap_socket(self.request, server_side=True)
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.request)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.request)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging (the simulator is used inside test runs)."""

    def send_response(self, code: int, message: str | None = None) -> None:
        """As the base class does, without a ``Server`` header (kube-apiserver sends none)."""
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _body(self) -> bytes:
        """The request body, read once (later calls return the same bytes).

        Every response reads it first, so that a body the handler had no use for (a
        request refused early) is not taken for the start of the next request.
        """
        if self._request_body is None:
            self._request_body = b""  # also if reading fails: the connection is closed then
            try:
                self._request_body = self._read_body()
            except ValueError:
                self.close_connection = True
        return self._request_body

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts = []
            while size := int(self.rfile.readline(1024).split(b";")[0].strip() or b"0", 16):
                parts.append(self.rfile.read(size))
                self.rfile.readline(1024)
            while self.rfile.readline(1024).strip():  # trailers
                pass
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _json_body(self, rt: ResourceType | None = None) -> Any:
        raw = self._body()
        if not raw:
            return None
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if content_type == _protobuf.MEDIA_TYPE:  # kubectl's typed generators
            return _protobuf.decode(raw)
        if content_type not in ("", "application/json", "application/yaml", "*/*",
                                "application/apply-patch+yaml"):
            # CBOR and other bodies: a CBOR client retries with JSON on 415.
            raise ApiError(415, "the body of the request was in an unknown format - accepted "
                           "media types include: application/json, application/yaml, "
                           f"{_protobuf.MEDIA_TYPE}")
        if content_type in ("application/yaml", "application/apply-patch+yaml"):
            import yaml

            try:
                return yaml.safe_load(raw)
            except yaml.YAMLError as error:
                raise ApiError(400, f"the body of the request could not be decoded: {error}") \
                    from error
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            if rt is not None:  # the decoder's own words differ (Go's encoding/json)
                raise ApiError(400, f"the object provided is unrecognized (must be of type "
                               f"{rt.kind}): couldn't get version/kind; json parse error: "
                               f"{error}") from error
            raise ApiError(400, f"the body of the request could not be decoded: {error}") \
                from error

    def _send(self, code: int, body: bytes, content_type: str = "application/json",
              headers: Iterable[tuple[str, str]] = (), *, newline: bool | None = None) -> None:
        """Send a whole response, framed and encoded as kube-apiserver (Go) sends it.

        A JSON body ends with a newline (Go's json.Encoder); a body over 2048 bytes is sent
        chunked, without Content-Length; one over 128 KiB is gzipped when the client accepts
        gzip (``Vary: Accept-Encoding``); plain text carries ``X-Content-Type-Options``.
        """
        self._body()
        if newline is None:
            newline = content_type.startswith("application/json")
        if newline:
            body += b"\n"
        extra = list(headers)
        if content_type.startswith("text/plain"):
            extra.append(("X-Content-Type-Options", "nosniff"))
        compressed = len(body) > _GZIP_THRESHOLD and _accepts_gzip(
            self.headers.get("Accept-Encoding") or "")
        if compressed:
            body = gzip.compress(body, compresslevel=1)
            extra += [("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")]
        chunked = len(body) > _GO_RESPONSE_BUFFER
        self.send_response(code)
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Content-Type", content_type)
        for name, value in extra:
            self.send_header(name, value)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not chunked:
            self.wfile.write(body)
        elif len(body) < 65536:
            self.wfile.write(b"%x\r\n%b\r\n0\r\n\r\n" % (len(body), body))
        else:  # no copy of a big body
            self.wfile.write(b"%x\r\n" % len(body))
            self.wfile.write(body)
            self.wfile.write(b"\r\n0\r\n\r\n")

    def _send_json(self, code: int, obj: Any) -> None:
        self._send(code, dumps(obj))

    def _send_error(self, error: ApiError) -> None:
        headers = list(error.headers)
        if error.retry_after is not None:
            headers.append(("Retry-After", str(error.retry_after)))
        self._send(error.code, dumps(error.status()), headers=headers)

    # ------------------------------------------------------------- routing

    def _dispatch(self, method: str) -> None:
        self._request_body = None
        path, _, query = self.path.partition("?")
        params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        try:
            delay, failure = self.server.faults.check(method, self.path)
            if delay:
                self.server.stopping.wait(delay)
            if failure is not None:
                raise failure
            self._authenticate(method, path, params)
            self._route(method, path, params)
        except ApiError as error:
            self._send_error(error)
        except _PlainNotFound:
            self._send(404, _PLAIN_NOT_FOUND, "text/plain; charset=utf-8")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as error:  # a bug in the simulator: answer 500, keep serving
            self._send_error(ApiError(500, f"simulator error: {type(error).__name__}: {error}"))

    def _authenticate(self, method: str, path: str, params: dict[str, str]) -> None:
        """401 for a bearer token the server does not accept, on every path (as from the real
        server); without one, the anonymous paths only (with ``anonymous_auth``, the others
        answer 403 as RBAC does for ``system:anonymous``; without it, 401)."""
        # The scheme is case-insensitive (RFC 7235), as kube-apiserver reads it.
        scheme, _, credentials = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() == "bearer" and credentials:
            if credentials != self.server.token():
                raise ApiError(401, "Unauthorized")
            return
        if path in _ANONYMOUS:
            return
        if not self.server.anonymous_auth:
            raise ApiError(401, "Unauthorized")
        raise _anonymous_forbidden(method, [unquote(s) for s in path.strip("/").split("/") if s],
                                   params)

    def _route(self, method: str, path: str, params: dict[str, str]) -> None:
        segments = [unquote(s) for s in path.strip("/").split("/") if s]
        store = self.server.store
        if method == "GET":
            if segments == ["version"]:  # indented, without a final newline, as the real one
                self._send(200, json.dumps(KUBERNETES_VERSION, indent=2).encode(), newline=False)
                return
            document = self._discovery(segments)
            if document is not None:
                if isinstance(document, bytes):
                    self._send(200, document, "text/plain; charset=utf-8")
                else:
                    self._send_json(200, document)
                return
        target = self._target(segments, params)
        if target is None:
            raise self._not_found(segments)
        rt, namespace, name, sub = (target.resource, target.namespace, target.name,
                                    target.subresource)
        manager = params.get("fieldManager") or _manager(self.headers.get("User-Agent"))
        dry_run = params.get("dryRun") == "All"
        if name is None:
            if method == "GET":
                selection = _selection(rt, namespace, params)
                if params.get("watch") in ("1", "true"):
                    self._watch(selection, params)
                else:
                    self._list(selection, params)
            elif method == "POST":
                entry = store.create(rt, namespace, self._json_body(rt) or {}, manager=manager,
                                     dry_run=dry_run)
                self._send_object(201, entry, rt)
            elif method == "DELETE":
                if "deletecollection" not in rt.verbs:
                    raise method_not_allowed()
                selection = _selection(rt, namespace, params)
                self._body()
                gone = store.delete_collection(selection)
                self._send_list(rt, [e.encoded_as(rt.api_version) if rt.custom else e.list_item()
                                     for e in gone], store.rv)
            else:
                raise method_not_allowed()
            return
        if method == "GET":
            self._send_object(200, store.get(rt, namespace, name), rt)
        elif method == "PUT":
            entry = store.update(rt, namespace, name, self._json_body(rt) or {}, manager=manager,
                                 subresource=sub, dry_run=dry_run)
            self._send_object(200, entry, rt)
        elif method == "PATCH":
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            patch_type = _PATCH_TYPES.get(content_type)
            if patch_type is None:
                raise ApiError(415, "415: Unsupported Media Type", details={})
            if patch_type == "apply" and not params.get("fieldManager"):
                raise ApiError(422, "PATCH /apply: fieldManager is required for apply requests")
            entry = store.patch(rt, namespace, name, patch_type, self._body(), manager=manager,
                                subresource=sub, dry_run=dry_run)
            self._send_object(200, entry, rt)
        elif method == "DELETE":
            if sub:
                raise method_not_allowed()
            options = self._json_body() or {}
            entry, removed = store.delete(
                rt, namespace, name, preconditions=options.get("preconditions"),
                dry_run=dry_run or "All" in (options.get("dryRun") or []))
            # As the real handler: 200, or 202 only for a pending deletion the client asked
            # to cascade with the deprecated orphanDependents=false.
            code = 202 if not removed and options.get("orphanDependents") is False else 200
            if removed and rt.storage not in _RETURNS_DELETED_OBJECT:
                self._send_json(code, {
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                    "details": status_details(name, rt.group, rt.plural,
                                              uid=entry.obj["metadata"].get("uid")),
                })
            else:
                self._send_object(code, entry, rt)
        else:
            raise method_not_allowed()

    def _not_found(self, segments: list[str]) -> ApiError:
        """The 404 of a path no resource handler serves: a JSON Status under /api and under a
        group the server serves, Go's plain-text 404 elsewhere (an unknown group, say)."""
        if segments[:1] == ["api"]:
            return not_found_generic()
        if segments[:1] == ["apis"] and len(segments) > 1 and any(
                rt.group == segments[1] for rt in self.server.store.served()):
            return not_found_generic()
        raise _PlainNotFound

    def _discovery(self, segments: list[str]) -> dict[str, Any] | bytes | None:
        store = self.server.store
        if not segments:
            return {"paths": ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/openapi/v3",
                              "/readyz", "/version"]}
        head = segments[0]
        if segments == ["version"]:
            return KUBERNETES_VERSION
        if len(segments) == 1 and head in ("healthz", "livez", "readyz"):
            return b"ok"
        if segments == ["api"]:
            host, port = str(self.server.server_address[0]), self.server.server_address[1]
            return {"kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [
                        {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{host}:{port}"}]}
        served = store.served()
        if segments == ["api", "v1"]:
            return _resource_list("v1", [rt for rt in served if rt.group == ""], typed=False)
        groups = _groups(served)
        if segments == ["apis"]:
            return api_group_list(groups)
        if head == "apis" and len(segments) == 2:
            versions = dict(groups).get(segments[1])
            if versions is None:
                raise self._not_found(segments)
            return api_group(segments[1], versions)
        if head == "apis" and len(segments) == 3:
            group, version = segments[1], segments[2]
            types = [rt for rt in served if rt.group == group and rt.version == version]
            if not types:
                raise self._not_found(segments)
            return _resource_list(f"{group}/{version}", types)
        if head == "openapi":
            if segments == ["openapi", "v3"]:
                return _openapi.index(served)
            if len(segments) > 2 and segments[1] == "v3":
                wanted = "/".join(segments[2:])
                types = [rt for rt in served
                         if _openapi.gv_path(rt.group, rt.version) == wanted]
                if types:
                    return _openapi.document(types)
            raise ApiError(404, "the server could not find the requested resource")
        return None

    def _target(self, segments: list[str], params: dict[str, str]) -> _Target | None:
        if segments[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", segments[2:]
        elif len(segments) >= 3 and segments[0] == "apis":
            group, version, rest = segments[1], segments[2], segments[3:]
        else:
            return None
        if rest[:1] == ["watch"]:
            params["watch"] = "true"
            rest = rest[1:]
        namespace: str | None = None
        if (len(rest) >= 3 and rest[0] == "namespaces"
                and not (len(rest) == 3 and rest[2] in ("status", "finalize"))):
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            return None
        rt = self.server.store.resolve(group, version, rest[0])
        if rt is None or (namespace is not None and not rt.namespaced):
            return None
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else ""
        if sub and not (sub == "status" and rt.has_status):
            return None
        if name is not None and rt.namespaced and namespace is None:
            return None
        return _Target(rt, namespace, name, sub)

    # -------------------------------------------------------------- output

    def _wants_table(self) -> bool:
        return "as=Table" in (self.headers.get("Accept") or "")

    def _send_object(self, code: int, entry: Entry, rt: ResourceType) -> None:
        if self._wants_table():
            self._send_json(code, _table([entry.obj], entry.obj["metadata"]["resourceVersion"],
                                         self.server.clock.time()))
        else:
            self._send(code, entry.encoded_as(rt.api_version))

    def _send_list(self, rt: ResourceType, items: list[bytes], rv: int, continue_token: str = "",
                   remaining: int | None = None) -> None:
        if self._wants_table():
            table = _table([orjson.loads(i) for i in items], str(rv), self.server.clock.time())
            if continue_token:
                table["metadata"]["continue"] = continue_token
            self._send_json(200, table)
            return
        metadata: dict[str, Any] = {"resourceVersion": str(rv)}
        if continue_token:
            metadata["continue"] = continue_token
        if remaining is not None:
            metadata["remainingItemCount"] = remaining
        head = dumps({"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": metadata})
        # One join, the newline included: the items are copied once (a list can be 1 GB).
        parts = [head[:-1] + b',"items":[']
        for item in items:
            parts += (item, b",")
        if items:
            parts.pop()
        parts.append(b"]}\n")
        self._send(200, b"".join(parts), newline=False)

    def _list(self, selection: Selection, params: dict[str, str]) -> None:
        rt = selection.resource
        limit = _parse_int(params.get("limit") or "0")
        result = self.server.store.list_page(
            selection, limit=max(limit, 0),  # a negative limit: no limit
            continue_token=params.get("continue", ""),
            resource_version=params.get("resourceVersion", ""),
            match=params.get("resourceVersionMatch", ""),
            bare_items=not rt.custom and not self._wants_table(),
            send_initial_events=_parse_bool(params.get("sendInitialEvents")),
        )
        self._send_list(rt, result.items, result.resource_version, result.continue_token,
                        result.remaining)

    # --------------------------------------------------------------- watch

    def _watch(self, selection: Selection, params: dict[str, str]) -> None:
        server = self.server
        timeout = _parse_int(params.get("timeoutSeconds") or "0")
        end = server.clock.now() + (timeout if timeout else _DEFAULT_WATCH_TIMEOUT)
        bookmarks = params.get("allowWatchBookmarks") in ("1", "true")
        send_initial_events = _parse_bool(params.get("sendInitialEvents"))
        check_watch_options(params.get("resourceVersionMatch", ""), params.get("continue", ""),
                            send_initial_events)
        table = self._wants_table()
        conn = self.request
        try:
            stream = server.store.open_watch(
                selection, params.get("resourceVersion", ""), end=end, target=self.path,
                send_initial_events=send_initial_events,
                bookmark_interval=server.bookmark_interval if bookmarks else None,
                on_abrupt=lambda: _shutdown(conn))
        except ApiError as error:
            if not (server.expired_in_stream and error.code in (410, 504)):
                raise
            self._start_stream()
            self._write_lines([error_line(error)], table)
            self._end_stream()
            return
        try:
            self._start_stream()
            for batch in stream.batches(server.stopping):
                self._write_lines(batch.lines, table and not batch.raw)
            if stream.cut:
                self.close_connection = True
                _shutdown(self.request)
            else:
                self._end_stream()
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True
        finally:
            stream.close()

    def _start_stream(self) -> None:
        self._body()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")

    def _write_lines(self, lines: list[bytes], table: bool) -> None:
        """Write watch lines, one HTTP chunk each, in a single socket call."""
        if table:
            now = self.server.clock.time()
            lines = [_table_event(line, now) for line in lines]
        self.wfile.write(b"".join(b"%x\r\n%b\r\n" % (len(line), line) for line in lines))


# ------------------------------------------------------------------ helpers


def _accepts_gzip(accept_encoding: str) -> bool:
    for part in accept_encoding.split(","):
        name, _, quality = part.strip().partition(";")
        if name.strip().lower() == "gzip" and quality.strip().replace(" ", "") not in (
                "q=0", "q=0.0", "q=0.00", "q=0.000"):
            return True
    return False


def _parse_int(text: str) -> int:
    """A query parameter parsed as Go's strconv.ParseInt does, with its error as a 400."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise ApiError(400, f'strconv.ParseInt: parsing "{text}": invalid syntax')
    return int(text)


def _parse_bool(text: str | None) -> bool | None:
    """A boolean query parameter (None when absent), as Go's strconv.ParseBool reads it."""
    if text is None:
        return None
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ApiError(400, f'strconv.ParseBool: parsing "{text}": invalid syntax')


_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}


def _anonymous_forbidden(method: str, segments: list[str], params: dict[str, str]) -> ApiError:
    """The 403 RBAC gives ``system:anonymous`` for a request (kube-apiserver's wording)."""
    user = 'User "system:anonymous"'
    if segments[:2] == ["api", "v1"] or (segments[:1] == ["api"] and len(segments) > 2):
        group, parts = "", segments[2:]
    elif segments[:1] == ["apis"] and len(segments) > 3:
        group, parts = segments[1], segments[3:]
    else:
        parts = []
    if not parts:
        path = "/" + "/".join(segments)
        error = ApiError(403, f'forbidden: {user} cannot {method.lower()} path "{path}"',
                         details={})
        error.headers.append(("X-Content-Type-Options", "nosniff"))
        return error
    watch = parts[0] == "watch" or params.get("watch") in ("1", "true")
    if parts[0] == "watch":
        parts = parts[1:]
    namespace = ""
    if parts[:1] == ["namespaces"] and len(parts) > 1:
        namespace = parts[1]
        if len(parts) > 2 and parts[2] not in ("status", "finalize"):
            parts = parts[2:]
    resource = parts[0] if parts else ""
    name = parts[1] if len(parts) > 1 else ""
    sub = parts[2] if len(parts) > 2 else ""
    if method == "GET":
        verb = "watch" if watch else "get" if name else "list"
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = _VERBS.get(method, method.lower())
    subject = qualified(resource, group) + (f' "{name}"' if name else "")
    scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    target = f"{resource}/{sub}" if sub else resource
    error = ApiError(403, f'{subject} is forbidden: {user} cannot {verb} resource "{target}" in '
                     f'API group "{group}" {scope}', details=status_details(name, group, resource))
    error.headers.append(("X-Content-Type-Options", "nosniff"))
    return error


def _manager(user_agent: str | None) -> str:
    """The field manager the real server derives from a User-Agent (its first part)."""
    return (user_agent or "unknown").split("/")[0] or "unknown"


def _selection(rt: ResourceType, namespace: str | None, params: dict[str, str]) -> Selection:
    return parse_selection(rt, namespace, params.get("labelSelector", ""),
                           params.get("fieldSelector", ""))


def _groups(served: list[ResourceType]) -> list[tuple[str, list[str]]]:
    versions: dict[str, set[str]] = {}
    for rt in served:
        if rt.group:
            versions.setdefault(rt.group, set()).add(rt.version)
    return [(group, sorted(versions[group], key=version_priority))
            for group in sorted(versions, key=group_order)]


def _resource_list(group_version: str, types: list[ResourceType], *,
                   typed: bool = True) -> dict[str, Any]:
    """An APIResourceList, its resources sorted by name as kube-apiserver lists them (the
    core group's list, ``typed=False``, has no ``apiVersion``, as the real one)."""
    entries = sorted((entry for rt in types for entry in rt.discovery_entries()),
                     key=lambda entry: str(entry["name"]))
    document: dict[str, Any] = {"kind": "APIResourceList"}
    if typed:
        document["apiVersion"] = "v1"
    document.update(groupVersion=group_version, resources=entries)
    return document


_COLUMNS = [
    {"name": "Name", "type": "string", "format": "name", "priority": 0,
     "description": "Name must be unique within a namespace."},
    {"name": "Age", "type": "string", "format": "", "priority": 0,
     "description": "Time since the object was created."},
]


def _age(timestamp: str | None, now: float) -> str:
    """An age at ``now`` (wall-clock seconds) as kubectl shows it: 45s, 12m, 5h, 3d."""
    if not timestamp:
        return "<unknown>"
    created = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    seconds = max(0, int(now - created.timestamp()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def _table(objects: list[KubeObject], rv: str, now: float) -> KubeObject:
    """A meta.k8s.io/v1 Table of Name and Age at ``now``, as ``kubectl get`` asks for."""
    rows = []
    for obj in objects:
        metadata = obj.get("metadata", {})
        rows.append({
            "cells": [metadata.get("name", ""), _age(metadata.get("creationTimestamp"), now)],
            "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                       "metadata": metadata},
        })
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": rv}, "columnDefinitions": _COLUMNS, "rows": rows}


def _table_event(line: bytes, now: float) -> bytes:
    event = orjson.loads(line)
    if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
        obj = event["object"]
        event["object"] = _table([obj], obj["metadata"].get("resourceVersion", ""), now)
    return dumps(event) + b"\n"

