"""faro's informers and Controller against a cluster: the simulator, or a real kube-apiserver.

Every test here talks to the cluster only through a kubeconfig (``tests/e2e/backend.py``), so it
runs unchanged against faro's simulator (the default) and against the real control plane of
``make test-real``. What each proves is something a user of faro would notice:

1. a 3,000-object collection lists in consistent pages (the official client's ``limit`` and
   ``continue``), and a faro informer syncs exactly those objects through its paged list;
2. an informer whose connection is cut (a TCP proxy's outage) resumes its watch and delivers
   every change made meanwhile exactly once, in order, without relisting;
3. a short watch with bookmarks gets a BOOKMARK before its timeout, and an informer's
   resourceVersion advances with it while no handler is called;
4. a 410 Gone forced by compacting the server's history (etcd on a real cluster): the informer
   relists and reports exactly what changed during the outage;
5. a Controller configured with a custom resource before its CRD exists starts the informer
   once the CRD is Established and delivers the custom object's changes;
6. faro's discovery finds every group/version the server serves (and the CRD's group), as
   kubectl does;
7. label and field selectors through the Controller, and a selector the server rejects: a clear
   error naming the resource and the selector, while the other resources keep delivering.

Nothing is mocked: objects are made through the official ``kubernetes`` client over HTTPS, faro
reads them over HTTPS. Each test works in a namespace of its own (cluster-scoped objects get
unique names), deletes what it made, and judges only its own objects.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from faro import Config, Controller, KubernetesClient
from faro.cache import Backoff, SharedInformer
from faro.discovery import Discovery
from tests.e2e.backend import UNCACHED, Backend, Proxy, faro_client
from tests.integration.controller_helpers import Events
from tests.integration.informer_helpers import Note, Recorder, replay, rv_of
from tests.integration.kube import DEADLINE, Kubectl, eventually, unique

pytestmark = pytest.mark.cluster

FAST = Backoff(initial=0.05, maximum=0.2)
"""Informer backoff for these tests (the default starts at 0.8 s and grows to 30 s)."""


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture
def proxy(api: client.ApiClient) -> Iterator[Proxy]:
    with Proxy(api.configuration.host) as forwarder:
        yield forwarder


def through(proxy: Proxy, backend: Backend, tmp_path: Path) -> client.ApiClient:
    """An ApiClient whose every connection goes through ``proxy``."""
    path = proxy.kubeconfig(backend.kubeconfig, tmp_path / "proxy.kubeconfig")
    return config.new_client_from_config(config_file=path)



def configmap(name: str, labels: dict[str, str] | None = None,
              **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": labels or {}}, "data": data}


def changes_of(notes: list[Note]) -> list[tuple[str, str, int]]:
    return [(note.kind, note.key, note.rv) for note in notes]


def server_state(items: list[Any]) -> dict[str, int]:
    """``{namespace/name: resourceVersion}`` of typed list items."""
    return {f"{item.metadata.namespace}/{item.metadata.name}":
            int(item.metadata.resource_version) for item in items}


def store_state(informer: SharedInformer) -> dict[str, int]:
    return {key: rv_of(obj) for key, obj in informer.store.items().items()}


# ---------------------------------------------------------------------------- 1. paging

PAGED_OBJECTS = 3000


def test_a_3000_object_list_pages_consistently_and_an_informer_syncs_exactly_it(
    api: client.ApiClient, v1: client.CoreV1Api, namespaces: Callable[[str], str],
    informers: list[SharedInformer],
) -> None:
    ns = namespaces("paging")
    names = [f"item-{i:04d}" for i in range(PAGED_OBJECTS)]
    labels = {"faro-e2e": "paging"}  # a real namespace also holds kube-root-ca.crt

    def create(name: str) -> str:
        return str(v1.create_namespaced_config_map(ns, configmap(name, labels, n=name))
                   .metadata.resource_version)

    with ThreadPoolExecutor(max_workers=16) as pool:
        created = list(pool.map(create, names))
    assert len(set(created)) == PAGED_OBJECTS  # one change each

    # The official client, 700 per page: five pages, every one at the first page's
    # resourceVersion, even though the collection changes between the pages.
    selector = "faro-e2e=paging"
    first = v1.list_namespaced_config_map(ns, label_selector=selector, limit=700)
    v1.create_namespaced_config_map(ns, configmap("item-9999-late", labels))
    v1.delete_namespaced_config_map(names[-1], ns)
    pages = [first]
    while pages[-1].metadata._continue:
        assert len(pages) < 10, "the pages do not end"
        pages.append(v1.list_namespaced_config_map(
            ns, label_selector=selector, limit=700, _continue=pages[-1].metadata._continue))
    assert [len(page.items) for page in pages] == [700, 700, 700, 700, 200]
    assert {page.metadata.resource_version for page in pages} == \
        {first.metadata.resource_version}
    listed = [item.metadata.name for page in pages for item in page.items]
    assert len(set(listed)) == len(listed), "an object came twice"
    assert listed == names  # all of them, in key order: the late changes are not there

    # A faro informer lists the same collection in pages of 500 and holds exactly it.
    recorder = Recorder()
    informer = SharedInformer(api, "v1/configmaps", namespace=ns, label_selector=selector,
                              page_size=500, backoff=FAST)
    informers.append(informer)
    informer.add_event_handler(recorder)
    informer.start()
    assert informer.wait_for_sync(DEADLINE), informer.health()
    expected = server_state(v1.list_namespaced_config_map(ns, label_selector=selector).items)
    assert len(expected) == PAGED_OBJECTS
    assert store_state(informer) == expected
    initial = [note for note in recorder.notes if note.kind == "add" and note.flag]
    assert len(initial) == PAGED_OBJECTS
    assert {note.key: note.rv for note in initial} == expected
    health = informer.health()
    assert health.objects == PAGED_OBJECTS and health.relists == {}


# ----------------------------------------------------------------- 2. resume after a cut


def test_an_informer_cut_off_by_an_outage_resumes_and_delivers_each_change_once_in_order(
    backend: Backend, v1: client.CoreV1Api, namespaces: Callable[[str], str], proxy: Proxy,
    informers: list[SharedInformer], tmp_path: Path,
) -> None:
    ns = namespaces("resume")
    for name in ("kept", "doomed"):
        v1.create_namespaced_config_map(ns, configmap(name, {"faro-e2e": "resume"}, v="0"))
    recorder = Recorder()
    informer = SharedInformer(through(proxy, backend, tmp_path), "v1/configmaps", namespace=ns,
                              label_selector="faro-e2e=resume", backoff=FAST)
    informers.append(informer)
    informer.add_event_handler(recorder)
    informer.start()
    assert informer.wait_for_sync(DEADLINE), informer.health()
    assert sorted(n.key for n in recorder.notes) == [f"{ns}/doomed", f"{ns}/kept"]

    made: list[tuple[str, str, int]] = []

    def record(kind: str, obj: Any) -> None:
        made.append((kind, f"{ns}/{obj.metadata.name}", int(obj.metadata.resource_version)))

    labels = {"faro-e2e": "resume"}
    # Its watch is streaming once a change arrives through it.
    record("add", v1.create_namespaced_config_map(ns, configmap("opener", labels)))
    recorder.wait_rv(f"{ns}/opener", made[-1][2], timeout=DEADLINE)
    before = len(recorder.notes)
    del made[:]
    connections = proxy.connections
    with proxy.outage():
        # The informer notices: its watch is cut and its reconnections are refused.
        eventually(lambda: informer.health().consecutive_failures >= 1,
                   "the informer noticing the outage")
        # Changes made meanwhile, straight to the server (not through the proxy).
        record("add", v1.create_namespaced_config_map(ns, configmap("born", labels, v="1")))
        record("update", v1.patch_namespaced_config_map("kept", ns, {"data": {"v": "1"}}))
        record("update", v1.patch_namespaced_config_map("born", ns, {"data": {"v": "2"}}))
        record("delete", _deleted(v1, "doomed", ns))
        record("update", v1.patch_namespaced_config_map("kept", ns, {"data": {"v": "2"}}))
        record("add", v1.create_namespaced_config_map(ns, configmap("brief", labels)))
        record("delete", _deleted(v1, "brief", ns))
        assert informer.health().consecutive_failures >= 1
        assert len(recorder.notes) == before  # nothing can arrive during the outage

    # A fence after the outage: once it arrives, everything before it has.
    record("add", v1.create_namespaced_config_map(ns, configmap("fence", labels)))
    recorder.wait_rv(f"{ns}/fence", made[-1][2], timeout=DEADLINE)
    after = recorder.notes[before:]
    assert changes_of(after) == made, "not every change exactly once, in order"
    # Each update carries the version before it; deletes are real (final state known).
    state = replay(recorder.notes)
    assert state == store_state(informer)
    assert all(note.flag is False for note in after if note.kind in ("add", "delete"))
    expected = server_state(v1.list_namespaced_config_map(ns, label_selector="faro-e2e=resume")
                            .items)
    assert store_state(informer) == expected
    health = informer.health()
    assert health.relists == {}, "the informer relisted instead of resuming its watch"
    assert health.watch_restarts.get("error", 0) >= 1
    assert health.consecutive_failures == 0 and health.healthy
    assert proxy.connections > connections  # it came back through the proxy


def _deleted(v1: client.CoreV1Api, name: str, namespace: str) -> Any:
    """Delete a ConfigMap and return it as its DELETED event carries it (the deletion's
    resourceVersion), read back from a watch of just that object."""
    current = v1.read_namespaced_config_map(name, namespace)
    v1.delete_namespaced_config_map(name, namespace)
    stream = watch.Watch()
    for event in stream.stream(v1.list_namespaced_config_map, namespace,
                               field_selector=f"metadata.name={name}",
                               resource_version=current.metadata.resource_version,
                               timeout_seconds=int(DEADLINE)):
        if event["type"] == "DELETED":
            stream.stop()
            return event["object"]
    raise AssertionError(f"no DELETED event for {namespace}/{name}")


# ------------------------------------------------------------------------------ 3. bookmarks

WATCH_SECONDS = 5
"""A short server-side watch timeout: the real server's bookmark comes 2 s before it."""


