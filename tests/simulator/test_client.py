"""The official ``kubernetes`` client against the simulator (or the FARO_E2E_KUBECONFIG cluster).

Typed APIs, the dynamic client, watches resumed from a resourceVersion and paged
lists, configured from nothing but a kubeconfig. One cluster serves the module;
each test works in a namespace of its own. Tests of fault injection use the
simulator directly (the ``cluster`` fixture, plain HTTP).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, dynamic, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.exceptions import NotFoundError

from faro.testing import SimulatedCluster
from tests.integration.kube import DEADLINE, target_kubeconfig, unique


@pytest.fixture(scope="module")
def api_client() -> Iterator[client.ApiClient]:
    with target_kubeconfig() as kubeconfig:
        api = config.new_client_from_config(config_file=kubeconfig)
        try:
            yield api
        finally:
            api.close()


@pytest.fixture
def v1(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture
def ns(v1: client.CoreV1Api) -> Iterator[str]:
    """A namespace of the test's own, deleted afterwards."""
    name = unique("faro-client")
    v1.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    try:
        v1.delete_namespace(name)
    except ApiException as error:
        if error.status != 404:
            raise


@pytest.fixture
def dyn(api_client: client.ApiClient, tmp_path: Path) -> dynamic.DynamicClient:
    # The discovery cache goes to the test's directory rather than the shared /tmp.
    return dynamic.DynamicClient(api_client, cache_file=str(tmp_path / "discovery.json"))


def configmap(name: str, labels: dict[str, str] | None = None, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": labels or {}}, "data": data}


# ---------------------------------------------------------------------- typed ConfigMaps


@pytest.mark.cluster
def test_configmap_create_read_replace_patch_delete(v1: client.CoreV1Api, ns: str) -> None:
    created = v1.create_namespaced_config_map(ns, configmap("settings", mode="fast"))
    assert created.metadata.namespace == ns
    assert created.metadata.uid and created.metadata.resource_version
    assert created.metadata.creation_timestamp is not None

    read = v1.read_namespaced_config_map("settings", ns)
    assert read.data == {"mode": "fast"}
    assert read.metadata.resource_version == created.metadata.resource_version

    read.data["mode"] = "slow"
    replaced = v1.replace_namespaced_config_map("settings", ns, read)
    assert replaced.data == {"mode": "slow"}
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)

    patched = v1.patch_namespaced_config_map(
        "settings", ns, {"metadata": {"labels": {"tier": "gold"}}, "data": {"extra": "1"}})
    assert patched.metadata.labels == {"tier": "gold"}
    assert patched.data == {"mode": "slow", "extra": "1"}

    v1.delete_namespaced_config_map("settings", ns)
    with pytest.raises(ApiException) as missing:
        v1.read_namespaced_config_map("settings", ns)
    assert missing.value.status == 404
    assert "not found" in missing.value.body


@pytest.mark.cluster
def test_configmap_errors_carry_409_and_404(v1: client.CoreV1Api, ns: str) -> None:
    first = v1.create_namespaced_config_map(ns, configmap("taken", a="1"))

    with pytest.raises(ApiException) as exists:
        v1.create_namespaced_config_map(ns, configmap("taken", a="2"))
    assert exists.value.status == 409
    assert '"reason":"AlreadyExists"' in exists.value.body.replace(" ", "")

    v1.patch_namespaced_config_map("taken", ns, {"data": {"a": "3"}})
    first.data = {"a": "stale"}
    with pytest.raises(ApiException) as stale:
        v1.replace_namespaced_config_map("taken", ns, first)
    assert stale.value.status == 409
    assert '"reason":"Conflict"' in stale.value.body.replace(" ", "")
    assert v1.read_namespaced_config_map("taken", ns).data == {"a": "3"}

    for call in (lambda: v1.read_namespaced_config_map("absent", ns),
                 lambda: v1.delete_namespaced_config_map("absent", ns),
                 lambda: v1.patch_namespaced_config_map("absent", ns, {"data": {}})):
        with pytest.raises(ApiException) as missing:
            call()
        assert missing.value.status == 404


