"""Work-queue metrics for Prometheus (with a fake clock) and the metrics/probes HTTP server
(real HTTP on 127.0.0.1)."""

from __future__ import annotations

import gzip
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from faro.errors import FaroError
from faro.metrics import (
    WORKQUEUE_BUCKETS,
    ControllerMetrics,
    PrometheusQueueMetrics,
    WorkQueueCollector,
)
from faro.server import MetricsServer, MetricsServerError
from faro.testing import FakeClock
from faro.workqueue import ItemExponentialFailureRateLimiter, RateLimitingQueue, WorkQueue

Samples = dict[str, list[tuple[dict[str, str], float]]]

QUEUE_FAMILIES = {
    "workqueue_depth": "gauge",
    "workqueue_adds": "counter",
    "workqueue_queue_duration_seconds": "histogram",
    "workqueue_work_duration_seconds": "histogram",
    "workqueue_unfinished_work_seconds": "gauge",
    "workqueue_longest_running_processor_seconds": "gauge",
    "workqueue_retries": "counter",
}


def parse(text: str) -> tuple[dict[str, str], Samples]:
    """(family name -> type, sample name -> [(labels, value)]) of an exposition."""
    types: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return types, samples


def scrape_registry(registry: CollectorRegistry) -> tuple[dict[str, str], Samples]:
    return parse(generate_latest(registry).decode())


def value(samples: Samples, metric: str, **labels: str) -> float:
    found = [v for got, v in samples.get(metric, [])
             if all(got.get(k) == want for k, want in labels.items())]
    assert len(found) == 1, (metric, labels, samples.get(metric))
    return found[0]


def buckets(samples: Samples, metric: str, **labels: str) -> list[tuple[float, float]]:
    """(le, cumulative count) of a histogram's series, in order."""
    return [(float(got["le"]), v) for got, v in samples[f"{metric}_bucket"]
            if all(got.get(k) == want for k, want in labels.items())]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(100.0)


@pytest.fixture
def collector() -> WorkQueueCollector:
    return WorkQueueCollector()