def test_a_short_watch_gets_a_bookmark_before_its_timeout_and_moves_the_informer_on(
    api: client.ApiClient, v1: client.CoreV1Api, namespaces: Callable[[str], str],
    informers: list[SharedInformer],
) -> None:
    quiet, busy = namespaces("quiet"), namespaces("busy")
    selector = "faro-e2e=bookmark"
    labels = {"faro-e2e": "bookmark"}
    start = v1.list_namespaced_config_map(quiet, label_selector=selector).metadata \
        .resource_version

    # Two watchers of the quiet namespace, both with bookmarks and a 5 s server timeout: the
    # official client's watch (read on a thread) and a faro informer.
    seen: queue.Queue[tuple[str, str, int, float]] = queue.Queue()

    def read() -> None:
        for event in watch.Watch().stream(v1.list_namespaced_config_map, quiet,
                                          label_selector=selector, resource_version=start,
                                          allow_watch_bookmarks=True,
                                          timeout_seconds=WATCH_SECONDS):
            raw = event["raw_object"]
            seen.put((event["type"], raw["metadata"].get("name", ""),
                      int(raw["metadata"]["resourceVersion"]), time.monotonic()))
        seen.put(("END", "", 0, time.monotonic()))

    reader = threading.Thread(target=read, name="test-watch-reader", daemon=True)
    reader.start()
    recorder = Recorder()
    informer = SharedInformer(api, "v1/configmaps", namespace=quiet, label_selector=selector,
                              watch_timeout=(WATCH_SECONDS, WATCH_SECONDS), backoff=FAST)
    informers.append(informer)
    informer.add_event_handler(recorder)
    informer.start()
    assert informer.wait_for_sync(DEADLINE), informer.health()

    # A bookmark only tells of changes made after its watch began: once a marker arrived
    # through both watches, a change the quiet namespace does not see (in the busy one) must
    # come back as a bookmark's resourceVersion, 2 s before each watch's timeout.
    marker = int(v1.create_namespaced_config_map(quiet, configmap("marker", labels))
                 .metadata.resource_version)
    recorder.wait_rv(f"{quiet}/marker", marker, timeout=DEADLINE)
    first = seen.get(timeout=DEADLINE)
    assert first[:3] == ("ADDED", "marker", marker), first
    moved = int(v1.create_namespaced_config_map(busy, configmap("moved")).metadata
                .resource_version)

    rest = []
    while not rest or rest[-1][0] != "END":
        rest.append(seen.get(timeout=WATCH_SECONDS + DEADLINE))
    *bookmarks, end = rest
    assert bookmarks and {kind for kind, *_ in bookmarks} == {"BOOKMARK"}, rest
    _, _, rv, at = bookmarks[0]
    assert rv >= moved, f"the bookmark's resourceVersion {rv} is behind the change at {moved}"
    assert end[3] - at >= 0.5, f"the bookmark came only {end[3] - at:.2f}s before the end"
    reader.join(DEADLINE)

    # The informer's resourceVersion follows its bookmark, and no handler is called for it.
    eventually(lambda: int(informer.last_sync_resource_version or 0) >= moved,
               f"the informer's resourceVersion reaching {moved}: {informer.health()}")
    assert changes_of(recorder.notes) == [("add", f"{quiet}/marker", marker)]
    health = informer.health()
    assert health.events == 1 and health.relists == {} and health.consecutive_failures == 0