# -------------------------------------------------------------------------- Deployments


@pytest.mark.cluster
def test_deployment_create_and_read(api_client: client.ApiClient, ns: str) -> None:
    apps = client.AppsV1Api(api_client)
    body = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.25",
                                         "env": [{"name": "MODE", "value": "fast"}]}]},
            },
        },
    }
    created = apps.create_namespaced_deployment(ns, body)
    assert created.metadata.generation == 1

    read = apps.read_namespaced_deployment("web", ns)
    container = read.spec.template.spec.containers[0]
    assert (container.name, container.image) == ("web", "nginx:1.25")
    assert [(e.name, e.value) for e in container.env] == [("MODE", "fast")]
    assert read.spec.selector.match_labels == {"app": "web"}
    names = [d.metadata.name for d in apps.list_namespaced_deployment(ns).items]
    assert names == ["web"]


# ------------------------------------------------------------------------ dynamic client


@pytest.mark.cluster
def test_dynamic_client_crud_on_configmaps(dyn: dynamic.DynamicClient, ns: str) -> None:
    configmaps = dyn.resources.get(api_version="v1", kind="ConfigMap")
    assert configmaps.namespaced and configmaps.name == "configmaps"

    created = configmaps.create(body=configmap("dyn", a="1"), namespace=ns)
    assert created.metadata.name == "dyn"
    assert configmaps.get(name="dyn", namespace=ns).data.a == "1"

    body = configmaps.get(name="dyn", namespace=ns).to_dict()
    body["data"]["a"] = "2"
    assert configmaps.replace(body=body, namespace=ns).data.a == "2"

    patched = configmaps.patch(name="dyn", namespace=ns, body={"data": {"b": "3"}},
                               content_type="application/merge-patch+json")
    assert patched.data.to_dict() == {"a": "2", "b": "3"}
    assert [i.metadata.name for i in configmaps.get(namespace=ns).items
            if i.metadata.name == "dyn"] == ["dyn"]

    configmaps.delete(name="dyn", namespace=ns)
    with pytest.raises(NotFoundError):
        configmaps.get(name="dyn", namespace=ns)


def _wait_established(dyn: dynamic.DynamicClient, name: str) -> None:
    crds = dyn.resources.get(api_version="apiextensions.k8s.io/v1",
                             kind="CustomResourceDefinition")
    for event in crds.watch(field_selector=f"metadata.name={name}",
                            timeout=int(DEADLINE)):
        # A real server's first event of a new CRD may carry "conditions": null.
        conditions = (event["raw_object"].get("status") or {}).get("conditions") or []
        if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
            return
    raise AssertionError(f"CRD {name} not Established within {DEADLINE}s")


@pytest.mark.cluster
def test_dynamic_client_crud_on_a_custom_resource(dyn: dynamic.DynamicClient, ns: str) -> None:
    suffix = unique("x").split("-")[1]
    group, plural = f"t{suffix}.faro.example.com", f"widgets{suffix}"
    crd_name = f"{plural}.{group}"
    crds = dyn.resources.get(api_version="apiextensions.k8s.io/v1",
                             kind="CustomResourceDefinition")
    crds.create(body={
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": crd_name},
        "spec": {
            "group": group, "scope": "Namespaced",
            "names": {"plural": plural, "singular": f"widget{suffix}", "kind": "Widget"},
            "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                "openAPIV3Schema": {"type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True}}}],
        },
    })
    try:
        _wait_established(dyn, crd_name)
        # Discovery was read before the CRD existed: the client must find the new kind.
        widgets = dyn.resources.get(api_version=f"{group}/v1", kind="Widget")
        assert widgets.name == plural and widgets.namespaced

        body = {"apiVersion": f"{group}/v1", "kind": "Widget",
                "metadata": {"name": "w1"}, "spec": {"size": 3}}
        created = widgets.create(body=body, namespace=ns)
        assert created.metadata.generation == 1
        assert widgets.get(name="w1", namespace=ns).spec.size == 3

        patched = widgets.patch(name="w1", namespace=ns, body={"spec": {"size": 4}},
                                content_type="application/merge-patch+json")
        assert patched.spec.size == 4 and patched.metadata.generation == 2
        assert [w.metadata.name for w in widgets.get(namespace=ns).items] == ["w1"]

        widgets.delete(name="w1", namespace=ns)
        with pytest.raises(NotFoundError):
            widgets.get(name="w1", namespace=ns)
    finally:
        crds.delete(name=crd_name)


