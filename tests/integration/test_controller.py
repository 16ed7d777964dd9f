"""The Controller against the simulator: configuration to informers, filters, dynamic
namespaces and CRDs, runtime resources, readiness and lifecycle."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from faro import Config, ConfigError, Controller, KubernetesClient, ResourceConfig
from faro.testing import SimulatedCluster
from tests.integration.controller_helpers import Controllers, Events, controllers, faro_threads
from tests.integration.helpers import DEADLINE, configmap, crd, eventually

__all__ = ["controllers"]


def namespace(name: str, **labels: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, **({"labels": labels} if labels else {})}}


def widget(name: str, namespace: str | None = "default", version: str = "v1") -> dict[str, object]:
    metadata: dict[str, object] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": f"example.com/{version}", "kind": "Widget", "metadata": metadata,
            "spec": {"size": 1}}


def informer_names(controller: Controller) -> list[str]:
    return sorted(controller.informers())


def forbid_cluster_wide_list(cluster: SimulatedCluster, resource: str = "configmaps") -> None:
    """Answer 403 to every list and watch of core ``resource`` in all namespaces, as RBAC
    does for credentials bound to namespaced Roles only: faro then runs one informer per
    namespace (tests/integration/test_shared_informers.py covers the shared informer)."""
    cluster.fail_next(10**9, 403, path=rf"^/api/v1/{resource}(\?|$)",
                      message=f"{resource} is forbidden: cannot list resource {resource!r} in "
                              "API group \"\" at the cluster scope")


# ------------------------------------------------------------------ the two formats, filters


def test_both_formats_in_one_file_watch_exactly_what_they_name(
        cluster: SimulatedCluster, controllers: Controllers) -> None:
    for ns in ("prod", "staging", "other"):
        cluster.create(namespace(ns))
    events = Events()
    controller = controllers.make("""
        namespaces:
          - name_selector: prod
            resources:
              "v1/configmaps": {label_selector: "app=web"}
        resources:
          - gvr: v1/secrets
            namespace_names: [prod, staging]
            field_selector: type=Opaque
        """, events)
    # Two namespaces listed with the same selectors: one informer in all namespaces, which
    # faro filters to prod and staging.
    assert controller.get_active_informers() == (2, 0)
    assert informer_names(controller) == [
        "v1/configmaps in prod labels 'app=web'",
        "v1/secrets fields 'type=Opaque'",
    ]
    cluster.create(configmap("web", "prod", labels={"app": "web"}))
    cluster.create(configmap("db", "prod", labels={"app": "db"}))          # label filtered
    cluster.create(configmap("web", "staging", labels={"app": "web"}))     # namespace filtered
    for ns in ("prod", "staging", "other"):
        cluster.create({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                        "metadata": {"name": "s", "namespace": ns}})
    cluster.create({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                    "metadata": {"name": "tls", "namespace": "prod"},
                    "data": {"tls.crt": "", "tls.key": ""}})                # field filtered
    cluster.create(configmap("fence", "prod", labels={"app": "web"}))
    events.wait_key("prod/fence", "ADDED")
    events.wait_for(lambda e: {(x.gvr, x.key) for x in e} >= {
        ("v1/secrets", "prod/s"), ("v1/secrets", "staging/s")})
    assert sorted((e.gvr, e.key) for e in events.events) == [
        ("v1/configmaps", "prod/fence"), ("v1/configmaps", "prod/web"),
        ("v1/secrets", "prod/s"), ("v1/secrets", "staging/s")]
    by_key = {(e.gvr, e.key): e.config.source for e in events.events}
    assert by_key[("v1/secrets", "staging/s")] == "resources[0]"
    assert by_key[("v1/configmaps", "prod/web")] == "namespaces[0].resources[v1/configmaps]"


def test_an_exact_name_goes_to_the_server_and_a_regex_is_filtered_and_counted(
        cluster: SimulatedCluster, controllers: Controllers) -> None:
    events = Events()
    controller = controllers.make({"resources": [
        {"gvr": "v1/configmaps", "namespace_names": ["default"], "name_selector": "exact"},
        {"gvr": "v1/secrets", "namespace_names": ["default"], "name_selector": "app-[0-9]+"},
    ]}, events)
    informers = controller.informers()
    assert informers["v1/configmaps in default fields 'metadata.name=exact'"] \
        .field_selector == "metadata.name=exact"
    assert informers["v1/secrets in default"].field_selector is None
    for name in ("exact", "exact-not", "other"):
        cluster.create(configmap(name))
    for name in ("app-1", "app-22", "app-x", "xapp-1", "app-99"):
        cluster.create({"apiVersion": "v1", "kind": "Secret",
                        "metadata": {"name": name, "namespace": "default"}})
    events.wait_key("default/app-99", "ADDED")  # the informer saw app-x and xapp-1 before it
    events.wait_key("default/exact", "ADDED")
    assert sorted(e.key for e in events.events) == ["default/app-1", "default/app-22",
                                                   "default/app-99", "default/exact"]
    filtered = controller.metrics.registry.get_sample_value(
        "faro_events_filtered_total", {"gvr": "v1/secrets"})
    assert filtered == 2  # app-x and xapp-1: filtered client-side, and counted


def test_entries_asking_for_the_same_stream_share_one_informer(
        cluster: SimulatedCluster, controllers: Controllers) -> None:
    events = Events()
    controller = controllers.make("""
        namespaces:
          - name_selector: default
            resources: {"v1/configmaps": {name_selector: "a-.*"}}
        resources:
          - gvr: v1/configmaps
            namespace_names: [default]
            name_selector: "b-.*"
          - gvr: v1/configmaps
            label_selector: "team=x"
        """, events)
    # The first two entries make the same request: one informer serves both.
    assert informer_names(controller) == ["v1/configmaps in default",
                                          "v1/configmaps labels 'team=x'"]
    for name in ("a-1", "b-1", "c-1"):
        cluster.create(configmap(name))
    cluster.create(configmap("c-2", labels={"team": "x"}))
    # Matched by two informers (different server-side selectors): once per informer.
    cluster.create(configmap("a-2", labels={"team": "x"}))
    events.wait_for(lambda e: len(e) == 5)
    delivered = sorted((e.key, e.config.source) for e in events.events)
    assert delivered == [
        ("default/a-1", "namespaces[0].resources[v1/configmaps]"),
        ("default/a-2", "namespaces[0].resources[v1/configmaps]"),
        ("default/a-2", "resources[1]"),
        ("default/b-1", "resources[0]"),
        ("default/c-2", "resources[1]"),
    ]


def test_a_namespace_entry_is_served_by_the_all_namespaces_stream(
        cluster: SimulatedCluster, controllers: Controllers) -> None:
    events = Events()
    controller = controllers.make({"resources": [
        {"gvr": "v1/configmaps"},
        {"gvr": "v1/configmaps", "namespace_names": ["kube-system"]},
    ]}, events)
    assert informer_names(controller) == ["v1/configmaps"]
    cluster.create(configmap("a", "kube-system"))
    cluster.create(configmap("b", "default"))
    events.wait_for(lambda e: len(e) == 2)
    sources = {e.key: e.config.source for e in events.events}
    assert sources == {"kube-system/a": "resources[0]", "default/b": "resources[0]"}


def test_cluster_scoped_resources_get_one_cluster_wide_informer(
        cluster: SimulatedCluster, controllers: Controllers,
        caplog: pytest.LogCaptureFixture) -> None:
    events = Events()
    controller = controllers.make(
        {"resources": [{"gvr": "v1/namespaces", "name_selector": "team-.*"}]}, events)
    assert informer_names(controller) == ["v1/namespaces"]
    cluster.create(namespace("team-a"))
    cluster.create(namespace("other"))
    added = events.wait_key("team-a", "ADDED")
    assert added[0].namespace == "" and added[0].config.source == "resources[0]"
    cluster.delete("v1", "Namespace", "team-a")
    deleted = events.wait_key("team-a", "DELETED")[-1]
    assert deleted.uid == added[0].uid
    assert "other" not in events.seen_keys()

    # A namespace filter cannot apply to a cluster-scoped resource: said, not ignored silently.
    listed = controllers.make({"namespaces": [{"name_selector": "default",
                                               "resources": {"v1/namespaces": {}}}]})
    assert informer_names(listed) == ["v1/namespaces"]
    assert any("namespaces[0].resources[v1/namespaces]: v1/namespaces is cluster-scoped"
               in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------- dynamic namespaces


def test_a_namespace_regex_starts_and_stops_informers_as_namespaces_come_and_go(
        cluster: SimulatedCluster, controllers: Controllers) -> None:
    forbid_cluster_wide_list(cluster)  # else one shared informer serves the pattern
    cluster.create(namespace("team-a"))
    cluster.create(namespace("elsewhere"))
    cluster.create(configmap("early", "team-a"))
    events = Events()
    controller = controllers.make("""
        namespaces:
          - name_selector: "team-.*"
            resources: {"v1/configmaps": {}}
        """, events)
    assert informer_names(controller) == ["v1/configmaps in team-a"]
    (early,) = events.wait_key("team-a/early", "ADDED")
    assert early.is_initial and early.config.namespace_pattern == "team-.*"

    cluster.create(namespace("team-b"))
    eventually(lambda: "v1/configmaps in team-b" in controller.informers())
    cluster.create(configmap("late", "team-b"))
    cluster.create(configmap("ignored", "elsewhere"))
    events.wait_key("team-b/late", "ADDED")

    cluster.delete("v1", "Namespace", "team-b")  # its configmaps go first, then the namespace
    deleted = events.wait_key("team-b/late", "ADDED", "DELETED")[-1]
    assert deleted.object["metadata"]["name"] == "late"
    eventually(lambda: "v1/configmaps in team-b" not in controller.informers())
    assert controller.get_active_informers() == (1, 0)
    assert "elsewhere/ignored" not in events.seen_keys()


# ----------------------------------------------------------------------------------- CRDs


def test_a_crd_installed_after_start_changed_and_deleted(
        cluster: SimulatedCluster, controllers: Controllers) -> None:
    events = Events()
    controller = controllers.make({"resources": [{"gvr": "example.com/v1/widgets"}]}, events)
    assert controller.get_active_informers() == (0, 0)  # not served yet: not an error
    assert controller.is_ready()

    cluster.create(crd(versions=("v1", "v2")))
    eventually(lambda: "example.com/v1/widgets" in controller.informers())
    cluster.create(widget("w1"))
    (added,) = events.wait_key("default/w1", "ADDED", gvr="example.com/v1/widgets")
    assert added.object["apiVersion"] == "example.com/v1"

    # A served-version change that keeps v1 keeps the informer; dropping v1 stops it.
    informer = controller.informers()["example.com/v1/widgets"]
    definition = cluster.get("apiextensions.k8s.io/v1", "CustomResourceDefinition",
                             "widgets.example.com")
    definition["spec"]["versions"][0]["served"] = False
    cluster.update(definition)
    eventually(lambda: "example.com/v1/widgets" not in controller.informers())
    assert not informer.is_running
    definition = cluster.get("apiextensions.k8s.io/v1", "CustomResourceDefinition",
                             "widgets.example.com")
    definition["spec"]["versions"][0]["served"] = True
    cluster.update(definition)
    eventually(lambda: "example.com/v1/widgets" in controller.informers())
    assert controller.informers()["example.com/v1/widgets"] is not informer

    # Deleted: its objects are reported deleted, and the informer stops.
    cluster.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", "widgets.example.com")
    deleted = events.wait_key("default/w1", "DELETED", gvr="example.com/v1/widgets")[-1]
    assert deleted.uid == added.uid
    eventually(lambda: controller.informers() == {})

    # Re-created cluster-scoped: a cluster-wide informer on the new definition.
    cluster.create(crd(scope="Cluster"))
    eventually(lambda: "example.com/v1/widgets" in controller.informers())
    cluster.create(widget("global", namespace=None))
    (cluster_event,) = events.wait_key("global", "ADDED", gvr="example.com/v1/widgets")
    assert cluster_event.namespace == ""


def test_a_resource_that_can_never_exist_fails_start_with_close_matches(
        cluster: SimulatedCluster) -> None:
    config = Config.from_dict({"resources": [{"gvr": "v1/pod"}]}, source="config.yaml")
    controller = Controller(KubernetesClient(cluster.api_client), config)
    with pytest.raises(ConfigError) as raised:
        controller.start()
    assert str(raised.value).startswith("config.yaml: resources[0]: ")
    assert "v1/pod" in str(raised.value) and "v1/pods" in str(raised.value)
    assert controller.stop(DEADLINE)


# ----------------------------------------------------------------------- runtime resources


def test_resources_added_and_removed_at_runtime(
        cluster: SimulatedCluster, controllers: Controllers) -> None:
    events = Events()
    controller = controllers.make({"resources": [{"gvr": "v1/configmaps",
                                                  "namespace_names": ["default"]}]}, events)
    controller.add_resources([ResourceConfig("v1/secrets", namespace_names=("default",))])
    assert controller.get_active_informers() == (1, 0)  # staged until start_informers
    controller.start_informers()
    assert controller.get_active_informers() == (1, 1)
    cluster.create({"apiVersion": "v1", "kind": "Secret",
                    "metadata": {"name": "s", "namespace": "default"}})
    events.wait_key("default/s", "ADDED", gvr="v1/secrets")

    with pytest.raises(ConfigError, match="duplicates"):
        controller.add_resources([{"gvr": "v1/secrets", "namespace_names": ["default"]}])
    with pytest.raises(ConfigError, match=r"add_resources\[0\]"):
        controller.add_resources([{"gvr": "v1/secrets", "namespace_name": ["default"]}])
    controller.add_resources([{"gvr": "v1/pod"}])
    with pytest.raises(ConfigError, match="v1/pods"):
        controller.start_informers()

    controller.remove_resources([{"gvr": "v1/secrets", "namespace_names": ["default"]}])
    assert controller.get_active_informers() == (1, 0)
    with pytest.raises(ConfigError, match="matches no watched resource"):
        controller.remove_resources([{"gvr": "v1/secrets"}])
    cluster.create({"apiVersion": "v1", "kind": "Secret",
                    "metadata": {"name": "after", "namespace": "default"}})
    cluster.create(configmap("fence"))
    events.wait_key("default/fence", "ADDED")
    assert "default/after" not in events.seen_keys()


def test_a_handler_adds_resources_while_running(
        cluster: SimulatedCluster, controllers: Controllers) -> None:
    """The reference's dynamic discovery: a handler reacts to an event by adding resources."""
    events = Events()

    def discover(event: object) -> None:
        controller.add_resources([{"gvr": "v1/configmaps", "namespace_names": ["found"]}])
        controller.start_informers()

    controller = controllers.make({"resources": [{"gvr": "v1/namespaces",
                                                  "name_selector": "found"}]}, events)
    controller.add_event_handler(discover)
    cluster.create(namespace("found"))
    eventually(lambda: controller.get_active_informers() == (1, 1))
    cluster.create(configmap("inside", "found"))
    events.wait_key("found/inside", "ADDED")