# -------------------------------------------------------------------- 4. 410 Gone, relist


def podtemplate(name: str, image: str = "registry.example/app:1") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": name},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "app", "image": image}]}}}


def test_a_compaction_during_an_outage_makes_the_informer_relist_and_report_the_difference(
    backend: Backend, v1: client.CoreV1Api, namespaces: Callable[[str], str], proxy: Proxy,
    informers: list[SharedInformer], tmp_path: Path,
) -> None:
    ns = namespaces("gone")
    for name in ("deleted", "unchanged", "updated"):
        v1.create_namespaced_pod_template(ns, podtemplate(name))
    recorder = Recorder()
    # podtemplates: on the real cluster their watches are served by etcd itself (no watch
    # cache), so the compaction makes the informer's next watch answer 410 at once.
    informer = SharedInformer(through(proxy, backend, tmp_path), UNCACHED, namespace=ns,
                              backoff=FAST)
    informers.append(informer)
    informer.add_event_handler(recorder)
    informer.start()
    assert informer.wait_for_sync(DEADLINE), informer.health()
    opener = v1.create_namespaced_pod_template(ns, podtemplate("opener"))
    recorder.wait_rv(f"{ns}/opener", int(opener.metadata.resource_version), timeout=DEADLINE)
    known = {key: dict(obj) for key, obj in informer.store.items().items()}
    before = len(recorder.notes)

    with proxy.outage():
        eventually(lambda: informer.health().consecutive_failures >= 1,
                   "the informer noticing the outage")
        v1.delete_namespaced_pod_template("deleted", ns)
        updated = v1.patch_namespaced_pod_template(
            "updated", ns, {"template": {"spec": {"containers": [
                {"name": "app", "image": "registry.example/app:2"}]}}})
        created = v1.create_namespaced_pod_template(ns, podtemplate("created"))
        backend.compact()
        assert len(recorder.notes) == before

    relist = recorder.wait_count(before + 3, timeout=DEADLINE)[before:]
    fence = v1.create_namespaced_pod_template(ns, podtemplate("fence"))
    recorder.wait_rv(f"{ns}/fence", int(fence.metadata.resource_version), timeout=DEADLINE)
    after = recorder.notes[before:]
    assert after[:3] == relist and len(after) == 4, f"more than the difference: {after}"
    by_kind = {note.kind: note for note in relist}
    assert sorted(by_kind) == ["add", "delete", "update"], relist

    gone = by_kind["delete"]
    assert gone.key == f"{ns}/deleted" and gone.flag is True  # final_state_unknown
    assert gone.obj == known[f"{ns}/deleted"], "not the last state the informer knew"
    changed = by_kind["update"]
    assert changed.key == f"{ns}/updated"
    assert changed.old == known[f"{ns}/updated"]
    assert changed.rv == int(updated.metadata.resource_version)
    assert changed.obj["template"]["spec"]["containers"][0]["image"] == \
        "registry.example/app:2"
    new = by_kind["add"]
    assert new.key == f"{ns}/created" and new.flag is False  # not an initial object
    assert new.rv == int(created.metadata.resource_version)

    expected = server_state(v1.list_namespaced_pod_template(ns).items)
    assert store_state(informer) == expected
    assert replay(recorder.notes) == expected
    health = informer.health()
    assert health.relists == {"expired": 1}, health
    assert health.healthy, health


