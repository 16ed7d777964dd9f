"""Create, read, update, patch and delete through raw HTTP, against kube-apiserver's rules."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from faro.testing import SimulatedCluster
from tests.integration.helpers import RawClient, assert_status, configmap, crd

CM = "/api/v1/namespaces/default/configmaps"
DEPLOY = "/apis/apps/v1/namespaces/default/deployments"
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"


def deployment(name: str, image: str = "nginx:1.27") -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default", "labels": dict(labels)},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": dict(labels)},
            "template": {"metadata": {"labels": dict(labels)}, "spec": {"containers": [
                {"name": "app", "image": image, "env": [{"name": "A", "value": "1"}]},
                {"name": "sidecar", "image": "busybox:1.36"},
            ]}},
        },
    }


def create(api: RawClient, path: str, obj: dict[str, Any]) -> dict[str, Any]:
    response = api.post(path, obj)
    assert response.status == 201, response
    body: dict[str, Any] = response.json()
    return body


def rv(obj: dict[str, Any]) -> int:
    return int(obj["metadata"]["resourceVersion"])


# ------------------------------------------------------------------------------------- create


def test_create_returns_201_with_server_set_metadata(api: RawClient) -> None:
    response = api.post(CM, configmap("a", data={"k": "v"}), fieldManager="my-controller")
    assert response.status == 201, response
    created = response.json()
    metadata = created["metadata"]
    assert created["kind"] == "ConfigMap" and created["apiVersion"] == "v1"
    assert uuid.UUID(metadata["uid"])
    assert TIMESTAMP.fullmatch(metadata["creationTimestamp"])
    assert metadata["resourceVersion"].isdigit()
    assert "generation" not in metadata  # the ConfigMap strategy keeps no generation
    [managed] = metadata["managedFields"]
    assert managed["manager"] == "my-controller"
    assert managed["operation"] == "Update"
    assert managed["apiVersion"] == "v1"
    assert managed["fieldsType"] == "FieldsV1"
    assert "f:k" in managed["fieldsV1"]["f:data"]
    assert api.get(f"{CM}/a").json() == created


def test_field_manager_defaults_to_the_user_agent_product(api: RawClient) -> None:
    response = api.request("POST", CM, configmap("a"),
                           headers={"User-Agent": "deploy-bot/2.1 (linux/amd64) faro/0.1"})
    assert response.status == 201, response
    assert response.json()["metadata"]["managedFields"][0]["manager"] == "deploy-bot"


def test_workload_kinds_start_at_generation_1(api: RawClient) -> None:
    created = create(api, DEPLOY, deployment("web"))
    assert created["metadata"]["generation"] == 1


def test_creating_an_existing_name_is_409_already_exists(api: RawClient) -> None:
    first = create(api, CM, configmap("a", data={"v": "1"}))
    body = assert_status(api.post(CM, configmap("a", data={"v": "2"})), 409, "AlreadyExists")
    assert body["message"] == 'configmaps "a" already exists'
    assert body["details"] == {"name": "a", "kind": "configmaps"}
    assert api.get(f"{CM}/a").json() == first


def test_generate_name_gives_distinct_server_chosen_names(api: RawClient) -> None:
    manifest = configmap("")
    del manifest["metadata"]["name"]
    manifest["metadata"]["generateName"] = "job-"
    names = {create(api, CM, manifest)["metadata"]["name"] for _ in range(3)}
    assert len(names) == 3
    for name in names:
        assert re.fullmatch(r"job-[a-z0-9]{5}", name), name
        assert api.get(f"{CM}/{name}").status == 200


@pytest.mark.parametrize(("path", "name", "message_part"), [
    (CM, "Bad_Name", "a lowercase RFC 1123 subdomain must consist of"),
    (CM, "ends-with-dash-", "a lowercase RFC 1123 subdomain must consist of"),
    (CM, "x" * 254, "must be no more than 253 characters"),
    ("/api/v1/namespaces", "has.dot", "a lowercase RFC 1123 label must consist of"),
    ("/api/v1/namespaces/default/services", "9starts-with-digit", "a DNS-1035 label"),
])
def test_invalid_names_are_422_naming_metadata_name(api: RawClient, path: str, name: str,
                                                    message_part: str) -> None:
    kind = {"namespaces": "Namespace", "services": "Service"}.get(path.rsplit("/", 1)[1],
                                                                    "ConfigMap")
    manifest = {"apiVersion": "v1", "kind": kind, "metadata": {"name": name}}
    body = assert_status(api.post(path, manifest), 422, "Invalid")
    assert body["message"].startswith(f'{kind} "{name}" is invalid: metadata.name: Invalid value')
    assert message_part in body["message"]
    causes = body["details"]["causes"]
    assert causes and all(c["field"] == "metadata.name" for c in causes)
    assert causes[0]["reason"] == "FieldValueInvalid"
    assert body["details"]["kind"] == kind and body["details"]["name"] == name
    assert api.get(f"{path}/{name}").status == 404


def test_invalid_name_message_is_the_real_servers(api: RawClient) -> None:
    body = assert_status(api.post("/api/v1/namespaces", {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "No"}}), 422, "Invalid")
    assert body["message"] == (
        'Namespace "No" is invalid: metadata.name: Invalid value: "No": a lowercase RFC 1123 '
        "label must consist of lower case alphanumeric characters or '-', and must start and "
        "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
        "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
    body = assert_status(api.post(DEPLOY, {**deployment("x"), "metadata": {"name": "X"}}),
                         422, "Invalid")
    assert body["message"].startswith('Deployment.apps "X" is invalid: metadata.name: ')
    assert body["details"]["group"] == "apps"


def test_creating_with_a_resource_version_is_refused(api: RawClient,
                                                     cluster: SimulatedCluster) -> None:
    stale = create(api, CM, configmap("a"))
    assert api.delete(f"{CM}/a").status == 200
    before = cluster.resource_version
    response = api.post(CM, stale)
    body = assert_status(response, 500)
    assert body["message"] == "resourceVersion should not be set on objects to be created"
    assert "reason" not in body  # StatusReasonUnknown is the empty string
    assert cluster.resource_version == before
    assert api.post(CM, stale, dryRun="All").status == 201  # a dry run skips that check
    fresh = {**stale, "metadata": {**stale["metadata"], "resourceVersion": "0"}}
    assert api.post(CM, fresh).status == 201  # "0" counts as unset


def test_creating_without_a_name_is_422_required(api: RawClient) -> None:
    body = assert_status(api.post(CM, {"apiVersion": "v1", "kind": "ConfigMap",
                                       "metadata": {}}), 422, "Invalid")
    assert body["details"]["causes"][0]["field"] == "metadata.name"
    assert body["details"]["causes"][0]["reason"] == "FieldValueRequired"


def test_creating_in_a_missing_namespace_is_404(api: RawClient) -> None:
    body = assert_status(api.post("/api/v1/namespaces/nope/configmaps",
                                  configmap("a", namespace="nope")), 404, "NotFound")
    assert body["message"] == 'namespaces "nope" not found'
    assert body["details"] == {"name": "nope", "kind": "namespaces"}


@pytest.mark.parametrize(("change", "message"), [
    ({"kind": "Secret"}, 'Secret in version "v1" cannot be handled as a ConfigMap'),
    ({"apiVersion": "apps/v1"}, "does not match the expected"),
])
def test_api_version_or_kind_not_matching_the_url_is_400(api: RawClient, change: dict[str, str],
                                                         message: str) -> None:
    body = assert_status(api.post(CM, {**configmap("a"), **change}), 400, "BadRequest")
    assert message in body["message"]
    assert api.get(f"{CM}/a").status == 404


def test_namespace_in_body_must_match_the_url(api: RawClient, cluster: SimulatedCluster) -> None:
    cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}})
    assert_status(api.post(CM, configmap("a", namespace="other")), 400, "BadRequest")


# ---------------------------------------------------------------------------------------- get


def test_get_missing_object_is_404_status(api: RawClient) -> None:
    body = assert_status(api.get(f"{CM}/missing"), 404, "NotFound")
    assert body["message"] == 'configmaps "missing" not found'
    assert body["details"] == {"name": "missing", "kind": "configmaps"}
    body = assert_status(api.get(f"{DEPLOY}/missing"), 404, "NotFound")
    assert body["message"] == 'deployments.apps "missing" not found'
    assert body["details"] == {"name": "missing", "group": "apps", "kind": "deployments"}


# ------------------------------------------------------------------------------------- update


def test_update_with_stale_resource_version_is_409_conflict(api: RawClient) -> None:
    created = create(api, CM, configmap("a", data={"v": "1"}))
    first = api.put(f"{CM}/a", {**created, "data": {"v": "2"}})
    assert first.status == 200, first
    assert rv(first.json()) > rv(created)
    body = assert_status(api.put(f"{CM}/a", {**created, "data": {"v": "3"}}), 409, "Conflict")
    assert body["message"] == ('Operation cannot be fulfilled on configmaps "a": the object has '
                               "been modified; please apply your changes to the latest version "
                               "and try again")
    assert api.get(f"{CM}/a").json()["data"] == {"v": "2"}


def test_update_without_resource_version_is_unconditional_for_configmaps(api: RawClient) -> None:
    create(api, CM, configmap("a", data={"v": "1"}))
    response = api.put(f"{CM}/a", configmap("a", data={"v": "2"}))
    assert response.status == 200, response
    assert response.json()["data"] == {"v": "2"}


def test_noop_update_commits_nothing(api: RawClient, cluster: SimulatedCluster) -> None:
    created = create(api, CM, configmap("a", labels={"x": "1"}, data={"v": "1"}))
    watch = api.watch(CM, resourceVersion=created["metadata"]["resourceVersion"])
    response = api.put(f"{CM}/a", created)
    assert response.status == 200, response
    assert response.json() == created
    assert cluster.resource_version == rv(created)
    fence = create(api, CM, configmap("fence"))
    event = watch.next()
    assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", "fence"), event
    assert rv(fence) == rv(created) + 1


def test_one_global_resource_version_across_resources(api: RawClient) -> None:
    cm = create(api, CM, configmap("a"))
    secret = create(api, "/api/v1/namespaces/default/secrets",
                    {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                     "stringData": {"password": "hunter2"}})
    cm2 = api.put(f"{CM}/a", {**cm, "data": {"k": "v"}}).json()
    deploy = create(api, DEPLOY, deployment("web"))
    versions = [rv(cm), rv(secret), rv(cm2), rv(deploy)]
    assert versions == sorted(versions) and len(set(versions)) == 4
    listed = api.get("/api/v1/secrets").json()
    assert int(listed["metadata"]["resourceVersion"]) >= rv(deploy)
    assert secret["data"] == {"password": "aHVudGVyMg=="}


def test_generation_bumps_only_for_spec_changes(api: RawClient) -> None:
    current = create(api, DEPLOY, deployment("web"))

    def put(obj: dict[str, Any]) -> dict[str, Any]:
        response = api.put(f"{DEPLOY}/web", obj)
        assert response.status == 200, response
        body: dict[str, Any] = response.json()
        return body

    relabelled = put({**current, "metadata": {**current["metadata"],
                                              "labels": {"app": "web", "tier": "front"}}})
    assert rv(relabelled) > rv(current)
    assert relabelled["metadata"]["generation"] == 1
    status = api.put(f"{DEPLOY}/web/status", {**relabelled, "status": {"replicas": 1}}).json()
    assert status["metadata"]["generation"] == 1
    scaled = put({**status, "spec": {**status["spec"], "replicas": 3}})
    assert scaled["metadata"]["generation"] == 2
    # Deployments also count annotations (they are copied to ReplicaSets).
    annotated = put({**scaled, "metadata": {**scaled["metadata"],
                                            "annotations": {"note": "x"}}})
    assert annotated["metadata"]["generation"] == 3


def test_status_subresource_separates_status_from_the_rest(api: RawClient) -> None:
    created = create(api, DEPLOY, {**deployment("web"), "status": {"replicas": 7}})
    assert created.get("status", {}).get("replicas") is None  # status is not set on create
    body = {**created, "spec": {**created["spec"], "replicas": 5},
            "status": {"replicas": 2, "readyReplicas": 2}}
    after_status = api.put(f"{DEPLOY}/web/status", body).json()
    assert after_status["status"] == {"replicas": 2, "readyReplicas": 2}
    assert after_status["spec"]["replicas"] == 1  # /status ignores everything but status
    body = {**after_status, "spec": {**after_status["spec"], "replicas": 4},
            "status": {"replicas": 0}}
    after_main = api.put(f"{DEPLOY}/web", body).json()
    assert after_main["spec"]["replicas"] == 4
    assert after_main["status"] == {"replicas": 2, "readyReplicas": 2}  # main PUT keeps status
    assert api.get(f"{DEPLOY}/web").json() == after_main


# -------------------------------------------------------------------------------------- patch


def test_merge_patch_sets_and_removes_fields(api: RawClient) -> None:
    create(api, CM, configmap("a", labels={"keep": "1", "drop": "1"}, data={"a": "1", "b": "2"}))
    response = api.patch(f"{CM}/a", {"metadata": {"labels": {"drop": None}},
                                     "data": {"b": None, "c": "3"}}, MERGE)
    assert response.status == 200, response
    patched = response.json()
    assert patched["metadata"]["labels"] == {"keep": "1"}
    assert patched["data"] == {"a": "1", "c": "3"}
    assert api.get(f"{CM}/a").json() == patched


def test_merge_patch_with_stale_resource_version_is_409(api: RawClient) -> None:
    created = create(api, CM, configmap("a", data={"v": "1"}))
    api.patch(f"{CM}/a", {"data": {"v": "2"}}, MERGE)
    response = api.patch(f"{CM}/a", {"metadata": {"resourceVersion":
                                                  created["metadata"]["resourceVersion"]},
                                     "data": {"v": "3"}}, MERGE)
    assert_status(response, 409, "Conflict")


def test_json_patch_applies_operations_in_order(api: RawClient) -> None:
    create(api, CM, configmap("a", data={"a": "1"}))
    response = api.patch(f"{CM}/a", [
        {"op": "test", "path": "/data/a", "value": "1"},
        {"op": "add", "path": "/data/b", "value": "2"},
        {"op": "replace", "path": "/data/a", "value": "10"},
        {"op": "add", "path": "/metadata/labels", "value": {"l": "v"}},
    ], JSON_PATCH)
    assert response.status == 200, response
    assert response.json()["data"] == {"a": "10", "b": "2"}
    assert response.json()["metadata"]["labels"] == {"l": "v"}


def test_json_patch_failing_test_op_is_422_and_changes_nothing(
        api: RawClient, cluster: SimulatedCluster) -> None:
    created = create(api, CM, configmap("a", data={"a": "1"}))
    response = api.patch(f"{CM}/a", [
        {"op": "replace", "path": "/data/a", "value": "2"},
        {"op": "test", "path": "/data/a", "value": "1"},
    ], JSON_PATCH)
    assert_status(response, 422, "Invalid")
    assert api.get(f"{CM}/a").json() == created
    assert cluster.resource_version == rv(created)


def test_strategic_merge_patch_merges_containers_by_name(api: RawClient) -> None:
    create(api, DEPLOY, deployment("web"))
    response = api.patch(f"{DEPLOY}/web", {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "nginx:1.28"},
    ]}}}}, STRATEGIC)
    assert response.status == 200, response
    containers = response.json()["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["app", "sidecar"]
    assert containers[0] == {"name": "app", "image": "nginx:1.28",
                             "env": [{"name": "A", "value": "1"}]}
    assert containers[1]["image"] == "busybox:1.36"
    assert response.json()["metadata"]["generation"] == 2
    # The same body as a merge patch replaces the whole list.
    merged = api.patch(f"{DEPLOY}/web", {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "nginx:1.28"}]}}}}, MERGE).json()
    assert merged["spec"]["template"]["spec"]["containers"] == [
        {"name": "app", "image": "nginx:1.28"}]


def test_strategic_merge_patch_on_a_custom_resource_is_415(api: RawClient) -> None:
    assert api.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                    crd()).status == 201
    path = "/apis/example.com/v1/namespaces/default/widgets"
    create(api, path, {"apiVersion": "example.com/v1", "kind": "Widget",
                       "metadata": {"name": "w"}, "spec": {"size": 1}})
    body = assert_status(api.patch(f"{path}/w", {"spec": {"size": 2}}, STRATEGIC), 415,
                         "UnsupportedMediaType")
    assert "application/merge-patch+json" in body["message"]
    assert "strategic" not in body["message"]
    assert api.patch(f"{path}/w", {"spec": {"size": 2}}, MERGE).json()["spec"] == {"size": 2}


def test_patch_with_an_unknown_content_type_is_415(api: RawClient) -> None:
    create(api, CM, configmap("a"))
    assert_status(api.patch(f"{CM}/a", {"data": {}}, "text/plain"), 415, "UnsupportedMediaType")


def test_patch_of_a_missing_object_is_404(api: RawClient) -> None:
    assert_status(api.patch(f"{CM}/missing", {"data": {"a": "1"}}, MERGE), 404, "NotFound")


# ------------------------------------------------------------------------------------- delete


def test_delete_returns_status_success_and_removes_the_object(api: RawClient) -> None:
    created = create(api, CM, configmap("a"))
    response = api.delete(f"{CM}/a")
    assert response.status == 200, response
    assert response.json() == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
        "details": {"name": "a", "kind": "configmaps", "uid": created["metadata"]["uid"]},
    }
    assert_status(api.get(f"{CM}/a"), 404, "NotFound")
    assert_status(api.delete(f"{CM}/a"), 404, "NotFound")


def test_delete_of_a_pod_returns_the_deleted_pod(api: RawClient) -> None:
    path = "/api/v1/namespaces/default/pods"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    created = create(api, path, pod)
    response = api.delete(f"{path}/p")
    assert response.status == 200, response
    body = response.json()
    assert body["kind"] == "Pod" and body["metadata"]["uid"] == created["metadata"]["uid"]
    assert rv(body) > rv(created)


def test_delete_preconditions(api: RawClient) -> None:
    created = create(api, CM, configmap("a"))
    uid, version = created["metadata"]["uid"], created["metadata"]["resourceVersion"]
    wrong_uid = str(uuid.uuid4())
    body = assert_status(api.delete(f"{CM}/a", {"preconditions": {"uid": wrong_uid}}),
                         409, "Conflict")
    assert body["message"] == (f'Operation cannot be fulfilled on ConfigMap "a": the UID in the '
                               f"precondition ({wrong_uid}) does not match the UID in record "
                               f"({uid}). The object might have been deleted and then recreated")
    body = assert_status(api.delete(f"{CM}/a", {"preconditions": {"resourceVersion": "1"}}),
                         409, "Conflict")
    assert f"does not match the ResourceVersion in record ({version})" in body["message"]
    assert api.get(f"{CM}/a").status == 200
    response = api.delete(f"{CM}/a", {"preconditions": {"uid": uid, "resourceVersion": version}})
    assert response.status == 200, response
    assert api.get(f"{CM}/a").status == 404


def test_finalizers_hold_deletion_until_the_last_is_removed(api: RawClient) -> None:
    manifest = configmap("a")
    manifest["metadata"]["finalizers"] = ["example.com/one", "example.com/two"]
    created = create(api, CM, manifest)
    watch = api.watch(CM, resourceVersion=created["metadata"]["resourceVersion"])
    response = api.delete(f"{CM}/a")
    assert response.status == 200, response  # 202 only for orphanDependents=false
    marked = response.json()
    assert TIMESTAMP.fullmatch(marked["metadata"]["deletionTimestamp"])
    assert marked["metadata"]["deletionGracePeriodSeconds"] == 0
    event = watch.next()
    assert event["type"] == "MODIFIED" and event["object"] == marked
    assert api.get(f"{CM}/a").json() == marked
    # Deleting again changes nothing.
    assert api.delete(f"{CM}/a").json() == marked
    one_left = api.patch(f"{CM}/a", [{"op": "remove", "path": "/metadata/finalizers/0"}],
                         JSON_PATCH).json()
    assert one_left["metadata"]["finalizers"] == ["example.com/two"]
    event = watch.next()
    assert event["type"] == "MODIFIED" and event["object"] == one_left
    response = api.patch(f"{CM}/a", {"metadata": {"finalizers": None}}, MERGE)
    assert response.status == 200, response
    event = watch.next()
    assert event["type"] == "DELETED", event
    assert event["object"]["metadata"]["uid"] == created["metadata"]["uid"]
    assert rv(event["object"]) > rv(one_left)
    assert api.get(f"{CM}/a").status == 404


def test_marking_for_deletion_bumps_the_generation(api: RawClient) -> None:
    manifest = deployment("web")
    manifest["metadata"]["finalizers"] = ["example.com/hold"]
    create(api, DEPLOY, manifest)
    marked = api.delete(f"{DEPLOY}/web").json()
    assert marked["metadata"]["generation"] == 2


def test_deleting_a_namespace_terminates_it_then_its_objects_then_itself(
        api: RawClient, cluster: SimulatedCluster) -> None:
    created = create(api, "/api/v1/namespaces",
                     {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
    assert created["status"] == {"phase": "Active"}
    path = "/api/v1/namespaces/team/configmaps"
    for name in ("a", "b"):
        create(api, path, configmap(name, namespace="team"))
    start = str(cluster.resource_version)
    ns_watch = api.watch("/api/v1/namespaces", resourceVersion=start,
                         fieldSelector="metadata.name=team")
    cm_watch = api.watch("/api/v1/configmaps", resourceVersion=start)
    response = api.delete("/api/v1/namespaces/team")
    assert response.status == 200, response
    assert response.json()["status"]["phase"] == "Terminating"
    terminating = ns_watch.next()
    assert terminating["type"] == "MODIFIED"
    assert terminating["object"]["status"]["phase"] == "Terminating"
    assert terminating["object"]["metadata"]["deletionTimestamp"]
    body = assert_status(api.post(path, configmap("late", namespace="team")), 403, "Forbidden")
    assert body["message"] == ('configmaps "late" is forbidden: unable to create new content in '
                               "namespace team because it is being terminated")
    assert body["details"]["causes"][0]["reason"] == "NamespaceTerminating"
    gone = cm_watch.take(2)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in gone] == [
        ("DELETED", "a"), ("DELETED", "b")]
    deleted = ns_watch.until(lambda e: e["type"] == "DELETED")[-1]
    assert all(rv(e["object"]) < rv(deleted["object"]) for e in gone)
    assert rv(terminating["object"]) < min(rv(e["object"]) for e in gone)
    assert api.get("/api/v1/namespaces/team").status == 404


def test_deletecollection_with_a_label_selector(api: RawClient) -> None:
    for name, tier in (("a", "web"), ("b", "web"), ("c", "db")):
        create(api, CM, configmap(name, labels={"tier": tier}))
    response = api.delete(CM, labelSelector="tier=web")
    assert response.status == 200, response
    body = response.json()
    assert body["kind"] == "ConfigMapList"
    assert sorted(item["metadata"]["name"] for item in body["items"]) == ["a", "b"]
    remaining = api.get(CM).json()["items"]
    assert [item["metadata"]["name"] for item in remaining] == ["c"]


def test_deletecollection_is_allowed_on_services_not_namespaces(api: RawClient) -> None:
    path = "/api/v1/namespaces/default/services"  # allowed since Kubernetes 1.31
    create(api, path, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                       "spec": {"ports": [{"port": 80}]}})
    assert api.delete(path).status == 200
    assert api.get(f"{path}/s").status == 404
    assert_status(api.delete("/api/v1/namespaces"), 405, "MethodNotAllowed")


# ------------------------------------------------------------------------------------ dry run


def test_dry_run_persists_nothing(api: RawClient, cluster: SimulatedCluster) -> None:
    existing = create(api, CM, configmap("existing", data={"v": "1"}))
    before = cluster.resource_version
    watch = api.watch(CM, resourceVersion=str(before))
    created = api.post(CM, configmap("new", data={"v": "1"}), dryRun="All")
    assert created.status == 201, created
    assert created.json()["metadata"]["name"] == "new"
    updated = api.put(f"{CM}/existing", {**existing, "data": {"v": "2"}}, dryRun="All")
    assert updated.status == 200 and updated.json()["data"] == {"v": "2"}
    patched = api.patch(f"{CM}/existing", {"data": {"v": "3"}}, MERGE, dryRun="All")
    assert patched.status == 200 and patched.json()["data"] == {"v": "3"}
    assert api.delete(f"{CM}/existing", dryRun="All").status == 200
    assert cluster.resource_version == before
    assert api.get(f"{CM}/new").status == 404
    assert api.get(f"{CM}/existing").json() == existing
    fence = create(api, CM, configmap("fence"))
    event = watch.next()
    assert event["object"]["metadata"]["name"] == "fence", event
    assert rv(fence) == before + 1


# --------------------------------------------------------------------------- errors and auth


@pytest.mark.parametrize(("method", "path", "body", "code"), [
    ("GET", f"{CM}/missing", None, 404),
    ("GET", "/api/v1/nothings", None, 404),
    ("GET", "/apis/apps/v9", None, 404),  # (an unknown group's 404 is plain text)
    ("POST", CM, b"{not json", 400),
    ("POST", CM, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "UPPER"}}, 422),
    ("PUT", f"{CM}/missing", {"apiVersion": "v1", "kind": "ConfigMap",
                              "metadata": {"name": "missing"}}, 404),
    ("DELETE", f"{CM}/missing", None, 404),
    ("GET", CM + "?labelSelector=a%20in%20(", None, 400),
    ("GET", CM + "?limit=x", None, 400),
])
def test_every_error_body_is_a_status(api: RawClient, method: str, path: str, body: Any,
                                      code: int) -> None:
    assert_status(api.request(method, path, body), code)


def test_requests_without_a_valid_token_are_401(cluster: SimulatedCluster) -> None:
    for token in (None, "wrong-token"):
        client = RawClient(cluster.url, token)
        try:
            body = assert_status(client.get(CM), 401, "Unauthorized")
            assert body["message"] == "Unauthorized"
            assert_status(client.post(CM, configmap("a")), 401, "Unauthorized")
        finally:
            client.close()
    assert cluster.list_objects("v1", "ConfigMap") == []


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_the_authorization_scheme_is_case_insensitive(cluster: SimulatedCluster,
                                                      scheme: str) -> None:
    client = RawClient(cluster.url, None)
    try:
        good = {"Authorization": f"{scheme} {cluster.token}"}
        assert client.request("GET", CM, headers=good).status == 200
        assert_status(client.request("GET", CM, headers={"Authorization": f"{scheme}  x"}),
                      401, "Unauthorized")
        assert_status(client.request("GET", CM, headers={"Authorization": cluster.token}),
                      401, "Unauthorized")
    finally:
        client.close()


def test_version_and_health_need_no_token(cluster: SimulatedCluster) -> None:
    client = RawClient(cluster.url, None)
    try:
        version = client.get("/version")
        assert version.status == 200 and version.json()["major"] == "1"
        for path in ("/healthz", "/livez", "/readyz"):
            response = client.get(path)
            assert (response.status, response.body) == (200, b"ok"), path
    finally:
        client.close()


def test_services_get_a_cluster_ip_unless_headless_or_external_name(api: RawClient) -> None:
    path = "/api/v1/namespaces/default/services"

    def create(name: str, spec: dict[str, Any]) -> dict[str, Any]:
        response = api.post(path, {"apiVersion": "v1", "kind": "Service",
                                   "metadata": {"name": name}, "spec": spec})
        assert response.status == 201, response
        created: dict[str, Any] = response.json()["spec"]
        return created

    plain = create("plain", {"ports": [{"port": 80}]})
    other = create("other", {"ports": [{"port": 80}]})
    assert plain["type"] == "ClusterIP" and plain["clusterIPs"] == [plain["clusterIP"]]
    assert plain["clusterIP"] != other["clusterIP"]
    headless = create("headless", {"clusterIP": "None", "ports": [{"port": 80}]})
    assert headless["clusterIP"] == "None" and headless["clusterIPs"] == ["None"]
    alias = create("alias", {"type": "ExternalName", "externalName": "db.example.com"})
    assert "clusterIP" not in alias and "clusterIPs" not in alias
    assert alias["externalName"] == "db.example.com"


def test_helpers_return_copies_so_changing_one_needs_an_update(cluster: SimulatedCluster) -> None:
    created = cluster.create(configmap("copy", data={"v": "1"}))
    created["data"]["v"] = "changed in place"
    fetched = cluster.get("v1", "ConfigMap", "copy", namespace="default")
    assert fetched["data"] == {"v": "1"}
    fetched["data"]["v"] = "2"
    updated = cluster.update(fetched)
    assert int(updated["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    assert cluster.get("v1", "ConfigMap", "copy", namespace="default")["data"] == {"v": "2"}
