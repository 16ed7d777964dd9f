"""Prometheus metrics of one controller, in its own registry (two controllers never share one).

Three kinds of series live in a :class:`ControllerMetrics` registry:

* event counters (``faro_events_total`` and friends), incremented only through the
  ``count_*`` methods of :class:`ControllerMetrics`, which the delivery path calls once
  per event and outcome;
* informer series (``faro_informers``, ``faro_informer_health``...), computed when
  scraped from the ``health()`` snapshots of the informers the controller tracks
  (:meth:`ControllerMetrics.track_informer`), so nothing runs between scrapes;
* client-go's work-queue series (``workqueue_*``, label ``name``), kept by
  :class:`PrometheusQueueMetrics` objects (one per queue) and exposed by a
  :class:`WorkQueueCollector`.

Label values are resource names (``v1/pods``), namespaces, event types, failure reasons
and queue names, never object names or UIDs, so the number of series stays bounded.
docs/metrics.md lists every series.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, NamedTuple

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from faro.cache import SharedInformer
from faro.cache.health import InformerHealth
from faro.workqueue.metrics import QueueGauges

__all__ = [
    "INFORMER_SYNC_BUCKETS",
    "WORKQUEUE_BUCKETS",
    "ControllerMetrics",
    "PendingStats",
    "PrometheusQueueMetrics",
    "WorkQueueCollector",
]

WORKQUEUE_BUCKETS: tuple[float, ...] = (1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
"""client-go's work-queue histogram buckets: 10 ns to 10 s, a factor of 10 apart."""

INFORMER_SYNC_BUCKETS: tuple[float, ...] = (
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
"""Buckets of ``faro_informer_sync_duration_seconds`` (a first list of a big cluster
takes minutes)."""


class _Buckets:
    """A histogram as plain numbers: per-bucket counts (the last is +Inf) and the sum.

    Not thread-safe by itself: its owner serialises :meth:`observe` (a queue's lock, or
    a collector's). :meth:`family_samples` reads a copy of the counts, so the count it
    reports is always the +Inf bucket, and buckets never decrease from one to the next.
    """

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def merge_into(self, counts: list[int], total: list[float]) -> None:
        """Add a snapshot of this histogram to ``counts`` (per bucket) and ``total[0]``."""
        snapshot = self.counts.copy()  # one C call: no observe can interleave
        total[0] += self.sum
        for index, count in enumerate(snapshot):
            counts[index] += count

    def cumulative(self, counts: Sequence[int]) -> list[tuple[str, float]]:
        """``counts`` (per bucket) as Prometheus' cumulative ``le`` buckets, +Inf last."""
        buckets: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), counts, strict=True):
            running += count
            buckets.append((_bound_label(bound), float(running)))
        return buckets


def _bound_label(bound: float) -> str:
    if bound == float("inf"):
        return "+Inf"
    return repr(float(bound))


# ---------------------------------------------------------------- work queues


class PrometheusQueueMetrics:
    """A :class:`~faro.workqueue.metrics.QueueMetrics` that keeps client-go's queue series.

    Make one per queue with :meth:`WorkQueueCollector.queue_metrics` (or
    :meth:`ControllerMetrics.queue_metrics`) and pass it as the queue's ``metrics=``;
    the queue's name becomes the ``name`` label. Everything but :meth:`retry` runs under
    the queue's lock, so it updates plain integers and bucket lists (no lock of its own,
    no prometheus-client metric object on the hot path); the collector turns them into
    Prometheus families when scraped.
    """

    __slots__ = ("_gauges", "_retry_lock", "adds", "name", "queue_duration",
                 "retries", "work_duration")

    def __init__(self, buckets: Sequence[float] = WORKQUEUE_BUCKETS) -> None:
        self.name = ""
        self._gauges: QueueGauges | None = None
        self.adds = 0
        self.retries = 0
        self._retry_lock = threading.Lock()
        self.queue_duration = _Buckets(buckets)
        self.work_duration = _Buckets(buckets)

    def __repr__(self) -> str:
        return f"<PrometheusQueueMetrics {self.name!r} adds={self.adds} retries={self.retries}>"

    @property
    def gauges(self) -> QueueGauges | None:
        """The queue this reports for (None until a queue was made with it)."""
        return self._gauges

    def bind(self, name: str, gauges: QueueGauges) -> None:
        """Remember the queue's name (the ``name`` label) and the queue, for the gauges."""
        if self._gauges is not None:
            raise ValueError(f"these queue metrics already report for queue {self.name!r}; "
                             "make one per queue")
        self.name = name
        self._gauges = gauges

    def add(self, item: Hashable) -> None:
        """Count an accepted add (``workqueue_adds_total``)."""
        self.adds += 1

    def get(self, item: Hashable, queued_seconds: float) -> None:
        """Observe how long the item waited (``workqueue_queue_duration_seconds``)."""
        self.queue_duration.observe(queued_seconds)

    def done(self, item: Hashable, processing_seconds: float) -> None:
        """Observe how long processing took (``workqueue_work_duration_seconds``)."""
        self.work_duration.observe(processing_seconds)

    def retry(self) -> None:
        """Count a rate-limited re-add (``workqueue_retries_total``); called without the
        queue's lock, hence a lock of its own (retries are rare)."""
        with self._retry_lock:
            self.retries += 1


