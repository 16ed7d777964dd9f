"""A controller's Prometheus metrics and probes, scraped over real HTTP on 127.0.0.1 while it
watches the simulator: every series, the values a user checks, bounded labels, /healthz and
/readyz through sync and failures, and the server's lifecycle."""

from __future__ import annotations

import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from faro import Controller, MatchedEvent
from faro.server import MetricsServerError
from faro.testing import SimulatedCluster
from tests.integration.controller_helpers import Controllers, Events, controllers, faro_threads
from tests.integration.helpers import DEADLINE, configmap, eventually

__all__ = ["controllers"]

Samples = dict[str, list[tuple[dict[str, str], float]]]

METRICS = {"enabled": True, "port": 0, "bind_addr": "127.0.0.1"}

# Every family a controller exposes, with its label names (histograms: their series').
FAMILIES: dict[str, set[str]] = {
    "faro_events_total": {"gvr", "event_type"},
    "faro_handler_errors_total": set(),
    "faro_events_given_up_total": set(),
    "faro_events_filtered_total": {"gvr"},
    "faro_events_dropped_total": set(),
    "faro_export_errors_total": set(),
    "faro_informers": {"status"},
    "faro_informer_health": {"gvr", "namespace"},
    "faro_informer_sync_duration_seconds_bucket": {"gvr", "le"},
    "faro_informer_sync_duration_seconds_count": {"gvr"},
    "faro_informer_sync_duration_seconds_sum": {"gvr"},
    "faro_informer_last_event_timestamp_seconds": {"gvr"},
    "faro_tracked_resources": {"gvr"},
    "faro_watch_restarts_total": {"gvr", "reason"},
    "faro_relists_total": {"gvr", "reason"},
    "faro_watch_decode_errors_total": {"gvr"},
    "workqueue_depth": {"name"},
    "workqueue_adds_total": {"name"},
    "workqueue_queue_duration_seconds_bucket": {"name", "le"},
    "workqueue_queue_duration_seconds_count": {"name"},
    "workqueue_queue_duration_seconds_sum": {"name"},
    "workqueue_work_duration_seconds_bucket": {"name", "le"},
    "workqueue_work_duration_seconds_count": {"name"},
    "workqueue_work_duration_seconds_sum": {"name"},
    "workqueue_unfinished_work_seconds": {"name"},
    "workqueue_longest_running_processor_seconds": {"name"},
    "workqueue_retries_total": {"name"},
}


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def secret(name: str, ns: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": ns}}


def base_url(controller: Controller) -> str:
    address = controller.metrics_address
    assert address is not None
    return f"http://127.0.0.1:{address[1]}"


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=DEADLINE) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode()


def scrape(controller: Controller, path: str = "/metrics") -> Samples:
    status, text = http_get(base_url(controller) + path)
    assert status == 200, text
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.name.endswith("_created"):
                samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(samples: Samples, metric: str, **labels: str) -> float | None:
    """The one sample of ``metric`` with these labels (None when there is none)."""
    found = [v for got, v in samples.get(metric, [])
             if all(got.get(k) == want for k, want in labels.items())]
    assert len(found) <= 1, (metric, labels, found)
    return found[0] if found else None


def by_labels(samples: Samples, metric: str, *names: str) -> dict[tuple[str, ...], float]:
    return {tuple(got[n] for n in names): v for got, v in samples.get(metric, [])}


def probe(controller: Controller, name: str) -> tuple[int, str]:
    return http_get(f"{base_url(controller)}/{name}")


def drop_watches_until(cluster: SimulatedCluster, predicate: Callable[[], object]) -> None:
    """End every open watch, and again every 0.3 s, until ``predicate()`` holds.

    An informer between its list and its watch has no watch open to end yet: a later
    round ends it.
    """
    deadline = time.monotonic() + DEADLINE
    while True:
        cluster.drop_watches()
        try:
            eventually(predicate, timeout=0.3)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise


