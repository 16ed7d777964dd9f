"""HTTP front end of the simulated API server: routing, discovery, CRUD, list and watch.

One thread per connection (``ThreadingHTTPServer``), HTTP/1.1 keep-alive. Watch
streams use chunked transfer encoding with one chunk per event; a batch of
events ready at once is written with a single socket call. A watch parked by
``hold_watches`` gets its response head, then waits in ``Store.wait_released``.
Faults configured on the :class:`Faults` object apply before authentication, as
a broken proxy or overloaded server would answer.
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote

import orjson

from faro._selectors import (
    FieldSelector,
    LabelSelector,
    SelectorError,
    parse_field_selector,
    parse_label_selector,
)
from faro.testing import _openapi, _protobuf
from faro.testing._errors import ApiError, status_details
from faro.testing._fields import selectable
from faro.testing._resources import (
    ResourceType,
    api_group,
    api_group_list,
    group_order,
    version_priority,
)
from faro.testing._store import Entry, Store, Watcher, dumps, watch_line

KUBERNETES_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0",
    "gitCommit": "faro-simulator",
    "gitTreeState": "clean",
    "buildDate": "2024-12-11T00:00:00Z",
    "goVersion": "go1.23.3",
    "compiler": "gc",
    "platform": "linux/amd64",
}

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


@dataclass
class Faults:
    """Injected failures and latency, consulted for every request (thread-safe)."""

    failures: list[_Failure] = field(default_factory=list)
    delays: list[_Delay] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, method: str, target: str) -> tuple[float, ApiError | None]:
        """The delay to apply and the error to answer (if any) for one request."""
        with self.lock:
            delay = sum(d.seconds for d in self.delays if d.take(method, target))
            for failure in self.failures:
                if failure.take(method, target):
                    return delay, ApiError(
                        failure.status,
                        failure.message or f"injected failure ({failure.status})",
                        retry_after=failure.retry_after,
                    )
            self.failures = [f for f in self.failures if f.remaining != 0]
            self.delays = [d for d in self.delays if d.remaining != 0]
        return delay, None


class SimServer(ThreadingHTTPServer):
    """The listening server; handler threads find the shared state here."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        store: Store,
        faults: Faults,
        token: Callable[[], str],
        bookmark_interval: float,
        expired_in_stream: bool,
    ) -> None:
        super().__init__(address, _Handler)
        self.store = store
        self.faults = faults
        self.token = token
        self.bookmark_interval = bookmark_interval
        self.expired_in_stream = expired_in_stream
        self.ssl_context: ssl.SSLContext | None = None
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


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: SimServer
    server_version = "faro-sim"
    sys_version = ""

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
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _json_body(self) -> Any:
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
            raise ApiError(400, f"the body of the request could not be decoded: {error}") \
                from error

    def _send(self, code: int, body: bytes, content_type: str = "application/json",
              headers: Iterable[tuple[str, str]] = ()) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, private")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, code: int, obj: Any) -> None:
        self._send(code, dumps(obj))

    def _send_error(self, error: ApiError) -> None:
        headers = []
        if error.retry_after is not None:
            headers.append(("Retry-After", str(error.retry_after)))
        self._send(error.code, dumps(error.status()), headers=headers)

    # ------------------------------------------------------------- routing

    def _dispatch(self, method: str) -> None:
        path, _, query = self.path.partition("?")
        params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        try:
            delay, failure = self.server.faults.check(method, self.path)
            if delay:
                self.server.stopping.wait(delay)
            if failure is not None:
                self._body()
                raise failure
            if path not in _ANONYMOUS:
                # The scheme is case-insensitive (RFC 7235), as kube-apiserver reads it.
                scheme, _, credentials = (self.headers.get("Authorization") or "").partition(" ")
                if scheme.lower() != "bearer" or credentials != self.server.token():
                    self._body()
                    raise ApiError(401, "Unauthorized")
            self._route(method, path, params)
        except ApiError as error:
            self._send_error(error)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as error:  # a bug in the simulator: answer 500, keep serving
            self._send_error(ApiError(500, f"simulator error: {type(error).__name__}: {error}"))

    def _route(self, method: str, path: str, params: dict[str, str]) -> None:
        segments = [unquote(s) for s in path.strip("/").split("/") if s]
        store = self.server.store
        if method == "GET":
            document = self._discovery(segments)
            if document is not None:
                if isinstance(document, bytes):
                    self._send(200, document, "text/plain; charset=utf-8")
                else:
                    self._send_json(200, document)
                return
        target = self._target(segments, params)
        if target is None:
            raise ApiError(404, "the server could not find the requested resource",
                           reason="NotFound")
        rt, namespace, name, sub = (target.resource, target.namespace, target.name,
                                    target.subresource)
        manager = params.get("fieldManager") or _manager(self.headers.get("User-Agent"))
        dry_run = params.get("dryRun") == "All"
        if name is None:
            if method == "GET":
                labels, fields = _selectors(rt, params)
                if params.get("watch") in ("1", "true"):
                    self._watch(rt, namespace, labels, fields, params)
                else:
                    self._list(rt, namespace, labels, fields, params)
            elif method == "POST":
                entry = store.create(rt, namespace, self._json_body() or {}, manager=manager,
                                     dry_run=dry_run)
                self._send_object(201, entry, rt)
            elif method == "DELETE":
                if "deletecollection" not in rt.verbs:
                    self._body()
                    raise ApiError(405, "the server does not allow this method on the requested "
                                   "resource")
                labels, fields = _selectors(rt, params)
                self._body()
                gone = store.delete_collection(rt, namespace, labels, fields)
                self._send_list(rt, [e.encoded_as(rt.api_version) if rt.custom else e.list_item()
                                     for e in gone], store.rv)
            else:
                raise ApiError(405, f"{method} is not supported on a collection")
            return
        if method == "GET":
            self._send_object(200, store.get(rt, namespace, name), rt)
        elif method == "PUT":
            entry = store.update(rt, namespace, name, self._json_body() or {}, manager=manager,
                                 subresource=sub, dry_run=dry_run)
            self._send_object(200, entry, rt)
        elif method == "PATCH":
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            patch_type = _PATCH_TYPES.get(content_type)
            if patch_type is None:
                self._body()
                raise ApiError(415, f"the body of the request was in an unknown format - "
                               f"accepted media types include: {', '.join(_PATCH_TYPES)}")
            if patch_type == "apply" and not params.get("fieldManager"):
                raise ApiError(422, "PATCH /apply: fieldManager is required for apply requests")
            entry = store.patch(rt, namespace, name, patch_type, self._body(), manager=manager,
                                subresource=sub, dry_run=dry_run)
            self._send_object(200, entry, rt)
        elif method == "DELETE":
            if sub:
                raise ApiError(405, "DELETE is not supported on a subresource")
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
            raise ApiError(405, f"{method} is not supported")

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
            return _resource_list("v1", [rt for rt in served if rt.group == ""])
        groups = _groups(served)
        if segments == ["apis"]:
            return api_group_list(groups)
        if head == "apis" and len(segments) == 2:
            versions = dict(groups).get(segments[1])
            if versions is None:
                raise ApiError(404, "the server could not find the requested resource")
            return api_group(segments[1], versions)
        if head == "apis" and len(segments) == 3:
            group, version = segments[1], segments[2]
            types = [rt for rt in served if rt.group == group and rt.version == version]
            if not types:
                raise ApiError(404, "the server could not find the requested resource")
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
            self._send_json(code, _table([entry.obj], entry.obj["metadata"]["resourceVersion"]))
        else:
            self._send(code, entry.encoded_as(rt.api_version))

    def _send_list(self, rt: ResourceType, items: list[bytes], rv: int, continue_token: str = "",
                   remaining: int | None = None) -> None:
        if self._wants_table():
            table = _table([orjson.loads(i) for i in items], str(rv))
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
        body = head[:-1] + b',"items":[' + b",".join(items) + b"]}"
        self._send(200, body)

    def _list(self, rt: ResourceType, namespace: str | None, labels: LabelSelector,
              fields: FieldSelector, params: dict[str, str]) -> None:
        limit = params.get("limit") or "0"
        if not limit.isdigit():
            raise ApiError(400, f'limit: Invalid value: "{limit}": must be a non-negative integer')
        result = self.server.store.list_page(
            rt, namespace, labels, fields, limit=int(limit),
            continue_token=params.get("continue", ""),
            resource_version=params.get("resourceVersion", ""),
            match=params.get("resourceVersionMatch", ""),
            bare_items=not rt.custom and not self._wants_table(),
        )
        self._send_list(rt, result.items, result.resource_version, result.continue_token,
                        result.remaining)

    # --------------------------------------------------------------- watch

    def _watch(self, rt: ResourceType, namespace: str | None, labels: LabelSelector,
               fields: FieldSelector, params: dict[str, str]) -> None:
        server = self.server
        store = server.store
        timeout = params.get("timeoutSeconds")
        if timeout is not None and not timeout.isdigit():
            raise ApiError(400, f'timeoutSeconds: Invalid value: "{timeout}"')
        end = time.monotonic() + (int(timeout) if timeout else 1800.0)
        bookmarks = params.get("allowWatchBookmarks") in ("1", "true")
        resource_version = params.get("resourceVersion", "")
        table = self._wants_table()
        try:
            watcher, initial = store.open_watch(rt, namespace, labels, fields, resource_version,
                                                self.path)
        except ApiError as error:
            if not (server.expired_in_stream and error.code in (410, 504)):
                raise
            self._start_stream()
            self._write_lines([watch_line("ERROR", dumps(error.status()))], table)
            self._end_stream()
            return
        conn = self.request
        watcher.on_abrupt = lambda: _shutdown(conn)
        self._start_stream()
        try:
            self._stream(watcher, initial, end, bookmarks, table)
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True
        finally:
            store.close_watch(watcher)

    def _stream(self, watcher: Watcher, initial: list[bytes], end: float, bookmarks: bool,
                table: bool) -> None:
        server = self.server
        store = server.store
        # A watch parked by hold_watches() has its response head and nothing more until
        # it is released; it then streams from where it asked to start, at full speed.
        if watcher.held and not store.wait_released(watcher, end):
            if watcher.abrupt or watcher.epoch != store.epoch:
                self.close_connection = True
                _shutdown(self.request)
                return
            self._end_stream()  # dropped cleanly, or its timeoutSeconds passed while parked
            return
        for start in range(0, len(initial), 512):
            self._write_lines(initial[start:start + 512], table)
        interval = server.bookmark_interval
        next_bookmark = time.monotonic() + interval
        while not server.stopping.is_set():
            if watcher.garbage:
                watcher.garbage -= 1
                self._write_lines([b'{"type":"MODIFIED","object":{"kind":\n'], False)
                continue
            try:
                changes = store.next_changes(
                    watcher, min(end, next_bookmark) if bookmarks else end)
            except ApiError as error:  # the history this watcher needs is gone
                self._write_lines([watch_line("ERROR", dumps(error.status()))], table)
                break
            if watcher.dropped or watcher.epoch != store.epoch:
                if watcher.abrupt or watcher.epoch != store.epoch:
                    self.close_connection = True
                    _shutdown(self.request)
                    return
                break
            if changes:
                lines = [line for c in changes if (line := watcher.select(c)) is not None]
                watcher.cursor = changes[-1].rv
                if lines:
                    self._write_lines(lines, table)
                continue
            now = time.monotonic()
            if now >= end:
                break
            if bookmarks and now >= next_bookmark:
                bookmark = {"kind": watcher.resource.kind,
                            "apiVersion": watcher.resource.api_version,
                            "metadata": {"resourceVersion": str(watcher.cursor)}}
                self._write_lines([watch_line("BOOKMARK", dumps(bookmark))], False)
                next_bookmark = now + interval
        self._end_stream()

    def _start_stream(self) -> None:
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
            lines = [_table_event(line) for line in lines]
        self.wfile.write(b"".join(b"%x\r\n%b\r\n" % (len(line), line) for line in lines))