@pytest.fixture
def registry(collector: WorkQueueCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(collector)
    return registry


# ------------------------------------------------------------------ work-queue metrics


def test_every_workqueue_family_has_client_go_names_types_and_the_name_label(
        collector: WorkQueueCollector, registry: CollectorRegistry, clock: FakeClock) -> None:
    queue: WorkQueue[str] = WorkQueue("jobs", clock=clock, metrics=collector.queue_metrics())
    queue.add("a")
    types, samples = scrape_registry(registry)
    assert {name: kind for name, kind in types.items() if name.startswith("workqueue")} == \
        QUEUE_FAMILIES
    for name, series in samples.items():
        for labels, _ in series:
            assert labels.get("name") == "jobs", (name, labels)
    assert value(samples, "workqueue_adds_total", name="jobs") == 1
    assert value(samples, "workqueue_depth", name="jobs") == 1
    assert [le for le, _ in buckets(samples, "workqueue_queue_duration_seconds")] == \
        [*WORKQUEUE_BUCKETS, float("inf")]
    assert WORKQUEUE_BUCKETS[0] == pytest.approx(1e-8) and WORKQUEUE_BUCKETS[-1] == 10.0


def test_histograms_are_cumulative_and_count_is_the_inf_bucket(
        collector: WorkQueueCollector, registry: CollectorRegistry, clock: FakeClock) -> None:
    queue: WorkQueue[str] = WorkQueue("jobs", clock=clock, metrics=collector.queue_metrics())
    waits = {"a": 0.0, "b": 1.0, "c": 0.5, "d": 100.0}  # b: exactly on a bound (le)
    for item, wait in waits.items():
        queue.add(item)
        clock.advance(wait)
        assert queue.get() == item
        clock.advance(2.0)  # each takes 2 s to process
        queue.done(item)
    _, samples = scrape_registry(registry)
    queued = dict(buckets(samples, "workqueue_queue_duration_seconds", name="jobs"))
    assert queued[1e-8] == 1 and queued[0.1] == 1   # a: 0 s
    assert queued[1.0] == 3                         # c, and b exactly on the bound
    assert queued[10.0] == 3 and queued[float("inf")] == 4  # d: beyond the last bound
    counts = [count for _, count in buckets(samples, "workqueue_queue_duration_seconds")]
    assert counts == sorted(counts)
    assert value(samples, "workqueue_queue_duration_seconds_count", name="jobs") == 4
    assert value(samples, "workqueue_queue_duration_seconds_sum", name="jobs") == \
        pytest.approx(sum(waits.values()))
    work = dict(buckets(samples, "workqueue_work_duration_seconds", name="jobs"))
    assert work[1.0] == 0 and work[10.0] == 4
    assert value(samples, "workqueue_work_duration_seconds_sum", name="jobs") == \
        pytest.approx(8.0)
    assert value(samples, "workqueue_adds_total", name="jobs") == 4
    assert value(samples, "workqueue_depth", name="jobs") == 0


def test_gauges_are_read_from_the_queue_when_scraped(
        collector: WorkQueueCollector, registry: CollectorRegistry, clock: FakeClock) -> None:
    queue: WorkQueue[str] = WorkQueue("jobs", clock=clock, metrics=collector.queue_metrics())
    for item in "abcd":
        queue.add(item)
    queue.add("a")  # already queued: not an add
    first = queue.get()
    clock.advance(3.0)
    second = queue.get()
    clock.advance(1.0)
    _, samples = scrape_registry(registry)
    assert value(samples, "workqueue_depth", name="jobs") == 2
    assert value(samples, "workqueue_adds_total", name="jobs") == 4
    assert value(samples, "workqueue_unfinished_work_seconds", name="jobs") == 4.0 + 1.0
    assert value(samples, "workqueue_longest_running_processor_seconds", name="jobs") == 4.0
    queue.done(first)
    queue.done(second)
    _, samples = scrape_registry(registry)
    assert value(samples, "workqueue_unfinished_work_seconds", name="jobs") == 0
    assert value(samples, "workqueue_longest_running_processor_seconds", name="jobs") == 0


def test_retries_count_rate_limited_adds(
        collector: WorkQueueCollector, registry: CollectorRegistry, clock: FakeClock) -> None:
    queue: RateLimitingQueue[str] = RateLimitingQueue(
        "retrying", clock=clock, rate_limiter=ItemExponentialFailureRateLimiter(1.0, 10.0),
        metrics=collector.queue_metrics())
    try:
        queue.add("a")
        assert queue.get() == "a"
        assert queue.add_rate_limited("a") == 1.0
        queue.done("a")
        assert clock.wait_for_waiters(1)
        clock.advance(1.0)
        assert queue.get() == "a"  # added by the delay thread once the clock moved
        queue.done("a")
        _, samples = scrape_registry(registry)
        assert value(samples, "workqueue_retries_total", name="retrying") == 1
        assert value(samples, "workqueue_adds_total", name="retrying") == 2
    finally:
        queue.shut_down()


def test_queues_are_separate_series_and_same_names_are_summed(
        collector: WorkQueueCollector, registry: CollectorRegistry, clock: FakeClock) -> None:
    one: WorkQueue[str] = WorkQueue("one", clock=clock, metrics=collector.queue_metrics())
    two: WorkQueue[str] = WorkQueue("two", clock=clock, metrics=collector.queue_metrics())
    again: WorkQueue[str] = WorkQueue("one", clock=clock, metrics=collector.queue_metrics())
    one.add("a")
    two.add("a")
    two.add("b")
    again.add("a")
    _, samples = scrape_registry(registry)
    assert value(samples, "workqueue_adds_total", name="one") == 2
    assert value(samples, "workqueue_adds_total", name="two") == 2
    assert value(samples, "workqueue_depth", name="one") == 2
    assert value(samples, "workqueue_queue_duration_seconds_count", name="one") == 0


def test_queue_metrics_serve_one_queue_and_buckets_must_increase(
        collector: WorkQueueCollector, clock: FakeClock) -> None:
    metrics = collector.queue_metrics()
    WorkQueue("first", clock=clock, metrics=metrics)
    with pytest.raises(ValueError, match="already report for queue 'first'"):
        WorkQueue("second", clock=clock, metrics=metrics)
    with pytest.raises(ValueError, match="increasing"):
        WorkQueueCollector(buckets=(1.0, 1.0))
    with pytest.raises(ValueError, match="increasing"):
        WorkQueueCollector(buckets=())


def test_a_queue_without_a_metrics_object_does_not_appear(
        collector: WorkQueueCollector, registry: CollectorRegistry) -> None:
    collector.queue_metrics()  # never bound to a queue
    _, samples = scrape_registry(registry)
    assert not [s for series in samples.values() for s in series]


def test_scrapes_during_traffic_are_consistent(
        collector: WorkQueueCollector, registry: CollectorRegistry) -> None:
    """Buckets never decrease, count is the +Inf bucket, counts only grow, while workers
    hammer the queue from other threads (real clock)."""
    queue: WorkQueue[int] = WorkQueue("busy", metrics=collector.queue_metrics())
    stop = threading.Event()

    def work(offset: int) -> None:
        i = 0
        while not stop.is_set():
            queue.add(offset + i % 50)
            queue.done(queue.get())
            i += 1

    threads = [threading.Thread(target=work, args=(n * 1000,), daemon=True) for n in range(2)]
    for thread in threads:
        thread.start()
    try:
        previous = 0.0
        scrapes = 0
        while scrapes < 30 or previous < 1000:
            _, samples = scrape_registry(registry)
            scrapes += 1
            for metric in ("workqueue_queue_duration_seconds",
                           "workqueue_work_duration_seconds"):
                counts = [count for _, count in buckets(samples, metric, name="busy")]
                assert counts == sorted(counts), counts
                assert value(samples, f"{metric}_count", name="busy") == counts[-1]
            count = value(samples, "workqueue_work_duration_seconds_count", name="busy")
            assert count >= previous
            previous = count
            assert scrapes < 10_000, "the workers made no progress"
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    assert value(samples, "workqueue_adds_total", name="busy") >= previous


def test_a_queue_metrics_object_is_a_queue_metrics(clock: FakeClock) -> None:
    metrics = PrometheusQueueMetrics()
    WorkQueue("alone", clock=clock, metrics=metrics)
    assert metrics.name == "alone" and metrics.gauges is not None
    assert "alone" in repr(metrics)


def test_controller_metrics_registry_holds_the_workqueue_and_informer_families() -> None:
    metrics = ControllerMetrics()
    WorkQueue("ctl", metrics=metrics.queue_metrics())
    types, samples = scrape_registry(metrics.registry)
    assert set(QUEUE_FAMILIES) <= set(types)
    assert {"faro_informers", "faro_informer_health", "faro_informer_sync_duration_seconds",
            "faro_informer_last_event_timestamp_seconds", "faro_tracked_resources",
            "faro_watch_restarts", "faro_relists", "faro_watch_decode_errors",
            "faro_events"} <= set(types)
    assert {labels["status"]: v for labels, v in samples["faro_informers"]} == \
        {"active": 0, "syncing": 0, "failed": 0}


# ------------------------------------------------------------------ the HTTP server


class Probe:
    """A probe whose answer the test sets."""

    def __init__(self) -> None:
        self.answer: tuple[bool, str] = (True, "ok")
        self.error: Exception | None = None

    def __call__(self) -> tuple[bool, str]:
        if self.error is not None:
            raise self.error
        return self.answer


class Served:
    def __init__(self, server: MetricsServer, healthz: Probe, readyz: Probe,
                 counter: Counter) -> None:
        self.server = server
        self.healthz = healthz
        self.readyz = readyz
        self.counter = counter
        self.base = f"http://127.0.0.1:{server.address[1]}"


def get(url: str, method: str = "GET",
        headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read()


def server_threads(name: str) -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == f"{name}-metrics"]


@pytest.fixture
def served() -> Iterator[Served]:
    registry = CollectorRegistry()
    counter = Counter("unit_things_total", "Things.", ["kind"], registry=registry)
    healthz, readyz = Probe(), Probe()
    server = MetricsServer(registry, host="127.0.0.1", port=0, path="/custom/metrics",
                           healthz=healthz, readyz=readyz, name="unit")
    server.start()
    yield Served(server, healthz, readyz, counter)
    server.stop()
    assert not server_threads("unit")


def test_serves_the_registry_at_its_path(served: Served) -> None:
    served.counter.labels("x").inc(3)
    status, headers, body = get(served.base + "/custom/metrics?ignored=1")
    assert status == 200
    assert headers["Content-Type"] == CONTENT_TYPE_LATEST
    _, samples = parse(body.decode())
    assert value(samples, "unit_things_total", kind="x") == 3
    assert get(served.base + "/metrics")[0] == 404
    assert served.server.url == f"http://127.0.0.1:{served.server.address[1]}/custom/metrics"
    assert served.server.address[1] > 0
    assert server_threads("unit") == ["unit-metrics"]


def test_gzip_when_accepted(served: Served) -> None:
    served.counter.labels("y").inc()
    status, headers, body = get(served.base + "/custom/metrics",
                                headers={"Accept-Encoding": "gzip"})
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    assert b'unit_things_total{kind="y"} 1.0' in gzip.decompress(body)


def test_probes_answer_200_or_503_with_their_text(served: Served) -> None:
    assert get(served.base + "/healthz")[::2] == (200, b"ok\n")
    assert get(served.base + "/readyz")[::2] == (200, b"ok\n")
    served.readyz.answer = (False, "informers not synced yet: v1/pods")
    assert get(served.base + "/readyz")[::2] == (503, b"informers not synced yet: v1/pods\n")
    assert get(served.base + "/healthz")[0] == 200
    served.healthz.error = RuntimeError("boom")
    status, _, body = get(served.base + "/healthz")
    assert status == 503 and b"RuntimeError: boom" in body


def test_unknown_paths_404_and_only_get_and_head(served: Served) -> None:
    assert get(served.base + "/")[0] == 404
    assert get(served.base + "/healthz/x")[0] == 404
    status, headers, body = get(served.base + "/custom/metrics", method="HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 0
    status, headers, _ = get(served.base + "/custom/metrics", method="POST")
    assert status == 405 and headers["Allow"] == "GET, HEAD"


def test_requests_are_not_logged_to_stderr(served: Served,
                                           capfd: pytest.CaptureFixture[str]) -> None:
    get(served.base + "/readyz")
    get(served.base + "/nope")
    assert capfd.readouterr().err == ""


def test_a_port_in_use_fails_start_clearly_with_no_thread_left() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = MetricsServer(CollectorRegistry(), host="127.0.0.1", port=port, name="clash")
        with pytest.raises(MetricsServerError) as raised:
            server.start()
    assert str(raised.value).startswith(f"cannot serve metrics on 127.0.0.1:{port}: ")
    assert "Address already in use" in str(raised.value)
    assert isinstance(raised.value, FaroError)
    assert not server_threads("clash")
    server.stop()  # harmless


def test_stop_closes_the_port_and_is_idempotent() -> None:
    server = MetricsServer(CollectorRegistry(), host="127.0.0.1", port=0, name="closing")
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.address
    server.stop()  # before start: nothing to do
    server.start()
    port = server.address[1]
    assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
    with pytest.raises(RuntimeError, match="already started"):
        server.start()
    server.stop()
    server.stop()
    assert not server_threads("closing")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_a_path_that_is_a_probe_or_not_absolute_is_refused() -> None:
    with pytest.raises(MetricsServerError, match="probe"):
        MetricsServer(CollectorRegistry(), host="127.0.0.1", port=0, path="/healthz")
    with pytest.raises(MetricsServerError, match="start with '/'"):
        MetricsServer(CollectorRegistry(), host="127.0.0.1", port=0, path="metrics")