class WorkQueueCollector:
    """Exposes client-go's work-queue series for every queue made with its metrics.

    ``collector = WorkQueueCollector(); registry.register(collector)``, then
    ``WorkQueue("jobs", metrics=collector.queue_metrics())``. Series (label ``name``):
    ``workqueue_depth``, ``workqueue_adds_total``, ``workqueue_queue_duration_seconds``,
    ``workqueue_work_duration_seconds``, ``workqueue_unfinished_work_seconds``,
    ``workqueue_longest_running_processor_seconds``, ``workqueue_retries_total``.
    Queues with the same name are summed into one series (a controller made again with
    the same :class:`ControllerMetrics` keeps counting where the old one stopped). The
    collector keeps every queue it made metrics for. Thread-safe.
    """

    def __init__(self, buckets: Sequence[float] = WORKQUEUE_BUCKETS) -> None:
        bounds = tuple(float(b) for b in buckets)
        if not bounds or any(a >= b for a, b in pairwise(bounds)):
            raise ValueError(f"buckets must be increasing and not empty, got {buckets!r}")
        self._buckets = bounds
        self._lock = threading.Lock()
        self._metrics: list[PrometheusQueueMetrics] = []

    def queue_metrics(self) -> PrometheusQueueMetrics:
        """A new :class:`PrometheusQueueMetrics` for one queue, exposed by this collector."""
        metrics = PrometheusQueueMetrics(self._buckets)
        with self._lock:
            self._metrics.append(metrics)
        return metrics

    def describe(self) -> Iterator[Metric]:
        """The families this collector yields (for the registry's clash check)."""
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        """Read every bound queue now: counters, histograms, and gauges from the queues."""
        with self._lock:
            bound = [m for m in self._metrics if m.gauges is not None]
        families = self._families()
        depth, adds, queued, work, unfinished, longest, retries = families
        by_name: dict[str, list[PrometheusQueueMetrics]] = {}
        for metrics in bound:
            by_name.setdefault(metrics.name, []).append(metrics)
        for name, group in sorted(by_name.items()):
            gauges = [m.gauges for m in group if m.gauges is not None]
            depth.add_metric([name], float(sum(len(g) for g in gauges)))
            unfinished.add_metric([name], sum(g.unfinished_work_seconds() for g in gauges))
            longest.add_metric([name], max(g.longest_running_processor_seconds()
                                           for g in gauges))
            adds.add_metric([name], float(sum(m.adds for m in group)))
            retries.add_metric([name], float(sum(m.retries for m in group)))
            for family, attribute in ((queued, "queue_duration"), (work, "work_duration")):
                counts = [0] * (len(self._buckets) + 1)
                total = [0.0]
                for metrics in group:
                    histogram: _Buckets = getattr(metrics, attribute)
                    histogram.merge_into(counts, total)
                family.add_metric([name], group[0].queue_duration.cumulative(counts), total[0])
        return iter(families)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, CounterMetricFamily, HistogramMetricFamily,
                             HistogramMetricFamily, GaugeMetricFamily, GaugeMetricFamily,
                             CounterMetricFamily]:
        labels = ["name"]
        return (
            GaugeMetricFamily("workqueue_depth",
                              "Current depth of the work queue: items waiting to be handed "
                              "to a worker.", labels=labels),
            CounterMetricFamily("workqueue_adds_total",
                                "Items accepted by the work queue (an add of an item already "
                                "waiting is not counted).", labels=labels),
            HistogramMetricFamily("workqueue_queue_duration_seconds",
                                  "How long in seconds an item waits in the work queue before "
                                  "a worker takes it.", labels=labels),
            HistogramMetricFamily("workqueue_work_duration_seconds",
                                  "How long in seconds a worker processes an item taken from "
                                  "the work queue.", labels=labels),
            GaugeMetricFamily("workqueue_unfinished_work_seconds",
                              "Seconds of work in progress that work_duration has not "
                              "observed yet (sum over the items being processed); a large, "
                              "growing value points at stuck workers.", labels=labels),
            GaugeMetricFamily("workqueue_longest_running_processor_seconds",
                              "How long in seconds the longest-running item being processed "
                              "has been processed.", labels=labels),
            CounterMetricFamily("workqueue_retries_total",
                                "Items re-added after a failure (rate-limited retries).",
                                labels=labels),
        )