def fail_once(key: str) -> Any:
    failed: set[str] = set()

    def predicate(event: MatchedEvent) -> bool:
        if event.key != key or event.key in failed:
            return False
        failed.add(event.key)
        return True
    return predicate


# ------------------------------------------------------------------ the series


def test_every_series_of_a_running_controller_with_values_and_bounded_labels(
        cluster: SimulatedCluster, controllers: Controllers,
        caplog: pytest.LogCaptureFixture) -> None:
    # Secrets may not be listed cluster-wide (as with namespaced Roles only): the pattern is
    # served one informer per namespace, with the namespace watcher, whose series are here too.
    cluster.fail_next(10**9, 403, path=r"^/api/v1/secrets(\?|$)")
    cluster.create(namespace("team-a"))
    cluster.create(configmap("cm-0"))
    cluster.create(configmap("cm-1"))
    cluster.create(configmap("other"))  # name pattern: filtered
    events = Events()
    before_start = time.time()
    with caplog.at_level(logging.INFO, logger="faro.metrics"):
        controller = controllers.make({
            "metrics": METRICS,
            "namespaces": [{"name_selector": "team-.*", "resources": {"v1/secrets": {}}}],
            "resources": [{"gvr": "v1/configmaps", "namespace_names": ["default"],
                           "name_selector": "cm-.*"}],
        }, events)
    host, port = controller.metrics_address or ("", 0)
    assert (host, port != 0) == ("127.0.0.1", True)
    assert f"serving metrics on http://127.0.0.1:{port}/metrics" in caplog.messages
    assert sorted(controller.informers()) == ["v1/configmaps in default", "v1/secrets in team-a"]

    cluster.create(configmap("cm-2"))
    updated = cluster.get("v1", "ConfigMap", "cm-0", "default")
    updated["data"] = {"changed": "yes"}
    cluster.update(updated)
    cluster.delete("v1", "ConfigMap", "cm-1", namespace="default")
    cluster.create(secret("s-1", "team-a"))
    events.wait_key("default/cm-1", "ADDED", "DELETED")
    events.wait_key("default/cm-0", "ADDED", "UPDATED")
    events.wait_key("default/cm-2", "ADDED")
    events.wait_key("team-a/s-1", "ADDED")
    # A watch that ends, then a history that expired: restarts and a relist for each informer.
    cluster.compact()

    def restarted_and_relisted() -> bool:
        samples = scrape(controller)
        return bool(value(samples, "faro_relists_total", gvr="v1/configmaps", reason="expired")
                    and all(value(samples, "faro_watch_restarts_total", gvr=gvr, reason="closed")
                            for gvr in ("v1/configmaps", "v1/secrets", "v1/namespaces")))

    drop_watches_until(cluster, restarted_and_relisted)
    eventually(lambda: controller.pending_events() == 0 and value(
        scrape(controller), "workqueue_depth", name="test") == 0)
    # A watch ended less than a second after it began, without an event, is a failure
    # (the informer backs off): wait until every informer watches again for long enough.
    eventually(lambda: value(scrape(controller), "faro_informers", status="active") == 3)

    samples = scrape(controller)
    for name, labels in FAMILIES.items():
        assert samples.get(name), f"{name} has no series"
        for got, _ in samples[name]:
            assert set(got) == labels, (name, got)

    assert by_labels(samples, "faro_events_total", "gvr", "event_type") == {
        ("v1/configmaps", "ADDED"): 3, ("v1/configmaps", "UPDATED"): 1,
        ("v1/configmaps", "DELETED"): 1, ("v1/secrets", "ADDED"): 1}
    assert value(samples, "faro_events_filtered_total", gvr="v1/configmaps") == 1
    assert value(samples, "faro_handler_errors_total") == 0

    # The informers, the namespace watcher included.
    assert by_labels(samples, "faro_informers", "status") == \
        {("active",): 3, ("syncing",): 0, ("failed",): 0}
    assert by_labels(samples, "faro_informer_health", "gvr", "namespace") == {
        ("v1/configmaps", "default"): 1, ("v1/secrets", "team-a"): 1, ("v1/namespaces", ""): 1}
    in_cluster = len(cluster.list_objects("v1", "ConfigMap", "default"))
    assert value(samples, "faro_tracked_resources", gvr="v1/configmaps") == in_cluster == \
        len(controller.informers()["v1/configmaps in default"].store)
    assert value(samples, "faro_tracked_resources", gvr="v1/secrets") == 1
    assert value(samples, "faro_tracked_resources", gvr="v1/namespaces") == \
        len(cluster.list_objects("v1", "Namespace"))
    for gvr in ("v1/configmaps", "v1/secrets", "v1/namespaces"):
        assert value(samples, "faro_informer_sync_duration_seconds_count", gvr=gvr) == 1
        assert value(samples, "faro_watch_restarts_total", gvr=gvr, reason="closed")
    last_event = value(samples, "faro_informer_last_event_timestamp_seconds", gvr="v1/configmaps")
    assert last_event is not None and before_start <= last_event <= time.time()

    # The delivery queue (named as the controller) and the controller's own queue.
    adds = value(samples, "workqueue_adds_total", name="test")
    assert adds is not None and adds >= 3  # cm-0's add and update may be one add
    assert value(samples, "workqueue_work_duration_seconds_count", name="test") == adds
    assert value(samples, "workqueue_retries_total", name="test") == 0
    assert value(samples, "workqueue_depth", name="test-changes") == 0

    # Object names and UIDs never label a series.
    objects = cluster.list_objects("v1", "ConfigMap", "default") + \
        cluster.list_objects("v1", "Secret", "team-a")
    forbidden = {"cm-0", "cm-1", "cm-2", "other", "s-1"} | \
        {obj["metadata"]["uid"] for obj in objects} | {e.uid for e in events.events}
    used = {v for series in samples.values() for got, _ in series for v in got.values()}
    assert not used & forbidden

    assert probe(controller, "healthz") == (200, "ok\n")
    assert probe(controller, "readyz") == (200, "ok\n")


