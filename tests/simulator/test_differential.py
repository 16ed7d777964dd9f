"""The simulator measured against the real thing: one request script, two servers, one report.

:data:`SCRIPT` is sent step by step to a TLS :class:`~faro.testing.SimulatedCluster` and to the
real kube-apiserver of ``FARO_E2E_KUBECONFIG`` (``make test-real``), through one raw HTTP
client; ``differential.py`` says what is compared and how values that legitimately differ are
normalised. The test fails on any difference that is not listed, with its reason, in the
step's ``known`` (those are in docs/simulator.md, "Differences from a real kube-apiserver
(measured)"), and prints the whole report (``-s`` shows it when the test passes). The simulator
runs with ``anonymous_auth=True``, as a real server authenticates by default (its own default,
401 for a request without credentials, is one of the documented differences).

It needs both servers, so it skips without ``FARO_E2E_KUBECONFIG``; the 410 steps compact the
real server's etcd, so it needs ``FARO_E2E_ETCD`` too (both set by ``make test-real``). Run it
alone with ``make test-real PYTEST_ARGS=tests/simulator/test_differential.py``.
"""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from faro.testing import SimulatedCluster
from tests.e2e.backend import ETCD_ENV, UNCACHED, Backend
from tests.integration.kube import E2E_ENV, real_cluster, unique
from tests.simulator.differential import Step, endpoint, report, run

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

NS = "/api/v1/namespaces/{ns}"
CM = NS + "/configmaps"
SECRETS = NS + "/secrets"
# Not in the real server's watch cache (make test-real turns it off): 410 once compacted.
TEMPLATES = NS + "/" + UNCACHED.split("/", 1)[1]


def configmap(name: str, labels: dict[str, str] | None = None, **data: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if labels:
        metadata["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata,
            "data": data or {"key": "value"}}


def secret(name: str, size: int = 8) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "data": {"blob": base64.b64encode(b"s" * size).decode()}}


def podtemplate(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": name},
            "template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}


POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p-1"},
       "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc-1"},
           "spec": {"ports": [{"port": 80}]}}
A = {"app": "x", "fidelity": "yes"}
B = {"app": "y", "fidelity": "yes"}
MERGE = "application/merge-patch+json"
GZIP = {"Accept-Encoding": "gzip"}
AGGREGATED = ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
              "application/json")
BIG = "b" * 70_000  # two of these make a list over the 128 KiB the real server compresses

