"""What an API server serves: its groups, versions and resources (discovery).

:class:`Discovery` reads the legacy discovery documents (``/api``,
``/api/{version}``, ``/apis``, ``/apis/{group}/{version}``) through the official
client's connection pool, keeps every version of every group (not only the
preferred one) and, of their resources, those that can be listed and watched,
subresources left out. The result is cached for ``ttl`` seconds.

As client-go's discovery, it tolerates a group/version that fails (an
aggregated API whose backend is down answers 503): that group/version is left
out with a warning and asked again on the next refresh. Only ``/api`` or
``/apis`` failing is an error (:class:`DiscoveryError`).
"""

from __future__ import annotations

import difflib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from kubernetes.client import ApiClient

from faro import _http
from faro.clock import Clock, RealClock
from faro.errors import ApiStatusError, FaroError
from faro.gvr import GroupVersionResource

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
"""Seconds to wait for a connection to the API server."""

READ_TIMEOUT = 30.0
"""Seconds a discovery response may take between two reads."""

MAX_PARALLEL = 4
"""Group/version documents fetched at the same time (fewer when the client's pool keeps
fewer connections: its ``connection_pool_maxsize``)."""

_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass(frozen=True, slots=True)
class APIResource:
    """One resource the server serves at one group/version.

    ``preferred`` is true when ``gvr.version`` is the group's preferred version
    (for the core group: the first version ``/api`` lists, ``v1``).
    """

    gvr: GroupVersionResource
    kind: str
    namespaced: bool
    verbs: frozenset[str]
    short_names: tuple[str, ...] = ()
    preferred: bool = False

    @property
    def scope(self) -> str:
        """``Namespaced`` or ``Cluster``, as a CRD's ``spec.scope`` writes it."""
        return "Namespaced" if self.namespaced else "Cluster"

    @property
    def watchable(self) -> bool:
        """The resource supports both ``list`` and ``watch`` (what an informer needs)."""
        return "list" in self.verbs and "watch" in self.verbs


class DiscoveryError(FaroError):
    """The server's discovery (``/api`` or ``/apis``) could not be read."""