# ------------------------------------------------------------------ 5. a CRD installed late


def crd_manifest(group: str, plural: str, kind: str) -> dict[str, Any]:
    """A namespaced CRD with one served version, v1, and a structural schema (the real server
    refuses a v1 CRD without one)."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group, "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind,
                      "listKind": f"{kind}List"},
            "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                "openAPIV3Schema": {"type": "object", "properties": {"spec": {
                    "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}}],
        },
    }


def crd_names(prefix: str) -> tuple[str, str, str]:
    """(group, plural, kind) no other test uses."""
    suffix = unique(prefix).rsplit("-", 1)[1]
    return f"{prefix}{suffix}.faro.example.com", f"gadgets{suffix}", f"Gadget{suffix}"


@contextlib.contextmanager
def installed_crd(api: client.ApiClient, group: str, plural: str, kind: str) -> Iterator[Any]:
    """Install the CRD and wait until it is Established; yields it. Deleted on exit."""
    extensions = client.ApiextensionsV1Api(api)
    name = f"{plural}.{group}"
    extensions.create_custom_resource_definition(crd_manifest(group, plural, kind))
    try:
        def established() -> Any:
            crd = extensions.read_custom_resource_definition(name)
            return crd if any(c.type == "Established" and c.status == "True"
                              for c in crd.status.conditions or ()) else None
        yield eventually(established, f"CRD {name} Established")
    finally:
        with contextlib.suppress(ApiException):
            extensions.delete_custom_resource_definition(name)


def test_a_controller_configured_before_its_crd_exists_watches_it_once_established(
    backend: Backend, api: client.ApiClient, namespaces: Callable[[str], str],
    controllers: list[Controller],
) -> None:
    ns = namespaces("crd")
    group, plural, kind = crd_names("crd")
    gvr = f"{group}/v1/{plural}"
    # The controller is configured for a custom resource whose CRD does not exist yet.
    events = Events("crd")
    controller = Controller(
        KubernetesClient.from_environment(kubeconfig=backend.kubeconfig),
        Config.from_dict({"resources": [{"gvr": gvr, "namespace_names": [ns]}]}),
        name="e2e-crd")
    controllers.append(controller)
    controller.add_event_handler(events)
    controller.start()
    assert controller.wait_until_ready(DEADLINE), "not ready without the CRD"
    assert controller.informers() == {}

    with installed_crd(api, group, plural, kind):
        key = f"{gvr} in {ns}"
        informer = eventually(lambda: controller.informers().get(key),
                              f"the controller starting an informer for {key}")
        assert informer.wait_for_sync(DEADLINE), informer.health()

        objects = client.CustomObjectsApi(api)
        body = {"apiVersion": f"{group}/v1", "kind": kind, "metadata": {"name": "g1"},
                "spec": {"size": 1}}
        created = objects.create_namespaced_custom_object(group, "v1", ns, plural, body)
        updated = objects.replace_namespaced_custom_object(
            group, "v1", ns, plural, "g1", dict(created, spec={"size": 2}))
        objects.delete_namespaced_custom_object(group, "v1", ns, plural, "g1")
        seen = events.wait_key(f"{ns}/g1", "ADDED", "UPDATED", "DELETED", timeout=DEADLINE)
        assert [e.event_type.value for e in seen] == ["ADDED", "UPDATED", "DELETED"]
        added, update, deleted = seen
        assert {e.gvr for e in seen} == {gvr}
        assert not added.is_initial and added.uid == created["metadata"]["uid"]
        assert added.resource_version == created["metadata"]["resourceVersion"]
        assert update.old_object is not None and update.old_object["spec"] == {"size": 1}
        assert update.object["spec"] == {"size": 2}
        assert update.resource_version == updated["metadata"]["resourceVersion"]
        assert not deleted.final_state_unknown and deleted.object["spec"] == {"size": 2}
    # Once the CRD is gone, the controller stops that informer and stays ready.
    eventually(lambda: not controller.informers(), "the informer stopping with its CRD")
    assert controller.is_ready()
    assert len(events.events) == 3


# ------------------------------------------------------------------------ 6. discovery


def _discovered(api: client.ApiClient) -> set[tuple[str, str, str]]:
    """(group, version, resource) of every list-and-watch resource, per faro's Discovery."""
    return {(r.gvr.group, r.gvr.version, r.gvr.resource)
            for r in Discovery(api).resources(refresh=True)}