# ------------------------------------------------------------------------ watch and list


@pytest.mark.cluster
def test_watch_resumes_from_a_resource_version_and_gets_exactly_the_later_changes(
    v1: client.CoreV1Api, ns: str,
) -> None:
    labels = {"faro-test": "watch"}
    v1.create_namespaced_config_map(ns, configmap("early", labels, a="1"))
    rv = v1.list_namespaced_config_map(ns, label_selector="faro-test=watch").metadata \
        .resource_version

    v1.create_namespaced_config_map(ns, configmap("late", labels, a="1"))
    v1.patch_namespaced_config_map("late", ns, {"data": {"a": "2"}})
    v1.delete_namespaced_config_map("early", ns)
    v1.create_namespaced_config_map(ns, configmap("fence", labels))

    seen = []
    stream = watch.Watch()
    for event in stream.stream(v1.list_namespaced_config_map, ns, resource_version=rv,
                               label_selector="faro-test=watch",
                               timeout_seconds=int(DEADLINE)):
        seen.append((event["type"], event["object"].metadata.name,
                     event["object"].data or {}))
        if event["object"].metadata.name == "fence":
            stream.stop()
    assert seen == [
        ("ADDED", "late", {"a": "1"}),
        ("MODIFIED", "late", {"a": "2"}),
        ("DELETED", "early", {"a": "1"}),
        ("ADDED", "fence", {}),
    ]


@pytest.mark.cluster
def test_list_pages_with_limit_and_continue(v1: client.CoreV1Api, ns: str) -> None:
    names = [f"item-{i}" for i in range(5)]
    for name in names:
        v1.create_namespaced_config_map(ns, configmap(name, {"faro-test": "page"}))

    pages, token = [], None
    while True:
        page = v1.list_namespaced_config_map(ns, label_selector="faro-test=page", limit=2,
                                             _continue=token)
        pages.append([item.metadata.name for item in page.items])
        token = page.metadata.var_continue
        if not token:
            break
        assert len(pages) < 10, pages

    assert all(len(page) <= 2 for page in pages), pages
    assert len(pages) >= 3
    assert [name for page in pages for name in page] == names


# ----------------------------------------------------------- simulator only: expiry (410)


def test_an_expired_continue_token_and_watch_give_410(cluster: SimulatedCluster) -> None:
    v1 = client.CoreV1Api(cluster.api_client)
    for name in ("a", "b", "c"):
        v1.create_namespaced_config_map("default", configmap(name))
    first = v1.list_namespaced_config_map("default", limit=1)
    v1.create_namespaced_config_map("default", configmap("d"))
    cluster.compact()

    with pytest.raises(ApiException) as expired:
        v1.list_namespaced_config_map("default", limit=1, _continue=first.metadata.var_continue)
    assert expired.value.status == 410
    assert '"reason":"Expired"' in expired.value.body.replace(" ", "")

    stream = watch.Watch()
    with pytest.raises(ApiException) as gone:
        for _event in stream.stream(v1.list_namespaced_config_map, "default",
                                    resource_version=first.metadata.resource_version,
                                    timeout_seconds=int(DEADLINE)):
            pass
    assert gone.value.status == 410
