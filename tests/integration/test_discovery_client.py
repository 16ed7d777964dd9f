"""faro.discovery.Discovery against the simulator, through the official client's pool.

Caching is shown without a request counter: with a fresh cache a pending
``fail_next`` on discovery is not consumed, which the next forced refresh proves
by failing. Time is a FakeClock, so nothing waits.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from faro.client import KubernetesClient
from faro.discovery import APIResource, Discovery, DiscoveryError
from faro.errors import ApiStatusError
from faro.gvr import GroupVersionResource
from faro.testing import FakeClock, SimulatedCluster
from tests.integration.helpers import RawClient, crd

WIDGETS_V1 = "example.com/v1/widgets"
WIDGETS_V1ALPHA1 = "example.com/v1alpha1/widgets"


@pytest.fixture
def kube(cluster: SimulatedCluster) -> Iterator[KubernetesClient]:
    with KubernetesClient.from_environment(cluster.kubeconfig_path) as client:
        yield client


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


@pytest.fixture
def discovery(kube: KubernetesClient, clock: FakeClock) -> Discovery:
    return Discovery(kube.api_client, clock=clock)


def by_name(resources: tuple[APIResource, ...]) -> dict[str, APIResource]:
    return {str(r.gvr): r for r in resources}


def install_widgets(cluster: SimulatedCluster) -> None:
    # Storage version v1alpha1; the server prefers v1 (GA sorts before alpha).
    cluster.create(crd(versions=("v1alpha1", "v1")))


# ------------------------------------------------------------------ what is listed


def test_builtin_resources_with_kind_and_scope(discovery: Discovery) -> None:
    found = by_name(discovery.resources())
    expected = {
        "v1/namespaces": ("Namespace", "Cluster"),
        "v1/configmaps": ("ConfigMap", "Namespaced"),
        "v1/secrets": ("Secret", "Namespaced"),
        "v1/pods": ("Pod", "Namespaced"),
        "v1/services": ("Service", "Namespaced"),
        "apps/v1/deployments": ("Deployment", "Namespaced"),
        "apps/v1/statefulsets": ("StatefulSet", "Namespaced"),
        "batch/v1/jobs": ("Job", "Namespaced"),
        "coordination.k8s.io/v1/leases": ("Lease", "Namespaced"),
        "apiextensions.k8s.io/v1/customresourcedefinitions":
            ("CustomResourceDefinition", "Cluster"),
    }
    for name, (kind, scope) in expected.items():
        assert name in found, name
        assert (found[name].kind, found[name].scope) == (kind, scope)
        assert found[name].namespaced is (scope == "Namespaced")
        assert found[name].preferred  # the only version of its group
    assert found["v1/pods"].short_names == ("po",)
    assert found["apps/v1/deployments"].gvr == GroupVersionResource("apps", "v1", "deployments")
    assert found["v1/configmaps"].verbs >= {"get", "list", "watch", "create", "delete"}
    assert discovery.resources()[0].gvr.group == ""  # the core group comes first


def test_only_list_and_watch_resources_and_no_subresources(discovery: Discovery,
                                                           api: RawClient) -> None:
    # Compare with the raw documents: every entry that can be listed and watched and
    # is not a subresource, nothing else.
    raw: set[str] = set()
    subresources = 0
    paths = ["/api/v1"] + [f"/apis/{v['groupVersion']}" for g in api.get("/apis").json()["groups"]
                           for v in g["versions"]]
    for path in paths:
        prefix = path.removeprefix("/api/").removeprefix("/apis/")
        for entry in api.get(path).json()["resources"]:
            if "/" in entry["name"]:
                subresources += 1
            elif {"list", "watch"} <= set(entry["verbs"]):
                raw.add(f"{prefix}/{entry['name']}")
    assert subresources > 0  # e.g. deployments/status, which the server does list
    resources = discovery.resources()
    assert {str(r.gvr) for r in resources} == raw
    assert all(r.watchable and "/" not in r.gvr.resource for r in resources)


def test_crd_served_under_every_version(cluster: SimulatedCluster, discovery: Discovery) -> None:
    assert WIDGETS_V1 not in by_name(discovery.resources())
    install_widgets(cluster)  # the simulator establishes it at once
    found = by_name(discovery.resources(refresh=True))
    v1, alpha = found[WIDGETS_V1], found[WIDGETS_V1ALPHA1]
    assert (v1.kind, v1.scope, alpha.kind, alpha.scope) == (
        "Widget", "Namespaced", "Widget", "Namespaced")
    assert v1.preferred and not alpha.preferred
    assert v1.watchable and alpha.watchable


# ------------------------------------------------------------------ find


def test_find_picks_up_a_new_crd(cluster: SimulatedCluster, discovery: Discovery,
                                 clock: FakeClock) -> None:
    assert discovery.find("v1/configmaps") is not None
    assert discovery.find(WIDGETS_V1) is None
    install_widgets(cluster)
    # A miss refreshes at most once per min_refresh_interval (2 s): not yet.
    assert discovery.find(WIDGETS_V1) is None
    clock.advance(2.0)
    found = discovery.find(WIDGETS_V1)
    assert found is not None and found.kind == "Widget"
    assert discovery.find(GroupVersionResource("example.com", "v1alpha1", "widgets")) is not None


def test_find_on_a_miss_does_not_refresh_within_the_interval(
        cluster: SimulatedCluster, discovery: Discovery, clock: FakeClock) -> None:
    discovery.resources()
    cluster.fail_next(1, 500, path=r"^/apis$")
    clock.advance(1.9)
    assert discovery.find("v1/pod") is None  # a miss, but the cache is too young
    clock.advance(0.1)
    with pytest.raises(DiscoveryError):
        discovery.find("v1/pod")  # the miss refreshes now: the pending fault is hit
    # A failed attempt counts too: no new request within the interval.
    assert discovery.find("v1/pod") is None


def test_find_rejects_a_malformed_name(discovery: Discovery) -> None:
    with pytest.raises(ValueError, match="invalid resource"):
        discovery.find("pods")


# ------------------------------------------------------------------ caching


def test_a_fresh_cache_makes_no_request(cluster: SimulatedCluster, discovery: Discovery,
                                       clock: FakeClock) -> None:
    first = discovery.resources()
    cluster.fail_next(1, 500, path=r"^/apis$")
    clock.advance(299.0)
    assert discovery.resources() is first  # from the cache: the fault stays pending
    assert discovery.find("v1/pods") is not None
    with pytest.raises(DiscoveryError):
        discovery.resources(refresh=True)  # ...and is hit by the next real request
    assert discovery.resources() is first  # the failed refresh kept the old cache
    fresh = discovery.resources(refresh=True)
    assert fresh == first and fresh is not first


def test_the_cache_expires_after_ttl(cluster: SimulatedCluster, kube: KubernetesClient) -> None:
    clock = FakeClock()
    discovery = Discovery(kube.api_client, ttl=60.0, clock=clock)
    assert WIDGETS_V1 not in by_name(discovery.resources())
    install_widgets(cluster)
    clock.advance(59.0)
    assert WIDGETS_V1 not in by_name(discovery.resources())
    clock.advance(1.0)
    assert WIDGETS_V1 in by_name(discovery.resources())


def test_invalidate(cluster: SimulatedCluster, discovery: Discovery) -> None:
    discovery.resources()
    install_widgets(cluster)
    discovery.invalidate()
    assert WIDGETS_V1 in by_name(discovery.resources())


def test_concurrent_callers_share_one_result(discovery: Discovery) -> None:
    results: list[tuple[APIResource, ...]] = []
    lock = threading.Lock()

    def call() -> None:
        found = discovery.resources()
        with lock:
            results.append(found)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10.0)
    assert len(results) == 8
    assert all(result is results[0] for result in results)


# ------------------------------------------------------------------ failures


def test_a_failing_group_version_is_skipped(cluster: SimulatedCluster, discovery: Discovery,
                                            caplog: pytest.LogCaptureFixture) -> None:
    install_widgets(cluster)
    cluster.fail_next(1, 503, path=r"^/apis/example\.com/v1$")
    with caplog.at_level(logging.WARNING, logger="faro.discovery"):
        found = by_name(discovery.resources())
    assert WIDGETS_V1 not in found
    assert WIDGETS_V1ALPHA1 in found and "apps/v1/deployments" in found
    [record] = [r for r in caplog.records if r.name == "faro.discovery"]
    assert record.levelno == logging.WARNING
    assert "skipping example.com/v1" in record.getMessage()
    assert f"{cluster.url}/apis/example.com/v1" in record.getMessage()
    assert "503" in record.getMessage()
    # The next refresh asks again.
    assert WIDGETS_V1 in by_name(discovery.resources(refresh=True))


def test_a_failing_core_version_is_skipped_too(cluster: SimulatedCluster,
                                               discovery: Discovery) -> None:
    cluster.fail_next(1, 503, path=r"^/api/v1$")
    found = by_name(discovery.resources())
    assert "v1/pods" not in found and "apps/v1/deployments" in found


def test_find_in_a_group_version_that_failed_is_an_error(
        cluster: SimulatedCluster, discovery: Discovery, clock: FakeClock) -> None:
    cluster.fail_next(1, 503, path=r"^/apis/apps/v1$")
    assert discovery.find("v1/pods") is not None
    # Not "absent": unknown. None would let a caller conclude the resource is a typo.
    with pytest.raises(DiscoveryError, match=r"discovery of apps/v1 failed \(HTTP 503.*\), so "
                                             "whether apps/v1/deployments is served is not known"):
        discovery.find("apps/v1/deployments")
    assert discovery.find("batch/v1/jobs") is not None  # other group/versions are known
    clock.advance(2.0)
    assert discovery.find("apps/v1/deployments") is not None  # the miss refreshed


def test_every_group_version_failing_is_an_error(cluster: SimulatedCluster,
                                                 discovery: Discovery) -> None:
    first = discovery.resources()
    cluster.fail_next(100, 503, path=r"^/api(s/[^/]+)?/v1$")
    with pytest.raises(DiscoveryError, match=f"every group/version of {cluster.url} failed"):
        discovery.resources(refresh=True)
    cluster.clear_faults()
    assert discovery.resources() is first  # an empty answer did not replace the cache


@pytest.mark.parametrize("path", ["/api", "/apis"])
def test_a_failing_root_document_is_an_error(cluster: SimulatedCluster, discovery: Discovery,
                                             path: str) -> None:
    cluster.fail_next(1, 500, path=f"^{path}$")
    with pytest.raises(DiscoveryError) as caught:
        discovery.resources()
    assert f"GET {cluster.url}{path} failed" in str(caught.value)
    cause = caught.value.__cause__
    assert isinstance(cause, ApiStatusError) and cause.status == 500


def test_an_unreachable_server_is_an_error() -> None:
    sim = SimulatedCluster()
    with sim:
        kube = KubernetesClient.from_environment(sim.kubeconfig_path)
        url = sim.url
    with kube:  # the server is gone; its port refuses connections
        with pytest.raises(DiscoveryError, match=f"GET {url}/api failed") as caught:
            Discovery(kube.api_client).resources()
        assert caught.value.__cause__ is not None


# ------------------------------------------------------------------ the client's clock


def test_the_clients_discovery_runs_on_the_clients_clock(cluster: SimulatedCluster) -> None:
    clock = FakeClock()
    with KubernetesClient.from_environment(cluster.kubeconfig_path, clock=clock) as kube:
        assert WIDGETS_V1 not in by_name(kube.discovery.resources())
        install_widgets(cluster)
        clock.advance(299.0)  # the default ttl is 300 s
        assert WIDGETS_V1 not in by_name(kube.discovery.resources())
        clock.advance(1.0)
        assert WIDGETS_V1 in by_name(kube.discovery.resources())


def test_the_service_account_token_is_re_read_every_minute_of_the_clock(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    (tmp_path / "ca.crt").write_text("not read here")
    (tmp_path / "token").write_text("first\n")
    clock = FakeClock()
    with KubernetesClient.from_environment(service_account_dir=tmp_path, clock=clock) as kube:
        configuration = kube.api_client.configuration

        def token() -> str:
            # What the client sends: its refresh hook runs first, as before every request.
            configuration.refresh_api_key_hook(configuration)
            return str(configuration.api_key["BearerToken"])

        assert token() == "Bearer first"
        (tmp_path / "token").write_text("second\n")  # the kubelet rotates it
        clock.advance(59.0)
        assert token() == "Bearer first"
        clock.advance(1.0)
        assert token() == "Bearer second"


# ------------------------------------------------------------------ names


def test_close_matches(cluster: SimulatedCluster, discovery: Discovery) -> None:
    assert discovery.close_matches("v1/pod")[0] == "v1/pods"
    assert discovery.close_matches("v1/po")[0] == "v1/pods"
    assert discovery.close_matches("v1/ConfigMap")[0] == "v1/configmaps"
    assert discovery.close_matches("v1/deployments")[0] == "apps/v1/deployments"
    assert discovery.close_matches("apps/v1/deploymnets")[0] == "apps/v1/deployments"
    assert discovery.close_matches(GroupVersionResource("apps", "v1", "deploy"))[0] == \
        "apps/v1/deployments"
    assert discovery.close_matches("v1/zzzzzz") == []
    assert len(discovery.close_matches("v1/s", n=2)) <= 2
    install_widgets(cluster)
    discovery.invalidate()
    assert discovery.close_matches("example.com/v1/widget") == [WIDGETS_V1, WIDGETS_V1ALPHA1]


def test_is_builtin_group(discovery: Discovery) -> None:
    for group in ("", "apps", "batch", "policy", "coordination.k8s.io", "networking.k8s.io",
                  "rbac.authorization.k8s.io"):
        assert discovery.is_builtin_group(group), group
    for group in ("example.com", "cert-manager.io", "monitoring.coreos.com", "k8s.io.example"):
        assert not discovery.is_builtin_group(group), group