def test_a_handler_failing_once_shows_as_a_retry(
        cluster: SimulatedCluster, controllers: Controllers) -> None:
    events = Events(fail=fail_once("default/flaky"))
    controller = controllers.make({"metrics": METRICS, "resources": [
        {"gvr": "v1/configmaps", "namespace_names": ["default"]}]}, events)
    eventually(lambda: controller.pending_events() == 0)
    before = scrape(controller)
    cluster.create(configmap("flaky"))
    events.wait_key("default/flaky", "ADDED")
    eventually(lambda: value(scrape(controller), "workqueue_work_duration_seconds_count",
                             name="test") == (value(before, "workqueue_work_duration_seconds_count",
                                                    name="test") or 0) + 2)
    after = scrape(controller)

    def grew(metric: str, **labels: str) -> float:
        return (value(after, metric, **labels) or 0) - (value(before, metric, **labels) or 0)

    assert grew("workqueue_adds_total", name="test") == 2  # the event, then its retry
    assert grew("workqueue_retries_total", name="test") == 1
    assert value(after, "workqueue_depth", name="test") == 0
    assert grew("faro_handler_errors_total") == 1
    assert grew("faro_events_total", gvr="v1/configmaps", event_type="ADDED") == 1
    assert value(after, "faro_events_given_up_total") == 0