class Discovery:
    """What the API server serves, cached in memory (thread-safe).

    Every group and every version of it (not only the preferred one), keeping
    the resources that support both ``list`` and ``watch``; subresources (names
    with a ``/``) are left out. The cache is refreshed when it is older than
    ``ttl`` seconds, on demand (``refresh=True``, :meth:`invalidate`) and by
    :meth:`find` on a miss, at most once per ``min_refresh_interval`` seconds.
    ``clock`` measures those ages (:class:`faro.testing.FakeClock` in tests).
    """

    def __init__(self, api_client: ApiClient, *, ttl: float = 300.0,
                 min_refresh_interval: float = 2.0, clock: Clock | None = None) -> None:
        self._api_client = api_client
        self._ttl = ttl
        self._min_refresh_interval = min_refresh_interval
        self._clock: Clock = clock if clock is not None else RealClock()
        # Held during a refresh, so concurrent callers wait for one fetch instead of each
        # making their own.
        self._lock = threading.Lock()
        self._resources: tuple[APIResource, ...] | None = None
        self._by_gvr: dict[GroupVersionResource, APIResource] = {}
        # Group/versions ("v1", "apps/v1") the last refresh could not read, with why.
        self._failed: dict[str, str] = {}
        self._fetched_at = 0.0
        self._attempted_at: float | None = None

    # ------------------------------------------------------------------ queries

    def resources(self, *, refresh: bool = False) -> tuple[APIResource, ...]:
        """Every served resource that supports list and watch, in the server's order.

        Fetches when nothing is cached, when the cache is older than ``ttl``, or
        with ``refresh=True``. A group/version that cannot be read is left out
        (with a warning). Raises :class:`DiscoveryError` when ``/api`` or
        ``/apis`` cannot be read, or no group/version can; the previous result
        is kept for the next call.
        """
        with self._lock:
            return self._current_locked(refresh)

    def find(self, gvr: GroupVersionResource | str) -> APIResource | None:
        """The served resource ``gvr`` (a value or a string like ``apps/v1/deployments``), or None.

        On a miss the cache is refreshed once, unless it is younger than
        ``min_refresh_interval`` (or a refresh was attempted that recently), so a
        CRD established since the last refresh is found without hammering the
        server with a resource that does not exist.

        Raises ValueError for a malformed string, and :class:`DiscoveryError`
        when a refresh fails or when ``gvr``'s group/version could not be read
        in the last refresh (then nobody knows whether it is served: None would
        be a guess).
        """
        key = GroupVersionResource.parse(gvr) if isinstance(gvr, str) else gvr
        with self._lock:
            self._current_locked(False)
            found = self._by_gvr.get(key)
            if found is not None:
                return found
            last = self._attempted_at if self._attempted_at is not None else self._fetched_at
            if self._clock.now() - last >= self._min_refresh_interval:
                self._refresh_locked()
                found = self._by_gvr.get(key)
            reason = self._failed.get(key.api_version)
            if found is None and reason is not None:
                raise DiscoveryError(f"discovery of {key.api_version} failed ({reason}), so "
                                     f"whether {key} is served is not known")
            return found

    def invalidate(self) -> None:
        """Forget the cache: the next query fetches again."""
        with self._lock:
            self._resources = None
            self._by_gvr = {}
            self._failed = {}
            self._attempted_at = None

    def close_matches(self, gvr: GroupVersionResource | str, n: int = 3) -> list[str]:
        """Up to ``n`` served resources (``group/version/resource`` strings) that look like ``gvr``.

        First the resources whose plural, singular (kind), short name or plural
        with an ``s``/``es`` added is the name asked for (``v1/pod`` and
        ``v1/po`` give ``v1/pods``), same group and version first; then the
        closest strings by :func:`difflib.get_close_matches`. ``gvr`` may be any
        text, also one :meth:`find` would reject.
        """
        text = str(gvr) if isinstance(gvr, GroupVersionResource) else gvr.strip()
        parts = text.split("/")
        group: str | None
        version: str | None
        if len(parts) == 2:
            group, version = "", parts[0]
        elif len(parts) == 3:
            group, version = parts[0], parts[1]
        else:
            group = version = None
        name = parts[-1].lower()
        served = self.resources()
        ranked: list[tuple[tuple[int, int, int], str]] = []
        for resource in served:
            plural = resource.gvr.resource
            aliases = {plural, resource.kind.lower(), *resource.short_names}
            if name in aliases or plural in (name + "s", name + "es"):
                rank = (int(group is not None and resource.gvr.group != group),
                        int(version is not None and resource.gvr.version != version),
                        int(not resource.preferred))
                ranked.append((rank, str(resource.gvr)))
        ranked.sort(key=lambda item: item[0])
        names = [str(r.gvr) for r in served]
        out: list[str] = []
        for candidate in [*(s for _, s in ranked), *difflib.get_close_matches(text, names, n=n)]:
            if candidate not in out:
                out.append(candidate)
        return out[:n]

    @staticmethod
    def is_builtin_group(group: str) -> bool:
        """Whether ``group`` is one only Kubernetes itself serves, so no CRD can add to it.

        True for the core group (``""``), a group without a dot (``apps``,
        ``batch``, ``policy``...) and a group ending in ``.k8s.io``. The API
        server refuses a CRD whose group has no dot, and one in a ``*.k8s.io``
        or ``*.kubernetes.io`` group unless it carries the
        ``api-approved.kubernetes.io`` annotation, which only Kubernetes
        projects' own CRDs have (Gateway API's ``gateway.networking.k8s.io``,
        CSI snapshots' ``snapshot.storage.k8s.io``); aggregated APIs such as
        ``metrics.k8s.io`` are not built in either. So a resource missing from
        a built-in group is a typo, except in those groups, which appear when
        their CRDs or API service are installed.
        """
        return group == "" or "." not in group or group.endswith(".k8s.io")

    # ---------------------------------------------------------------- internals

    def _current_locked(self, refresh: bool) -> tuple[APIResource, ...]:
        if (refresh or self._resources is None
                or self._clock.now() - self._fetched_at >= self._ttl):
            self._refresh_locked()
        assert self._resources is not None
        return self._resources

    def _refresh_locked(self) -> None:
        started = self._clock.now()
        self._attempted_at = started
        resources, failed = self._fetch()
        self._resources = resources
        self._by_gvr = {r.gvr: r for r in resources}
        self._failed = failed
        self._fetched_at = started

    def _fetch(self) -> tuple[tuple[APIResource, ...], dict[str, str]]:
        core = self._root("/api")
        groups = self._root("/apis")
        # (group, version, preferred) in the server's order: the core group first.
        targets: list[tuple[str, str, bool]] = []
        try:
            for i, version in enumerate(core.get("versions") or []):
                targets.append(("", str(version), i == 0))
            for entry in groups.get("groups") or []:
                name = str(entry["name"])
                preferred = (entry.get("preferredVersion") or {}).get("version")
                for item in entry.get("versions") or []:
                    version = str(item["version"])
                    targets.append((name, version, version == preferred))
        except (KeyError, TypeError, AttributeError) as error:
            raise DiscoveryError(f"discovery: the server's /api or /apis document is not "
                                 f"an API group list ({error!r})") from error
        if not targets:
            return (), {}
        pool_size = getattr(self._api_client.configuration, "connection_pool_maxsize", None)
        parallel = max(1, min(MAX_PARALLEL, pool_size or MAX_PARALLEL))
        results = _map_on_daemons(self._group_version, targets, parallel)
        out: dict[GroupVersionResource, APIResource] = {}
        failed: dict[str, str] = {}
        for (group, version, _), result in zip(targets, results, strict=True):
            if isinstance(result, str):
                failed[f"{group}/{version}" if group else version] = result
                continue
            for resource in result:
                out.setdefault(resource.gvr, resource)
        if len(failed) == len(targets):
            # Nothing at all: the server is probably going away. Caching an empty answer
            # would make every resource look absent until the ttl passes.
            raise DiscoveryError(f"discovery: every group/version of {self._url('')} failed "
                                 f"(first: {next(iter(failed.values()))})")
        return tuple(out.values()), failed

    def _root(self, path: str) -> dict[str, Any]:
        try:
            data = self._get(path)
        except DiscoveryError:
            raise
        except Exception as error:  # ApiStatusError, urllib3 and socket errors
            raise DiscoveryError(
                f"discovery request GET {self._url(path)} failed: {error}") from error
        return data

    def _group_version(self, target: tuple[str, str, bool]) -> list[APIResource] | str:
        """The resources of one group/version, or why they could not be read."""
        group, version, preferred = target
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        try:
            data = self._get(path)
            return _resources(data, group, version, preferred)
        except Exception as error:  # one group/version: skipped, as client-go does
            logger.warning("discovery: skipping %s (GET %s failed: %s); it is asked again on "
                           "the next refresh", f"{group}/{version}" if group else version,
                           self._url(path), error)
            if isinstance(error, ApiStatusError):
                return str(error)
            return f"GET {self._url(path)}: {error}"

    def _get(self, path: str) -> dict[str, Any]:
        response = _http.get(self._api_client, path, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
                             preload_content=True)
        body = response.data
        if response.status != 200:
            raise _http.status_error(response, body, path)
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            raise DiscoveryError(f"discovery: GET {self._url(path)} did not return JSON: "
                                 f"{error}") from error
        if not isinstance(data, dict):
            raise DiscoveryError(f"discovery: GET {self._url(path)} did not return an object")
        return data

    def _url(self, path: str) -> str:
        host = str(getattr(self._api_client.configuration, "host", "") or "")
        return host.rstrip("/") + path


