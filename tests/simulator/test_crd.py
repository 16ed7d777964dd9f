"""CustomResourceDefinitions through raw HTTP: establishment, discovery, objects, deletion."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from faro.testing import SimulatedCluster
from tests.integration.helpers import RawClient, assert_status, crd

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
WIDGETS = "/apis/example.com/v1/namespaces/default/widgets"
MERGE = "application/merge-patch+json"


def widget(name: str, api_version: str = "example.com/v1", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": "Widget", "metadata": {"name": name},
            "spec": dict(spec)}


def install(api: RawClient, definition: dict[str, Any]) -> dict[str, Any]:
    response = api.post(CRDS, definition)
    assert response.status == 201, response
    body: dict[str, Any] = response.json()
    return body


def post(api: RawClient, path: str, obj: dict[str, Any]) -> dict[str, Any]:
    response = api.post(path, obj)
    assert response.status == 201, response
    body: dict[str, Any] = response.json()
    return body


def group_names(api: RawClient) -> list[str]:
    return [g["name"] for g in api.get("/apis").json()["groups"]]


def rv(obj: dict[str, Any]) -> int:
    return int(obj["metadata"]["resourceVersion"])


def test_a_new_crd_is_added_then_established(api: RawClient, cluster: SimulatedCluster) -> None:
    watch = api.watch(CRDS, resourceVersion=str(cluster.resource_version))
    install(api, crd())
    added = watch.next()
    assert added["type"] == "ADDED"
    conditions = (added["object"].get("status") or {}).get("conditions") or []
    assert not any(c["type"] == "Established" for c in conditions)
    modified = watch.next()
    assert modified["type"] == "MODIFIED"
    status = modified["object"]["status"]
    by_type = {c["type"]: c for c in status["conditions"]}
    assert by_type["Established"]["status"] == "True"
    assert by_type["NamesAccepted"]["status"] == "True"
    assert status["acceptedNames"]["plural"] == "widgets"
    assert status["acceptedNames"]["kind"] == "Widget"
    assert status["storedVersions"] == ["v1"]
    assert rv(modified["object"]) > rv(added["object"])
    assert api.get(f"{CRDS}/widgets.example.com").json() == modified["object"]


def test_discovery_serves_the_resource_once_established(api: RawClient) -> None:
    assert "example.com" not in group_names(api)
    # A group the server does not serve gets Go's plain 404, as from kube-apiserver.
    assert api.get("/apis/example.com/v1").status == 404
    assert api.get(WIDGETS).status == 404
    install(api, crd())
    assert "example.com" in group_names(api)
    group = api.get("/apis/example.com").json()
    assert group["preferredVersion"]["groupVersion"] == "example.com/v1"
    resources = api.get("/apis/example.com/v1").json()["resources"]
    [entry] = [r for r in resources if r["name"] == "widgets"]
    assert entry["kind"] == "Widget" and entry["namespaced"] is True
    assert "watch" in entry["verbs"] and "deletecollection" in entry["verbs"]


def test_namespaced_custom_objects_create_get_list_watch(api: RawClient) -> None:
    install(api, crd())
    watch = api.watch(WIDGETS)
    created = post(api, WIDGETS, widget("w1", size=1))
    assert created["metadata"]["namespace"] == "default"
    assert created["metadata"]["generation"] == 1
    assert api.get(f"{WIDGETS}/w1").json() == created
    assert watch.next() == {"type": "ADDED", "object": created}
    listed = api.get(WIDGETS).json()
    assert listed["kind"] == "WidgetList" and listed["apiVersion"] == "example.com/v1"
    assert listed["items"] == [created]  # custom resources' list items keep apiVersion/kind
    everywhere = api.get("/apis/example.com/v1/widgets").json()["items"]
    assert [w["metadata"]["name"] for w in everywhere] == ["w1"]


def test_cluster_scoped_custom_objects(api: RawClient) -> None:
    install(api, crd(plural="gadgets", kind="Gadget", scope="Cluster"))
    path = "/apis/example.com/v1/gadgets"
    watch = api.watch(path)
    created = post(api, path, {"apiVersion": "example.com/v1", "kind": "Gadget",
                               "metadata": {"name": "g"}})
    assert "namespace" not in created["metadata"]
    assert watch.next()["object"] == created
    assert api.get(f"{path}/g").json() == created
    assert api.get("/apis/example.com/v1/namespaces/default/gadgets").status == 404


def test_custom_resources_need_a_resource_version_to_update(api: RawClient) -> None:
    install(api, crd())
    created = post(api, WIDGETS, widget("w", size=1))
    unconditional = copy.deepcopy(created)
    del unconditional["metadata"]["resourceVersion"]
    body = assert_status(api.put(f"{WIDGETS}/w", unconditional), 422, "Invalid")
    assert body["details"]["causes"][0]["field"] == "metadata.resourceVersion"


def test_custom_resource_generation_counts_everything_but_metadata(api: RawClient) -> None:
    install(api, crd())
    created = post(api, WIDGETS, widget("w", size=1))
    labelled = api.patch(f"{WIDGETS}/w", {"metadata": {"labels": {"a": "b"}}}, MERGE).json()
    assert labelled["metadata"]["generation"] == 1
    resized = api.patch(f"{WIDGETS}/w", {"spec": {"size": 2}}, MERGE).json()
    assert resized["metadata"]["generation"] == 2
    # Without a status subresource, status is ordinary content.
    with_status = api.patch(f"{WIDGETS}/w", {"status": {"ready": True}}, MERGE).json()
    assert with_status["status"] == {"ready": True}
    assert with_status["metadata"]["generation"] == 3
    assert rv(with_status) > rv(created)


def test_status_subresource_of_a_custom_resource(api: RawClient) -> None:
    install(api, crd(status=True))
    created = post(api, WIDGETS, {**widget("w", size=1), "status": {"ready": True}})
    assert "status" not in created
    updated = api.put(f"{WIDGETS}/w/status", {**created, "status": {"ready": True}}).json()
    assert updated["status"] == {"ready": True}
    assert updated["metadata"]["generation"] == 1
    main = api.patch(f"{WIDGETS}/w", {"spec": {"size": 2}, "status": {"ready": False}},
                     MERGE).json()
    assert main["status"] == {"ready": True} and main["metadata"]["generation"] == 2


def test_two_served_versions_share_one_storage(api: RawClient) -> None:
    install(api, crd(versions=("v1", "v2")))
    v2 = "/apis/example.com/v2/namespaces/default/widgets"
    watch_v2 = api.watch(v2)
    created = post(api, WIDGETS, widget("w", size=1))
    seen = api.get(f"{v2}/w").json()
    assert seen["apiVersion"] == "example.com/v2"
    assert {k: v for k, v in seen.items() if k != "apiVersion"} == \
        {k: v for k, v in created.items() if k != "apiVersion"}
    event = watch_v2.next()
    assert event["type"] == "ADDED" and event["object"]["apiVersion"] == "example.com/v2"
    post(api, v2, widget("w2", api_version="example.com/v2"))
    assert [w["apiVersion"] for w in api.get(WIDGETS).json()["items"]] == ["example.com/v1"] * 2
    assert [w["apiVersion"] for w in api.get(v2).json()["items"]] == ["example.com/v2"] * 2
    assert_status(api.post(v2, widget("w3")), 400, "BadRequest")  # v1 body on the v2 URL
    versions = [v["version"] for v in api.get("/apis/example.com").json()["versions"]]
    assert versions == ["v2", "v1"]  # the highest stable version is preferred


@pytest.mark.parametrize("breakage", ["no storage version", "bad name", "bad scope",
                                      "no kind"])
def test_an_invalid_crd_is_422(api: RawClient, breakage: str) -> None:
    definition = crd()
    if breakage == "no storage version":
        definition["spec"]["versions"][0]["storage"] = False
    elif breakage == "bad name":
        definition["metadata"]["name"] = "widgets.other.com"
    elif breakage == "bad scope":
        definition["spec"]["scope"] = "Global"
    else:
        del definition["spec"]["names"]["kind"]
    body = assert_status(api.post(CRDS, definition), 422, "Invalid")
    assert body["message"].startswith(
        f'CustomResourceDefinition.apiextensions.k8s.io "{definition["metadata"]["name"]}" '
        "is invalid: ")
    assert body["details"]["group"] == "apiextensions.k8s.io"
    assert body["details"]["causes"]
    assert "example.com" not in group_names(api)
    assert api.get(f"{CRDS}/{definition['metadata']['name']}").status == 404


def test_deleting_the_crd_deletes_its_objects_and_ends_watches(
        api: RawClient, cluster: SimulatedCluster) -> None:
    install(api, crd())
    for name in ("a", "b"):
        post(api, WIDGETS, widget(name))
    watch = api.watch(WIDGETS, resourceVersion=str(cluster.resource_version))
    assert api.delete(f"{CRDS}/widgets.example.com").status == 200
    events = [watch.next(), watch.next()]
    assert sorted((e["type"], e["object"]["metadata"]["name"]) for e in events) == [
        ("DELETED", "a"), ("DELETED", "b")]
    assert watch.next() == "<end>"
    assert "example.com" not in group_names(api)
    assert api.get("/apis/example.com/v1").status == 404
    assert api.get(WIDGETS).status == 404
    # A new CRD of the same name starts empty.
    install(api, crd())
    assert api.get(WIDGETS).json()["items"] == []


def test_changing_served_versions_re_registers(api: RawClient) -> None:
    current = install(api, crd(versions=("v1", "v2")))
    v2 = "/apis/example.com/v2/namespaces/default/widgets"
    watch_v2 = api.watch(v2)
    post(api, WIDGETS, widget("w"))
    assert watch_v2.next()["type"] == "ADDED"
    current = api.get(f"{CRDS}/widgets.example.com").json()
    current["spec"]["versions"][1]["served"] = False
    response = api.put(f"{CRDS}/widgets.example.com", current)
    assert response.status == 200, response
    assert response.json()["metadata"]["generation"] == 2
    assert watch_v2.next() == "<end>"
    assert api.get("/apis/example.com/v2").status == 404
    assert api.get(f"{v2}/w").status == 404
    assert api.get(f"{WIDGETS}/w").status == 200  # the objects stay
    current = response.json()
    current["spec"]["versions"].append({"name": "v3", "served": True, "storage": False})
    assert api.put(f"{CRDS}/widgets.example.com", current).status == 200
    assert api.get("/apis/example.com/v3/namespaces/default/widgets/w").json()["apiVersion"] \
        == "example.com/v3"


def test_crd_scope_is_immutable(api: RawClient) -> None:
    current = install(api, crd())
    current = api.get(f"{CRDS}/widgets.example.com").json()
    current["spec"]["scope"] = "Cluster"
    body = assert_status(api.put(f"{CRDS}/widgets.example.com", current), 422, "Invalid")
    assert body["details"]["causes"][0]["field"] == "spec.scope"
    assert "immutable" in body["message"]
    assert api.get(f"{CRDS}/widgets.example.com").json()["spec"]["scope"] == "Namespaced"


def test_deleting_a_custom_object_returns_status_success(api: RawClient) -> None:
    install(api, crd())
    created = post(api, WIDGETS, widget("w"))
    response = api.delete(f"{WIDGETS}/w")
    assert response.status == 200, response
    assert response.json() == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
        "details": {"name": "w", "group": "example.com", "kind": "widgets",
                    "uid": created["metadata"]["uid"]},
    }
