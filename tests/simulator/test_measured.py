"""What test_differential.py measured on kube-apiserver 1.37, kept by the simulator alone.

The differential test needs a real server; these checks do not, so ``make test-sim`` keeps the
simulator where the measurement put it. Each expected value is the real server's answer.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from http.client import HTTPConnection
from typing import Any

import pytest
import urllib3

from faro.testing import SimulatedCluster

CM = "/api/v1/namespaces/default/configmaps"
SECRETS = "/api/v1/namespaces/default/secrets"


@pytest.fixture
def sim() -> Iterator[SimulatedCluster]:
    with SimulatedCluster(anonymous_auth=True) as cluster:
        yield cluster


@pytest.fixture
def http(sim: SimulatedCluster) -> Iterator[Any]:
    pool = urllib3.PoolManager()
    auth = {"Authorization": f"Bearer {sim.token}"}

    def request(method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None) -> urllib3.BaseHTTPResponse:
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        extra = {"Content-Type": "application/json"} if data is not None else {}
        return pool.request(method, sim.url + path, body=data, decode_content=False,
                            headers={**auth, **extra, **(headers or {})}, retries=False)

    yield request
    pool.clear()


def configmap(name: str, **metadata: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, **metadata}}


def test_a_body_the_server_refuses_early_does_not_become_the_next_request(
        sim: SimulatedCluster) -> None:
    connection = HTTPConnection("127.0.0.1", sim.port, timeout=10)
    auth = {"Authorization": f"Bearer {sim.token}", "Content-Type": "application/json"}
    try:
        connection.request("PUT", CM, body=json.dumps(configmap("a")), headers=auth)
        refused = connection.getresponse()
        assert refused.status == 405 and json.loads(refused.read())["details"] == {}
        connection.request("GET", CM, headers=auth)  # the same connection
        answer = connection.getresponse()
        assert answer.status == 200 and json.loads(answer.read())["kind"] == "ConfigMapList"
    finally:
        connection.close()


def test_responses_are_framed_and_encoded_as_go_sends_them(http: Any) -> None:
    small = http("GET", CM + "/nothing")
    assert small.headers["Content-Length"] == str(len(small.data))
    assert small.data.endswith(b"}\n") and "Server" not in small.headers
    status = json.loads(small.data)
    assert list(status) == ["kind", "apiVersion", "metadata", "status", "message", "reason",
                            "details", "code"]
    for i in range(2):
        big = {**configmap(f"big-{i}"), "data": {"v": "x" * 70_000}}
        assert http("POST", CM, big).status == 201
    plain = http("GET", CM)
    assert plain.headers["Transfer-Encoding"] == "chunked" and "Content-Length" not in plain.headers
    assert "Content-Encoding" not in plain.headers
    zipped = http("GET", CM, headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert zipped.headers["Vary"] == "Accept-Encoding"
    assert gzip.decompress(zipped.data) == plain.data
    one = http("GET", CM + "/big-0", headers={"Accept-Encoding": "gzip"})  # under 128 KiB
    assert "Content-Encoding" not in one.headers
    version = http("GET", "/version")
    assert version.data.startswith(b'{\n  "major": "1",\n  "minor": "37"')
    assert not version.data.endswith(b"\n")


def test_paths_outside_the_api_get_go_s_plain_404(http: Any) -> None:
    for path in ("/apis/nothing.example.com/v1/things", "/apis/nothing.example.com", "/nope"):
        response = http("GET", path)
        assert (response.status, response.data) == (404, b"404 page not found\n"), path
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    for path in ("/api/v1/nothings", "/apis/apps/v9", "/api/v2"):
        body = json.loads(http("GET", path).data)
        assert body["details"] == {} and body["reason"] == "NotFound", path


def test_credentials(sim: SimulatedCluster, http: Any) -> None:
    bogus = {"Authorization": "Bearer not-the-token"}
    assert http("GET", "/version", headers=bogus).status == 401
    assert http("GET", "/healthz", headers=bogus).status == 401
    anonymous = urllib3.PoolManager()
    try:
        assert anonymous.request("GET", sim.url + "/version").status == 200
        listed = anonymous.request("GET", sim.url + CM + "?watch=1")
        assert listed.status == 403
        assert json.loads(listed.data)["message"] == (
            'configmaps is forbidden: User "system:anonymous" cannot watch resource '
            '"configmaps" in API group "" in the namespace "default"')
        got = anonymous.request("GET", sim.url + "/apis/apps/v1/namespaces/x/deployments/d")
        assert json.loads(got.data)["details"] == {"name": "d", "group": "apps",
                                                   "kind": "deployments"}
        path = anonymous.request("GET", sim.url + "/api")
        assert json.loads(path.data)["message"] == \
            'forbidden: User "system:anonymous" cannot get path "/api"'
    finally:
        anonymous.clear()


def watch_lines(http: Any, query: str) -> list[dict[str, Any]]:
    response = http("GET", f"{SECRETS}?watch=1&timeoutSeconds=1&{query}")
    assert response.status == 200, response.data
    return [json.loads(line) for line in response.data.splitlines()]


def test_the_initial_events_end_with_a_bookmark_and_send_initial_events(http: Any) -> None:
    first = json.loads(http("POST", SECRETS, {"apiVersion": "v1", "kind": "Secret",
                                              "metadata": {"name": "s-0"}}).data)
    http("POST", SECRETS, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s-1"}})
    rv = first["metadata"]["resourceVersion"]
    end = {"k8s.io/initial-events-end": "true"}
    for query in ("allowWatchBookmarks=true",
                  "sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
                  f"&resourceVersion={rv}&allowWatchBookmarks=true"):
        events = watch_lines(http, query)
        assert [e["type"] for e in events] == ["ADDED", "ADDED", "BOOKMARK"], query
        assert events[-1]["object"]["metadata"]["annotations"] == end
    assert [e["type"] for e in watch_lines(http, "resourceVersion=0")] == ["ADDED", "ADDED"]
    assert watch_lines(http, "sendInitialEvents=false&resourceVersionMatch=NotOlderThan") == []
    for query, message in (
            ("watch=1&sendInitialEvents=true", "sendInitialEvents requires setting "
             "resourceVersionMatch to NotOlderThan"),
            (f"watch=1&resourceVersionMatch=NotOlderThan&resourceVersion={rv}",
             "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"),
            ("sendInitialEvents=true", "sendInitialEvents is forbidden for list")):
        refused = http("GET", f"{SECRETS}?{query}&timeoutSeconds=1")
        assert refused.status == 422 and message in json.loads(refused.data)["message"], query


def test_labels_and_annotations_are_validated(http: Any) -> None:
    refused = http("POST", CM, configmap("a", labels={"app": "not ok!", "a/b/c": "x"},
                                         annotations={"Bad Key": "v"}))
    assert refused.status == 422
    causes = json.loads(refused.data)["details"]["causes"]
    assert [(c["field"], c["message"].split(":")[0]) for c in causes] == [
        ("metadata.labels", "Invalid value"), ("metadata.labels", "Invalid value"),
        ("metadata.annotations", "Invalid value")]
    assert "a valid label must be an empty string" in causes[0]["message"]
    assert "a valid label key must consist of" in causes[1]["message"]
    assert http("POST", CM, configmap("b", labels={"example.com/app": "ok"})).status == 201
    patched = http("PATCH", CM + "/b", {"metadata": {"labels": {"app": "-x-"}}},
                   headers={"Content-Type": "application/merge-patch+json"})
    assert patched.status == 422


def test_a_pod_is_deleted_gracefully(http: Any) -> None:
    pods = "/api/v1/namespaces/default/pods"
    created = json.loads(http("POST", pods, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}).data)
    assert created["metadata"]["generation"] == 1
    deleted = json.loads(http("DELETE", pods + "/p").data)
    assert deleted["metadata"]["generation"] == 2
    assert deleted["metadata"]["deletionGracePeriodSeconds"] == 0
    events = http("GET", f"{pods}?watch=1&timeoutSeconds=1"
                         f"&resourceVersion={created['metadata']['resourceVersion']}")
    lines = [json.loads(line) for line in events.data.splitlines()]
    assert [e["type"] for e in lines] == ["MODIFIED", "DELETED"]
    assert lines[-1]["object"] == deleted


def test_discovery_lists_as_the_real_server(http: Any) -> None:
    core = json.loads(http("GET", "/api/v1").data)
    assert "apiVersion" not in core
    names = [r["name"] for r in core["resources"]]
    assert names == sorted(names)
    services = next(r for r in core["resources"] if r["name"] == "services")
    assert "deletecollection" in services["verbs"]
    groups = json.loads(http("GET", "/apis").data)["groups"]
    assert [g["name"] for g in groups] == ["apps", "batch", "rbac.authorization.k8s.io",
                                           "apiextensions.k8s.io", "coordination.k8s.io"]
    assert "kind" not in groups[0]
    crds = json.loads(http("GET", "/apis/apiextensions.k8s.io/v1").data)["resources"][0]
    assert crds["categories"] == ["api-extensions"]


@pytest.mark.parametrize(("query", "message"), [
    ("limit=abc", 'strconv.ParseInt: parsing "abc": invalid syntax'),
    ("watch=1&timeoutSeconds=x", 'strconv.ParseInt: parsing "x": invalid syntax'),
    ("resourceVersion=abc", 'invalid resource version: resourceVersion: Invalid value: "abc": '
                            'strconv.ParseUint: parsing "abc": invalid syntax'),
    ("labelSelector=a%3Db,", "found '', expected: identifier after ','"),
    ("fieldSelector=metadata.name", "invalid selector: 'metadata.name'; can't understand "
                                    "'metadata.name'"),
])
def test_malformed_parameters_in_the_real_server_s_words(http: Any, query: str,
                                                         message: str) -> None:
    response = http("GET", f"{CM}?{query}")
    assert response.status == 400 and json.loads(response.data)["message"] == message
    assert http("GET", f"{CM}?limit=-1").status == 200  # a negative limit: no limit
