"""List through raw HTTP: selectors, paging, resourceVersion semantics, as kube-apiserver lists."""

from __future__ import annotations

import threading
import time

import pytest

from faro.testing import SimulatedCluster
from tests.integration.helpers import (
    RawClient,
    Response,
    assert_status,
    configmap,
    create_configmap,
)

CM = "/api/v1/namespaces/default/configmaps"


def names(response: Response) -> list[str]:
    assert response.status == 200, response
    return [item["metadata"]["name"] for item in response.json()["items"]]


def add_namespace(cluster: SimulatedCluster, name: str) -> None:
    cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


# ---------------------------------------------------------------------------------- selectors


@pytest.fixture
def labelled(api: RawClient) -> None:
    for name, labels in (
        ("a", {"env": "prod", "tier": "web"}),
        ("b", {"env": "dev", "tier": "web"}),
        ("c", {"env": "staging"}),
        ("d", {}),
    ):
        create_configmap(api, configmap(name, labels=labels))


@pytest.mark.parametrize(("selector", "expected"), [
    ("env=prod", ["a"]),
    ("env==prod", ["a"]),
    ("env!=prod", ["b", "c", "d"]),  # objects without the key match !=
    ("env in (prod,dev)", ["a", "b"]),
    ("env notin (prod,dev)", ["c", "d"]),
    ("tier", ["a", "b"]),
    ("!tier", ["c", "d"]),
    ("tier=web,env!=dev", ["a"]),
    ("", ["a", "b", "c", "d"]),
])
def test_label_selectors(api: RawClient, labelled: None, selector: str,
                         expected: list[str]) -> None:
    assert names(api.get(CM, labelSelector=selector)) == expected


@pytest.mark.parametrize("selector", ["env in (prod", "=prod", "env in prod", "a b", "x=a,",
                                      "Inv@lid=x"])
def test_malformed_label_selector_is_400(api: RawClient, labelled: None, selector: str) -> None:
    body = assert_status(api.get(CM, labelSelector=selector), 400, "BadRequest")
    assert body["message"]


def test_field_selectors_on_name_and_namespace(api: RawClient, cluster: SimulatedCluster) -> None:
    add_namespace(cluster, "other")
    for namespace in ("default", "other"):
        for name in ("a", "b"):
            create_configmap(api, configmap(name, namespace=namespace))
    assert names(api.get(CM, fieldSelector="metadata.name=a")) == ["a"]
    every = api.get("/api/v1/configmaps", fieldSelector="metadata.name==b")
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in every.json()["items"]] \
        == [("default", "b"), ("other", "b")]
    other = api.get("/api/v1/configmaps", fieldSelector="metadata.namespace=other")
    assert {i["metadata"]["namespace"] for i in other.json()["items"]} == {"other"}
    assert names(api.get(CM, fieldSelector="metadata.name!=a")) == ["b"]
    both = api.get("/api/v1/configmaps",
                   fieldSelector="metadata.namespace=other,metadata.name=a")
    assert names(both) == ["a"]


@pytest.mark.parametrize("selector", ["data.key=x", "spec.nodeName=n1", "status.phase=Running"])
def test_field_selector_on_another_field_is_400(api: RawClient, selector: str) -> None:
    body = assert_status(api.get(CM, fieldSelector=selector), 400, "BadRequest")
    assert "is not a known field selector" in body["message"]


# ------------------------------------------------------------------------------ scope of lists


def test_all_namespaces_list(api: RawClient, cluster: SimulatedCluster) -> None:
    add_namespace(cluster, "team")
    create_configmap(api, configmap("x", namespace="team"))
    create_configmap(api, configmap("y"))
    body = api.get("/api/v1/configmaps").json()
    assert body["kind"] == "ConfigMapList" and body["apiVersion"] == "v1"
    assert {(i["metadata"]["namespace"], i["metadata"]["name"]) for i in body["items"]} == {
        ("team", "x"), ("default", "y")}


def test_list_in_a_namespace_that_does_not_exist_is_an_empty_list(api: RawClient) -> None:
    response = api.get("/api/v1/namespaces/ghost/configmaps")
    assert response.status == 200, response
    body = response.json()
    assert body["kind"] == "ConfigMapList" and body["items"] == []
    assert body["metadata"]["resourceVersion"].isdigit()


def test_list_items_of_built_in_kinds_carry_no_api_version_or_kind(api: RawClient) -> None:
    created = create_configmap(api, configmap("a", data={"k": "v"}))
    [item] = api.get(CM).json()["items"]
    assert "kind" not in item and "apiVersion" not in item
    assert item == {k: v for k, v in created.items() if k not in ("kind", "apiVersion")}
    [namespace] = api.get("/api/v1/namespaces", fieldSelector="metadata.name=default"
                          ).json()["items"]
    assert "kind" not in namespace


# ------------------------------------------------------------------------------------- paging


