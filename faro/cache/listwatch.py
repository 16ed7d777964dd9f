"""LIST and WATCH requests for one collection, through the kubernetes client's HTTP pool.

:class:`ListWatch` knows the collection (resource, namespace, selectors) and
makes raw JSON requests with the official client's configuration: host, TLS,
client certificates, bearer token (refreshed through its hook) and proxy all
come from the :class:`kubernetes.client.ApiClient` given. Bodies are decoded
with orjson, never into the client's typed models.

Errors come out as :class:`faro.errors.ApiStatusError` for answers with an
error status, and as the underlying urllib3 or socket error for connection
problems.

A request can be interrupted from another thread at any point, even while it waits
for the server's response head (:class:`Interrupter`): the requests go through a pool of
their own in the client's ``PoolManager`` (same TLS, credentials and limits; TCP
keepalive on), whose connections tell the interrupter which socket is in use, and which
grows with the informers running (one connection each). Behind an
HTTP or SOCKS proxy they go through the client's pool instead, and only a response
already under way can be interrupted.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

import orjson
import urllib3
from kubernetes.client import ApiClient
from kubernetes.utils.keepalive import tcp_keepalive_socket_options

from faro import _http
from faro.cache._decode import ListDecodeError, Undecodable, split_list, too_deep
from faro.cache._stream import LineStream, abort_response, socket_of
from faro.errors import ApiStatusError
from faro.gvr import GroupVersionResource

CONNECT_TIMEOUT = 10.0
"""Seconds to wait for a TCP (and TLS) connection to the API server."""

LIST_READ_TIMEOUT = 60.0
"""Seconds a LIST page may take between two reads."""


@dataclass(frozen=True, slots=True)
class ListPage:
    """One page of a LIST: its items, the list's resourceVersion and continue token, and
    the items that could not be decoded (left out of ``items``)."""

    items: list[dict[str, Any]]
    resource_version: str
    continue_token: str
    undecodable: list[Undecodable] = field(default_factory=list)


class Interrupted(ConnectionAbortedError):
    """A request was interrupted by :meth:`Interrupter.abort`."""


class Interrupter:
    """Lets another thread interrupt the requests of one thread (thread-safe).

    Given to :meth:`ListWatch.list_page` and :meth:`ListWatch.watch`, it knows the
    connection of the request in progress, from before it is sent until the response was
    read (or the watch stream closed). :meth:`abort` shuts that connection's socket down,
    so the request fails at once wherever it is (waiting for the response head, reading
    the body); every later request fails with :class:`Interrupted` before it is sent.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._aborted = False
        self._connection: Any = None
        self._response: Any = None

    @property
    def aborted(self) -> bool:
        return self._aborted

    def abort(self) -> None:
        """Interrupt the request in progress and every later one (any thread)."""
        with self._lock:
            self._aborted = True  # attach() and connected() refuse what comes after
        self.cut()

    def cut(self) -> None:
        """Interrupt the request in progress only (any thread); later ones are sent."""
        with self._lock:
            connection, response = self._connection, self._response
        if connection is not None:
            _shutdown(getattr(connection, "sock", None))
        if response is not None:
            abort_response(response)

    def attach(self, connection: Any) -> None:
        """The request about to be sent on ``connection`` (its thread)."""
        with self._lock:
            if self._aborted:
                raise Interrupted("the request was interrupted before it was sent")
            self._connection = connection

    def connected(self, connection: Any) -> None:
        """``connection`` has just opened its socket (its thread)."""
        with self._lock:
            aborted = self._aborted and self._connection is connection
        if aborted:
            _shutdown(getattr(connection, "sock", None))

    def track(self, response: Any) -> None:
        """The response whose body is being read; None: done with the request (its
        connection is forgotten before it goes back to the pool)."""
        with self._lock:
            self._response = response
            if response is None:
                self._connection = None
            aborted = self._aborted
        if aborted and response is not None:
            abort_response(response)