# ------------------------------------------------------------------ helpers


def _manager(user_agent: str | None) -> str:
    """The field manager the real server derives from a User-Agent (its first part)."""
    return (user_agent or "unknown").split("/")[0] or "unknown"


def _selectors(rt: ResourceType,
               params: dict[str, str]) -> tuple[LabelSelector, FieldSelector]:
    try:
        labels = parse_label_selector(params.get("labelSelector", ""))
    except SelectorError as error:
        raise ApiError(400, f"unable to parse requirement: {error}") from error
    try:
        fields = parse_field_selector(params.get("fieldSelector", ""))
    except SelectorError as error:
        raise ApiError(400, f"invalid field selector: {error}") from error
    supported = selectable(rt)
    for name in sorted(fields.fields()):
        if name not in supported:
            raise ApiError(400, f'"{name}" is not a known field selector: only '
                           + ", ".join(f'"{field}"' for field in supported))
    return labels, fields


def _groups(served: list[ResourceType]) -> list[tuple[str, list[str]]]:
    versions: dict[str, set[str]] = {}
    for rt in served:
        if rt.group:
            versions.setdefault(rt.group, set()).add(rt.version)
    return [(group, sorted(versions[group], key=version_priority))
            for group in sorted(versions, key=group_order)]


def _resource_list(group_version: str, types: list[ResourceType]) -> dict[str, Any]:
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": [entry for rt in types for entry in rt.discovery_entries()],
    }


_COLUMNS = [
    {"name": "Name", "type": "string", "format": "name", "priority": 0,
     "description": "Name must be unique within a namespace."},
    {"name": "Age", "type": "string", "format": "", "priority": 0,
     "description": "Time since the object was created."},
]


def _age(timestamp: str | None) -> str:
    """An age as kubectl shows it: 45s, 12m, 5h, 3d."""
    if not timestamp:
        return "<unknown>"
    created = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    seconds = max(0, int((datetime.now(timezone.utc) - created).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def _table(objects: list[dict[str, Any]], rv: str) -> dict[str, Any]:
    """A meta.k8s.io/v1 Table of Name and Age, as ``kubectl get`` asks for."""
    rows = []
    for obj in objects:
        metadata = obj.get("metadata", {})
        rows.append({
            "cells": [metadata.get("name", ""), _age(metadata.get("creationTimestamp"))],
            "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                       "metadata": metadata},
        })
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": rv}, "columnDefinitions": _COLUMNS, "rows": rows}


def _table_event(line: bytes) -> bytes:
    event = orjson.loads(line)
    if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
        obj = event["object"]
        event["object"] = _table([obj], obj["metadata"].get("resourceVersion", ""))
    return dumps(event) + b"\n"