def test_limit_and_continue_page_through_everything(api: RawClient) -> None:
    for i in range(5):
        create_configmap(api, configmap(f"cm-{i}"))
    first = api.get(CM, limit=2).json()
    assert [i["metadata"]["name"] for i in first["items"]] == ["cm-0", "cm-1"]
    assert first["metadata"]["remainingItemCount"] == 3
    token = first["metadata"]["continue"]
    second = api.get(CM, limit=2, **{"continue": token}).json()
    assert [i["metadata"]["name"] for i in second["items"]] == ["cm-2", "cm-3"]
    assert second["metadata"]["remainingItemCount"] == 1
    last = api.get(CM, limit=2, **{"continue": second["metadata"]["continue"]}).json()
    assert [i["metadata"]["name"] for i in last["items"]] == ["cm-4"]
    assert "continue" not in last["metadata"]
    assert "remainingItemCount" not in last["metadata"]
    versions = {page["metadata"]["resourceVersion"] for page in (first, second, last)}
    assert len(versions) == 1


def test_pages_stay_consistent_at_the_first_pages_resource_version(api: RawClient) -> None:
    for i in range(4):
        create_configmap(api, configmap(f"cm-{i}", data={"v": "old"}))
    first = api.get(CM, limit=2).json()
    # Change the rest of the collection between pages.
    assert api.delete(f"{CM}/cm-2").status == 200
    assert api.patch(f"{CM}/cm-3", {"data": {"v": "new"}}, "application/merge-patch+json"
                     ).status == 200
    create_configmap(api, configmap("cm-25", data={"v": "new"}))
    second = api.get(CM, limit=10, **{"continue": first["metadata"]["continue"]}).json()
    assert [(i["metadata"]["name"], i["data"]["v"]) for i in second["items"]] == [
        ("cm-2", "old"), ("cm-3", "old")]
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert names(api.get(CM)) == ["cm-0", "cm-1", "cm-25", "cm-3"]


def test_paging_with_a_label_selector_omits_remaining_item_count(api: RawClient) -> None:
    for i in range(4):
        create_configmap(api, configmap(f"cm-{i}", labels={"even": str(i % 2 == 0).lower()}))
    first = api.get(CM, limit=1, labelSelector="even=true").json()
    assert [i["metadata"]["name"] for i in first["items"]] == ["cm-0"]
    assert "remainingItemCount" not in first["metadata"]
    rest = api.get(CM, limit=5, labelSelector="even=true",
                   **{"continue": first["metadata"]["continue"]})
    assert names(rest) == ["cm-2"]


def test_continue_with_a_resource_version_is_400(api: RawClient) -> None:
    for i in range(3):
        create_configmap(api, configmap(f"cm-{i}"))
    first = api.get(CM, limit=1).json()
    response = api.get(CM, limit=1, resourceVersion=first["metadata"]["resourceVersion"],
                       **{"continue": first["metadata"]["continue"]})
    body = assert_status(response, 400, "BadRequest")
    assert body["message"] == "specifying resource version is not allowed when using continue"


def test_malformed_continue_token_is_400(api: RawClient) -> None:
    body = assert_status(api.get(CM, limit=1, **{"continue": "not-a-token"}), 400, "BadRequest")
    assert body["message"].startswith("invalid continue token")


def test_expired_continue_token_is_410_with_a_token_to_go_on_inconsistently(
        api: RawClient, cluster: SimulatedCluster) -> None:
    for i in range(3):
        create_configmap(api, configmap(f"cm-{i}"))
    first = api.get(CM, limit=1).json()
    create_configmap(api, configmap("cm-9"))
    cluster.compact()
    body = assert_status(api.get(CM, limit=1, **{"continue": first["metadata"]["continue"]}),
                         410, "Expired")
    assert "continue parameter is too old" in body["message"]
    fresh = api.get(CM, limit=10, **{"continue": body["metadata"]["continue"]})
    assert names(fresh) == ["cm-1", "cm-2", "cm-9"]  # the rest, at the latest state
    assert int(fresh.json()["metadata"]["resourceVersion"]) == cluster.resource_version


# ---------------------------------------------------------------------------- resourceVersion


def test_resource_version_unset_and_zero_serve_the_latest(api: RawClient,
                                                          cluster: SimulatedCluster) -> None:
    create_configmap(api, configmap("a"))
    for version in (None, "0"):
        response = api.get(CM, resourceVersion=version)
        assert names(response) == ["a"]
        assert int(response.json()["metadata"]["resourceVersion"]) == cluster.resource_version


def test_not_older_than_serves_the_latest_state(api: RawClient,
                                                cluster: SimulatedCluster) -> None:
    old = create_configmap(api, configmap("a", data={"v": "1"}))
    api.patch(f"{CM}/a", {"data": {"v": "2"}}, "application/merge-patch+json")
    for match in (None, "NotOlderThan"):
        response = api.get(CM, resourceVersion=old["metadata"]["resourceVersion"],
                           resourceVersionMatch=match)
        assert response.status == 200, response
        assert response.json()["items"][0]["data"] == {"v": "2"}
        assert int(response.json()["metadata"]["resourceVersion"]) == cluster.resource_version