def test_counters_never_go_down_when_informers_are_replaced_or_retired(
        cluster: SimulatedCluster, controllers: Controllers) -> None:
    # Secrets may not be listed cluster-wide: one informer per matching namespace, which
    # is retired with its namespace below.
    cluster.fail_next(10**9, 403, path=r"^/api/v1/secrets(\?|$)")
    cluster.create(namespace("team-a"))
    controller = controllers.make({"metrics": METRICS, "resources": [
        {"gvr": "v1/configmaps"},
        {"gvr": "v1/secrets", "namespace_names": ["team-.*"]}]})
    assert sorted(controller.informers()) == ["v1/configmaps", "v1/secrets in team-a"]

    def restarts(gvr: str) -> float:
        return value(scrape(controller), "faro_watch_restarts_total", gvr=gvr,
                     reason="closed") or 0

    drop_watches_until(cluster, lambda: restarts("v1/configmaps") >= 1 and
                       restarts("v1/secrets") >= 1)
    configmaps, secrets = restarts("v1/configmaps"), restarts("v1/secrets")

    # Removed: its informer stops, its counts stay.
    controller.remove_resources([{"gvr": "v1/configmaps"}])
    assert "v1/configmaps" not in controller.informers()
    samples = scrape(controller)
    assert value(samples, "faro_watch_restarts_total", gvr="v1/configmaps",
                 reason="closed") == configmaps
    assert value(samples, "faro_tracked_resources", gvr="v1/configmaps") is None
    assert value(samples, "faro_informer_sync_duration_seconds_count", gvr="v1/configmaps") == 1

    # Added again: a new informer, whose restarts add to the old ones.
    controller.add_resources([{"gvr": "v1/configmaps"}])
    controller.start_informers()
    replacement = controller.informers()["v1/configmaps"]
    assert replacement.wait_for_sync(DEADLINE)
    assert restarts("v1/configmaps") == configmaps
    drop_watches_until(cluster, lambda: restarts("v1/configmaps") >= configmaps + 1)
    eventually(lambda: value(scrape(controller), "faro_informer_sync_duration_seconds_count",
                             gvr="v1/configmaps") == 2)

    # A namespace matching a pattern goes away: its informer is retired, counts stay.
    secrets = restarts("v1/secrets")
    cluster.delete("v1", "Namespace", "team-a")
    eventually(lambda: "v1/secrets in team-a" not in controller.informers())
    samples = scrape(controller)
    assert (value(samples, "faro_watch_restarts_total", gvr="v1/secrets", reason="closed")
            or 0) >= secrets
    assert value(samples, "faro_informer_health", gvr="v1/secrets", namespace="team-a") is None


# ------------------------------------------------------------------ probes


def test_readyz_is_503_until_the_informers_sync_while_healthz_is_200(
        cluster: SimulatedCluster, controllers: Controllers) -> None:
    cluster.fail_next(10_000, 500, path="configmaps")
    controller = controllers.make({"metrics": METRICS, "resources": [
        {"gvr": "v1/configmaps", "namespace_names": ["default"]}]}, start=False)
    controller.start()
    informer = controller.informers()["v1/configmaps in default"]
    eventually(lambda: informer.health().consecutive_failures >= 1)

    status, text = probe(controller, "readyz")
    assert status == 503 and "not synced yet: v1/configmaps in default" in text
    assert probe(controller, "healthz") == (200, "ok\n")
    samples = scrape(controller)
    assert by_labels(samples, "faro_informers", "status") == \
        {("active",): 0, ("syncing",): 0, ("failed",): 1}
    assert value(samples, "faro_informer_health", gvr="v1/configmaps", namespace="default") == 0
    assert value(samples, "faro_informer_sync_duration_seconds_count",
                 gvr="v1/configmaps") is None

    cluster.clear_faults()
    eventually(lambda: probe(controller, "readyz") == (200, "ok\n"), timeout=2 * DEADLINE)
    samples = scrape(controller)
    assert value(samples, "faro_informers", status="active") == 1
    assert value(samples, "faro_informer_health", gvr="v1/configmaps", namespace="default") == 1
    assert value(samples, "faro_informer_sync_duration_seconds_count", gvr="v1/configmaps") == 1


