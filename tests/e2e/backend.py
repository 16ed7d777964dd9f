"""The cluster a real-cluster test talks to, and the faults it can cause there.

:func:`target_backend` yields a :class:`Backend`: the real cluster of ``FARO_E2E_KUBECONFIG``
(with ``FARO_E2E_ETCD`` and ``FARO_E2E_FARO_KUBECONFIG`` when ``make test-real`` started it), or
a TLS simulator. A test only uses what both offer: a kubeconfig, a compaction of the server's
history (etcd's compaction API on a real cluster), and a :class:`Proxy`, a TCP forwarder on
127.0.0.1 that can cut every connection through it and refuse new ones for a while, as a network
outage or a restarting load balancer does. Nothing is monkeypatched: clients connect to the
proxy's port through an ordinary kubeconfig.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from faro import KubernetesClient
from faro.testing import SimulatedCluster
from tests.integration.kube import real_cluster

ETCD_ENV = "FARO_E2E_ETCD"
FARO_IDENTITY_ENV = "FARO_E2E_FARO_KUBECONFIG"


@dataclass
class Backend:
    """A cluster under test: its admin kubeconfig and the faults it supports."""

    kubeconfig: str
    sim: SimulatedCluster | None = None
    etcd: str | None = None
    faro_kubeconfig: str | None = None

    @property
    def real(self) -> bool:
        return self.sim is None

    def compact(self) -> None:
        """Drop the server's change history up to now: older resourceVersions get 410 Gone.

        Real cluster: etcd's KV compaction (physical) at its current revision, through etcd's
        JSON gateway. A watch the API server's watch cache serves may still be answered from the
        cache; tests that need the 410 use a resource the cache does not serve
        (``UNCACHED`` below).
        """
        if self.sim is not None:
            self.sim.compact()
            return
        if not self.etcd:
            raise AssertionError(f"compacting a real cluster needs {ETCD_ENV} (make test-real)")
        revision = _etcd(self.etcd, "/v3/kv/range",
                         {"key": base64.b64encode(b"/").decode()})["header"]["revision"]
        _etcd(self.etcd, "/v3/kv/compaction", {"revision": revision, "physical": True})


# Resources whose watches go to etcd directly (cluster.py starts the API server with their watch
# cache off), so that a compaction turns an old resourceVersion into 410 at once.
UNCACHED = "v1/podtemplates"


def _etcd(url: str, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@contextlib.contextmanager
def target_backend(**sim_options: Any) -> Iterator[Backend]:
    """The configured real cluster, or a fresh TLS simulator (``sim_options`` go to it)."""
    path = real_cluster()
    if path:
        yield Backend(kubeconfig=path, etcd=os.environ.get(ETCD_ENV) or None,
                      faro_kubeconfig=os.environ.get(FARO_IDENTITY_ENV) or None)
        return
    with SimulatedCluster(tls=True, **sim_options) as sim:
        yield Backend(kubeconfig=sim.kubeconfig_path, sim=sim)


class Proxy:
    """Forwards TCP from a 127.0.0.1 port to the API server; can cut and refuse connections.

    :meth:`kubeconfig` writes a copy of a kubeconfig whose server is the proxy (TLS passes
    through untouched: the server certificate names 127.0.0.1). :meth:`outage` closes every
    open connection and refuses new ones (accepted and closed at once) until it is left.
    Thread-safe; :meth:`close` stops it and closes everything.
    """

    def __init__(self, server: str) -> None:
        host_port = server.split("://", 1)[1].rstrip("/")
        host, _, port = host_port.rpartition(":")
        self._upstream = (host.strip("[]"), int(port))
        self._scheme = server.split("://", 1)[0]
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._refusing = False
        self.connections = 0  # accepted and forwarded, for tests that wait for a reconnect
        self._accepted = threading.Condition(self._lock)
        self._thread = threading.Thread(target=self._accept, daemon=True, name="test-proxy")
        self._thread.start()

    @property
    def url(self) -> str:
        return f"{self._scheme}://127.0.0.1:{self.port}"

    def kubeconfig(self, source: str, target: Path) -> str:
        """Copy kubeconfig ``source`` to ``target`` with every cluster's server set to the proxy."""
        config = yaml.safe_load(Path(source).read_text())
        for cluster in config.get("clusters") or []:
            cluster["cluster"]["server"] = self.url
        base = Path(source).resolve().parent
        for user in config.get("users") or []:  # relative file references stay valid
            for key in ("tokenFile", "client-certificate", "client-key"):
                value = user["user"].get(key)
                if value and not Path(value).is_absolute():
                    user["user"][key] = str(base / value)
        target.write_text(yaml.safe_dump(config))
        return str(target)

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        """Within the block: every connection through the proxy is cut, new ones refused."""
        with self._lock:
            self._refusing = True
            sockets, self._open = self._open, set()
        for sock in sockets:
            _close(sock)
        try:
            yield
        finally:
            with self._lock:
                self._refusing = False

    def wait_for_connections(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` connections in all have been forwarded."""
        with self._accepted:
            return self._accepted.wait_for(lambda: self.connections >= count, timeout)

    def close(self) -> None:
        _close(self._listener)
        with self._lock:
            sockets, self._open = self._open, set()
            self._refusing = True
        for sock in sockets:
            _close(sock)
        self._thread.join(timeout=5)

    def __enter__(self) -> Proxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                refusing = self._refusing
            if refusing:
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self._upstream, timeout=10)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._accepted:
                if self._refusing:
                    _close(client)
                    _close(upstream)
                    continue
                self._open.update((client, upstream))
                self.connections += 1
                self._accepted.notify_all()
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True,
                                 name="test-proxy-pump").start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.discard(source)
                self._open.discard(sink)
            _close(source)
            _close(sink)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


def faro_client(backend: Backend) -> KubernetesClient:
    """faro's identity: on the real cluster the operator's ServiceAccount (RBAC: get, list and
    watch of what deploy/operator grants, configmaps among them); the simulator's one token."""
    return KubernetesClient.from_environment(
        kubeconfig=backend.faro_kubeconfig or backend.kubeconfig)
