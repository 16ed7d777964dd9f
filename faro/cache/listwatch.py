"""LIST and WATCH requests for one collection, through the kubernetes client's HTTP pool.

:class:`ListWatch` knows the collection (resource, namespace, selectors) and
makes raw JSON requests with the official client's configuration: host, TLS,
client certificates, bearer token (refreshed through its hook) and proxy all
come from the :class:`kubernetes.client.ApiClient` given. Bodies are decoded
with orjson, never into the client's typed models.

Errors come out as :class:`faro.errors.ApiStatusError` for answers with an
error status, and as the underlying urllib3 or socket error for connection
problems.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from kubernetes.client import ApiClient
from kubernetes.utils.keepalive import tcp_keepalive_socket_options

from faro import _http
from faro.cache._stream import LineStream, socket_of
from faro.errors import ApiStatusError
from faro.gvr import GroupVersionResource

CONNECT_TIMEOUT = 10.0
"""Seconds to wait for a TCP (and TLS) connection to the API server."""

LIST_READ_TIMEOUT = 60.0
"""Seconds a LIST page may take between two reads."""


@dataclass(frozen=True, slots=True)
class ListPage:
    """One page of a LIST: its items, the list's resourceVersion and continue token."""

    items: list[dict[str, Any]]
    resource_version: str
    continue_token: str


Track = Callable[[Any], None]
"""Given to a request: called with its response as soon as the headers arrived, and with
None once a LIST body was read, so the caller can shut the connection down from another
thread (:func:`faro.cache._stream.abort_response`) to interrupt the read."""


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
                  track: Track | None = None) -> ListPage:
        """One LIST request. Raises ApiStatusError for an error answer."""
        query: list[tuple[str, str]] = []
        if limit:
            query.append(("limit", str(limit)))
        if continue_token:
            query.append(("continue", continue_token))
        if resource_version:
            query.append(("resourceVersion", resource_version))
        if resource_version_match:
            query.append(("resourceVersionMatch", resource_version_match))
        response = self._request(query, (CONNECT_TIMEOUT, LIST_READ_TIMEOUT), track)
        try:
            body = response.data
        finally:
            if track is not None:
                track(None)
            response.release_conn()
        if response.status != 200:
            raise _http.status_error(response, body, self._target)
        try:
            data = orjson.loads(body)
            metadata = data.get("metadata") or {}
            items = data.get("items") or []
            if not isinstance(items, list):
                raise TypeError("items is not a list")
        except (orjson.JSONDecodeError, AttributeError, TypeError) as exc:
            raise ApiStatusError(
                response.status, "InvalidResponse",
                f"the list response is not a Kubernetes list: {exc}",
                request=f"GET {self._target}") from None
        return ListPage(items, str(metadata.get("resourceVersion") or ""),
                        str(metadata.get("continue") or ""))

    def watch(self, resource_version: str, *, timeout_seconds: int,
              read_timeout: float, track: Track | None = None) -> LineStream:
        """Open a WATCH from ``resource_version`` with bookmarks; returns its line stream.

        ``timeout_seconds`` asks the server to end the watch cleanly after that
        long; ``read_timeout`` is how long a read may wait for data. TCP
        keepalive is switched on for the connection. Raises ApiStatusError for
        an error answer. ``track`` gets the response (the caller clears it once done
        with the stream).
        """
        query = [("watch", "true"), ("allowWatchBookmarks", "true"),
                 ("timeoutSeconds", str(timeout_seconds))]
        if resource_version:
            query.append(("resourceVersion", resource_version))
        response = self._request(query, (CONNECT_TIMEOUT, read_timeout), track)
        if response.status != 200:
            try:
                body = response.read(64 * 1024)
            except Exception:  # the body is only used for the message
                body = b""
            finally:
                response.close()
            raise _http.status_error(response, body, self._target)
        _set_keepalive(response)
        return LineStream(response)

    # -------------------------------------------------------------- internals

    def _request(self, query: list[tuple[str, str]], timeout: tuple[float, float],
                 track: Track | None) -> Any:
        if self.label_selector:
            query.append(("labelSelector", self.label_selector))
        if self.field_selector:
            query.append(("fieldSelector", self.field_selector))
        response = _http.get(self.api_client, self.path, query=query, timeout=timeout,
                             preload_content=False)
        if track is not None:
            track(response)
        return response


def _set_keepalive(response: Any) -> None:
    sock = socket_of(response)
    if sock is None:
        return
    for level, option, value in tcp_keepalive_socket_options():
        if option == socket.TCP_NODELAY:
            continue
        with contextlib.suppress(OSError):
            sock.setsockopt(level, option, value)