def test_readyz_is_503_while_an_informer_fails_longer_than_unhealthy_after_sec(
        cluster: SimulatedCluster, controllers: Controllers) -> None:
    controller = controllers.make({"metrics": METRICS, "unhealthy_after_sec": 0.2, "resources": [
        {"gvr": "v1/configmaps", "namespace_names": ["default"]}]})
    assert probe(controller, "readyz") == (200, "ok\n")
    # Ready means listed: its watch may not be open yet, and one that fails to open is no
    # watch restart (it waits for the backoff).
    eventually(lambda: cluster.watch_count == 1, what="the informer's watch is open")
    cluster.fail_next(10_000, 500, path="configmaps")
    cluster.drop_watches(abrupt=True)

    eventually(lambda: probe(controller, "readyz")[0] == 503)
    _, text = probe(controller, "readyz")
    assert "informer v1/configmaps in default failing for" in text, text
    assert "(unhealthy_after_sec 0.2): " in text, text  # then the last error
    assert not controller.is_ready()
    assert probe(controller, "healthz") == (200, "ok\n")  # failing is not dead
    samples = scrape(controller)
    assert value(samples, "faro_informers", status="failed") == 1
    assert value(samples, "faro_informer_health", gvr="v1/configmaps", namespace="default") == 0
    assert value(samples, "faro_watch_restarts_total", gvr="v1/configmaps", reason="error")

    cluster.clear_faults()
    eventually(lambda: probe(controller, "readyz") == (200, "ok\n"), timeout=2 * DEADLINE)
    assert value(scrape(controller), "faro_informers", status="active") == 1


def test_readyz_is_503_when_every_watch_ends_at_once_however_often_it_reconnects(
        cluster: SimulatedCluster, controllers: Controllers) -> None:
    """Each watch gets its 200 and ends at once: every reconnection "succeeds" and fails
    again. The informer's failing-since time is not reset by them, so readiness turns red
    after unhealthy_after_sec (it stayed green before)."""
    controller = controllers.make({"metrics": METRICS, "unhealthy_after_sec": 0.2, "resources": [
        {"gvr": "v1/configmaps", "namespace_names": ["default"]}]})
    with cluster.close_watches(path=r"configmaps\?.*watch=true"):
        cluster.drop_watches()
        eventually(lambda: probe(controller, "readyz")[0] == 503)
        _, text = probe(controller, "readyz")
        assert "informer v1/configmaps in default failing for" in text, text
        assert "very short watch" in text, text
        assert value(scrape(controller), "faro_informers", status="failed") == 1
    eventually(lambda: probe(controller, "readyz") == (200, "ok\n"), timeout=6 * DEADLINE)


def test_poison_events_are_counted_by_resource(cluster: SimulatedCluster,
                                               controllers: Controllers) -> None:
    events = Events()
    controller = controllers.make({"metrics": METRICS, "resources": [
        {"gvr": "v1/configmaps", "namespace_names": ["default"]}]}, events)
    assert value(scrape(controller), "faro_watch_decode_errors_total", gvr="v1/configmaps") == 0
    cluster.corrupt_watch_events(
        "poison", lambda line: b'{"type":"MODIFIED","object":{"kind":"ConfigMap"}}')
    cluster.create(configmap("poison"))
    events.wait_key("default/poison", "ADDED")  # from the relist that followed the poison
    samples = scrape(controller)
    assert value(samples, "faro_watch_decode_errors_total", gvr="v1/configmaps") == 1
    assert value(samples, "faro_relists_total", gvr="v1/configmaps", reason="decode_error") == 1
    assert value(samples, "faro_watch_restarts_total", gvr="v1/configmaps",
                 reason="decode_error") == 1
    # Counts stay when the informer is retired.
    controller.remove_resources([{"gvr": "v1/configmaps", "namespace_names": ["default"]}])
    assert value(scrape(controller), "faro_watch_decode_errors_total", gvr="v1/configmaps") == 1


def test_healthz_names_an_informer_thread_that_died(
        cluster: SimulatedCluster, controllers: Controllers) -> None:
    controller = controllers.make({"metrics": METRICS, "resources": [
        {"gvr": "v1/configmaps", "namespace_names": ["default"]}]})
    assert probe(controller, "healthz") == (200, "ok\n")
    # Stopped behind the controller's back: its thread ends while the controller owns it.
    assert controller.informers()["v1/configmaps in default"].stop(DEADLINE)
    status, text = probe(controller, "healthz")
    assert status == 503 and "the informer thread of v1/configmaps in default" in text
    assert value(scrape(controller), "faro_informers", status="active") == 0


