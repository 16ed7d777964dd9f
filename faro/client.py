"""The connection to a Kubernetes API server: where it is, which credentials, and discovery.

:meth:`KubernetesClient.from_environment` finds the cluster the way a program
running in a pod or on a developer's machine expects: an explicit kubeconfig,
else the pod's service account, else ``$KUBECONFIG``, else ``~/.kube/config``
(docs/client.md has the exact rules). The result wraps an official
:class:`kubernetes.client.ApiClient` built on a :class:`Configuration` of its
own (the kubernetes package's global default is never touched), and adds what
faro needs around it: :meth:`~KubernetesClient.refresh_credentials` for the
informers to call after a 401 or 403, and a cached :class:`~faro.discovery.Discovery`.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from kubernetes.client import ApiClient, Configuration
from kubernetes.config.kube_config import KubeConfigLoader, KubeConfigMerger

from faro.clock import Clock, RealClock
from faro.discovery import Discovery
from faro.errors import FaroError

logger = logging.getLogger(__name__)

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
"""Where Kubernetes mounts a pod's service account token and the cluster's CA."""

DEFAULT_KUBECONFIG = "~/.kube/config"
"""The kubeconfig used when neither the service account nor ``$KUBECONFIG`` is."""

TOKEN_REREAD_INTERVAL = 60.0
"""Seconds between re-reads of the service account token file (as client-go does)."""


class ClientConfigError(FaroError):
    """No usable Kubernetes configuration.

    The message lists every source tried and why each failed.
    """


class KubernetesClient:
    """The official client's ApiClient plus what faro needs around it (thread-safe).

    ``source`` says where the configuration came from, for logs and messages.
    ``reload`` re-reads the credentials into ``api_client.configuration``;
    :meth:`from_environment` provides it, and without it
    :meth:`refresh_credentials` does nothing. ``clock`` (default
    :class:`~faro.clock.RealClock`) is the one :attr:`discovery` measures its cache's
    age with.
    """

    def __init__(self, api_client: ApiClient, *, source: str = "api client",
                 reload: Callable[[], None] | None = None, clock: Clock | None = None) -> None:
        self._api_client = api_client
        self.source = source
        """Where the configuration came from (``"in-cluster service account"``, ``"kubeconfig
        ~/.kube/config (context kind)"``...), for logs and messages."""
        self._reload = reload
        self._clock: Clock = clock if clock is not None else RealClock()
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._discovery: Discovery | None = None
        self._closed = False

    @classmethod
    def from_environment(cls, kubeconfig: str | os.PathLike[str] | None = None,
                         context: str | None = None, *,
                         service_account_dir: str | os.PathLike[str] = SERVICE_ACCOUNT_DIR,
                         clock: Clock | None = None) -> KubernetesClient:
        """A client for the cluster this program is meant to talk to.

        ``kubeconfig`` given: that kubeconfig only (it may be a list of files
        separated by ``os.pathsep``, merged as ``$KUBECONFIG``). Otherwise, in
        this order: the in-cluster service account (``KUBERNETES_SERVICE_HOST``
        and ``KUBERNETES_SERVICE_PORT`` set, ``token`` and ``ca.crt`` in
        ``service_account_dir``; skipped when a ``context`` is asked for),
        ``$KUBECONFIG``, ``~/.kube/config``. A source that is absent (variables
        unset, no file) passes to the next one; a kubeconfig that exists but
        cannot be used (unknown context, invalid content) is an error at once,
        so that a broken configuration never silently selects another cluster.

        ``context`` selects a kubeconfig context instead of its current-context.
        Empty strings count as not given. ``clock`` times the service account
        token's re-reads and discovery's cache. Raises :class:`ClientConfigError`
        naming every source tried and why it failed.
        """
        configuration = Configuration()
        spec = os.fspath(kubeconfig) if kubeconfig is not None else ""
        context = context or None
        if spec:
            files = _KubeconfigFiles.from_spec(spec, label=f"kubeconfig {spec}")
            if not files.paths:
                raise ClientConfigError(f"no usable Kubernetes configuration: {files.missing()}")
            return cls._from_kubeconfig(files, context, configuration, tried=[], clock=clock)

        tried: list[str] = []
        if context is not None:
            tried.append(f"in-cluster: skipped, because context {context!r} was asked for")
        else:
            account = _ServiceAccount(Path(service_account_dir),
                                      clock if clock is not None else RealClock())
            problem = account.problem()
            if problem is None:
                try:
                    account.load(configuration)
                except ClientConfigError as error:  # the files changed under us
                    problem = str(error)
                else:
                    return cls(ApiClient(configuration), source="in-cluster service account",
                               reload=lambda: account.load(configuration), clock=clock)
            tried.append(f"in-cluster: {problem}")

        env = os.environ.get("KUBECONFIG", "")
        if env:
            files = _KubeconfigFiles.from_spec(env, label=f"KUBECONFIG {env}")
            if files.paths:
                return cls._from_kubeconfig(files, context, configuration, tried, clock)
            tried.append(files.missing())
        else:
            tried.append("KUBECONFIG: not set")

        files = _KubeconfigFiles.from_spec(DEFAULT_KUBECONFIG, label=DEFAULT_KUBECONFIG)
        if files.paths:
            return cls._from_kubeconfig(files, context, configuration, tried, clock)
        tried.append(f"{DEFAULT_KUBECONFIG}: no such file")
        raise ClientConfigError("no usable Kubernetes configuration: " + "; ".join(tried))

    @classmethod
    def _from_kubeconfig(cls, files: _KubeconfigFiles, context: str | None,
                         configuration: Any, tried: list[str],
                         clock: Clock | None) -> KubernetesClient:
        try:
            chosen = files.load(context, configuration)
        except ClientConfigError as error:
            if not tried:
                raise
            raise ClientConfigError("; ".join([*tried, str(error)])) from error

        def reload() -> None:
            # The context chosen now, even if the file's current-context changes later.
            files.load(chosen, configuration)

        return cls(ApiClient(configuration),
                   source=f"kubeconfig {files.display} (context {chosen})", reload=reload,
                   clock=clock)

    @property
    def api_client(self) -> ApiClient:
        """The official client's ApiClient (for typed APIs and faro's informers)."""
        return self._api_client

    @property
    def discovery(self) -> Discovery:
        """What the server serves, cached (created on first use, then the same object)."""
        with self._lock:
            if self._discovery is None:
                self._discovery = Discovery(self._api_client, clock=self._clock)
            return self._discovery

    def refresh_credentials(self) -> None:
        """Re-read the credentials into the client's own Configuration object.

        In-cluster: the service account token file again. Kubeconfig: the
        file(s) and the context chosen at creation again, which picks up a
        rotated token and runs exec plugins and OIDC refreshes anew. Requests
        made afterwards (also by informers created before) send the new token.
        The server address and TLS settings of existing connections stay.
        Errors are logged, never raised: the caller retries anyway.
        """
        if self._reload is None:
            return
        with self._refresh_lock:
            try:
                self._reload()
            except Exception as error:  # logged: the informer calling this retries anyway
                logger.error("re-reading the credentials from %s failed: %s", self.source, error)
            else:
                logger.info("credentials re-read from %s", self.source)

    def close(self) -> None:
        """Close the ApiClient's connections. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._api_client.close()  # type: ignore[no-untyped-call]

    def __enter__(self) -> KubernetesClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"KubernetesClient({self.source})"


# ------------------------------------------------------------------ in-cluster


def _join_host_port(host: str, port: str) -> str:
    return f"[{host}]:{port}" if ":" in host or "%" in host else f"{host}:{port}"


class _ServiceAccount:
    """The pod's service account: API address from the environment, token and CA from files.

    ``clock`` times the token's re-reads.
    """

    def __init__(self, directory: Path, clock: Clock) -> None:
        self.token_path = directory / "token"
        self.ca_path = directory / "ca.crt"
        self._clock = clock
        self._lock = threading.Lock()
        self._next_read = 0.0

    def problem(self) -> str | None:
        """Why the service account cannot be used, or None."""
        for name in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
            if not os.environ.get(name):
                return f"{name} is not set"
        if not self.token_path.is_file():
            return f"no service account token at {self.token_path}"
        if not self.ca_path.is_file():
            return f"no CA certificate at {self.ca_path}"
        return None

    def load(self, configuration: Any) -> None:
        """Set address, CA and token on ``configuration``; raises ClientConfigError."""
        host = os.environ.get("KUBERNETES_SERVICE_HOST", "")
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "")
        if not host or not port:
            raise ClientConfigError("KUBERNETES_SERVICE_HOST or KUBERNETES_SERVICE_PORT is not set")
        token = self._read_token()
        configuration.host = "https://" + _join_host_port(host, port)
        configuration.ssl_ca_cert = str(self.ca_path)
        configuration.api_key["BearerToken"] = f"Bearer {token}"
        configuration.refresh_api_key_hook = self._reread_periodically
        with self._lock:
            self._next_read = self._clock.now() + TOKEN_REREAD_INTERVAL

    def _read_token(self) -> str:
        try:
            token = self.token_path.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise ClientConfigError(
                f"cannot read the service account token {self.token_path}: {error}") from error
        if not token:
            raise ClientConfigError(f"the service account token file {self.token_path} is empty")
        return token

    def _reread_periodically(self, configuration: Any) -> None:
        # Called by the Configuration before every request: the kubelet rewrites a projected
        # token long before it expires, so re-reading it now and then keeps requests valid.
        now = self._clock.now()
        with self._lock:
            if now < self._next_read:
                return
            self._next_read = now + TOKEN_REREAD_INTERVAL
        try:
            token = self._read_token()
        except ClientConfigError as error:
            logger.warning("keeping the current service account token: %s", error)
            return
        configuration.api_key["BearerToken"] = f"Bearer {token}"


# ------------------------------------------------------------------ kubeconfig


class _KubeconfigFiles:
    """A kubeconfig given as one path or a list, loaded and merged as kubectl does."""

    def __init__(self, label: str, display: str, paths: list[str], absent: list[str]) -> None:
        self.label = label
        self.display = display
        self.paths = paths
        self.absent = absent

    @classmethod
    def from_spec(cls, spec: str, *, label: str) -> _KubeconfigFiles:
        """Split ``spec`` on os.pathsep; files that do not exist are left out (as kubectl)."""
        paths: list[str] = []
        shown: list[str] = []
        absent: list[str] = []
        for entry in spec.split(os.pathsep):
            if not entry:
                continue
            path = os.path.expanduser(entry)
            if os.path.exists(path):
                if path not in paths:
                    paths.append(path)
                    shown.append(entry)
            else:
                absent.append(entry)
        return cls(label, os.pathsep.join(shown), paths, absent)

    def missing(self) -> str:
        """The reason text when no listed file exists."""
        if len(self.absent) == 1:
            return f"{self.label}: no such file"
        return f"{self.label}: none of the listed files exists"

    def load(self, context: str | None, configuration: Any) -> str:
        """Load the files into ``configuration``; returns the context used.

        Raises ClientConfigError naming this kubeconfig and the problem.
        """
        try:
            merger = KubeConfigMerger("")  # type: ignore[no-untyped-call]
            # An empty file counts as an empty configuration (kubectl's rule); the Python
            # merger would refuse it.
            used = [path for path in self.paths if Path(path).read_text().strip()]
            for path in used:
                merger.load_config(path)  # type: ignore[no-untyped-call]
            merged = merger.config
            if merged is None:
                raise ClientConfigError(f"{self.label}: empty")
            # The Python merger lets the *last* file's current-context win; kubectl (and
            # client-go) let the first file that sets one win, as for every other value.
            current = next((cfg.get("current-context") for cfg in
                            (merger.config_files[p] for p in used)
                            if isinstance(cfg, dict) and cfg.get("current-context")), None)
            merged.value["current-context"] = current or ""
            available = [str(item["name"]) for item in merged.value.get("contexts") or []]
            wanted = context or current
            listed = ", ".join(available) if available else "(none)"
            if not wanted:
                raise ClientConfigError(f"{self.label}: no current-context is set and no context "
                                        f"was given; available contexts: {listed}")
            if wanted not in available:
                raise ClientConfigError(f"{self.label}: context {wanted!r} not found; "
                                        f"available contexts: {listed}")
            loader = KubeConfigLoader(  # type: ignore[no-untyped-call]
                config_dict=merged, active_context=wanted, config_base_path=None)
            loader.load_and_set(configuration)  # type: ignore[no-untyped-call]
            # The Python client sends a tokenFile's content as it is, so the newline a token
            # file usually ends with (`kubectl create token NAME > file`) fails every request
            # ("Invalid header value"); kubectl and client-go trim it. The loader's refresh
            # hook sets its own `token` again before each request: trim that one.
            token = getattr(loader, "token", None)
            if isinstance(token, str):
                scheme, _, value = token.partition(" ")
                loader.token = f"{scheme} {value.strip()}"
                configuration.api_key["BearerToken"] = loader.token
        except ClientConfigError:
            raise
        except Exception as error:  # yaml, ConfigException, a malformed document...
            raise ClientConfigError(f"{self.label}: {error}") from error
        return wanted