# ------------------------------------------------------------------ informers


@dataclass(eq=False)
class _Tracked:
    informer: SharedInformer
    gvr: str
    namespace: str
    sync_observed: bool = False


class _InformerCollector:
    """The informer series, read from the tracked informers' ``health()`` when scraped.

    Counters of informers that were retired (stopped) are kept, so a counter never goes
    down when an informer is replaced. ``faro_informer_sync_duration_seconds`` observes
    each informer once: at the first scrape that finds it synced, or when it is retired
    synced and was never scraped so; an informer retired before its first sync is not
    observed.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # scrapes run concurrently; retire runs meanwhile
        self._live: dict[int, _Tracked] = {}
        self._retired_restarts: dict[tuple[str, str], int] = {}
        self._retired_relists: dict[tuple[str, str], int] = {}
        self._retired_last_event: dict[str, float] = {}
        self._retired_decode_errors: dict[str, int] = {}
        self._sync: dict[str, _Buckets] = {}

    def track(self, informer: SharedInformer) -> None:
        with self._lock:
            self._live[id(informer)] = _Tracked(informer, str(informer.resource),
                                                informer.namespace or "")

    def retire(self, informer: SharedInformer) -> None:
        with self._lock:
            tracked = self._live.pop(id(informer), None)
            if tracked is None:
                return
            health = informer.health()
            self._observe_sync(tracked, health)
            gvr = tracked.gvr
            for retired, counts in ((self._retired_restarts, health.watch_restarts),
                                    (self._retired_relists, health.relists)):
                for reason, count in counts.items():
                    retired[(gvr, reason)] = retired.get((gvr, reason), 0) + count
            if health.last_event_time is not None:
                self._retired_last_event[gvr] = max(
                    self._retired_last_event.get(gvr, 0.0), health.last_event_time)
            self._retired_decode_errors[gvr] = \
                self._retired_decode_errors.get(gvr, 0) + health.decode_errors

    def _observe_sync(self, tracked: _Tracked, health: InformerHealth) -> None:
        if tracked.sync_observed or health.synced_at is None or health.started_at is None:
            return
        tracked.sync_observed = True
        histogram = self._sync.get(tracked.gvr)
        if histogram is None:
            histogram = self._sync[tracked.gvr] = _Buckets(INFORMER_SYNC_BUCKETS)
        histogram.observe(max(0.0, health.synced_at - health.started_at))

    def describe(self) -> Iterator[Metric]:
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        families = self._families()
        (informers, health_gauge, sync, last_event, tracked_objects, restarts, relists,
         decode_errors) = families
        statuses = {"active": 0, "syncing": 0, "failed": 0}
        healthy: dict[tuple[str, str], bool] = {}
        last: dict[str, float] = {}
        objects: dict[str, int] = {}
        with self._lock:
            restart_counts = dict(self._retired_restarts)
            relist_counts = dict(self._retired_relists)
            decode_counts = dict(self._retired_decode_errors)
            last.update(self._retired_last_event)
            for tracked in self._live.values():
                health = tracked.informer.health()
                self._observe_sync(tracked, health)
                gvr = tracked.gvr
                if health.running:
                    statuses[_status(health)] += 1
                place = (gvr, tracked.namespace)
                healthy[place] = healthy.get(place, True) and health.healthy
                objects[gvr] = objects.get(gvr, 0) + health.objects
                decode_counts[gvr] = decode_counts.get(gvr, 0) + health.decode_errors
                if health.last_event_time is not None:
                    last[gvr] = max(last.get(gvr, 0.0), health.last_event_time)
                for counted, source in ((restart_counts, health.watch_restarts),
                                        (relist_counts, health.relists)):
                    for reason, count in source.items():
                        counted[(gvr, reason)] = counted.get((gvr, reason), 0) + count
            for gvr, histogram in sorted(self._sync.items()):
                bucket_counts = [0] * len(histogram.counts)
                total = [0.0]
                histogram.merge_into(bucket_counts, total)
                sync.add_metric([gvr], histogram.cumulative(bucket_counts), total[0])
        for status, count in statuses.items():
            informers.add_metric([status], float(count))
        for (gvr, namespace), ok in sorted(healthy.items()):
            health_gauge.add_metric([gvr, namespace], 1.0 if ok else 0.0)
        for gvr, when in sorted(last.items()):
            last_event.add_metric([gvr], when)
        for gvr, count in sorted(objects.items()):
            tracked_objects.add_metric([gvr], float(count))
        for family, counted in ((restarts, restart_counts), (relists, relist_counts)):
            for (gvr, reason), count in sorted(counted.items()):
                family.add_metric([gvr, reason], float(count))
        for gvr, count in sorted(decode_counts.items()):
            decode_errors.add_metric([gvr], float(count))
        return iter(families)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, HistogramMetricFamily,
                             GaugeMetricFamily, GaugeMetricFamily, CounterMetricFamily,
                             CounterMetricFamily, CounterMetricFamily]:
        return (
            GaugeMetricFamily(
                "faro_informers",
                "Running informers by status: active (synced, last list/watch succeeded), "
                "syncing (first list not done yet), failed (the last list or watch attempt "
                "failed; it retries with backoff). Includes the controller's own CRD and "
                "namespace watchers.", labels=["status"]),
            GaugeMetricFamily(
                "faro_informer_health",
                "1 while every informer of the resource in the namespace (\"\": all "
                "namespaces or cluster-scoped) runs, has synced and its last list/watch "
                "succeeded; 0 otherwise. Includes the controller's watchers.",
                labels=["gvr", "namespace"]),
            HistogramMetricFamily(
                "faro_informer_sync_duration_seconds",
                "Seconds from an informer's start to its first complete list (observed once "
                "per informer).", labels=["gvr"]),
            GaugeMetricFamily(
                "faro_informer_last_event_timestamp_seconds",
                "Unix time of the latest watch event applied by an informer of the resource "
                "(absent before the first).", labels=["gvr"]),
            GaugeMetricFamily(
                "faro_tracked_resources",
                "Objects held in the informers' caches, by resource (an object cached by two "
                "informers counts twice).", labels=["gvr"]),
            CounterMetricFamily(
                "faro_watch_restarts_total",
                "Watches that ended and were made again, by resource and reason (closed, "
                "error, expired, too_large_resource_version, malformed, decode_error).",
                labels=["gvr", "reason"]),
            CounterMetricFamily(
                "faro_relists_total",
                "Lists after the first one, by resource and reason (expired, "
                "too_large_resource_version, expired_continue...).", labels=["gvr", "reason"]),
            CounterMetricFamily(
                "faro_watch_decode_errors_total",
                "Watch events and listed objects an informer of the resource skipped because "
                "they could not be decoded (nested too deep, no metadata or name, an unknown "
                "event type); each is logged, and a relist follows a skipped event.",
                labels=["gvr"]),
        )


def _status(health: InformerHealth) -> str:
    if health.consecutive_failures > 0:
        return "failed"
    if not health.synced:
        return "syncing"
    return "active"


# -------------------------------------------------------------------- pending


class PendingStats(NamedTuple):
    """The events a controller received and has not yet delivered, as the metrics show them.

    ``events`` and ``bytes`` (their objects' size as JSON) count against the pending
    bound; ``oldest_age`` is the seconds the oldest of them has waited (0 when none);
    ``held_informers`` how many informers the bound holds back now; ``stuck_handlers``
    how many handler calls have run for ``pending.stuck_handler_sec`` or longer.
    """

    events: int
    bytes: int
    oldest_age: float
    held_informers: int
    stuck_handlers: int


class _PendingCollector:
    """The pending series, read from the controller when scraped."""

    def __init__(self, read: Callable[[], PendingStats]) -> None:
        self._read = read

    def describe(self) -> Iterator[Metric]:
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        families = self._families()
        for family, value in zip(families, self._read(), strict=True):
            family.add_metric([], float(value))
        return iter(families)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily(
                "faro_pending_events",
                "Events received and not yet delivered to every handler (bounded by "
                "pending.max_events)."),
            GaugeMetricFamily(
                "faro_pending_bytes",
                "Size as JSON of the objects of the pending events (bounded by "
                "pending.max_bytes)."),
            GaugeMetricFamily(
                "faro_pending_oldest_age_seconds",
                "Seconds the oldest pending event has waited for its handlers (0 when none)."),
            GaugeMetricFamily(
                "faro_pending_held_informers",
                "Informers the pending bound holds back now: they read no more of their "
                "watch until the handlers catch up."),
            GaugeMetricFamily(
                "faro_stuck_handlers",
                "Handler and middleware calls running for pending.stuck_handler_sec or "
                "longer."),
        )


# ----------------------------------------------------------------- controller


class ControllerMetrics:
    """A controller's metrics, in ``registry`` (a new one unless given); serve ``registry``.

    Besides the counters below it holds the work-queue series of the queues made with
    :meth:`queue_metrics` and the informer series of the informers passed to
    :meth:`track_informer`. Thread-safe.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.events_total = Counter(
            "faro_events_total", "Matched events delivered to handlers, by resource and type.",
            ["gvr", "event_type"], registry=self.registry)
        self.handler_errors_total = Counter(
            "faro_handler_errors_total",
            "Handler and middleware calls that raised (each failed attempt).",
            registry=self.registry)
        self.events_given_up_total = Counter(
            "faro_events_given_up_total",
            "Events a handler (or a middleware, for every handler) never handled: it still "
            "failed after max_retries retries.", registry=self.registry)
        self.events_filtered_total = Counter(
            "faro_events_filtered_total",
            "Events the server sent that no configuration entry matched client-side "
            "(name_selector and namespace patterns), by resource.", ["gvr"],
            registry=self.registry)
        self.events_dropped_total = Counter(
            "faro_events_dropped_total", "Events a JSON middleware dropped (keep=False).",
            registry=self.registry)
        self.export_errors_total = Counter(
            "faro_export_errors_total",
            "Events whose JSON line could not be written to the event file (json_export); "
            "the log names the file and the error.", registry=self.registry)
        self.leader = Gauge(
            "faro_leader", "1 while this process leads (delivers) for the Lease, 0 while it "
            "stands by with warm caches; present only with leader election.", ["lease"],
            registry=self.registry)
        self.shard = Gauge(
            "faro_shard", "1, labelled with the shard this process serves (index from 0, "
            "and the number of shards); present only when sharded.", ["index", "shards"],
            registry=self.registry)
        self.work_queues = WorkQueueCollector()
        self.registry.register(self.work_queues)
        self._informers = _InformerCollector()
        self.registry.register(self._informers)
        # Labelled children by label values: made once, then one dict lookup per event.
        self._delivered: dict[tuple[str, str], Any] = {}
        self._filtered: dict[str, Any] = {}

    # The one place each event is counted: the delivery path calls these, nothing else
    # increments the counters above.

    def count_delivered(self, gvr: str, event_type: str, count: int = 1) -> None:
        """``count`` events reached every handler (``faro_events_total``)."""
        counter = self._delivered.get((gvr, event_type))
        if counter is None:
            counter = self._delivered[(gvr, event_type)] = \
                self.events_total.labels(gvr, event_type)
        counter.inc(count)

    def count_filtered(self, gvr: str) -> None:
        """No entry matched an event client-side (``faro_events_filtered_total``)."""
        counter = self._filtered.get(gvr)
        if counter is None:
            counter = self._filtered[gvr] = self.events_filtered_total.labels(gvr)
        counter.inc()

    def count_dropped(self) -> None:
        """A middleware dropped an event (``faro_events_dropped_total``)."""
        self.events_dropped_total.inc()

    def count_handler_error(self) -> None:
        """A handler or middleware call raised (``faro_handler_errors_total``)."""
        self.handler_errors_total.inc()

    def count_given_up(self) -> None:
        """A handler (or middleware) gave an event up (``faro_events_given_up_total``)."""
        self.events_given_up_total.inc()

    def count_export_error(self) -> None:
        """An event's JSON line could not be written (``faro_export_errors_total``)."""
        self.export_errors_total.inc()

    def set_leader(self, lease: str, leading: bool) -> None:
        """This process now leads (or stands by) for ``lease`` (``faro_leader``)."""
        self.leader.labels(lease).set(1 if leading else 0)

    def set_shard(self, index: int, shards: int) -> None:
        """This process serves shard ``index`` of ``shards`` (``faro_shard``)."""
        self.shard.labels(str(index), str(shards)).set(1)

    def track_pending(self, read: Callable[[], PendingStats]) -> None:
        """Expose the pending series, read with ``read()`` when scraped (once per registry)."""
        self.registry.register(_PendingCollector(read))

    def queue_metrics(self) -> PrometheusQueueMetrics:
        """Metrics for one new work queue (pass as its ``metrics=``), in this registry."""
        return self.work_queues.queue_metrics()

    def track_informer(self, informer: SharedInformer) -> None:
        """Expose ``informer`` in the informer series until :meth:`retire_informer`."""
        self._informers.track(informer)

    def retire_informer(self, informer: SharedInformer) -> None:
        """Stop exposing ``informer`` (call it once the informer stopped), keeping its counts.

        Its watch restarts and relists stay in the counters, its last event time in
        ``faro_informer_last_event_timestamp_seconds``. Unknown informers are ignored.
        """
        self._informers.retire(informer)
