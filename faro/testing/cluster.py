"""``SimulatedCluster``: a Kubernetes API server in a thread, for tests and demos.

Usage::

    from faro.testing import SimulatedCluster

    with SimulatedCluster() as cluster:
        cluster.create({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "demo", "namespace": "default"}})
        # point kubectl, the kubernetes client or faro at cluster.kubeconfig_path

The server listens on 127.0.0.1 (a free port unless one is given), requires the
bearer token written into its kubeconfig, and optionally serves HTTPS with a CA
of its own. Objects, resourceVersions, list and watch follow kube-apiserver's
rules; see ``docs/simulator.md`` for what is and is not simulated.

Every method is thread-safe. Helpers act on the server's storage directly and
have the same effects (events, resourceVersions, errors) as the equivalent API
requests; errors raise :class:`ApiError`.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import orjson
import yaml

from faro._names import KubeObject
from faro.clock import Clock, RealClock
from faro.testing._errors import ApiError
from faro.testing._selection import parse_selection
from faro.testing._server import Faults, SimServer
from faro.testing._storage import Entry
from faro.testing._store import Store
from faro.testing._watch import WatchHub

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

__all__ = ["ApiError", "SimulatedCluster"]


class SimulatedCluster:
    """A simulated kube-apiserver on 127.0.0.1, usable as a context manager.

    Args:
        port: TCP port; 0 picks a free one.
        host: address to listen on (loopback by default; keep it that way in tests).
        tls: serve HTTPS with a generated CA (needs the ``cryptography`` package,
            installed by ``faro[sim]``).
        token: bearer token clients must send; random by default.
        kubeconfig_path: where to write the kubeconfig; a temporary file
            (removed by :meth:`stop`) by default.
        history_size: how many changes the server remembers for watch resumption
            and consistent paging (at least this many; older ones give 410).
        bookmark_interval: seconds between BOOKMARK events on watches that allow them.
        too_large_rv_wait: how long a list or get at a future resourceVersion
            waits before it fails with 504 "Too large resource version" (the
            real server waits 3 s; a watch from a future resourceVersion is
            accepted and waits for changes after it, as on the real server).
        expired_in_stream: answer a watch that starts from a compacted
            resourceVersion with HTTP 200 and an in-stream ERROR event (as
            current servers do); False answers HTTP 410 instead.
        namespace_cleanup_delay: seconds between a namespace turning Terminating
            and the deletion of its objects (the real namespace controller is
            asynchronous too, which ``kubectl delete -f`` relies on).
        anonymous_auth: a request without credentials is ``system:anonymous``,
            as on a real server with anonymous authentication (its default):
            403 Forbidden in RBAC's words outside /version and the health
            endpoints. False (the default): 401 Unauthorized.
        clock: the time the server keeps (timestamps, watch timeouts and bookmarks, the
            wait for a future resourceVersion, namespace cleanup); real time by default.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        tls: bool = False,
        token: str | None = None,
        kubeconfig_path: str | os.PathLike[str] | None = None,
        history_size: int = 10_000,
        bookmark_interval: float = 60.0,
        too_large_rv_wait: float = 3.0,
        expired_in_stream: bool = True,
        namespace_cleanup_delay: float = 1.0,
        anonymous_auth: bool = False,
        clock: Clock | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._tls = tls
        self._token = token or secrets.token_urlsafe(24)
        self._token_lock = threading.Lock()
        self._requested_kubeconfig = Path(kubeconfig_path) if kubeconfig_path else None
        self._bookmark_interval = bookmark_interval
        self._expired_in_stream = expired_in_stream
        self._anonymous_auth = anonymous_auth
        self._clock: Clock = clock if clock is not None else RealClock()
        self._store = Store(history_size=history_size, too_large_wait=too_large_rv_wait,
                            namespace_cleanup_delay=namespace_cleanup_delay, clock=self._clock)
        self._faults = _CountingFaults()
        self._server: SimServer | None = None
        self._thread: threading.Thread | None = None
        self._tempdir: str | None = None
        self._kubeconfig: Path | None = None
        self._ca_pem: bytes | None = None
        self._api_client: ApiClient | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> SimulatedCluster:
        """Start serving and write the kubeconfig. Returns self. Idempotent.

        Raises OSError when the port cannot be bound (no ``filename``) or the
        kubeconfig cannot be written (``filename`` set), and RuntimeError when
        ``tls=True`` but ``cryptography`` is missing; nothing is left running then.
        """
        if self._server is not None:
            return self
        tempdir = tempfile.mkdtemp(prefix="faro-sim-")
        server: SimServer | None = None
        try:
            ca_pem, ssl_context = None, None
            if self._tls:
                from faro.testing._tls import make_certificates, server_context

                ca_pem, cert_file, key_file = make_certificates(self._host, tempdir)
                ssl_context = server_context(cert_file, key_file)
            server = SimServer(
                (self._host, self._port), self._store, self._faults, self._current_token,
                self._bookmark_interval, self._expired_in_stream, self._anonymous_auth,
                self._clock, ssl_context,
            )
            self._tempdir = tempdir
            if ca_pem is not None:
                self._ca_pem = ca_pem
            self._server = server
            # The socket listens already: clients that read the kubeconfig at once wait
            # in the backlog until the serving thread starts.
            self._write_kubeconfig()
        except BaseException:
            self._server = None
            self._tempdir = None
            if server is not None:
                server.server_close()
            shutil.rmtree(tempdir, ignore_errors=True)
            raise
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1},
            name=f"faro-sim-{self.port}", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close every connection and remove temporary files. Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        server.stopping.set()
        server.shutdown()
        self._store.release_watches()
        self._store.drop_watches(abrupt=True)
        server.close_connections()
        server.server_close()
        self._store.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._api_client is not None:
            self._api_client.close()  # type: ignore[no-untyped-call]
            self._api_client = None
        if self._tempdir is not None:
            shutil.rmtree(self._tempdir, ignore_errors=True)
            self._tempdir = None

    def __enter__(self) -> SimulatedCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ----------------------------------------------------------- properties

    @property
    def port(self) -> int:
        """The port the server listens on (known once started)."""
        return self._running().server_address[1]

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:38211``."""
        scheme = "https" if self._tls else "http"
        return f"{scheme}://{self._host}:{self.port}"

    @property
    def token(self) -> str:
        """The bearer token the server currently accepts."""
        return self._current_token()

    @property
    def kubeconfig_path(self) -> str:
        """Path of the kubeconfig for this cluster (context ``faro-sim``)."""
        self._running()
        assert self._kubeconfig is not None
        return str(self._kubeconfig)

    @property
    def ca_pem(self) -> bytes | None:
        """The CA certificate (PEM) when serving TLS, else None."""
        return self._ca_pem

    @property
    def api_client(self) -> ApiClient:
        """A ``kubernetes.client.ApiClient`` configured from the kubeconfig (made once)."""
        self._running()
        if self._api_client is None:
            from kubernetes import config

            self._api_client = config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=self.kubeconfig_path)
        return self._api_client

    @property
    def resource_version(self) -> int:
        """The server's current resourceVersion."""
        return self._store.rv

    @property
    def watch_count(self) -> int:
        """How many watch streams are open (held ones included)."""
        return self._store.watch_count

    @property
    def held_watches(self) -> int:
        """How many open watch streams are parked by :meth:`hold_watches`."""
        return self._store.held_count

    @property
    def watch_requests(self) -> int:
        """How many watch requests the server accepted since it started (ended ones too)."""
        return self._hub.opened

    @property
    def delayed_requests(self) -> int:
        """How many requests a :meth:`delay` fault has held so far (counted as each begins
        its wait, before any response byte is written)."""
        return self._faults.delayed

    # --------------------------------------------------------------- objects

    def create(self, obj: Mapping[str, Any], *, namespace: str | None = None) -> KubeObject:
        """Create an object as ``POST`` does; returns the stored object."""
        rt = self._store.resource_for(_api_version(obj), _kind(obj))
        ns = namespace or (obj.get("metadata") or {}).get("namespace")
        if rt.namespaced and not ns:
            ns = "default"
        return self._store.create(rt, ns if rt.namespaced else None, obj,
                                  manager="faro-sim").obj

    def get(self, api_version: str, kind: str, name: str,
            namespace: str | None = None) -> KubeObject:
        """Read one object; raises ApiError (404) if absent."""
        rt = self._store.resource_for(api_version, kind)
        return self._store.get(rt, namespace if rt.namespaced else None, name).obj

    def list_objects(self, api_version: str, kind: str,
                     namespace: str | None = None) -> list[KubeObject]:
        """Every object of a kind (in one namespace, if given), sorted by namespace and name."""
        rt = self._store.resource_for(api_version, kind)
        result = self._store.list_page(parse_selection(rt, namespace if rt.namespaced else None))
        return [orjson.loads(raw) for raw in result.items]

    def update(self, obj: Mapping[str, Any]) -> KubeObject:
        """Replace an object as ``PUT`` does (409 if its resourceVersion is stale)."""
        rt, namespace, name = self._locate(obj)
        return self._store.update(rt, namespace, name, obj, manager="faro-sim").obj

    def update_status(self, obj: Mapping[str, Any]) -> KubeObject:
        """Replace an object's status as ``PUT .../status`` does."""
        rt, namespace, name = self._locate(obj)
        return self._store.update(rt, namespace, name, obj, manager="faro-sim",
                                  subresource="status").obj

    def patch(self, api_version: str, kind: str, name: str, patch: Any, *,
              namespace: str | None = None, patch_type: str = "merge") -> KubeObject:
        """Patch an object; ``patch_type`` is ``merge``, ``json`` or ``strategic``."""
        if patch_type not in ("merge", "json", "strategic"):
            raise ValueError(f"unknown patch type {patch_type!r}")
        rt = self._store.resource_for(api_version, kind)
        return self._store.patch(rt, namespace if rt.namespaced else None, name, patch_type,
                                 orjson.dumps(patch), manager="faro-sim").obj

    def delete(self, api_version: str, kind: str, name: str,
               namespace: str | None = None) -> KubeObject:
        """Delete an object; returns its last state (still present if it has finalizers)."""
        rt = self._store.resource_for(api_version, kind)
        return self._store.delete(rt, namespace if rt.namespaced else None, name)[0].obj

    def apply(self, manifest: str | os.PathLike[str] | Mapping[str, Any]
              | Iterable[Mapping[str, Any]]) -> list[KubeObject]:
        """Create or update every object of a manifest, in order; returns the results.

        ``manifest`` is YAML text (several documents and ``kind: List`` allowed),
        a path to a YAML file, one object, or an iterable of objects. Existing
        objects are merged with the given fields, like ``kubectl apply``.
        """
        results = []
        for obj in _documents(manifest):
            rt = self._store.resource_for(_api_version(obj), _kind(obj))
            name = (obj.get("metadata") or {}).get("name")
            if not name:
                raise ApiError(422, f"{rt.kind} in manifest has no metadata.name")
            namespace = (obj.get("metadata") or {}).get("namespace") or "default"
            entry: Entry = self._store.patch(
                rt, namespace if rt.namespaced else None, name, "apply", orjson.dumps(obj),
                manager="faro-sim")
            results.append(entry.obj)
        return results

    # --------------------------------------------------------------- faults

    def drop_watches(self, *, abrupt: bool = False) -> int:
        """End every open watch stream; returns how many there were.

        By default streams end cleanly (the final chunk is sent, as when the
        server's timeout passes); ``abrupt=True`` cuts the TCP connections.
        """
        return self._store.drop_watches(abrupt=abrupt)

    def compact(self) -> None:
        """Forget the change history.

        A watch or a paged list from an older resourceVersion then gets 410 Expired.
        """
        self._store.compact()

    def fail_next(self, count: int, status: int = 500, *, path: str = "", method: str | None = None,
                  retry_after: int | None = None, message: str = "") -> None:
        """Answer the next ``count`` requests whose path and query match ``path`` with ``status``.

        ``path`` is a regular expression searched in the request target
        (``/api/v1/namespaces/default/configmaps?watch=true``); empty matches
        every request. ``retry_after`` sets ``Retry-After`` (use with 429 or 503).
        Faults apply before authentication.
        """
        if count < 1:
            raise ValueError("count must be at least 1")
        self._faults.add_failure(re.compile(path), method.upper() if method else None, count,
                                 status, retry_after, message)

    def delay(self, seconds: float, *, path: str = "", method: str | None = None,
              count: int | None = None) -> None:
        """Delay matching responses by ``seconds`` (the next ``count`` ones, or all)."""
        self._faults.add_delay(re.compile(path), method.upper() if method else None, count,
                               seconds)

    def hold_watches(self, *, path: str = "") -> AbstractContextManager[None]:
        """Park new watch requests until :meth:`release_watches`.

        A watch request that arrives while the hold is in force (and whose path
        and query match ``path``, a regular expression; empty matches every
        watch) is accepted: it keeps the resourceVersion it asked for and gets
        its ``200`` response head, then no event until released. Released, it
        streams every change since that resourceVersion at full speed, so a
        burst made while it was parked arrives as one replay. Watches already
        streaming are not affected. :attr:`held_watches` counts the parked ones,
        :meth:`wait_for_held_watches` waits for them.

        Returns a context manager that releases on exit::

            with cluster.hold_watches():
                cluster.wait_for_held_watches(1)
                ...  # make changes; the client sees none of them yet
        """
        self._store.hold_watches(re.compile(path))
        return _Releaser(self.release_watches)

    def release_watches(self) -> int:
        """End the hold: parked watches stream on. Returns how many were parked."""
        return self._store.release_watches()

    def wait_for_held_watches(self, count: int = 1, timeout: float = 10.0) -> bool:
        """Wait until at least ``count`` watches are parked; False if ``timeout`` passes."""
        return self._store.wait_held(count, timeout)

    def wait_for_delayed_requests(self, count: int = 1, timeout: float = 10.0) -> bool:
        """Wait until :attr:`delayed_requests` reaches ``count``; False if ``timeout``
        (real seconds) passes first."""
        return self._faults.wait_delayed(count, timeout)

    def close_watches(self, *, path: str = "") -> AbstractContextManager[None]:
        """End every new watch request at once: ``200``, then the final chunk, no event.

        As a server (or a proxy in front of it) that closes every watch as soon as it is
        made. Applies to watch requests whose path and query match ``path`` (a regular
        expression; empty: all) until :meth:`reopen_watches`; watches already streaming go
        on. Returns a context manager that reopens on exit.
        """
        self._hub.close_new(re.compile(path))
        return _Releaser(self.reopen_watches)

    def reopen_watches(self) -> None:
        """End :meth:`close_watches`: new watches stream again."""
        self._hub.close_new(None)

    def corrupt_watch_events(self, name: str, rewrite: Callable[[bytes], bytes] | None) -> None:
        """Send every later watch event about objects named ``name`` as ``rewrite(line)``.

        ``line`` is the event as the server would send it (``{"type":...,"object":...}``,
        without its newline); what ``rewrite`` returns is sent instead, byte for byte: an
        event a client cannot use (nested too deep, no metadata, an unknown type, no
        resourceVersion), as a server holding such an object would send it on every watch
        that covers the change. Lists are not affected. ``None`` stops rewriting ``name``;
        :meth:`clear_faults` stops every rewrite.
        """
        self._hub.rewrite(name, rewrite)

    def clear_faults(self) -> None:
        """Remove every pending failure and delay, release held watches, reopen closed
        watches and stop rewriting events."""
        self._faults.clear()
        self._store.release_watches()
        self._hub.close_new(None)
        self._hub.clear_rewrites()

    def inject_malformed_watch_line(self) -> int:
        """Write one line that is not valid JSON into every open watch; returns how many."""
        return self._store.inject_garbage()

    def restart(self) -> None:
        """Lose every object and the history, and reset the resourceVersion counter.

        Open connections are cut, as when the real server's storage is replaced.
        The port, token and kubeconfig stay the same.
        """
        self._store.restart()
        if self._server is not None:
            self._server.close_connections()

    def rotate_token(self) -> str:
        """Accept only a new bearer token and rewrite the kubeconfig with it; returns it."""
        with self._token_lock:
            self._token = secrets.token_urlsafe(24)
        if self._server is not None:
            self._write_kubeconfig()
        return self._token

    # ------------------------------------------------------------- internals

    @property
    def _hub(self) -> WatchHub:
        """The store's watch fan-out, where the watch faults act."""
        return self._store._watches

    def _current_token(self) -> str:
        with self._token_lock:
            return self._token

    def _running(self) -> SimServer:
        if self._server is None:
            raise RuntimeError("the simulated cluster is not running: call start() or use "
                               "'with SimulatedCluster() as cluster:'")
        return self._server

    def _locate(self, obj: Mapping[str, Any]) -> tuple[Any, str | None, str]:
        rt = self._store.resource_for(_api_version(obj), _kind(obj))
        metadata = obj.get("metadata") or {}
        name = metadata.get("name")
        if not name:
            raise ApiError(422, f"{rt.kind} has no metadata.name")
        return rt, (metadata.get("namespace") or "default") if rt.namespaced else None, name

    def _write_kubeconfig(self) -> None:
        cluster: dict[str, Any] = {"server": self.url}
        if self._ca_pem is not None:
            import base64

            cluster["certificate-authority-data"] = base64.b64encode(self._ca_pem).decode()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "faro-sim", "cluster": cluster}],
            "users": [{"name": "faro-sim", "user": {"token": self.token}}],
            "contexts": [{"name": "faro-sim",
                          "context": {"cluster": "faro-sim", "user": "faro-sim",
                                      "namespace": "default"}}],
            "current-context": "faro-sim",
            "preferences": {},
        }
        assert self._tempdir is not None
        path = self._requested_kubeconfig or Path(self._tempdir) / "kubeconfig"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            yaml.safe_dump(config, handle, sort_keys=False)
        os.replace(tmp, path)
        self._kubeconfig = path


