"""Prometheus metrics of one controller, in its own registry (two controllers never share one).

Label values are resource names (``v1/pods``) and event types, never object
names or UIDs, so the number of series stays bounded.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

__all__ = ["ControllerMetrics"]


class ControllerMetrics:
    """The counters a controller keeps; serve ``registry`` to expose them.

    Thread-safe (prometheus-client's metrics are).
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
