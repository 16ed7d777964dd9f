"""faro under the identity it runs with in a cluster: the ``faro-operator`` ServiceAccount.

* Its ClusterRole (deploy/operator) grants no access to secrets. faro configured for configmaps
  *and* secrets must say clearly that v1/secrets is forbidden, and to whom, while the configmaps
  informer runs and delivers events; readiness (``is_ready()``, ``/readyz``, the informer's
  ``health()``) names the informer that fails and why. Both through the library and through
  ``faro run``.
* Its token is replaced while faro runs and the old one invalidated: faro gets a 401 when it
  reconnects, re-reads the kubeconfig's ``tokenFile`` and goes on watching from where it was,
  losing no change and repeating none.

Against a real cluster (``make test-real``) the identity is the ServiceAccount's
(``FARO_E2E_FARO_KUBECONFIG``), its tokens come from the TokenRequest API bound to Secrets in
faro-system, and RBAC and token invalidation are the API server's. The simulator enforces
neither: there the RBAC denial is injected with the API server's own wording
(:func:`deny_secrets`), and invalidation is :meth:`SimulatedCluster.rotate_token` (the server
accepts only the new token from then on). Everything faro does is the same.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import queue
import signal
import ssl
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from prometheus_client.parser import text_string_to_metric_families

import faro
from faro import Controller, KubernetesClient, MatchedEvent
from faro.config import Config
from tests.e2e.backend import FARO_IDENTITY_ENV, Backend, Proxy, target_backend
from tests.integration.kube import DEADLINE, LineReader, eventually, unique

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]

ROOT = Path(faro.__file__).resolve().parent.parent
OPERATOR_NAMESPACE = "faro-system"
OPERATOR_ACCOUNT = "faro-operator"
IDENTITY = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_ACCOUNT}"
LABEL = "faro-e2e=identity"
STARTUP = 30.0 + DEADLINE  # a fresh interpreter imports faro, then lists
RECONNECT = max(DEADLINE, 30.0)  # a few reflector backoff waits (0.8 s doubling, jittered)


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture
def backend() -> Iterator[Backend]:
    with target_backend(namespace_cleanup_delay=0.2) as found:
        yield found


@pytest.fixture
def admin(backend: Backend) -> Iterator[KubernetesClient]:
    """The cluster's administrator (for the test's own changes), never faro's identity."""
    with KubernetesClient.from_environment(kubeconfig=backend.kubeconfig) as kube:
        yield kube


@pytest.fixture
def namespace(admin: KubernetesClient) -> Iterator[str]:
    name = unique("faro-identity")
    core = k8s.CoreV1Api(admin.api_client)
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
    yield name
    admin.refresh_credentials()  # the simulator's token may have been rotated meanwhile
    with contextlib.suppress(k8s.ApiException):
        core.delete_namespace(name)


def identity_kubeconfig(backend: Backend) -> str:
    """The kubeconfig faro runs with: the faro-operator ServiceAccount on a real cluster."""
    if not backend.real:
        return backend.kubeconfig
    if not backend.faro_kubeconfig:
        pytest.skip(f"{FARO_IDENTITY_ENV} is not set: the faro-operator identity on this cluster "
                    "is unknown (make test-real sets it)")
    return backend.faro_kubeconfig


def deny_secrets(backend: Backend, namespace: str) -> None:
    """On the simulator (which stores RBAC objects but enforces nothing), answer every secrets
    request in ``namespace`` as kube-apiserver's RBAC authorizer answers the faro-operator
    identity. On a real cluster the ClusterRole itself denies them."""
    if backend.sim is not None:
        backend.sim.fail_next(
            1_000_000, 403, path=f"/namespaces/{namespace}/secrets",
            message=f'secrets is forbidden: User "{IDENTITY}" cannot list resource "secrets" '
                    f'in API group "" in the namespace "{namespace}"')


# ------------------------------------------------------------------------------ helpers



def configmap(name: str, step: str) -> k8s.V1ConfigMap:
    key, value = LABEL.split("=")
    return k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name=name, labels={key: value}),
                           data={"step": step})


