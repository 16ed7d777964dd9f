"""The HTTP endpoint of a controller: Prometheus metrics and the two Kubernetes probes.

:class:`MetricsServer` serves, on one address:

* ``path`` (default ``/metrics``): the registry in Prometheus' text format (gzip when the
  client accepts it);
* ``/healthz``: ``200 ok`` while the ``healthz`` callable says so, else ``503`` and its
  reason (a liveness probe);
* ``/readyz``: the same with ``readyz`` (a readiness probe);
* anything else: ``404``; methods other than GET and HEAD: ``405``.

It runs the standard library's threading HTTP server on daemon threads and logs requests
at DEBUG on the ``faro.metrics`` logger (nothing goes to stderr).
"""

from __future__ import annotations

import gzip
import logging
import socket
import socketserver
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.exposition import gzip_accepted

from faro.config import PROBE_PATHS
from faro.errors import FaroError

logger = logging.getLogger("faro.metrics")

__all__ = ["MetricsServer", "MetricsServerError", "Probe"]

Probe = Callable[[], tuple[bool, str]]
"""A probe: ``(ok, text)``; the text is the response body (the reason when not ok)."""


_POLL_INTERVAL = 0.1
"""Seconds between the serving loop's checks for stop() (the most stop() waits for it)."""

_REQUEST_TIMEOUT = 30.0
"""Seconds a connection may take to send its request (a stalled client frees its thread)."""


class MetricsServerError(FaroError):
    """The metrics server could not start (the address is in use, or not this host's)."""


def _always_ok() -> tuple[bool, str]:
    return True, "ok"


class MetricsServer:
    """Serves ``registry`` at ``path`` and the probes at ``/healthz`` and ``/readyz``.

    ``host``/``port`` are where to listen (``port=0``: any free port; :attr:`address`
    tells which). ``healthz`` and ``readyz`` are called on each probe request, on the
    request's thread, and must be quick; one that raises answers 503 with the exception.
    ``name`` names the serving thread (``<name>-metrics``). A ``path`` that does not
    start with ``/`` or is a probe's path raises :class:`MetricsServerError`.

    :meth:`start` binds before it returns and raises :class:`MetricsServerError` when it
    cannot; :meth:`stop` closes the port and ends the serving thread. Thread-safe; a
    server runs once.
    """

    def __init__(self, registry: CollectorRegistry, *, host: str = "0.0.0.0",
                 port: int = 8080, path: str = "/metrics", healthz: Probe | None = None,
                 readyz: Probe | None = None, name: str = "faro") -> None:
        if not path.startswith("/"):
            raise MetricsServerError(f"metrics path must start with '/', got {path!r}")
        if path in PROBE_PATHS:
            raise MetricsServerError(f"metrics path {path!r} is a probe's path; choose another")
        self.registry = registry
        self.host = host
        self.port = port
        self.path = path
        self.healthz = healthz if healthz is not None else _always_ok
        self.readyz = readyz if readyz is not None else _always_ok
        self.name = name
        self._lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else "serving" if self._httpd else "new"
        return f"<MetricsServer {self.host}:{self.port}{self.path} {state}>"

    # ------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Bind and start serving on a daemon thread; returns once the port is open.

        Raises :class:`MetricsServerError` (``cannot serve metrics on HOST:PORT: ...``)
        when binding fails (then no thread runs), RuntimeError when called twice.
        """
        with self._lock:
            if self._httpd is not None or self._stopped:
                raise RuntimeError(f"{self!r} was already started")
            try:
                httpd = _HTTPServer((self.host, self.port), self)
            except (OSError, OverflowError) as exc:
                raise MetricsServerError(
                    f"cannot serve metrics on {_join(self.host, self.port)}: {exc}") from exc
            thread = threading.Thread(target=httpd.serve_forever,
                                      kwargs={"poll_interval": _POLL_INTERVAL},
                                      name=f"{self.name}-metrics", daemon=True)
            try:
                thread.start()
            except BaseException:
                httpd.server_close()
                raise
            self._httpd, self._thread = httpd, thread
        logger.info("serving metrics on %s", self.url)

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop serving and close the port; idempotent (a no-op before :meth:`start`).

        Requests in progress finish on their own (daemon) threads.
        """
        with self._lock:
            httpd, thread = self._httpd, self._thread
            if self._stopped or httpd is None or thread is None:
                return
            self._stopped = True
        httpd.shutdown()  # returns once serve_forever has returned
        httpd.server_close()
        if thread is not threading.current_thread():
            thread.join(timeout)
        logger.debug("stopped serving metrics on %s", self.url)

    def __enter__(self) -> MetricsServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- address

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` listened on: the actual port when ``port`` was 0.

        Raises RuntimeError before :meth:`start`.
        """
        httpd = self._httpd
        if httpd is None:
            raise RuntimeError(f"{self!r} is not started")
        return self.host, int(httpd.server_address[1])

    @property
    def url(self) -> str:
        """``http://HOST:PORT/PATH`` of the metrics (with the bind host, e.g. 0.0.0.0)."""
        host, port = self.address
        return f"http://{_join(host, port)}{self.path}"

    # ---------------------------------------------------------------- answers

    def _answer(self, path: str, accept_encoding: str) -> tuple[int, bytes, dict[str, str]]:
        """Status, body and headers for a GET of ``path``."""
        if path == self.path:
            try:
                body = generate_latest(self.registry)
            except Exception as exc:
                logger.exception("collecting metrics failed")
                return 500, f"collecting metrics failed: {exc}\n".encode(), _TEXT
            headers = {"Content-Type": CONTENT_TYPE_LATEST}
            if gzip_accepted(accept_encoding):
                body = gzip.compress(body, compresslevel=6)
                headers["Content-Encoding"] = "gzip"
            return 200, body, headers
        if path in PROBE_PATHS:
            probe = self.healthz if path == "/healthz" else self.readyz
            try:
                ok, text = probe()
            except Exception as exc:
                logger.exception("probe %s failed", path)
                ok, text = False, f"probe failed: {type(exc).__name__}: {exc}"
            return (200 if ok else 503), f"{text}\n".encode(), _TEXT
        return 404, b"not found\n", _TEXT


_TEXT = {"Content-Type": "text/plain; charset=utf-8"}


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _HTTPServer(ThreadingHTTPServer):
    """The standard server, bound without a reverse DNS lookup and quiet on errors."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], owner: MetricsServer) -> None:
        self.owner = owner
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind also looks the host's name up (socket.getfqdn), which
        # can take seconds without DNS; nothing here needs it.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("metrics request from %s failed", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    timeout = _REQUEST_TIMEOUT
    server_version = "faro"
    sys_version = ""

    def do_GET(self) -> None:
        self._respond(send_body=True)

    def do_HEAD(self) -> None:
        self._respond(send_body=False)

    def _not_allowed(self) -> None:
        self._send(405, b"method not allowed\n", {**_TEXT, "Allow": "GET, HEAD"}, True)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

    def _respond(self, send_body: bool) -> None:
        path = urlsplit(self.path).path
        status, body, headers = self.server.owner._answer(
            path, self.headers.get("Accept-Encoding", ""))
        self._send(status, body, headers, send_body)

    def _send(self, status: int, body: bytes, headers: dict[str, str], send_body: bool) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)
