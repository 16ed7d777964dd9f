"""The pending bound against a cluster (the simulator, or a real kube-apiserver).

A handler that never returns for one object keeps that object's later events waiting. Without
a bound they pile up for as long as the writes go on, with every probe green. With it:

1. the informer serving that object stops at its share of the bound (it reads no more of its
   watch, so TCP pushes back to the API server) while another informer keeps delivering;
   nothing accepted is dropped (once the handler returns, every change arrives, in order);
   the stuck handler and the held informer are logged; ``/readyz`` turns 503 naming the
   informer, the bound and the stuck handler; the ``faro_pending_*`` metrics show it;
2. a stop while an informer is held is not held up by it;
3. an object bigger than the whole bound is delivered (it goes through alone).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from faro import Config, Controller, MatchedEvent
from tests.e2e.backend import Backend, faro_client
from tests.integration.controller_helpers import Events
from tests.integration.kube import DEADLINE, eventually
from tests.integration.test_metrics import probe, scrape, value

pytestmark = pytest.mark.cluster

PER_INFORMER = 20
UPDATES = 100


class Gate(Events):
    """Records events; blocks on the object ``stuck`` until :meth:`open` (at most a deadline,
    so that a failing test does not hang)."""

    def __init__(self, stuck: str) -> None:
        super().__init__("gate")
        self.stuck = stuck
        self.entered = threading.Event()
        self._open = threading.Event()

    def on_matched(self, event: MatchedEvent) -> None:
        if event.key == self.stuck:
            self.entered.set()
            self._open.wait(4 * DEADLINE)
        super().on_matched(event)

    def open(self) -> None:
        self._open.set()


def configmap(name: str, app: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": {"app": app}}, "data": data}


def bounded(backend: Backend, ns: str, gate: Gate, **pending: Any) -> Controller:
    """A controller of two informers in ``ns`` (``app=stuck`` and ``app=free``), metrics on."""
    controller = Controller(faro_client(backend), Config.from_dict({
        "workers": 2,
        "metrics": {"enabled": True, "port": 0, "bind_addr": "127.0.0.1"},
        "pending": {"max_events_per_informer": PER_INFORMER, "unready_after_sec": 1,
                    "stuck_handler_sec": 0.5, **pending},
        "resources": [
            {"gvr": "v1/configmaps", "namespace_names": [ns], "label_selector": "app=stuck"},
            {"gvr": "v1/configmaps", "namespace_names": [ns], "label_selector": "app=free"},
        ]}), name="e2e-pending")
    controller.add_event_handler(gate)
    controller.start()
    assert controller.wait_until_ready(DEADLINE)
    return controller


def test_a_stuck_handler_holds_only_its_informer_at_the_bound_and_loses_nothing(
    backend: Backend, v1: client.CoreV1Api, namespaces: Callable[[str], str],
    controllers: list[Controller], caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="faro")
    ns = namespaces("pending")
    gate = Gate(f"{ns}/stuck")
    controller = bounded(backend, ns, gate)
    controllers.append(controller)
    v1.create_namespaced_config_map(ns, configmap("stuck", "stuck", v="0"))
    assert gate.entered.wait(DEADLINE), "the handler was not called for the stuck object"

    written: list[str] = []
    for step in range(1, UPDATES + 1):
        updated = v1.patch_namespaced_config_map("stuck", ns, {"data": {"v": str(step)}})
        written.append(updated.metadata.resource_version)
        assert controller.pending_events() <= PER_INFORMER + 1
    held = f"informer v1/configmaps in {ns} labels 'app=stuck'"

    # The bound holds the stuck object's informer, not the other one.
    for name in ("free-1", "free-2", "free-3"):
        v1.create_namespaced_config_map(ns, configmap(name, "free"))
    for name in ("free-1", "free-2", "free-3"):
        gate.wait_key(f"{ns}/{name}", "ADDED")
    _, reason = eventually(lambda: (got := probe(controller, "readyz"))[0] == 503 and got,
                           "/readyz 503")
    assert f"{held} held back by the pending bound (per informer)" in reason, reason
    assert "pending.unready_after_sec 1" in reason, reason
    assert f"handler {__name__}.Gate running for" in reason and f"{ns}/stuck" in reason, reason
    samples = scrape(controller)
    assert value(samples, "faro_pending_events") == PER_INFORMER
    assert value(samples, "faro_pending_held_informers") == 1
    assert value(samples, "faro_stuck_handlers") == 1
    assert (value(samples, "faro_pending_oldest_age_seconds") or 0) > 1
    assert (value(samples, "faro_pending_bytes") or 0) > PER_INFORMER * 100
    assert controller.pending_events() == PER_INFORMER
    eventually(lambda: any(f"informer {held[9:]} has waited" in r.getMessage()
                           for r in caplog.records), "the held informer's log line")
    assert any(f"handler {__name__}.Gate has been running for" in r.getMessage()
               and f"{ns}/stuck" in r.getMessage() for r in caplog.records), caplog.text

    # Released, every change arrives in order: nothing accepted was dropped.
    gate.open()
    events = gate.wait_for(lambda got: any(e.key == f"{ns}/stuck"
                                           and e.resource_version == written[-1] for e in got),
                           what="the stuck object's last change")
    seen = [(e.event_type.value, e.object["data"]["v"]) for e in events
            if e.key == f"{ns}/stuck"]
    assert seen == [("ADDED", "0")] + [("UPDATED", str(s)) for s in range(1, UPDATES + 1)]
    eventually(lambda: probe(controller, "readyz")[0] == 200, "/readyz 200 again")
    assert value(scrape(controller), "faro_pending_events") == 0
    assert any(f"handler {__name__}.Gate returned after" in r.getMessage()
               for r in caplog.records), caplog.text


def test_stop_is_not_held_up_by_an_informer_waiting_at_the_bound(
    backend: Backend, v1: client.CoreV1Api, namespaces: Callable[[str], str],
) -> None:
    ns = namespaces("pending-stop")
    gate = Gate(f"{ns}/stuck")
    controller = bounded(backend, ns, gate, max_events_per_informer=2)
    try:
        v1.create_namespaced_config_map(ns, configmap("stuck", "stuck", v="0"))
        assert gate.entered.wait(DEADLINE)
        for step in range(1, 6):
            v1.patch_namespaced_config_map("stuck", ns, {"data": {"v": str(step)}})
        informer = controller.informers()[f"v1/configmaps in {ns} labels 'app=stuck'"]
        eventually(lambda: controller.pending_events() == 2, "the bound reached")
        # The handler is still stuck: the stop cannot finish delivering, but the informer
        # waiting for room ends at once instead of with the stop's timeout.
        assert not controller.stop(timeout=1.0)
        assert not informer.is_running
    finally:
        gate.open()
        controller.stop(DEADLINE)


def test_an_object_larger_than_the_whole_bound_is_delivered(
    backend: Backend, v1: client.CoreV1Api, namespaces: Callable[[str], str],
    controllers: list[Controller],
) -> None:
    ns = namespaces("pending-big")
    gate = Gate("")
    controller = bounded(backend, ns, gate, max_bytes=1024, max_bytes_per_informer=512)
    controllers.append(controller)
    v1.create_namespaced_config_map(ns, configmap("big", "free", blob="x" * 200_000))
    v1.create_namespaced_config_map(ns, configmap("after", "free"))
    gate.wait_key(f"{ns}/after", "ADDED")
    assert [e.object["data"]["blob"] == "x" * 200_000 for e in gate.of(f"{ns}/big")] == [True]