def probe(address: tuple[str, int] | None, path: str) -> tuple[int, str]:
    assert address is not None, "metrics are not served"
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{address[1]}{path}",
                                    timeout=DEADLINE) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def samples(address: tuple[str, int] | None) -> dict[tuple[str, str], float]:
    """faro_informer_health by (gvr, namespace)."""
    status, text = probe(address, "/metrics")
    assert status == 200, text
    return {(s.labels["gvr"], s.labels["namespace"]): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
            if s.name == "faro_informer_health"}


def settings(namespace: str) -> dict[str, Any]:
    """configmaps (with the test's label) and secrets in ``namespace``; metrics on a free port;
    an informer failing for a second makes the controller unready."""
    return {
        "namespaces": [{"name_selector": namespace, "resources": {
            "v1/configmaps": {"label_selector": LABEL}, "v1/secrets": {}}}],
        "unhealthy_after_sec": 1,
        "metrics": {"enabled": True, "port": 0, "bind_addr": "127.0.0.1"}}


def readyz_with_reason(address: tuple[str, int] | None) -> tuple[int, str]:
    """/readyz once it gives the failing informer's error (after ``unhealthy_after_sec``)."""
    def answer() -> tuple[int, str] | None:
        status, text = probe(address, "/readyz")
        return (status, text) if "HTTP 403" in text else None

    found: tuple[int, str] = eventually(answer, "/readyz naming the 403")
    return found


class Events:
    """A handler collecting matched events; waits for one with a deadline."""

    def __init__(self) -> None:
        self.queue: queue.Queue[MatchedEvent] = queue.Queue()
        self.seen: list[MatchedEvent] = []

    def __call__(self, event: MatchedEvent) -> None:
        self.queue.put(event)

    def wait(self, event_type: str, key: str, step: str, timeout: float = DEADLINE) -> None:
        """Wait until that event (of the object's ``data.step``) has been delivered."""
        if any(self._is(e, event_type, key, step) for e in self.seen):
            return
        deadline = time.monotonic() + timeout
        while True:
            try:
                event = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {event_type} {key} ({step}) within {timeout:g}s; "
                                     f"seen: {self.history()}") from None
            self.seen.append(event)
            if self._is(event, event_type, key, step):
                return

    def drain(self) -> list[tuple[str, str, str]]:
        while True:
            try:
                self.seen.append(self.queue.get_nowait())
            except queue.Empty:
                return self.history()

    def history(self) -> list[tuple[str, str, str]]:
        return [(str(e.event_type.value), e.key, str((e.object.get("data") or {}).get("step")))
                for e in self.seen]

    @staticmethod
    def _is(event: MatchedEvent, event_type: str, key: str, step: str) -> bool:
        return (event.event_type == event_type and event.key == key
                and (event.object.get("data") or {}).get("step") == step)


# ------------------------------------------------------------- 1. forbidden resources


def forbidden_text(text: str, namespace: str) -> bool:
    """The API server's RBAC answer for faro's identity and secrets in ``namespace``."""
    return ("HTTP 403 Forbidden" in text and f'User "{IDENTITY}"' in text
            and 'resource "secrets"' in text and f'"{namespace}"' in text)