def _map_on_daemons(function: Callable[[_T], _R], items: Sequence[_T],
                    parallel: int) -> list[_R]:
    """``[function(item) for item in items]``, run on up to ``parallel`` daemon threads.

    Daemon threads, unlike a ThreadPoolExecutor's (which the interpreter joins at exit), never
    keep a program that ends mid-discovery waiting for the read timeout. The first exception
    an item raised is raised again here, after every thread has ended.
    """
    results: list[Any] = [None] * len(items)
    errors: list[BaseException] = []
    lock = threading.Lock()
    pending = iter(range(len(items)))

    def work() -> None:
        while True:
            with lock:
                index = next(pending, None)
            if index is None:
                return
            try:
                results[index] = function(items[index])
            except BaseException as error:  # raised again by the caller's thread
                with lock:
                    errors.append(error)
                return

    threads = [threading.Thread(target=work, name=f"faro-discovery_{n}", daemon=True)
               for n in range(min(parallel, len(items)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def _resources(data: dict[str, Any], group: str, version: str,
               preferred: bool) -> list[APIResource]:
    """The list-and-watch resources of one APIResourceList document."""
    out: list[APIResource] = []
    for entry in data.get("resources") or []:
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name or "/" in name:
            continue
        verbs = frozenset(str(v) for v in entry.get("verbs") or ())
        if "list" not in verbs or "watch" not in verbs:
            continue
        out.append(APIResource(
            gvr=GroupVersionResource(group, version, name),
            kind=str(entry.get("kind") or ""),
            namespaced=bool(entry.get("namespaced")),
            verbs=verbs,
            short_names=tuple(str(s) for s in entry.get("shortNames") or ()),
            preferred=preferred,
        ))
    return out