# ---------------------------------------------------------------- readiness and lifecycle


def test_readiness_turns_false_while_an_informer_stays_unhealthy(
        cluster: SimulatedCluster, controllers: Controllers) -> None:
    controller = controllers.make({"resources": [{"gvr": "v1/configmaps"}],
                                   "unhealthy_after_sec": 0})
    assert controller.is_ready()
    cluster.fail_next(1000, 500, path="configmaps")
    cluster.drop_watches(abrupt=True)
    eventually(lambda: not controller.is_ready())
    cluster.clear_faults()
    eventually(controller.is_ready, timeout=60)


def test_run_returns_after_auto_shutdown_and_stops_everything(
        cluster: SimulatedCluster, controllers: Controllers) -> None:
    before = set(faro_threads())
    controller = controllers.make({"resources": [{"gvr": "v1/configmaps"}],
                                   "auto_shutdown_sec": 0.5}, start=False)
    started = time.monotonic()
    controller.run()
    assert 0.5 <= time.monotonic() - started < DEADLINE
    assert not controller.is_ready()
    assert set(faro_threads()) <= before
    with pytest.raises(RuntimeError, match="already started"):
        controller.start()


def test_run_returns_when_another_thread_stops_it(
        cluster: SimulatedCluster, controllers: Controllers) -> None:
    controller = controllers.make({"resources": [{"gvr": "v1/configmaps"}]}, start=False)
    runner = threading.Thread(target=controller.run, name="test-runner")
    runner.start()
    assert controller.wait_until_ready(DEADLINE)
    assert controller.stop(DEADLINE)
    runner.join(DEADLINE)
    assert not runner.is_alive()