def _served(api: client.ApiClient) -> tuple[set[str], set[tuple[str, str, str]], bool]:
    """The server's own answer: every group/version ``/api`` and ``/apis`` list, the
    list-and-watch resources of each, and whether they came from its aggregated discovery
    documents (the real server's default, which kubectl reads; the simulator serves only the
    legacy form, so then each group/version's document)."""
    def get(path: str, accept: str = "application/json") -> tuple[str, Any]:
        method, url, headers, _, _ = api.param_serialize(
            "GET", path, header_params={"Accept": accept}, auth_settings=["BearerToken"])
        response = api.rest_client.pool_manager.request(method, url, headers=headers)
        assert response.status == 200, (path, response.status, response.data[:300])
        return response.headers.get("Content-Type", ""), orjson.loads(response.data)

    versions = {str(v) for v in get("/api")[1]["versions"]}
    versions |= {v["groupVersion"] for g in get("/apis")[1]["groups"] for v in g["versions"]}
    resources: set[tuple[str, str, str]] = set()
    aggregated = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    documents = []
    for path in ("/api", "/apis"):
        kind, body = get(path, f"{aggregated},application/json")
        if "apidiscovery.k8s.io" not in kind:
            documents = []
            break
        documents.append(body)
    if documents:
        for document in documents:
            for group in document["items"]:
                name = (group.get("metadata") or {}).get("name", "")
                for version in group["versions"]:
                    for resource in version.get("resources") or ():
                        if {"list", "watch"} <= set(resource.get("verbs") or ()):
                            resources.add((name, version["version"], resource["resource"]))
        return versions, resources, True
    for group_version in versions:
        group, _, version = group_version.rpartition("/")
        path = f"/apis/{group_version}" if group else f"/api/{version}"
        for resource in get(path)[1]["resources"]:
            if "/" not in resource["name"] and {"list", "watch"} <= set(resource["verbs"]):
                resources.add((group, version, resource["name"]))
    return versions, resources, False


