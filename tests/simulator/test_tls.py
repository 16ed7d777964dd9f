"""The simulator's HTTPS mode: a CA of its own in the kubeconfig, verified for real by clients."""

from __future__ import annotations

import base64
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import urllib3
import yaml
from cryptography import x509
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from faro.testing import SimulatedCluster


@pytest.fixture(scope="module")
def tls_cluster() -> Iterator[SimulatedCluster]:
    with SimulatedCluster(tls=True) as sim:
        yield sim


@pytest.fixture(scope="module")
def other_tls_cluster() -> Iterator[SimulatedCluster]:
    with SimulatedCluster(tls=True) as sim:
        yield sim


def _pool(ca: bytes | None = None) -> urllib3.PoolManager:
    context = ssl.create_default_context(cadata=ca.decode() if ca else None)
    if ca is None:  # only the system's trust store
        context.load_default_certs()
    return urllib3.PoolManager(ssl_context=context, retries=False,
                               timeout=urllib3.Timeout(10))


def test_kubeconfig_carries_the_ca_and_an_https_server(tls_cluster: SimulatedCluster) -> None:
    kubeconfig = yaml.safe_load(Path(tls_cluster.kubeconfig_path).read_text())
    cluster = kubeconfig["clusters"][0]["cluster"]

    assert cluster["server"] == f"https://127.0.0.1:{tls_cluster.port}"
    assert tls_cluster.url == cluster["server"]
    ca_pem = base64.b64decode(cluster["certificate-authority-data"])
    assert ca_pem == tls_cluster.ca_pem
    ca = x509.load_pem_x509_certificate(ca_pem)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert "insecure-skip-tls-verify" not in cluster


def test_a_plain_http_cluster_has_no_ca() -> None:
    with SimulatedCluster() as plain:
        kubeconfig = yaml.safe_load(Path(plain.kubeconfig_path).read_text())
        assert kubeconfig["clusters"][0]["cluster"] == {"server": plain.url}
        assert plain.url.startswith("http://") and plain.ca_pem is None


def test_the_official_client_verifies_the_server_with_the_kubeconfig_ca(
    tls_cluster: SimulatedCluster,
) -> None:
    api = config.new_client_from_config(config_file=tls_cluster.kubeconfig_path)
    try:
        assert api.configuration.verify_ssl is True
        assert Path(api.configuration.ssl_ca_cert).read_bytes() == tls_cluster.ca_pem
        names = [n.metadata.name for n in client.CoreV1Api(api).list_namespace().items]
        assert "default" in names
    finally:
        api.close()


def test_a_client_without_the_ca_fails_verification(tls_cluster: SimulatedCluster) -> None:
    configuration = client.Configuration(host=tls_cluster.url)
    configuration.api_key = {"authorization": f"Bearer {tls_cluster.token}"}
    configuration.retries = False
    assert configuration.verify_ssl is True
    api = client.ApiClient(configuration)
    try:
        # The client reports TLS failures as an ApiException without an HTTP status.
        with pytest.raises(ApiException, match="CERTIFICATE_VERIFY_FAILED") as failed:
            client.CoreV1Api(api).list_namespace()
        assert failed.value.status == 0
    finally:
        api.close()


def test_each_cluster_has_its_own_ca(
    tls_cluster: SimulatedCluster, other_tls_cluster: SimulatedCluster,
) -> None:
    assert tls_cluster.ca_pem != other_tls_cluster.ca_pem
    wrong = _pool(other_tls_cluster.ca_pem)
    with pytest.raises(urllib3.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        wrong.request("GET", tls_cluster.url + "/version")
    right = _pool(tls_cluster.ca_pem)
    assert right.request("GET", tls_cluster.url + "/version").status == 200


def test_the_certificate_is_valid_for_localhost_too(tls_cluster: SimulatedCluster) -> None:
    response = _pool(tls_cluster.ca_pem).request(
        "GET", f"https://localhost:{tls_cluster.port}/version")
    assert response.status == 200
    assert response.json()["major"] == "1"


def test_plain_http_to_the_tls_port_is_refused(tls_cluster: SimulatedCluster) -> None:
    http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(10))
    response = http.request("GET", f"http://127.0.0.1:{tls_cluster.port}/api/v1/namespaces",
                            headers={"Authorization": f"Bearer {tls_cluster.token}"})

    # As kube-apiserver (Go's net/http) answers: 400 with a message saying what went wrong.
    assert response.status == 400
    assert response.data == b"Client sent an HTTP request to an HTTPS server.\n"
    # The server goes on serving TLS clients.
    assert _pool(tls_cluster.ca_pem).request("GET", tls_cluster.url + "/version").status == 200


@pytest.mark.kubectl
def test_kubectl_rejects_a_server_its_kubeconfig_ca_did_not_sign(
    tls_cluster: SimulatedCluster, other_tls_cluster: SimulatedCluster, tmp_path: Path,
) -> None:
    kubeconfig = yaml.safe_load(Path(tls_cluster.kubeconfig_path).read_text())
    other_ca = base64.b64encode(other_tls_cluster.ca_pem or b"").decode()
    kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"] = other_ca
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig))

    def kubectl(config_path: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["kubectl", "--kubeconfig", config_path, "--cache-dir", str(tmp_path / "cache"),
             "get", "namespace", "default", "-o", "name"],
            capture_output=True, text=True, timeout=60, check=False)

    refused = kubectl(str(path))
    assert refused.returncode == 1
    assert "certificate signed by unknown authority" in refused.stderr
    accepted = kubectl(tls_cluster.kubeconfig_path)
    assert (accepted.returncode, accepted.stdout) == (0, "namespace/default\n")


@pytest.mark.kubectl
def test_kubectl_withholds_the_token_over_plain_http(tmp_path: Path) -> None:
    # Why kubectl needs tls=True (and `faro sim` serves HTTPS by default).
    with SimulatedCluster() as plain:
        done = subprocess.run(
            ["kubectl", "--kubeconfig", plain.kubeconfig_path, "--cache-dir", str(tmp_path),
             "get", "namespaces"],
            capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert "You must be logged in to the server" in done.stderr