def test_stop_during_a_start_that_waits_for_discovery_returns_at_once_and_the_start_early(
        cluster: SimulatedCluster, caplog: pytest.LogCaptureFixture) -> None:
    """Discovery answers slowly: stop() from another thread does not wait for the answer;
    the start then returns without an error, having started nothing."""
    before = set(faro_threads())
    caplog.set_level(logging.DEBUG, logger="faro.controller")
    cluster.delay(5, path=r"^/apis$")
    config = Config.from_dict({"resources": [{"gvr": "v1/configmaps"}]})
    controller = Controller(KubernetesClient(cluster.api_client), config, name="slow")
    outcome: list[BaseException | None] = []

    def start() -> None:
        try:
            controller.start()
        except BaseException as error:
            outcome.append(error)
        else:
            outcome.append(None)

    starter = threading.Thread(target=start, name="test-starter", daemon=True)
    starter.start()
    eventually(lambda: any("reading the cluster's resources" in r.getMessage()
                           for r in caplog.records), what="start() in discovery")
    asked = time.monotonic()
    assert controller.stop(DEADLINE)
    assert time.monotonic() - asked < 2.5  # not the 5 s discovery takes

    starter.join(DEADLINE)
    assert outcome == [None]
    assert controller.stopped and controller.informers() == {}
    assert set(faro_threads()) <= before


