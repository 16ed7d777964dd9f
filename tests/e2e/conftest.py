"""Fixtures of the tests that talk to a cluster only through a kubeconfig (the simulator, or the
real control plane of ``make test-real``): see ``tests/e2e/backend.py``."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from faro import Controller
from faro.cache import SharedInformer
from tests.e2e.backend import Backend, target_backend
from tests.integration.kube import DEADLINE, Kubectl, target_kubeconfig, unique


@pytest.fixture
def backend() -> Iterator[Backend]:
    with target_backend() as target:
        yield target


@pytest.fixture
def api(backend: Backend) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(config_file=backend.kubeconfig)
    try:
        yield api_client
    finally:
        api_client.close()


@pytest.fixture
def v1(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture
def namespaces(v1: client.CoreV1Api) -> Iterator[Callable[[str], str]]:
    """Makes namespaces with unique names; deletes them at the end of the test."""
    made: list[str] = []

    def make(prefix: str) -> str:
        name = unique(f"faro-inf-{prefix}")
        v1.create_namespace({"apiVersion": "v1", "kind": "Namespace",
                             "metadata": {"name": name}})
        made.append(name)
        return name

    yield make
    for name in made:
        with contextlib.suppress(ApiException):
            v1.delete_namespace(name)


@pytest.fixture
def informers() -> Iterator[list[SharedInformer]]:
    """Informers a test started; each must stop within the deadline."""
    made: list[SharedInformer] = []
    yield made
    assert all(informer.stop(timeout=DEADLINE) for informer in made), \
        "an informer thread did not end"


@pytest.fixture
def controllers() -> Iterator[list[Controller]]:
    made: list[Controller] = []
    yield made
    assert all(controller.stop(DEADLINE) for controller in made), \
        "a controller did not stop in time"


@pytest.fixture(scope="module")
def kubeconfig() -> Iterator[str]:
    """The kubeconfig of the module's cluster: the real one, or a TLS simulator."""
    # kubectl delete -f deletes a namespace and then its content one by one; a real namespace
    # controller takes longer than that to start emptying it, so must the simulator.
    with target_kubeconfig(namespace_cleanup_delay=1.0) as path:
        yield path


@pytest.fixture(scope="module")
def kubectl(kubeconfig: str, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(kubeconfig, tmp_path_factory.mktemp("kubectl-cache"))


@pytest.fixture
def names(kubectl: Kubectl) -> Iterator[Callable[[str], str]]:
    """Makes unique namespace names; deletes those namespaces (if they exist) afterwards."""
    made: list[str] = []

    def make(prefix: str) -> str:
        made.append(unique(f"faro-e2e-{prefix}"))
        return made[-1]

    yield make
    if made:
        kubectl.run("delete", "namespace", *made, "--ignore-not-found", "--wait=false")