def _kubectl_names(kubectl: Kubectl) -> set[str]:
    """``kubectl api-resources --verbs=list,watch -o name``: resource.group per resource."""
    return set(kubectl.ok("api-resources", "--verbs=list,watch", "-o", "name").split())


@pytest.mark.kubectl
def test_discovery_finds_every_served_group_version_and_a_new_crds_group(
    backend: Backend, api: client.ApiClient, tmp_path: Path,
) -> None:
    kubectl = Kubectl(backend.kubeconfig, tmp_path / "kubectl-cache")

    def difference() -> str:
        """"" when faro, the server's discovery documents and kubectl agree (other tests may
        install CRDs meanwhile: then the next round agrees)."""
        found = _discovered(api)
        versions, served, aggregated = _served(api)
        names = _kubectl_names(kubectl)
        problems = []
        if aggregated != backend.real:
            problems.append(f"aggregated discovery served: {aggregated}")
        found_versions = {f"{g}/{v}" if g else v for g, v, _ in found}
        # A group/version with no list-and-watch resource (authentication.k8s.io/v1: only
        # tokenreviews, created) has nothing for an informer.
        served_versions = {f"{g}/{v}" if g else v for g, v, _ in served}
        if served_versions - versions:
            problems.append(f"resources outside /api and /apis: {served_versions - versions}")
        if found != served:
            problems.append(f"faro misses {sorted(served - found)}, "
                            f"has extra {sorted(found - served)}")
        if found_versions != served_versions:
            problems.append(f"group/versions: faro {sorted(found_versions)} vs "
                            f"{sorted(served_versions)}")
        faro_names = {f"{r}.{g}" if g else r for g, _, r in found}
        if faro_names != names:
            problems.append(f"kubectl lists {sorted(names - faro_names)} that faro does not, "
                            f"faro {sorted(faro_names - names)} that kubectl does not")
        return "; ".join(problems)

    eventually(lambda: not difference(), f"faro's discovery matching the server's: "
               f"{difference()}")
    found = _discovered(api)
    assert ("", "v1", "configmaps") in found and ("apps", "v1", "deployments") in found
    assert ("", "v1", "podtemplates") in found

    group, plural, kind = crd_names("disc")
    with installed_crd(api, group, plural, kind):
        # Found as soon as it is Established (a miss refreshes the cache, at most every 2 s)...
        discovery = Discovery(api, min_refresh_interval=0.0)
        resource = eventually(lambda: discovery.find(f"{group}/v1/{plural}"),
                              f"faro's discovery finding {group}/v1/{plural}")
        assert resource.namespaced and resource.watchable
        # ... and then as kubectl sees it.
        eventually(lambda: f"{plural}.{group}" in _kubectl_names(kubectl),
                   f"kubectl listing {plural}.{group}")
        eventually(lambda: not difference(), "faro's discovery matching the server's with "
                   f"the CRD: {difference()}")
        assert (group, "v1", plural) in _discovered(api)