def test_exact_serves_the_state_at_an_older_resource_version(api: RawClient) -> None:
    create_configmap(api, configmap("a", data={"v": "1"}))
    create_configmap(api, configmap("b", data={"v": "1"}))
    at = api.get(CM).json()["metadata"]["resourceVersion"]
    api.patch(f"{CM}/a", {"data": {"v": "2"}}, "application/merge-patch+json")
    api.delete(f"{CM}/b")
    create_configmap(api, configmap("c", data={"v": "1"}))
    response = api.get(CM, resourceVersion=at, resourceVersionMatch="Exact")
    assert response.status == 200, response
    body = response.json()
    assert body["metadata"]["resourceVersion"] == at
    assert [(i["metadata"]["name"], i["data"]["v"]) for i in body["items"]] == [
        ("a", "1"), ("b", "1")]
    assert names(api.get(CM)) == ["a", "c"]


def test_a_limited_list_at_a_resource_version_is_exact(api: RawClient) -> None:
    # The legacy rule: resourceVersion=N with a limit and no resourceVersionMatch is Exact.
    create_configmap(api, configmap("a", data={"v": "1"}))
    at = api.get(CM).json()["metadata"]["resourceVersion"]
    api.patch(f"{CM}/a", {"data": {"v": "2"}}, "application/merge-patch+json")
    body = api.get(CM, resourceVersion=at, limit=5).json()
    assert body["metadata"]["resourceVersion"] == at
    assert body["items"][0]["data"] == {"v": "1"}


def test_exact_at_a_compacted_resource_version_is_410(api: RawClient,
                                                      cluster: SimulatedCluster) -> None:
    create_configmap(api, configmap("a"))
    at = api.get(CM).json()["metadata"]["resourceVersion"]
    create_configmap(api, configmap("b"))
    cluster.compact()
    body = assert_status(api.get(CM, resourceVersion=at, resourceVersionMatch="Exact"),
                         410, "Expired")
    assert body["message"] == "The resourceVersion for the provided list is too old."


@pytest.mark.parametrize(("params", "message"), [
    ({"resourceVersionMatch": "NotOlderThan"},
     "resourceVersionMatch is forbidden unless resourceVersion is provided"),
    ({"resourceVersionMatch": "Exact"},
     "resourceVersionMatch is forbidden unless resourceVersion is provided"),
    ({"resourceVersionMatch": "Exact", "resourceVersion": "0"},
     'resourceVersionMatch "exact" is forbidden for resourceVersion "0"'),
    ({"resourceVersionMatch": "Newest", "resourceVersion": "1"}, 'Unsupported value: "Newest"'),
])
def test_invalid_resource_version_match_is_422_invalid_list_options(
        api: RawClient, params: dict[str, str], message: str) -> None:
    # The real handler validates ListOptions and answers 422 (errors.NewInvalid), not 400.
    body = assert_status(api.get(CM, **params), 422, "Invalid")
    assert body["message"].startswith('ListOptions.meta.k8s.io "" is invalid: '
                                      "resourceVersionMatch: ")
    assert message in body["message"]
    assert body["details"]["kind"] == "ListOptions"
    assert body["details"]["group"] == "meta.k8s.io"
    assert body["details"]["causes"][0]["field"] == "resourceVersionMatch"


def test_malformed_resource_version_is_400(api: RawClient) -> None:
    assert_status(api.get(CM, resourceVersion="abc"), 400, "BadRequest")


def test_future_resource_version_is_504_too_large_after_waiting(
        api: RawClient, cluster: SimulatedCluster) -> None:
    future = cluster.resource_version + 100
    started = time.monotonic()
    response = api.get(CM, resourceVersion=str(future))
    elapsed = time.monotonic() - started
    body = assert_status(response, 504, "Timeout")
    assert elapsed >= 0.3  # the fixture's too_large_rv_wait
    assert body["message"] == (f"Timeout: Too large resource version: {future}, current: "
                               f"{cluster.resource_version}")
    assert body["details"]["causes"] == [
        {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}]
    assert body["details"]["retryAfterSeconds"] == 1
    assert response.headers["Retry-After"] == "1"


def test_a_resource_version_reached_while_waiting_is_served(
        api: RawClient, cluster: SimulatedCluster) -> None:
    with SimulatedCluster(too_large_rv_wait=10.0) as patient:
        client = RawClient(patient.url, patient.token)
        try:
            wanted = patient.resource_version + 1
            results: list[Response] = []
            reader = threading.Thread(target=lambda: results.append(client.get(
                CM, resourceVersion=str(wanted))))
            reader.start()
            patient.create(configmap("arrives"))
            reader.join(timeout=10)
            [response] = results
            assert names(response) == ["arrives"]
            assert int(response.json()["metadata"]["resourceVersion"]) >= wanted
        finally:
            client.close()