SCRIPT: list[Step] = [
    # ---------------------------------------------------------------- discovery
    Step("discovery: core versions", path="/api", expect=200),
    Step("discovery: groups", path="/apis", expect=200),
    Step("discovery: core v1 resources", path="/api/v1", expect=200),
    *[Step(f"discovery: {gv} resources", path=f"/apis/{gv}", expect=200)
      for gv in ("apps/v1", "batch/v1", "coordination.k8s.io/v1",
                 "rbac.authorization.k8s.io/v1", "apiextensions.k8s.io/v1")],
    Step("discovery: one group", path="/apis/apps", expect=200),
    Step("discovery: a client asking for aggregated discovery", path="/apis",
         headers={"Accept": AGGREGATED}, expect=200,
         known={"headers.*": "aggregated discovery is not simulated: the legacy document "
                "answers (a client asking for both accepts it), with its headers",
                "body.*": "aggregated discovery is not simulated"}),
    Step("version", path="/version", expect=200),
    Step("404: unknown resource of a served group", path="/api/v1/fidelitythings", expect=404),
    Step("404: unknown group", path="/apis/fidelity.example.com/v1/things", expect=404),
    Step("404: unknown version of a served group", path="/apis/apps/v9", expect=404),
    # ---------------------------------------------------------------- create, get
    Step("create the namespace", "POST", "/api/v1/namespaces",
         {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "{ns}"}},
         expect=201, save="ns"),
    Step("create cm-a", "POST", CM, configmap("cm-a", A), expect=201, save="cm-a"),
    Step("409: create cm-a again", "POST", CM, configmap("cm-a", A), expect=409),
    Step("get cm-a", path=CM + "/cm-a", expect=200),
    Step("404: get a missing configmap", path=CM + "/cm-missing", expect=404),
    Step("create cm-b", "POST", CM, configmap("cm-b", B), expect=201, save="cm-b"),
    Step("create cm-c", "POST", CM, configmap("cm-c", A), expect=201, save="cm-c"),
    Step("create with generateName", "POST", CM,
         {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"generateName": "gen-", "labels": {"generated": "yes"}}},
         expect=201, save="gen"),
    # ---------------------------------------------------------------- list
    Step("list: label selector", path=CM + "?labelSelector=app%3Dx", expect=200),
    Step("list: field selector", path=CM + "?fieldSelector=metadata.name%3Dcm-b", expect=200),
    Step("list: set-based label selector and a != field selector",
         path=CM + "?labelSelector=app+in+(x,y),fidelity&fieldSelector=metadata.name!%3Dcm-b",
         expect=200),
    Step("list: page 1 (limit, selector)", path=CM + "?labelSelector=fidelity&limit=2",
         expect=200, save="cm-page1"),
    Step("list: page 2 (continue)",
         path=CM + "?labelSelector=fidelity&limit=2&continue={continue:cm-page1}",
         expect=200, same_rv_as="cm-page1"),
    # ---------------------------------------------------------------- update, patch, delete
    Step("update cm-a", "PUT", CM + "/cm-a",
         {**configmap("cm-a", A, key="v2"),
          "metadata": {"name": "cm-a", "labels": A, "resourceVersion": "{rv:cm-a}"}},
         expect=200, save="cm-a-v2"),
    Step("409: update cm-a with a stale resourceVersion", "PUT", CM + "/cm-a",
         {**configmap("cm-a", A, key="v3"),
          "metadata": {"name": "cm-a", "labels": A, "resourceVersion": "{rv:cm-a}"}},
         expect=409),
    Step("update cm-b without a resourceVersion", "PUT", CM + "/cm-b",
         configmap("cm-b", B, key="v2"), expect=200, save="cm-b-v2"),
    Step("merge patch: cm-a leaves app=x", "PATCH", CM + "/cm-a",
         {"metadata": {"labels": {"app": "z"}}}, content_type=MERGE, expect=200,
         save="cm-a-v3"),
    Step("merge patch: cm-a is back in app=x", "PATCH", CM + "/cm-a",
         {"metadata": {"labels": {"app": "x"}}}, content_type=MERGE, expect=200,
         save="cm-a-v4"),
    Step("delete cm-c", "DELETE", CM + "/cm-c", expect=200),
    Step("404: delete cm-c again", "DELETE", CM + "/cm-c", expect=404),
    Step("409: delete with a uid precondition that fails", "DELETE", CM + "/cm-b",
         {"kind": "DeleteOptions", "apiVersion": "v1",
          "preconditions": {"uid": "00000000-0000-0000-0000-000000000000"}}, expect=409),
    Step("409: delete with a stale resourceVersion precondition", "DELETE", CM + "/cm-b",
         {"kind": "DeleteOptions", "apiVersion": "v1",
          "preconditions": {"resourceVersion": "{rv:cm-b}"}}, expect=409, fuzzy_numbers=True),
    # ---------------------------------------------------------------- watch (replayed from a
    # saved resourceVersion: the same events on both servers, whatever the timing)
    Step("watch: every change since cm-a was created",
         path=CM + "?watch=1&labelSelector=fidelity&resourceVersion={rv:cm-a}"
                   "&timeoutSeconds=1", watch=True, expect=200),
    Step("watch: a label selector sees cm-a leave (DELETED) and come back (ADDED)",
         path=CM + "?watch=1&labelSelector=app%3Dx&resourceVersion={rv:cm-a}"
                   "&timeoutSeconds=1", watch=True, expect=200),
    Step("watch: allowWatchBookmarks, a BOOKMARK ~2 s before timeoutSeconds",
         path=CM + "?watch=1&labelSelector=fidelity&resourceVersion={rv:cm-a}"
                   "&allowWatchBookmarks=true&timeoutSeconds=4", watch=True, expect=200,
         # A bookmark only reports progress: a change the watch does not select, made while
         # it is open, moves the resourceVersion on (on both servers).
         during=(Step("(during the watch) create a configmap it does not select", "POST", CM,
                      configmap("noise-1"), expect=201, save="noise-1"),)),
    Step("watch: allowWatchBookmarks with timeoutSeconds under 2 s: no BOOKMARK",
         path=CM + "?watch=1&labelSelector=fidelity&resourceVersion={rv:cm-a-v4}"
                   "&allowWatchBookmarks=true&timeoutSeconds=1", watch=True, expect=200),
    # ---------------------------------------------------------------- paging without a
    # selector (remainingItemCount): secrets, which no controller adds to a new namespace
    *[Step(f"create s-{i}", "POST", SECRETS, secret(f"s-{i}"), expect=201, save=f"s-{i}")
      for i in range(5)],
    Step("list: page 1 of 3", path=SECRETS + "?limit=2", expect=200, save="s-page1"),
    Step("list: page 2 of 3", path=SECRETS + "?limit=2&continue={continue:s-page1}",
         expect=200, save="s-page2", same_rv_as="s-page1"),
    Step("list: page 3 of 3", path=SECRETS + "?limit=2&continue={continue:s-page2}",
         expect=200, same_rv_as="s-page1"),
    Step("list: resourceVersionMatch=Exact at page 1's resourceVersion",
         path=SECRETS + "?resourceVersion={listrv:s-page1}&resourceVersionMatch=Exact",
         expect=200, same_rv_as="s-page1"),
    Step("list: resourceVersion=0", path=SECRETS + "?resourceVersion=0", expect=200),
    Step("watch: no resourceVersion: the current state as ADDED",
         path=SECRETS + "?watch=1&timeoutSeconds=1", watch=True, expect=200),
    Step("watch: resourceVersion=0", path=SECRETS + "?watch=1&resourceVersion=0"
         "&timeoutSeconds=1", watch=True, expect=200),
    Step("watch: the initial ADDED events end with a BOOKMARK when bookmarks are allowed",
         path=SECRETS + "?watch=1&allowWatchBookmarks=true&timeoutSeconds=1", watch=True,
         expect=200),
    Step("watch: sendInitialEvents=true (a streaming list)",
         path=SECRETS + "?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
                        "&allowWatchBookmarks=true&timeoutSeconds=1", watch=True, expect=200),
    Step("watch: sendInitialEvents=true from a resourceVersion",
         path=SECRETS + "?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
                        "&resourceVersion={rv:s-2}&allowWatchBookmarks=true&timeoutSeconds=1",
         watch=True, expect=200),
    Step("watch: sendInitialEvents=false starts now",
         path=SECRETS + "?watch=1&sendInitialEvents=false&resourceVersionMatch=NotOlderThan"
                        "&allowWatchBookmarks=true&timeoutSeconds=1", watch=True, expect=200),
    Step("422: sendInitialEvents without resourceVersionMatch",
         path=SECRETS + "?watch=1&sendInitialEvents=true&timeoutSeconds=1", expect=422),
    Step("422: resourceVersionMatch on a watch without sendInitialEvents",
         path=SECRETS + "?watch=1&resourceVersionMatch=Exact&resourceVersion={rv:s-2}"
                        "&timeoutSeconds=1",
         expect=422),
    Step("422: sendInitialEvents on a list", path=SECRETS + "?sendInitialEvents=true",
         expect=422),
    Step("504: list at a future resourceVersion (Retry-After)",
         path=SECRETS + "?resourceVersion={future-rv}&resourceVersionMatch=NotOlderThan",
         expect=504, fuzzy_numbers=True),
    # ---------------------------------------------------------------- 400, 404, 405, 415, 422
    Step("422: invalid object name", "POST", CM, configmap("Bad_Name"), expect=422),
    Step("422: invalid label value", "POST", CM, configmap("bad-label", {"app": "not ok!"}),
         expect=422),
    Step("422: invalid label key", "POST", CM, configmap("bad-key", {"-app": "x"}),
         expect=422),
    Step("422: resourceVersionMatch without a resourceVersion",
         path=CM + "?resourceVersionMatch=Exact", expect=422),
    Step("404: create in a namespace that does not exist", "POST",
         "/api/v1/namespaces/{ns}-missing/configmaps", configmap("x"), expect=404),
    Step("400: malformed label selector", path=CM + "?labelSelector=app%3D%3D%3Dx",
         expect=400),
    Step("400: label selector ending in a comma", path=CM + "?labelSelector=app%3Dx,",
         expect=400),
    Step("400: unknown field in a field selector", path=CM + "?fieldSelector=data.key%3Dv",
         expect=400),
    Step("400: malformed limit", path=CM + "?limit=abc", expect=400),
    Step("list: a negative limit means no limit", path=CM + "?labelSelector=fidelity&limit=-1",
         expect=200),
    Step("400: malformed timeoutSeconds on a watch", path=CM + "?watch=1&timeoutSeconds=abc",
         expect=400),
    Step("400: malformed resourceVersion", path=CM + "?resourceVersion=abc", expect=400),
    Step("400: malformed continue token", path=CM + "?limit=2&continue=garbage", expect=400,
         known={"body.message": "the text quotes Go's JSON decoder"}),
    Step("405: PUT on a collection (the body must not poison the connection)", "PUT", CM,
         configmap("x"), expect=405),
    Step("405: deletecollection of namespaces", "DELETE", "/api/v1/namespaces", expect=405),
    Step("400: a body that is not JSON", "POST", CM, b"{not json", expect=400,
         known={"body.message": "the text quotes Go's JSON decoder"}),
    Step("400: a body of another kind", "POST", CM,
         {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}, expect=400),
    Step("415: PATCH with a content type that is no patch type", "PATCH", CM + "/cm-a",
         {"data": {}}, content_type="application/json", expect=415),
    Step("422: a patch that sets an invalid label", "PATCH", CM + "/cm-a",
         {"metadata": {"labels": {"app": "-x-"}}}, content_type=MERGE, expect=422),
    # ---------------------------------------------------------------- kinds with more rules
    Step("create a pod", "POST", NS + "/pods", POD, expect=201, view="meta", save="pod"),
    Step("delete the pod (graceful deletion, grace period 0: no node runs it)", "DELETE",
         NS + "/pods/p-1", expect=200, view="meta"),
    Step("watch: the pod's deletion is marked (MODIFIED), then DELETED",
         path=NS + "/pods?watch=1&resourceVersion={rv:pod}&timeoutSeconds=1", watch=True,
         expect=200, view="meta"),
    Step("create a service", "POST", NS + "/services", SERVICE, expect=201, view="names"),
    Step("deletecollection of services", "DELETE", NS + "/services", expect=200,
         view="names"),
    # ---------------------------------------------------------------- credentials
    Step("401: a bearer token the server does not accept", path=CM, credentials="bogus",
         expect=401),
    Step("401: even /version with a token the server does not accept", path="/version",
         credentials="bogus", expect=401),
    Step("/version without credentials", path="/version", credentials="none", expect=200),
    Step("/healthz without credentials", path="/healthz", credentials="none", expect=200),
    Step("403: a request without credentials is system:anonymous", path=CM,
         credentials="none", expect=403),
    # ---------------------------------------------------------------- compression
    Step("create big-1", "POST", CM, configmap("big-1", {"size": "big"}, blob=BIG),
         expect=201, view="names"),
    Step("create big-2", "POST", CM, configmap("big-2", {"size": "big"}, blob=BIG),
         expect=201, view="names"),
    Step("gzip: a list over 128 KiB is compressed when asked",
         path=CM + "?labelSelector=size%3Dbig", headers=GZIP, expect=200),
    Step("gzip: not without Accept-Encoding", path=CM + "?labelSelector=size%3Dbig",
         expect=200),
    Step("gzip: not under 128 KiB", path=CM + "/big-1", headers=GZIP, expect=200),
    # ---------------------------------------------------------------- 410 after compaction
    *[Step(f"create t-{i}", "POST", TEMPLATES, podtemplate(f"t-{i}"), expect=201,
           view="names") for i in range(4)],
    Step("list: podtemplates page 1", path=TEMPLATES + "?limit=2", expect=200,
         save="t-page1", view="names"),
    Step("create t-4", "POST", TEMPLATES, podtemplate("t-4"), expect=201, view="names"),
    Step("create t-5", "POST", TEMPLATES, podtemplate("t-5"), expect=201, view="names"),
    Step("compact the history (etcd compaction; SimulatedCluster.compact())",
         action="compact"),
    Step("410: continue token from before the compaction",
         path=TEMPLATES + "?limit=2&continue={continue:t-page1}", expect=410,
         save="t-expired"),
    Step("list: go on with the 410's continue token",
         path=TEMPLATES + "?limit=2&continue={continue:t-expired}", expect=200,
         view="names"),
    Step("410: list at a compacted resourceVersion (Exact)",
         path=TEMPLATES + "?resourceVersion={listrv:t-page1}&resourceVersionMatch=Exact",
         expect=410),
    Step("410: watch from a compacted resourceVersion (an ERROR event)",
         path=TEMPLATES + "?watch=1&resourceVersion={listrv:t-page1}&timeoutSeconds=1",
         watch=True, expect=200, view="names",
         known={"events[0].object.message": "etcd's words for a watch its watch cache does not "
                "serve (podtemplates here); the simulator uses the watch cache's"}),
    # Not compared: a watch of a cached resource from an old resourceVersion. Whether the watch
    # cache still has it depends on the cluster's history (a fresh cluster answers with events,
    # a long-running one with 410), so no script can expect one answer.
    # ---------------------------------------------------------------- the end
    Step("delete the namespace", "DELETE", "/api/v1/namespaces/{ns}", expect=200),
]


