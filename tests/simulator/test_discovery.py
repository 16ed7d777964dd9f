"""Discovery as clients read it: versions, groups, resources, OpenAPI v3."""

from __future__ import annotations

from faro.testing import SimulatedCluster
from tests.integration.helpers import RawClient

AGGREGATED_ONLY = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
)


def _resources(api: RawClient, path: str) -> dict[str, dict[str, object]]:
    response = api.get(path)
    assert response.status == 200, response
    body = response.json()
    assert body["kind"] == "APIResourceList"
    return {r["name"]: r for r in body["resources"]}


def test_version_is_served_without_credentials(cluster: SimulatedCluster) -> None:
    anonymous = RawClient(cluster.url, None)
    response = anonymous.get("/version")
    assert response.status == 200
    assert response.json()["gitVersion"].startswith("v1.")
    assert anonymous.get("/api/v1").status == 401
    anonymous.close()


def test_core_resources_have_real_kinds_scopes_verbs_and_short_names(api: RawClient) -> None:
    resources = _resources(api, "/api/v1")
    expected = {
        "namespaces": ("Namespace", False, ["ns"]),
        "configmaps": ("ConfigMap", True, ["cm"]),
        "secrets": ("Secret", True, None),
        "services": ("Service", True, ["svc"]),
        "pods": ("Pod", True, ["po"]),
        "events": ("Event", True, ["ev"]),
        "serviceaccounts": ("ServiceAccount", True, ["sa"]),
        "endpoints": ("Endpoints", True, ["ep"]),
    }
    for name, (kind, namespaced, short) in expected.items():
        entry = resources[name]
        assert entry["kind"] == kind
        assert entry["namespaced"] is namespaced
        assert entry.get("shortNames") == short
        assert {"get", "list", "watch", "create", "update", "patch", "delete"} <= set(
            entry["verbs"]  # type: ignore[arg-type]
        )
    assert "deletecollection" not in resources["namespaces"]["verbs"]  # type: ignore[operator]
    assert resources["pods/status"]["verbs"] == ["get", "patch", "update"]
    assert "configmaps/status" not in resources


def test_groups_list_every_builtin_group_with_its_preferred_version(api: RawClient) -> None:
    body = api.get("/apis").json()
    assert body["kind"] == "APIGroupList"
    groups = {g["name"]: g for g in body["groups"]}
    for group in ("apps", "batch", "coordination.k8s.io", "apiextensions.k8s.io"):
        assert groups[group]["preferredVersion"]["groupVersion"] == f"{group}/v1"
    apps = _resources(api, "/apis/apps/v1")
    assert apps["deployments"]["shortNames"] == ["deploy"]
    assert apps["deployments"]["categories"] == ["all"]
    assert _resources(api, "/apis/batch/v1")["cronjobs"]["shortNames"] == ["cj"]
    crds = _resources(api, "/apis/apiextensions.k8s.io/v1")["customresourcedefinitions"]
    assert crds["namespaced"] is False and crds["shortNames"] == ["crd", "crds"]
    assert api.get("/apis/nosuch.example.com/v1").status == 404


def test_a_client_asking_only_for_aggregated_discovery_gets_the_legacy_form(
    api: RawClient,
) -> None:
    response = api.request("GET", "/apis", headers={"Accept": AGGREGATED_ONLY})
    assert response.status == 200
    # client-go reads the response by its content type: plain JSON means legacy discovery.
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["kind"] == "APIGroupList"


def test_openapi_v3_tells_kubectl_that_patch_validates_fields_on_the_server(
    api: RawClient,
) -> None:
    index = api.get("/openapi/v3").json()["paths"]
    url = index["apis/apps/v1"]["serverRelativeURL"]
    assert url.startswith("/openapi/v3/apis/apps/v1?hash=")
    path, _, query = url.partition("?")
    document = api.request("GET", path + "?" + query).json()
    patch = document["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {
        "group": "apps", "version": "v1", "kind": "Deployment"}
    assert "fieldValidation" in {p["name"] for p in patch["parameters"]}
    assert api.get("/openapi/v3/apis/nosuch/v1").status == 404