def test_custom_path_and_404_elsewhere(cluster: SimulatedCluster,
                                       controllers: Controllers) -> None:
    controller = controllers.make({"metrics": {**METRICS, "path": "/custom/prom"},
                                   "resources": [{"gvr": "v1/configmaps"}]})
    assert value(scrape(controller, "/custom/prom"), "faro_informers", status="active") == 1
    base = base_url(controller)
    assert http_get(base + "/metrics")[0] == 404
    assert http_get(base + "/")[0] == 404
    assert http_get(base + "/healthz")[0] == 200


# ------------------------------------------------------------------ server lifecycle


def test_a_port_in_use_fails_start_at_once_and_leaves_nothing_running(
        cluster: SimulatedCluster, controllers: Controllers) -> None:
    threads_before = set(faro_threads())
    watches_before = cluster.watch_count
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        controller = controllers.make({"metrics": {**METRICS, "port": port},
                                       "resources": [{"gvr": "v1/configmaps"}]}, start=False)
        with pytest.raises(MetricsServerError) as raised:
            controller.start()
    assert str(raised.value).startswith(f"cannot serve metrics on 127.0.0.1:{port}: ")
    assert "Address already in use" in str(raised.value)
    assert set(faro_threads()) == threads_before
    assert not [t.name for t in threading.enumerate() if t.name == "test-metrics"]
    assert controller.informers() == {} and controller.metrics_address is None
    assert cluster.watch_count == watches_before  # no informer ever started


def test_two_controllers_serve_separate_series_on_separate_ports(
        cluster: SimulatedCluster, controllers: Controllers) -> None:
    one = controllers.make({"metrics": METRICS, "resources": [{"gvr": "v1/configmaps"}]},
                           Events(), name="one")
    two = controllers.make({"metrics": METRICS, "resources": [{"gvr": "v1/secrets"}]},
                           Events(), name="two")
    assert one.metrics_address != two.metrics_address
    cluster.create(configmap("c"))
    cluster.create(secret("s", "default"))
    eventually(lambda: value(scrape(one), "faro_events_total", gvr="v1/configmaps",
                             event_type="ADDED") == 1)
    eventually(lambda: value(scrape(two), "faro_events_total", gvr="v1/secrets",
                             event_type="ADDED") == 1)
    for controller, mine, theirs in ((one, "v1/configmaps", "v1/secrets"),
                                     (two, "v1/secrets", "v1/configmaps")):
        samples = scrape(controller)
        gvrs = {got["gvr"] for series in samples.values() for got, _ in series if "gvr" in got}
        names = {got["name"] for series in samples.values() for got, _ in series
                 if "name" in got}
        assert mine in gvrs and theirs not in gvrs
        assert names == {controller.name, f"{controller.name}-changes"}
        assert value(samples, "faro_informers", status="active") == 1


def test_stop_closes_the_port_and_metrics_can_be_disabled(
        cluster: SimulatedCluster, controllers: Controllers) -> None:
    controller = controllers.make({"metrics": METRICS, "resources": [{"gvr": "v1/configmaps"}]})
    address = controller.metrics_address
    assert address is not None
    assert controller.stop(DEADLINE)
    assert controller.metrics_address is None
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", address[1]), timeout=DEADLINE).close()
    assert not [t.name for t in threading.enumerate() if t.name == "test-metrics"]

    quiet = controllers.make({"resources": [{"gvr": "v1/configmaps"}]}, name="quiet")
    assert quiet.metrics_address is None
    assert not [t.name for t in threading.enumerate() if t.name == "quiet-metrics"]
    assert quiet.metrics.registry is not controller.metrics.registry