def test_the_simulator_answers_as_a_real_kube_apiserver(tmp_path: Path) -> None:
    kubeconfig = real_cluster()
    if not kubeconfig:
        pytest.skip(f"needs a real kube-apiserver to compare the simulator with: {E2E_ENV} is "
                    "not set (make test-real sets it)")
    etcd = os.environ.get(ETCD_ENV, "").strip()
    if not etcd:
        pytest.skip(f"needs {ETCD_ENV} to compact the real server's history for the 410 steps "
                    "(make test-real sets it)")
    started = time.monotonic()
    real_backend = Backend(kubeconfig=kubeconfig, etcd=etcd)
    with SimulatedCluster(tls=True, anonymous_auth=True) as sim:
        sim_endpoint = endpoint("sim", sim.kubeconfig_path, tmp_path / "sim",
                                {"compact": sim.compact})
        real_endpoint = endpoint("real", kubeconfig, tmp_path / "real",
                                 {"compact": real_backend.compact})
        namespace = unique("fidelity")
        try:
            outcomes = run(SCRIPT, sim_endpoint, real_endpoint, namespace)
        finally:  # the script deletes it; this is for a run that stopped half-way
            real_endpoint.pool.request(
                "DELETE", f"{real_endpoint.server}/api/v1/namespaces/{namespace}",
                headers=real_endpoint.auth_headers, retries=False)
    text = report(outcomes)
    views = tmp_path / "views.json"  # every view compared, for a closer look at a failure
    views.write_text(json.dumps([{"step": o.step.name, **o.views} for o in outcomes], indent=1))
    print(f"\n{text}\n({len(SCRIPT)} steps in {time.monotonic() - started:.1f} s)")
    failed = [outcome.step.name for outcome in outcomes if outcome.failed]
    assert not failed, (f"the simulator differs from kube-apiserver in {failed} (views: {views})"
                        f":\n{text}")