# ------------------------------------------------------------------------ 7. selectors


def test_label_and_field_selectors_deliver_only_matching_objects(
    backend: Backend, v1: client.CoreV1Api, namespaces: Callable[[str], str],
    controllers: list[Controller],
) -> None:
    ns = namespaces("select")
    events = Events("selectors")
    controller = Controller(faro_client(backend), Config.from_dict({"resources": [
        {"gvr": "v1/configmaps", "namespace_names": [ns], "label_selector": "tier in (web)"},
        {"gvr": "v1/configmaps", "namespace_names": [ns],
         "field_selector": "metadata.name=picked"},
    ]}), name="e2e-selectors")
    controllers.append(controller)
    controller.add_event_handler(events)
    v1.create_namespaced_config_map(ns, configmap("web-1", {"tier": "web"}))
    v1.create_namespaced_config_map(ns, configmap("db-1", {"tier": "db"}))
    controller.start()
    assert controller.wait_until_ready(DEADLINE)
    assert sorted(controller.informers()) == [
        f"v1/configmaps in {ns} fields 'metadata.name=picked'",
        f"v1/configmaps in {ns} labels 'tier in (web)'"]

    v1.create_namespaced_config_map(ns, configmap("picked", v="1"))
    v1.create_namespaced_config_map(ns, configmap("other", v="1"))  # matches neither
    v1.patch_namespaced_config_map("db-1", ns, {"data": {"v": "2"}})  # still tier=db
    v1.patch_namespaced_config_map("web-1", ns, {"metadata": {"labels": {"tier": "db"}}})
    v1.patch_namespaced_config_map("db-1", ns, {"metadata": {"labels": {"tier": "web"}}})
    v1.patch_namespaced_config_map("picked", ns, {"data": {"v": "2"}})
    v1.delete_namespaced_config_map("picked", ns)
    v1.create_namespaced_config_map(ns, configmap("fence", {"tier": "web"}))
    events.wait_key(f"{ns}/fence", "ADDED", timeout=DEADLINE)
    events.wait_key(f"{ns}/picked", "DELETED", timeout=DEADLINE)

    def seen(key: str) -> list[tuple[str, bool]]:
        return [(e.event_type.value, e.is_initial or e.final_state_unknown)
                for e in events.of(f"{ns}/{key}")]

    # Leaving a label selector is a deletion for its watchers, joining it an addition.
    assert seen("web-1") == [("ADDED", True), ("DELETED", False)]
    assert events.of(f"{ns}/web-1")[-1].labels == {"tier": "web"}  # its last matching state
    assert seen("db-1") == [("ADDED", False)]
    assert seen("picked") == [("ADDED", False), ("UPDATED", False), ("DELETED", False)]
    assert seen("fence") == [("ADDED", False)]
    # Nothing else: not "other", not a real namespace's kube-root-ca.crt.
    assert events.seen_keys() == {f"{ns}/{k}" for k in ("web-1", "db-1", "picked", "fence")}


