"""KubernetesClient.from_environment: which configuration it finds, and credential refresh.

Every test runs with a clean environment: no KUBERNETES_SERVICE_HOST/PORT, no
KUBECONFIG, and HOME in the test's temporary directory (so the machine's own
~/.kube/config never counts). Clusters are simulated; requests go through the
official client to 127.0.0.1.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client import Configuration
from kubernetes.client.exceptions import ApiException

from faro.client import ClientConfigError, KubernetesClient
from faro.testing import SimulatedCluster

ENV = ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "KUBECONFIG")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


@pytest.fixture
def other() -> Iterator[SimulatedCluster]:
    """A second plain-HTTP cluster, told apart from ``cluster`` by its namespaces."""
    with SimulatedCluster() as sim:
        yield sim


@pytest.fixture
def tls_cluster() -> Iterator[SimulatedCluster]:
    with SimulatedCluster(tls=True) as sim:
        yield sim


def mark(sim: SimulatedCluster, name: str) -> None:
    """Create a namespace that identifies ``sim``."""
    sim.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


def namespaces(kube: KubernetesClient) -> set[str]:
    items = client.CoreV1Api(kube.api_client).list_namespace().items
    return {str(item.metadata.name) for item in items if item.metadata is not None}


def cluster_entry(name: str, sim: SimulatedCluster) -> dict[str, Any]:
    entry: dict[str, Any] = {"server": sim.url}
    if sim.ca_pem is not None:
        entry["certificate-authority-data"] = base64.b64encode(sim.ca_pem).decode()
    return {"name": name, "cluster": entry}


def user_entry(name: str, token: str) -> dict[str, Any]:
    return {"name": name, "user": {"token": token}}


def context_entry(name: str, cluster: str, user: str) -> dict[str, Any]:
    return {"name": name, "context": {"cluster": cluster, "user": user}}


def write(path: Path, *, clusters: list[dict[str, Any]] | None = None,
          users: list[dict[str, Any]] | None = None,
          contexts: list[dict[str, Any]] | None = None, current: str | None = None) -> Path:
    doc: dict[str, Any] = {"apiVersion": "v1", "kind": "Config"}
    if clusters is not None:
        doc["clusters"] = clusters
    if users is not None:
        doc["users"] = users
    if contexts is not None:
        doc["contexts"] = contexts
    if current is not None:
        doc["current-context"] = current
    path.write_text(yaml.safe_dump(doc))
    return path


def two_cluster_kubeconfig(path: Path, one: SimulatedCluster, two: SimulatedCluster) -> Path:
    return write(path, clusters=[cluster_entry("c1", one), cluster_entry("c2", two)],
                 users=[user_entry("u1", one.token), user_entry("u2", two.token)],
                 contexts=[context_entry("one", "c1", "u1"), context_entry("two", "c2", "u2")],
                 current="one")


def service_account(directory: Path, sim: SimulatedCluster) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    assert sim.ca_pem is not None
    (directory / "ca.crt").write_bytes(sim.ca_pem)
    (directory / "token").write_text(sim.token)
    return directory


def in_cluster_env(monkeypatch: pytest.MonkeyPatch, sim: SimulatedCluster) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(sim.port))


def assert_unauthorized(kube: KubernetesClient) -> None:
    with pytest.raises(ApiException) as caught:
        namespaces(kube)
    assert caught.value.status == 401


# ------------------------------------------------------------------ explicit kubeconfig


def test_explicit_kubeconfig(cluster: SimulatedCluster, other: SimulatedCluster,
                             monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    mark(cluster, "on-cluster")
    # Neither a service account nor $KUBECONFIG counts when a kubeconfig is given.
    monkeypatch.setenv("KUBECONFIG", other.kubeconfig_path)
    in_cluster_env(monkeypatch, other)
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text(other.token)
    (sa / "ca.crt").write_text("not used")
    with KubernetesClient.from_environment(Path(cluster.kubeconfig_path),
                                           service_account_dir=sa) as kube:
        assert "on-cluster" in namespaces(kube)
        assert kube.source == f"kubeconfig {cluster.kubeconfig_path} (context faro-sim)"


def test_explicit_kubeconfig_that_does_not_exist(cluster: SimulatedCluster,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    monkeypatch.setenv("KUBECONFIG", cluster.kubeconfig_path)
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ClientConfigError) as caught:
        KubernetesClient.from_environment(missing)
    assert str(caught.value) == f"no usable Kubernetes configuration: kubeconfig {missing}: " \
                                "no such file"


def test_explicit_kubeconfig_may_be_a_list(cluster: SimulatedCluster, tmp_path: Path) -> None:
    mark(cluster, "listed")
    access = write(tmp_path / "access.yaml", clusters=[cluster_entry("sim", cluster)],
                   users=[user_entry("me", cluster.token)])
    ctx = write(tmp_path / "context.yaml", contexts=[context_entry("work", "sim", "me")],
                current="work")
    with KubernetesClient.from_environment(f"{access}:{ctx}") as kube:
        assert "listed" in namespaces(kube)
        assert kube.source == f"kubeconfig {access}:{ctx} (context work)"


# ------------------------------------------------------------------ $KUBECONFIG merging


def test_kubeconfig_list_merges_files_and_skips_missing_ones(
        cluster: SimulatedCluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    mark(cluster, "merged")
    access = write(tmp_path / "access.yaml", clusters=[cluster_entry("sim", cluster)],
                   users=[user_entry("me", cluster.token)])
    ctx = write(tmp_path / "context.yaml", contexts=[context_entry("work", "sim", "me")],
                current="work")
    missing = tmp_path / "not-there.yaml"
    monkeypatch.setenv("KUBECONFIG", f"{missing}:{access}::{ctx}")
    with KubernetesClient.from_environment() as kube:
        assert "merged" in namespaces(kube)
        assert kube.source == f"kubeconfig {access}:{ctx} (context work)"


def test_an_empty_file_in_the_list_is_an_empty_configuration(
        cluster: SimulatedCluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    monkeypatch.setenv("KUBECONFIG", f"{empty}:{cluster.kubeconfig_path}")
    with KubernetesClient.from_environment() as kube:
        assert "default" in namespaces(kube)
    with pytest.raises(ClientConfigError, match=f"^kubeconfig {empty}: empty$"):
        KubernetesClient.from_environment(empty)


def test_kubeconfig_list_first_file_wins(cluster: SimulatedCluster, other: SimulatedCluster,
                                         monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    mark(cluster, "first")
    mark(other, "second")
    # Both files define a cluster "c" and a user "u", and set a current-context.
    first = write(tmp_path / "first.yaml", clusters=[cluster_entry("c", cluster)],
                  users=[user_entry("u", cluster.token)],
                  contexts=[context_entry("main", "c", "u")], current="main")
    second = write(tmp_path / "second.yaml", clusters=[cluster_entry("c", other)],
                   users=[user_entry("u", other.token)],
                   contexts=[context_entry("alt", "c", "u")], current="alt")

    monkeypatch.setenv("KUBECONFIG", f"{first}:{second}")
    with KubernetesClient.from_environment() as kube:
        # kubectl's rule: the first current-context wins (the Python merger alone takes
        # the last one), and so do the first file's cluster and user.
        assert kube.source.endswith("(context main)")
        assert "first" in namespaces(kube)
    with KubernetesClient.from_environment(context="alt") as kube:
        # Context "alt" exists only in the second file, but names cluster "c" and user
        # "u", which the first file defined first.
        assert "first" in namespaces(kube)

    monkeypatch.setenv("KUBECONFIG", f"{second}:{first}")
    with KubernetesClient.from_environment() as kube:
        assert kube.source.endswith("(context alt)")
        assert "second" in namespaces(kube)


def test_kubeconfig_env_with_no_existing_file_falls_through(
        cluster: SimulatedCluster, clean_environment: Path, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'a.yaml'}:{tmp_path / 'b.yaml'}")
    (clean_environment / ".kube").mkdir()
    (clean_environment / ".kube" / "config").write_text(Path(cluster.kubeconfig_path).read_text())
    with KubernetesClient.from_environment() as kube:
        assert kube.source == "kubeconfig ~/.kube/config (context faro-sim)"
        assert "default" in namespaces(kube)


def test_home_kube_config(cluster: SimulatedCluster, clean_environment: Path) -> None:
    mark(cluster, "from-home")
    (clean_environment / ".kube").mkdir()
    (clean_environment / ".kube" / "config").write_text(Path(cluster.kubeconfig_path).read_text())
    with KubernetesClient.from_environment() as kube:
        assert "from-home" in namespaces(kube)


# ------------------------------------------------------------------ contexts


def test_context_chooses_the_cluster(cluster: SimulatedCluster, other: SimulatedCluster,
                                     tmp_path: Path) -> None:
    mark(cluster, "one-only")
    mark(other, "two-only")
    path = two_cluster_kubeconfig(tmp_path / "config.yaml", cluster, other)
    with KubernetesClient.from_environment(path) as kube:
        assert kube.source.endswith("(context one)")
        assert "one-only" in namespaces(kube)
        assert "two-only" not in namespaces(kube)
    with KubernetesClient.from_environment(path, context="two") as kube:
        assert kube.source.endswith("(context two)")
        assert "two-only" in namespaces(kube)
        assert "one-only" not in namespaces(kube)


def test_unknown_context_lists_the_available_ones(cluster: SimulatedCluster,
                                                  other: SimulatedCluster,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    path = two_cluster_kubeconfig(tmp_path / "config.yaml", cluster, other)
    with pytest.raises(ClientConfigError) as caught:
        KubernetesClient.from_environment(path, context="nope")
    assert str(caught.value) == (f"kubeconfig {path}: context 'nope' not found; "
                                 "available contexts: one, two")

    # Through $KUBECONFIG too, and without falling back to ~/.kube/config.
    monkeypatch.setenv("KUBECONFIG", str(path))
    with pytest.raises(ClientConfigError) as caught:
        KubernetesClient.from_environment(context="nope")
    message = str(caught.value)
    assert "context 'nope' not found; available contexts: one, two" in message
    assert "~/.kube/config" not in message


def test_missing_current_context(cluster: SimulatedCluster, tmp_path: Path) -> None:
    path = write(tmp_path / "config.yaml", clusters=[cluster_entry("sim", cluster)],
                 users=[user_entry("me", cluster.token)],
                 contexts=[context_entry("work", "sim", "me")])
    with pytest.raises(ClientConfigError, match="no current-context is set and no context was "
                                                "given; available contexts: work"):
        KubernetesClient.from_environment(path)
    with KubernetesClient.from_environment(path, context="work") as kube:
        assert "default" in namespaces(kube)


def test_invalid_kubeconfig_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("clusters: [\n")
    with pytest.raises(ClientConfigError, match=f"kubeconfig {path}: "):
        KubernetesClient.from_environment(path)


# ------------------------------------------------------------------ nothing configured


def test_nothing_configured_names_every_source(tmp_path: Path) -> None:
    with pytest.raises(ClientConfigError) as caught:
        KubernetesClient.from_environment(service_account_dir=tmp_path / "sa")
    assert str(caught.value) == (
        "no usable Kubernetes configuration: in-cluster: KUBERNETES_SERVICE_HOST is not set; "
        "KUBECONFIG: not set; ~/.kube/config: no such file")


def test_every_reason_is_given(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "gone.yaml"))
    sa = tmp_path / "sa"
    with pytest.raises(ClientConfigError) as caught:
        KubernetesClient.from_environment(service_account_dir=sa)
    assert str(caught.value) == (
        f"no usable Kubernetes configuration: in-cluster: no service account token at "
        f"{sa / 'token'}; KUBECONFIG {tmp_path / 'gone.yaml'}: no such file; "
        "~/.kube/config: no such file")


# ------------------------------------------------------------------ in-cluster


def test_in_cluster_service_account(tls_cluster: SimulatedCluster,
                                    monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    mark(tls_cluster, "in-pod")
    in_cluster_env(monkeypatch, tls_cluster)
    sa = service_account(tmp_path / "sa", tls_cluster)
    with KubernetesClient.from_environment(service_account_dir=sa) as kube:
        assert kube.source == "in-cluster service account"
        assert kube.api_client.configuration.host == f"https://127.0.0.1:{tls_cluster.port}"
        assert "in-pod" in namespaces(kube)
        assert kube.discovery.find("v1/configmaps") is not None


def test_in_cluster_is_preferred_over_kubeconfig(tls_cluster: SimulatedCluster,
                                                 cluster: SimulatedCluster,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    mark(tls_cluster, "in-pod")
    mark(cluster, "from-kubeconfig")
    monkeypatch.setenv("KUBECONFIG", cluster.kubeconfig_path)
    in_cluster_env(monkeypatch, tls_cluster)
    sa = service_account(tmp_path / "sa", tls_cluster)
    with KubernetesClient.from_environment(service_account_dir=sa) as kube:
        assert kube.source == "in-cluster service account"
        assert "in-pod" in namespaces(kube)

    # An explicit context means a kubeconfig: the service account is skipped.
    with KubernetesClient.from_environment(context="faro-sim", service_account_dir=sa) as kube:
        assert kube.source == f"kubeconfig {cluster.kubeconfig_path} (context faro-sim)"
        assert "from-kubeconfig" in namespaces(kube)


def test_in_cluster_without_token_falls_back_to_kubeconfig(
        tls_cluster: SimulatedCluster, cluster: SimulatedCluster,
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A pod with automountServiceAccountToken: false and a kubeconfig of its own.
    in_cluster_env(monkeypatch, tls_cluster)
    monkeypatch.setenv("KUBECONFIG", cluster.kubeconfig_path)
    sa = service_account(tmp_path / "sa", tls_cluster)
    (sa / "token").unlink()
    with KubernetesClient.from_environment(service_account_dir=sa) as kube:
        assert kube.source.startswith("kubeconfig ")
        assert "default" in namespaces(kube)


# ------------------------------------------------------------------ credential refresh


def test_refresh_after_token_rotation_with_kubeconfig(cluster: SimulatedCluster) -> None:
    with KubernetesClient.from_environment(cluster.kubeconfig_path) as kube:
        assert "default" in namespaces(kube)
        cluster.rotate_token()  # the simulator rewrites its kubeconfig with the new token
        assert_unauthorized(kube)
        kube.refresh_credentials()
        assert "default" in namespaces(kube)


def test_refresh_after_token_rotation_in_cluster(tls_cluster: SimulatedCluster,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    in_cluster_env(monkeypatch, tls_cluster)
    sa = service_account(tmp_path / "sa", tls_cluster)
    with KubernetesClient.from_environment(service_account_dir=sa) as kube:
        assert "default" in namespaces(kube)
        (sa / "token").write_text(tls_cluster.rotate_token())  # as the kubelet does
        assert_unauthorized(kube)
        kube.refresh_credentials()
        assert "default" in namespaces(kube)


def test_refresh_reaches_requests_set_up_before(cluster: SimulatedCluster) -> None:
    with KubernetesClient.from_environment(cluster.kubeconfig_path) as kube:
        v1 = client.CoreV1Api(kube.api_client)  # made before the refresh
        configuration = kube.api_client.configuration
        cluster.rotate_token()
        kube.refresh_credentials()
        assert kube.api_client.configuration is configuration
        assert v1.list_namespace().items


def test_refresh_failure_is_logged_not_raised(cluster: SimulatedCluster, tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(Path(cluster.kubeconfig_path).read_text())
    with KubernetesClient.from_environment(path) as kube:
        path.write_text("clusters: [\n")
        with caplog.at_level(logging.ERROR, logger="faro.client"):
            kube.refresh_credentials()
        assert any("re-reading the credentials" in r.getMessage() for r in caplog.records)
        assert "default" in namespaces(kube)  # the old credentials are kept


def test_a_plain_api_client_has_nothing_to_refresh(cluster: SimulatedCluster) -> None:
    with KubernetesClient(cluster.api_client) as kube:
        assert kube.source == "api client"
        kube.refresh_credentials()
        assert "default" in namespaces(kube)


# ------------------------------------------------------------------ the client object


def test_the_global_default_configuration_is_left_alone(cluster: SimulatedCluster) -> None:
    before = Configuration.get_default_copy()
    with KubernetesClient.from_environment(cluster.kubeconfig_path) as kube:
        assert kube.api_client.configuration.host == cluster.url
    after = Configuration.get_default_copy()
    assert after.host == before.host
    assert after.api_key == before.api_key


def test_discovery_is_made_once_and_close_is_idempotent(cluster: SimulatedCluster) -> None:
    kube = KubernetesClient.from_environment(cluster.kubeconfig_path)
    with kube:
        assert kube.discovery is kube.discovery
        assert kube.discovery.find("apps/v1/deployments") is not None
    kube.close()
    assert repr(kube) == f"KubernetesClient(kubeconfig {cluster.kubeconfig_path} " \
                         "(context faro-sim))"