def test_forbidden_secrets_are_named_with_the_identity_while_configmaps_are_delivered(
        backend: Backend, admin: KubernetesClient, namespace: str,
        caplog: pytest.LogCaptureFixture) -> None:
    deny_secrets(backend, namespace)
    caplog.set_level(logging.WARNING, logger="faro.cache.reflector")
    events = Events()
    ready = threading.Event()
    with KubernetesClient.from_environment(kubeconfig=identity_kubeconfig(backend)) as kube:
        controller = Controller(kube, Config.from_dict(settings(namespace)))
        controller.add_event_handler(events)
        controller.set_ready_callback(ready.set)
        began = time.monotonic()
        controller.start()  # the forbidden informer neither fails start() nor blocks it
        try:
            assert time.monotonic() - began < DEADLINE
            core = k8s.CoreV1Api(admin.api_client)
            key = f"{namespace}/settings"
            core.create_namespaced_config_map(namespace, configmap("settings", "1"))
            events.wait("ADDED", key, "1")
            core.replace_namespaced_config_map("settings", namespace, configmap("settings", "2"))
            events.wait("UPDATED", key, "2")

            # The warning says which informer, that it is forbidden, and for whom.
            warning = eventually(lambda: next(
                (r.getMessage() for r in list(caplog.records)
                 if f"informer v1/secrets@{namespace}:" in r.getMessage()), None),
                "a log line for the secrets informer")
            assert forbidden_text(warning, namespace), warning

            informers = controller.informers()
            secrets = informers[f"v1/secrets in {namespace}"].health()
            assert not secrets.synced and secrets.consecutive_failures >= 1
            assert secrets.last_error is not None and forbidden_text(secrets.last_error,
                                                                     namespace)
            configmaps = informers[f"v1/configmaps in {namespace} labels {LABEL!r}"].health()
            assert configmaps.healthy and configmaps.last_error is None

            # Readiness: never ready, and /readyz says which informer and why (after
            # unhealthy_after_sec); the controller itself is alive.
            address = controller.metrics_address
            status, text = readyz_with_reason(address)
            assert status == 503
            assert text.startswith(f"informers not synced yet: v1/secrets in {namespace};"), text
            assert f"informer v1/secrets in {namespace} not synced for" in text
            assert forbidden_text(text, namespace), text
            assert "v1/configmaps" not in text
            assert probe(address, "/healthz") == (200, "ok\n")
            health = samples(address)
            assert health[("v1/secrets", namespace)] == 0
            assert health[("v1/configmaps", namespace)] == 1
            assert not controller.is_ready() and not ready.is_set()
            assert not controller.wait_until_ready(0.2)

            # Still delivering.
            core.delete_namespaced_config_map("settings", namespace)
            events.wait("DELETED", key, "2")
        finally:
            assert controller.stop(timeout=DEADLINE)
    assert events.drain() == [("ADDED", key, "1"), ("UPDATED", key, "2"), ("DELETED", key, "2")]


class FaroRun:
    """``faro run`` as a subprocess (stdout and stderr merged)."""

    def __init__(self, tmp_path: Path, kubeconfig: str, config: dict[str, Any]) -> None:
        config_path = tmp_path / "config.yaml"
        config_path.write_text(yaml.safe_dump(config))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
        self.reader = LineReader(
            [sys.executable, "-m", "faro", "run", "--config", str(config_path),
             "--output-dir", str(tmp_path / "output"), "--kubeconfig", kubeconfig],
            env=env, cwd=tmp_path, merge_stderr=True)

    def line(self, predicate: Callable[[str], bool], timeout: float = DEADLINE) -> str:
        for text in self.reader.seen:
            if predicate(text):
                return text
        return self.reader.wait_for(predicate, timeout=timeout)

    def stop(self) -> list[str]:
        self.reader.process.send_signal(signal.SIGTERM)
        rest = self.reader.rest(timeout=40.0)
        assert self.reader.process.returncode == 0, "\n".join(self.reader.seen + rest)
        return self.reader.seen + rest