def test_the_context_manager_starts_and_stops(cluster: SimulatedCluster) -> None:
    before = set(faro_threads())
    events = Events()
    config = Config.from_dict({"resources": [{"gvr": "v1/configmaps"}]})
    with Controller(KubernetesClient(cluster.api_client), config) as controller:
        controller.add_event_handler(events)
        assert controller.wait_until_ready(DEADLINE)
        cluster.create(configmap("ctx"))
        events.wait_key("default/ctx", "ADDED")
    assert set(faro_threads()) <= before


def test_two_controllers_in_one_process_do_not_interfere(
        cluster: SimulatedCluster, controllers: Controllers) -> None:
    left, right = Events("left"), Events("right")
    first = controllers.make({"resources": [{"gvr": "v1/configmaps"}]}, left, name="left")
    second = controllers.make({"resources": [{"gvr": "v1/configmaps"}]}, right, name="right")
    cluster.create(configmap("shared"))
    left.wait_key("default/shared", "ADDED")
    right.wait_key("default/shared", "ADDED")
    assert first.stop(DEADLINE)
    cluster.create(configmap("after"))
    right.wait_key("default/after", "ADDED")
    assert "default/after" not in left.seen_keys()
    assert second.is_ready() and not first.is_ready()
    assert first.metrics.registry is not second.metrics.registry
    assert all(name.startswith("right-worker") for name in right.threads)


def test_objects_of_a_namespace_that_vanished_unseen_are_reported_deleted(
        cluster: SimulatedCluster, controllers: Controllers) -> None:
    """If the informer missed the deletes (its watch was down), stopping it reports them."""
    forbid_cluster_wide_list(cluster)  # one informer per namespace, stopped with it
    cluster.create(namespace("team-x"))
    events = Events()
    controller = controllers.make({"namespaces": [{"name_selector": "team-.*",
                                                   "resources": {"v1/configmaps": {}}}]},
                                  events)
    created = cluster.create(configmap("left", "team-x", labels={"keep": "me"}))
    events.wait_key("team-x/left", "ADDED")
    with cluster.hold_watches(path="configmaps"):
        cluster.drop_watches()            # the configmaps watch comes back and is parked
        assert cluster.wait_for_held_watches(1)
        cluster.delete("v1", "Namespace", "team-x")
        eventually(lambda: "v1/configmaps in team-x" not in controller.informers())
    (deleted,) = events.wait_key("team-x/left", "DELETED")[1:]
    assert deleted.final_state_unknown
    assert deleted.uid == created["metadata"]["uid"] and deleted.labels == {"keep": "me"}