class _CountingFaults(Faults):
    """Faults that also count the requests a delay holds (for tests that must know a
    request is in flight before they act)."""

    def __init__(self) -> None:
        super().__init__()
        self._delayed = threading.Condition()
        self.delayed = 0

    def check(self, method: str, target: str) -> tuple[float, ApiError | None]:
        delay, failure = super().check(method, target)
        if delay:
            with self._delayed:
                self.delayed += 1
                self._delayed.notify_all()
        return delay, failure

    def wait_delayed(self, count: int, timeout: float) -> bool:
        with self._delayed:
            return self._delayed.wait_for(lambda: self.delayed >= count, timeout)


class _Releaser(AbstractContextManager[None]):
    """Calls ``release`` on exit (what :meth:`SimulatedCluster.hold_watches` returns)."""

    def __init__(self, release: Callable[[], object]) -> None:
        self._release = release

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release()


def _api_version(obj: Mapping[str, Any]) -> str:
    value = obj.get("apiVersion")
    if not isinstance(value, str) or not value:
        raise ApiError(400, "Object 'apiVersion' is missing")
    return value


def _kind(obj: Mapping[str, Any]) -> str:
    value = obj.get("kind")
    if not isinstance(value, str) or not value:
        raise ApiError(400, "Object 'Kind' is missing")
    return value


def _documents(manifest: Any) -> list[Mapping[str, Any]]:
    if isinstance(manifest, Mapping):
        docs: list[Any] = [manifest]
    elif isinstance(manifest, os.PathLike) or (
        isinstance(manifest, str) and "\n" not in manifest and Path(manifest).is_file()
    ):
        docs = list(yaml.safe_load_all(Path(manifest).read_text()))
    elif isinstance(manifest, str):
        docs = list(yaml.safe_load_all(manifest))
    else:
        docs = list(manifest)
    out: list[Mapping[str, Any]] = []
    for doc in docs:
        if doc is None:
            continue
        if not isinstance(doc, Mapping):
            raise ApiError(400, f"manifest document is not an object: {doc!r:.60}")
        if doc.get("kind") == "List":
            out.extend(_documents(doc.get("items") or []))
        else:
            out.append(doc)
    return out