def test_faro_run_with_the_operator_identity_reports_forbidden_secrets_and_keeps_running(
        backend: Backend, admin: KubernetesClient, namespace: str, tmp_path: Path) -> None:
    deny_secrets(backend, namespace)
    run = FaroRun(tmp_path, identity_kubeconfig(backend), settings(namespace))
    try:
        served = run.line(lambda text: "serving metrics on http://" in text, timeout=STARTUP)
        port = int(served.split("http://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
        warning = run.line(lambda text: f"informer v1/secrets@{namespace}:" in text)
        assert forbidden_text(warning, namespace), warning

        core = k8s.CoreV1Api(admin.api_client)
        core.create_namespaced_config_map(namespace, configmap("settings", "1"))
        run.line(lambda text: f"CONFIG [ADDED] v1/configmaps {namespace}/settings " in text)

        status, text = readyz_with_reason(("127.0.0.1", port))
        assert status == 503 and forbidden_text(text, namespace), text
        assert f"informer v1/secrets in {namespace} not synced for" in text
        output = run.stop()  # SIGTERM: exit 0 all the same
    finally:
        run.reader.close()
    assert not any("faro is ready" in line for line in output), output


# ------------------------------------------------------------------ 2. token rotation


class Identity:
    """Tokens for faro: bound to a Secret in faro-system (real), or the simulator's token."""

    def __init__(self, backend: Backend, admin: KubernetesClient) -> None:
        self.backend = backend
        self.admin = admin
        self.core = k8s.CoreV1Api(admin.api_client)
        self.secrets: list[str] = []

    def token(self) -> str:
        """A new token for faro. Real: bound to a new Secret. Simulator: rotated (so the
        previous one is rejected from now on)."""
        if self.backend.sim is not None:
            token = self.backend.sim.rotate_token()
            self.admin.refresh_credentials()  # the admin kubeconfig was rewritten with it
            return token
        name = unique("faro-token")
        secret: Any = self.core.create_namespaced_secret(OPERATOR_NAMESPACE, k8s.V1Secret(
            metadata=k8s.V1ObjectMeta(name=name, labels={"app.kubernetes.io/part-of": "faro-e2e"})))
        self.secrets.append(name)
        request = k8s.AuthenticationV1TokenRequest(spec=k8s.V1TokenRequestSpec(
            audiences=[], expiration_seconds=600,
            bound_object_ref=k8s.V1BoundObjectReference(
                kind="Secret", api_version="v1", name=name, uid=secret.metadata.uid)))
        answer: Any = self.core.create_namespaced_service_account_token(
            OPERATOR_ACCOUNT, OPERATOR_NAMESPACE, request)
        return str(answer.status.token)

    def invalidate_first(self) -> None:
        """Real: delete the Secret the first token is bound to. (The simulator's rotation
        already rejects the old token.)"""
        if self.backend.real:
            self.core.delete_namespaced_secret(self.secrets[0], OPERATOR_NAMESPACE)

    def close(self) -> None:
        for name in self.secrets:
            with contextlib.suppress(k8s.ApiException):
                self.core.delete_namespaced_secret(name, OPERATOR_NAMESPACE)


def server_and_ca(kubeconfig: str) -> tuple[str, ssl.SSLContext | None]:
    """The current context's server and a TLS context trusting its CA."""
    doc = yaml.safe_load(Path(kubeconfig).read_text())
    contexts = {c["name"]: c["context"] for c in doc["contexts"]}
    cluster_name = contexts[doc["current-context"]]["cluster"]
    cluster = next(c["cluster"] for c in doc["clusters"] if c["name"] == cluster_name)
    server = str(cluster["server"])
    if not server.startswith("https"):
        return server, None
    context = ssl.create_default_context(cadata=base64.b64decode(
        cluster["certificate-authority-data"]).decode())
    return server, context


def raw_status(server: str, tls: ssl.SSLContext | None, token: str, path: str) -> int:
    """The HTTP status the server answers a GET with this bearer token (no client library)."""
    request = urllib.request.Request(server + path,
                                     headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=DEADLINE, context=tls) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def token_file_kubeconfig(proxy: Proxy, source: str, directory: Path) -> tuple[str, Path]:
    """A kubeconfig for ``source``'s cluster through ``proxy``, whose user is a tokenFile."""
    path = Path(proxy.kubeconfig(source, directory / "faro.kubeconfig"))
    token_file = directory / "faro.token"
    doc = yaml.safe_load(path.read_text())
    for user in doc["users"]:
        user["user"] = {"tokenFile": str(token_file)}
    path.write_text(yaml.safe_dump(doc))
    return str(path), token_file


def write_token(path: Path, token: str) -> None:
    """As ``kubectl create token ... > file`` does: the token and a newline, replaced whole."""
    temporary = path.with_name(path.name + ".new")
    temporary.write_text(token + "\n")
    os.replace(temporary, path)


def test_a_replaced_token_file_is_reread_after_the_old_token_is_rejected_without_losing_events(
        backend: Backend, admin: KubernetesClient, namespace: str, tmp_path: Path) -> None:
    source = identity_kubeconfig(backend)
    server, tls = server_and_ca(source)
    identity = Identity(backend, admin)
    core = k8s.CoreV1Api(admin.api_client)
    events = Events()
    probe_path = f"/api/v1/namespaces/{namespace}/configmaps?limit=1"
    with Proxy(server) as proxy, contextlib.ExitStack() as cleanup:
        cleanup.callback(identity.close)
        kubeconfig, token_file = token_file_kubeconfig(proxy, source, tmp_path)
        old = identity.token()
        write_token(token_file, old)
        assert raw_status(server, tls, old, probe_path) == 200

        kube = cleanup.enter_context(KubernetesClient.from_environment(kubeconfig=kubeconfig))
        controller = Controller(kube, Config.from_dict({
            "resources": [{"gvr": "v1/configmaps", "namespace_names": [namespace],
                           "label_selector": LABEL}]}))
        controller.add_event_handler(events)
        cleanup.callback(controller.stop, DEADLINE)
        controller.start()
        assert controller.wait_until_ready(DEADLINE)
        (informer,) = controller.informers().values()

        def key(name: str) -> str:
            return f"{namespace}/{name}"

        # Before: a, b created; a changed.
        core.create_namespaced_config_map(namespace, configmap("a", "a1"))
        core.create_namespaced_config_map(namespace, configmap("b", "b1"))
        core.replace_namespaced_config_map("a", namespace, configmap("a", "a2"))
        events.wait("UPDATED", key("a"), "a2")
        events.wait("ADDED", key("b"), "b1")

        # The token is replaced in the file, and the old one stops working.
        new = identity.token()
        write_token(token_file, new)
        identity.invalidate_first()
        eventually(lambda: raw_status(server, tls, old, probe_path) == 401,
                   "the API server rejecting the old token with 401")
        assert raw_status(server, tls, new, probe_path) == 200

        # During: faro's connections are cut and refused; changes go on meanwhile (straight
        # to the server, not through the proxy): c created and changed, b changed and deleted.
        with proxy.outage():
            core.create_namespaced_config_map(namespace, configmap("c", "c1"))
            core.replace_namespaced_config_map("c", namespace, configmap("c", "c2"))
            core.replace_namespaced_config_map("b", namespace, configmap("b", "b2"))
            core.delete_namespaced_config_map("b", namespace)
        # faro reconnects with the old token, gets 401, re-reads the file and resumes.
        events.wait("DELETED", key("b"), "b2", timeout=RECONNECT)
        events.wait("UPDATED", key("c"), "c2")
        health = informer.health()
        assert health.last_error is not None and "HTTP 401" in health.last_error, health
        assert health.consecutive_failures == 0 and health.healthy, health

        # After: the new token serves the next changes as well.
        core.replace_namespaced_config_map("a", namespace, configmap("a", "a3"))
        core.delete_namespaced_config_map("c", namespace)
        core.create_namespaced_config_map(namespace, configmap("d", "d1"))
        events.wait("UPDATED", key("a"), "a3")
        events.wait("DELETED", key("c"), "c2")
        events.wait("ADDED", key("d"), "d1")
        assert controller.stop(timeout=DEADLINE)
        seen = events.drain()

    # Exactly once each, in order per object; nothing inferred from a relist.
    expected = {
        key("a"): [("ADDED", "a1"), ("UPDATED", "a2"), ("UPDATED", "a3")],
        key("b"): [("ADDED", "b1"), ("UPDATED", "b2"), ("DELETED", "b2")],
        key("c"): [("ADDED", "c1"), ("UPDATED", "c2"), ("DELETED", "c2")],
        key("d"): [("ADDED", "d1")],
    }
    by_object: dict[str, list[tuple[str, str]]] = {}
    for event_type, name, step in seen:
        by_object.setdefault(name, []).append((event_type, step))
    assert by_object == expected, seen
    assert not any(e.final_state_unknown or e.is_initial for e in events.seen)


def test_a_token_file_that_cannot_be_sent_is_refused_without_showing_the_token(
        backend: Backend, tmp_path: Path) -> None:
    """A token file with a line break inside (two tokens pasted into one file) cannot be an
    HTTP header; the error must say so without quoting the credential into logs."""
    with Proxy(server_and_ca(backend.kubeconfig)[0]) as proxy:  # (only for its kubeconfig)
        kubeconfig, token_file = token_file_kubeconfig(proxy, backend.kubeconfig, tmp_path)
        token_file.write_text("first-half\nsecond-half-of-the-credential\n")
        with KubernetesClient.from_environment(kubeconfig=kubeconfig) as kube:
            controller = Controller(kube, Config.from_dict(
                {"resources": [{"gvr": "v1/configmaps"}]}))
            with pytest.raises(faro.DiscoveryError) as raised:
                controller.start()
    message = f"{raised.value} {raised.value.__cause__}"
    assert "invalid value" in message and "bearer token" in message, message
    assert "second-half" not in message and "first-half" not in message, message
