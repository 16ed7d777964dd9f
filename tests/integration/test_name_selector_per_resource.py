"""``name_selector`` under ``namespaces[].resources`` (the namespace-centric format): an
object-name selector per resource, honoured by faro through the public Controller.

The Go original reads only ``label_selector`` there and ignores the rest; faro treats it as the
resource-centric ``name_selector``: an exact name goes to the server as a field selector, a
pattern is filtered by faro and counted. See docs/differences.md.
"""

from __future__ import annotations

from typing import Any

from faro.testing import SimulatedCluster
from tests.integration.controller_helpers import Controllers, Events, controllers
from tests.integration.helpers import configmap

__all__ = ["controllers"]


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def secret(name: str, ns: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": ns}}


def test_a_name_selector_under_a_namespace_resource_filters_by_object_name(
        cluster: SimulatedCluster, controllers: Controllers) -> None:
    cluster.create(namespace("team-a"))
    events = Events()
    # One worker: events are handled in the order the informers push them, so once the last
    # object created in each stream has arrived, nothing pushed before it is still on its way.
    controller = controllers.make("""
        workers: 1
        namespaces:
          - name_selector: "team-a"
            resources:
              "v1/configmaps":
                name_selector: "settings"
              "v1/secrets":
                name_selector: "app-[0-9]+"
        """, events)

    informers = controller.informers()
    assert sorted(informers) == ["v1/configmaps in team-a fields 'metadata.name=settings'",
                                 "v1/secrets in team-a"]
    # The exact name is asked of the server; the pattern cannot be, so faro applies it.
    assert informers["v1/configmaps in team-a fields 'metadata.name=settings'"] \
        .field_selector == "metadata.name=settings"
    assert informers["v1/secrets in team-a"].field_selector is None

    for name in ("settings-old", "other", "settings"):        # "settings" last
        cluster.create(configmap(name, "team-a"))
    for name in ("app-x", "app-1", "xapp-1", "app-22", "app-99"):  # "app-99" last
        cluster.create(secret(name, "team-a"))
    events.wait_key("team-a/settings", "ADDED", gvr="v1/configmaps")
    events.wait_key("team-a/app-99", "ADDED", gvr="v1/secrets")

    assert sorted((e.gvr, e.key) for e in events.events) == [
        ("v1/configmaps", "team-a/settings"),
        ("v1/secrets", "team-a/app-1"), ("v1/secrets", "team-a/app-22"),
        ("v1/secrets", "team-a/app-99"),
    ]
    for event in events.events:
        assert event.config.source == f"namespaces[0].resources[{event.gvr}]"
        assert event.config.namespace == "team-a"
    registry = controller.metrics.registry
    # app-x and xapp-1 reached faro and were filtered by it; the server kept the other
    # configmaps back, so faro filtered none of them.
    assert registry.get_sample_value("faro_events_filtered_total", {"gvr": "v1/secrets"}) == 2
    assert not registry.get_sample_value("faro_events_filtered_total",
                                         {"gvr": "v1/configmaps"})