class ListWatch:
    """Makes the LIST and WATCH requests of one collection (thread-safe; no state of its own).

    ``list_page`` and ``watch`` take ``track`` (see :data:`Track`) so that the caller, not
    this object, keeps the response in flight.
    """

    def __init__(self, api_client: ApiClient, resource: GroupVersionResource, *,
                 namespace: str | None = None, label_selector: str | None = None,
                 field_selector: str | None = None) -> None:
        self.api_client = api_client
        self.resource = resource
        self.namespace = namespace or None
        self.label_selector = label_selector or None
        self.field_selector = field_selector or None
        self.path = resource.path(self.namespace)
        selectors = [(name, value) for name, value in (("labelSelector", self.label_selector),
                                                       ("fieldSelector", self.field_selector))
                     if value]
        # Errors name the collection as requested, selectors included: a server that rejects
        # one (400 for a field it cannot select on) is then understood from the message alone,
        # and two informers of one resource and namespace are told apart.
        self._target = self.path + ("?" + "&".join(f"{n}={v}" for n, v in selectors)
                                    if selectors else "")

    def describe(self) -> str:
        """The collection as people read it: ``v1/configmaps in namespace "ns" (app=x)``."""
        text = str(self.resource)
        if self.namespace:
            text += f' in namespace "{self.namespace}"'
        selectors = [s for s in (self.label_selector, self.field_selector) if s]
        if selectors:
            text += f" ({', '.join(selectors)})"
        return text

    def list_page(self, *, limit: int = 0, continue_token: str = "",
                  resource_version: str = "", resource_version_match: str = "",
                  interrupter: Interrupter | None = None) -> ListPage:
        """One LIST request. Raises ApiStatusError for an error answer.

        A body that orjson refuses for its nesting depth is decoded item by item: the
        items that cannot be are in the page's ``undecodable``.
        """
        query: list[tuple[str, str]] = []
        if limit:
            query.append(("limit", str(limit)))
        if continue_token:
            query.append(("continue", continue_token))
        if resource_version:
            query.append(("resourceVersion", resource_version))
        if resource_version_match:
            query.append(("resourceVersionMatch", resource_version_match))
        response = self._request(query, (CONNECT_TIMEOUT, LIST_READ_TIMEOUT), interrupter)
        try:
            body = response.data
        finally:
            if interrupter is not None:
                interrupter.track(None)
            response.release_conn()
        if response.status != 200:
            raise _http.status_error(response, body, self._target)
        undecodable: list[Undecodable] = []
        try:
            try:
                data = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                if not too_deep(exc):
                    raise
                data, items, undecodable = split_list(body)
                data["items"] = items
            metadata = data.get("metadata") or {}
            items = data.get("items") or []
            if not isinstance(items, list):
                raise TypeError("items is not a list")
        except (orjson.JSONDecodeError, ListDecodeError, AttributeError, TypeError) as exc:
            raise ApiStatusError(
                response.status, "InvalidResponse",
                f"the list response is not a Kubernetes list: {exc}",
                request=f"GET {self._target}") from None
        return ListPage(items, str(metadata.get("resourceVersion") or ""),
                        str(metadata.get("continue") or ""), undecodable)

    def watch(self, resource_version: str, *, timeout_seconds: int,
              read_timeout: float, interrupter: Interrupter | None = None) -> LineStream:
        """Open a WATCH from ``resource_version`` with bookmarks; returns its line stream.

        ``timeout_seconds`` asks the server to end the watch cleanly after that
        long; ``read_timeout`` is how long a read may wait for data. TCP
        keepalive is switched on for the connection. Raises ApiStatusError for
        an error answer. ``interrupter`` is given the response (the caller clears it
        with ``interrupter.track(None)`` once done with the stream).
        """
        query = [("watch", "true"), ("allowWatchBookmarks", "true"),
                 ("timeoutSeconds", str(timeout_seconds))]
        if resource_version:
            query.append(("resourceVersion", resource_version))
        response = self._request(query, (CONNECT_TIMEOUT, read_timeout), interrupter)
        if response.status != 200:
            try:
                body = response.read(64 * 1024)
            except Exception:  # the body is only used for the message
                body = b""
            finally:
                if interrupter is not None:
                    interrupter.track(None)
                response.close()
            raise _http.status_error(response, body, self._target)
        _set_keepalive(response)
        return LineStream(response)

    # -------------------------------------------------------------- internals

    def _request(self, query: list[tuple[str, str]], timeout: tuple[float, float],
                 interrupter: Interrupter | None) -> Any:
        if self.label_selector:
            query.append(("labelSelector", self.label_selector))
        if self.field_selector:
            query.append(("fieldSelector", self.field_selector))
        if interrupter is None:
            return _http.get(self.api_client, self.path, query=query, timeout=timeout,
                             preload_content=False)
        try:
            response = _interruptible_get(self.api_client, self.path, query, timeout,
                                          interrupter)
        except BaseException:
            # Forget the connection: back in the pool, it may serve another thread next.
            interrupter.track(None)
            raise
        finally:
            _local.interrupter = None
        interrupter.track(response)
        return response


