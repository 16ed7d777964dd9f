"""Shared informers: namespaces matched by a pattern (or several listed with the same
selectors) are served by one informer in all namespaces that faro filters by namespace,
and by one informer per namespace only when the credentials cannot list cluster-wide."""

from __future__ import annotations

import copy
import logging
import threading

import pytest
from kubernetes.client import ApiClient

from faro import Config, Controller, KubernetesClient
from faro.testing import SimulatedCluster
from tests.integration.controller_helpers import Controllers, Events, controllers
from tests.integration.helpers import DEADLINE, configmap, eventually
from tests.integration.test_controller import forbid_cluster_wide_list, namespace

__all__ = ["controllers"]

PATTERN = """
    namespaces:
      - name_selector: "team-.*"
        resources: {"v1/configmaps": {}}
    """


def informer_threads() -> list[str]:
    return sorted(t.name for t in threading.enumerate()
                  if t.name.startswith("faro-informer-") and t.is_alive())


def test_a_pattern_matching_200_namespaces_runs_one_informer_filtered_by_faro(
        cluster: SimulatedCluster, controllers: Controllers) -> None:
    for number in range(200):
        cluster.create(namespace(f"team-{number:03}"))
    cluster.create(namespace("elsewhere"))
    before = set(informer_threads())
    events = Events()
    controller = controllers.make(PATTERN, events)

    assert list(controller.informers()) == ["v1/configmaps"]
    assert controller.get_active_informers() == (1, 0)
    started = set(informer_threads()) - before
    assert len(started) <= 10, sorted(started)
    assert not any("namespaces" in name for name in started)  # no namespace watcher needed

    cluster.create(configmap("ignored", "elsewhere"))   # filtered by faro
    cluster.create(configmap("wanted", "team-123"))
    cluster.create(configmap("fence", "team-199"))      # one stream: delivered in order
    (wanted,) = events.wait_key("team-123/wanted", "ADDED")
    events.wait_key("team-199/fence", "ADDED")
    assert wanted.config.namespace_pattern == "team-.*"
    assert "elsewhere/ignored" not in events.seen_keys()


def test_namespaces_come_and_go_under_the_shared_informer_without_a_replan(
        cluster: SimulatedCluster, controllers: Controllers) -> None:
    events = Events()
    controller = controllers.make(PATTERN, events)
    informer = controller.informers()["v1/configmaps"]

    cluster.create(namespace("team-new"))
    cluster.create(configmap("late", "team-new"))
    events.wait_key("team-new/late", "ADDED")
    # The namespace's deletion deletes its objects: the server reports each one.
    cluster.delete("v1", "Namespace", "team-new")
    deleted = events.wait_key("team-new/late", "ADDED", "DELETED")[-1]
    assert not deleted.final_state_unknown
    assert controller.informers() == {"v1/configmaps": informer}


def test_listed_namespaces_with_the_same_selectors_share_one_informer(
        cluster: SimulatedCluster, controllers: Controllers) -> None:
    for ns in ("a", "b", "c"):
        cluster.create(namespace(ns))
    events = Events()
    controller = controllers.make({"resources": [
        {"gvr": "v1/configmaps", "namespace_names": ["a", "b"]}]}, events)

    assert list(controller.informers()) == ["v1/configmaps"]
    for ns in ("c", "a", "b"):
        cluster.create(configmap("x", ns))
    events.wait_key("a/x", "ADDED")
    events.wait_key("b/x", "ADDED")
    assert "c/x" not in events.seen_keys()


def test_without_a_cluster_wide_list_it_falls_back_to_one_informer_per_namespace(
        cluster: SimulatedCluster, controllers: Controllers,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="faro.controller")
    forbid_cluster_wide_list(cluster)
    for ns in ("team-a", "team-b", "elsewhere"):
        cluster.create(namespace(ns))
    events = Events()
    controller = controllers.make(PATTERN, events)

    assert sorted(controller.informers()) == ["v1/configmaps in team-a",
                                              "v1/configmaps in team-b"]
    said = [r.getMessage() for r in caplog.records
            if "may not list v1/configmaps in all namespaces" in r.getMessage()]
    assert len(said) == 1 and "one informer each" in said[0], said
    cluster.create(namespace("team-c"))  # the namespace watcher starts its informer
    eventually(lambda: "v1/configmaps in team-c" in controller.informers())
    cluster.create(configmap("ignored", "elsewhere"))
    cluster.create(configmap("wanted", "team-c"))
    events.wait_key("team-c/wanted", "ADDED")
    assert "elsewhere/ignored" not in events.seen_keys()
    assert len([r for r in caplog.records if "may not list" in r.getMessage()]) == 1


def test_per_namespace_informers_keep_their_connections_whatever_the_clients_pool_size(
        cluster: SimulatedCluster, controllers: Controllers,
        caplog: pytest.LogCaptureFixture) -> None:
    """The official client's pool keeps ``connection_pool_maxsize`` connections (5 per CPU by
    default); the informers' pool grows with the informers running, so 12 of them behind a
    pool of 2 never see urllib3 discard a connection ("Connection pool is full") and open a
    new one for their watch."""
    caplog.set_level(logging.WARNING, logger="urllib3")
    forbid_cluster_wide_list(cluster)
    for number in range(12):
        cluster.create(namespace(f"team-{number:02}"))
    settings = copy.copy(cluster.api_client.configuration)
    settings.connection_pool_maxsize = 2
    # The 12 informers' lists are answered together: they all put their connections back
    # at about the same time, and take one again for their watches.
    cluster.delay(0.5, path=r"/namespaces/team-\d+/configmaps\?(?!.*watch=true)", count=12)
    events = Events()
    controller = Controller(KubernetesClient(ApiClient(settings)), Config.from_yaml(PATTERN),
                            name="small-pool")
    controller.add_event_handler(events)
    controllers.made.append(controller)
    controller.start()
    assert controller.wait_until_ready(DEADLINE)
    assert len(controller.informers()) == 12
    for number in range(12):
        cluster.create(configmap("x", f"team-{number:02}"))
    events.wait_for(lambda got: len({e.key for e in got}) == 12, what="12 objects")
    full = [r.getMessage() for r in caplog.records if "pool is full" in r.getMessage()]
    assert full == []