def test_a_field_selector_the_server_rejects_is_reported_while_the_rest_keeps_working(
    backend: Backend, v1: client.CoreV1Api, namespaces: Callable[[str], str],
    controllers: list[Controller], caplog: pytest.LogCaptureFixture,
) -> None:
    ns = namespaces("badsel")
    events = Events("bad-selector")
    controller = Controller(faro_client(backend), Config.from_dict({
        "metrics": {"enabled": True, "port": 0, "bind_addr": "127.0.0.1"},
        "resources": [
            {"gvr": "v1/configmaps", "namespace_names": [ns], "label_selector": "app=good"},
            {"gvr": "v1/configmaps", "namespace_names": [ns], "field_selector": "spec.foo=bar"},
        ]}), name="e2e-bad-selector")
    controllers.append(controller)
    controller.add_event_handler(events)
    caplog.set_level(logging.WARNING, logger="faro")
    controller.start()  # the server's answer comes later: start() cannot know it
    bad_key = f"v1/configmaps in {ns} fields 'spec.foo=bar'"
    bad = controller.informers()[bad_key]

    # The informer's health says what the server answered, to which request.
    health = eventually(lambda: (h := bad.health()).last_error and h,
                        "the bad informer's first error")
    assert not health.synced and health.consecutive_failures >= 1
    assert "HTTP 400" in health.last_error and "spec.foo" in health.last_error
    assert f"GET /api/v1/namespaces/{ns}/configmaps?fieldSelector=spec.foo=bar" \
        in health.last_error
    # So does the log, at ERROR: the request is refused, retrying does not help.
    refused = eventually(lambda: [r for r in caplog.records if r.levelno >= logging.ERROR
                                  and "fieldSelector=spec.foo=bar" in r.getMessage()],
                         "an ERROR log line naming the selector")
    assert "HTTP 400" in refused[0].getMessage() and ns in refused[0].getMessage()

    # The other entry keeps delivering.
    v1.create_namespaced_config_map(ns, configmap("good", {"app": "good"}, v="1"))
    v1.patch_namespaced_config_map("good", ns, {"data": {"v": "2"}})
    v1.delete_namespaced_config_map("good", ns)
    good = events.wait_key(f"{ns}/good", "ADDED", "UPDATED", "DELETED", timeout=DEADLINE)
    assert [e.event_type.value for e in good] == ["ADDED", "UPDATED", "DELETED"]
    assert controller.informers()[f"v1/configmaps in {ns} labels 'app=good'"].has_synced()

    # Never ready while one configured informer cannot list: /readyz names it.
    assert not controller.is_ready()
    address = controller.metrics_address
    assert address is not None
    with pytest.raises(urllib.error.HTTPError) as readyz:
        urllib.request.urlopen(f"http://127.0.0.1:{address[1]}/readyz", timeout=DEADLINE)
    assert readyz.value.code == 503
    assert bad_key in readyz.value.read().decode()
    assert bad.health().consecutive_failures >= 1 and bad.is_running