# ------------------------------------------------------------- interruptible requests

_local = threading.local()  # .interrupter: the Interrupter of this thread's request
_tracking_classes: dict[type[Any], type[Any]] = {}
_tracking_lock = threading.Lock()


def _interruptible_get(api_client: ApiClient, path: str, query: list[tuple[str, str]],
                       timeout: tuple[float, float], interrupter: Interrupter) -> Any:
    """``GET path`` (as :func:`faro._http.get`) on a connection ``interrupter`` can cut."""
    pool_manager = api_client.rest_client.pool_manager
    if type(pool_manager) is not urllib3.PoolManager:  # a proxy: the client's own pool
        if interrupter.aborted:
            raise Interrupted("the request was interrupted before it was sent")
        return _http.get(api_client, path, query=query, timeout=timeout,
                         preload_content=False)
    method, url, headers, _body, _post = api_client.param_serialize(
        "GET", path, query_params=query, header_params={"Accept": "application/json"},
        auth_settings=["BearerToken"])
    pool = _pool(pool_manager, url)
    _make_room(pool)
    _local.interrupter = interrupter
    try:
        return pool.urlopen(
            method, urllib3.util.parse_url(url).request_uri, headers=headers,
            preload_content=False, release_conn=False, retries=False, redirect=False,
            assert_same_host=False,
            timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]))
    except ValueError as error:
        raise _http.without_credentials(error) from None


def _pool(pool_manager: urllib3.PoolManager, url: str) -> Any:
    """The informers' pool for ``url`` in ``pool_manager``: its settings, plus TCP
    keepalive, and connections that report to this thread's interrupter."""
    options = list(pool_manager.connection_pool_kw.get("socket_options")
                   or urllib3.connection.HTTPConnection.default_socket_options)
    for option in tcp_keepalive_socket_options():
        if option not in options:
            options.append(option)
    # Keyed by its socket options (the marker last makes them differ from the client's
    # own even when those already have keepalive on), so it is a pool of faro's alone.
    options.append(_MARKER)
    pool = pool_manager.connection_from_url(url, pool_kwargs={"socket_options": options})
    base = pool.ConnectionCls
    if not getattr(base, "_faro_tracking", False):
        pool.ConnectionCls = _tracking_class(base)
    return pool


_MARKER = (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)


def _make_room(pool: Any) -> None:
    """Size ``pool`` to the requests in flight: when it has no idle connection, this
    request opens one, so the pool takes one more back.

    Every running informer keeps a request in flight (its watch), so the pool must take
    back as many connections as informers run, not the client's
    ``connection_pool_maxsize``: beyond that, urllib3 closes each one returned ("Connection
    pool is full, discarding connection") and the next request opens a new one. The size
    is only a cap and may grow past the need (a watch's connection is closed, not
    returned), which costs nothing: the pool holds only connections that were returned,
    never more than were in flight at once.
    """
    idle = pool.pool
    if idle is not None and idle.empty():
        with _tracking_lock:
            idle.maxsize += 1


def _tracking_class(base: type[Any]) -> type[Any]:
    with _tracking_lock:
        cls = _tracking_classes.get(base)
        if cls is None:
            cls = _tracking_classes[base] = type(
                f"Interruptible{base.__name__}", (_Tracking, base), {})
        return cls


class _Tracking:
    """Mixed into the pool's connection class: tells the requesting thread's interrupter
    (if any) which connection its request uses, and when the socket is opened."""

    _faro_tracking = True

    def request(self, *args: Any, **kwargs: Any) -> Any:
        interrupter: Interrupter | None = getattr(_local, "interrupter", None)
        if interrupter is not None:
            interrupter.attach(self)
        return super().request(*args, **kwargs)  # type: ignore[misc]

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        interrupter: Interrupter | None = getattr(_local, "interrupter", None)
        if interrupter is not None:
            interrupter.connected(self)


def _shutdown(sock: Any) -> None:
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _set_keepalive(response: Any) -> None:
    sock = socket_of(response)
    if sock is None:
        return
    for level, option, value in tcp_keepalive_socket_options():
        if option == socket.TCP_NODELAY:
            continue
        with contextlib.suppress(OSError):
            sock.setsockopt(level, option, value)
