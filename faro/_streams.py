"""The running informers: one per planned stream, started, updated and stopped to match a plan.

Contract: :meth:`Streams.apply` makes the running informers equal to a
:class:`~faro._plan.Plan`: it starts an informer (with its delivery
:class:`~faro._delivery.StreamHandler`) for each new request, hands a running one the
entries it now serves, and stops those no longer planned. A stopped informer whose objects
are gone with its namespace or resource (as ``gone`` says) reports them DELETED with
``final_state_unknown``; one stopped because its entries were removed reports nothing
more. Every informer is tracked in the metrics while it runs.

With ``accept`` (a shard's filter on object keys) the informers keep and report only the
objects it accepts. With ``track_progress`` (a controller with leader election) each stream
handler also tracks how far its informer's events were delivered
(:class:`~faro._delivery.Progress`).

Not thread-safe by itself: the controller calls :meth:`apply` and :meth:`take_all`
under its lock; :meth:`watched`, :meth:`positions` and the counts may be read from any
thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from faro._delivery import Delivery, StreamHandler
from faro._health import Watched
from faro._plan import Plan, PlannedInformer, StreamKey
from faro.cache import SharedInformer
from faro.client import KubernetesClient
from faro.clock import Clock
from faro.config import NormalizedConfig
from faro.metrics import ControllerMetrics

logger = logging.getLogger("faro.controller")

Gone = Callable[[StreamKey, Iterable[NormalizedConfig]], str]
"""Why a stopped informer's objects no longer exist ("" when they may)."""


@dataclass(eq=False)
class _Stream:
    """One running informer, the handler matching its changes, and whether only entries
    added at runtime need it."""

    key: StreamKey
    informer: SharedInformer
    handler: StreamHandler
    dynamic: bool
    started_at: float


class Streams:
    """The informers a controller runs for its plan; see the module docstring.

    Informers list and watch through ``client``, deliver to ``delivery``, are tracked in
    ``metrics`` and run on ``clock``; ``gone`` tells why a stopped one's objects are gone;
    ``name`` (the controller's) is in the log lines.
    """

    def __init__(self, client: KubernetesClient, *, delivery: Delivery,
                 metrics: ControllerMetrics, clock: Clock, gone: Gone, name: str,
                 track_progress: bool = False,
                 accept: Callable[[str], bool] | None = None) -> None:
        self._client = client
        self._track_progress = track_progress
        self._accept = accept
        self._delivery = delivery
        self._metrics = metrics
        self._clock = clock
        self._gone = gone
        self._name = name
        self._streams: dict[StreamKey, _Stream] = {}

    def __len__(self) -> int:
        return len(self._streams)

    def apply(self, plan: Plan, dynamic: Mapping[NormalizedConfig, bool]) -> None:
        """Start, update and stop informers to match ``plan``; ``dynamic[entry]`` is True
        for entries added at runtime."""
        wanted = plan.by_key()
        for key in [k for k in self._streams if k not in wanted]:
            stream = self._streams.pop(key)
            gone = self._gone(key, stream.handler.entries)
            stream.handler.close()  # a push waiting for room must not hold the stop up
            stream.informer.stop()
            self._metrics.retire_informer(stream.informer)
            logger.info("controller %s: stopped the informer for %s%s", self._name, key,
                        f" ({gone})" if gone else "")
            if gone:
                stream.handler.deleted_unseen(stream.informer.store.list())
        for key, planned in wanted.items():
            only_dynamic = all(dynamic[config] for config in planned.configs)
            running = self._streams.get(key)
            if running is not None:
                running.handler.serve(planned.configs)
                running.dynamic = only_dynamic
            else:
                self._start(planned, only_dynamic)

    def _start(self, planned: PlannedInformer, dynamic: bool) -> None:
        key = planned.key
        informer = SharedInformer(
            self._client.api_client, key.gvr, namespace=key.namespace,
            label_selector=key.label_selector, field_selector=key.field_selector,
            refresh_credentials=self._client.refresh_credentials, accept=self._accept,
            clock=self._clock,
            name=f"{key.gvr}@{key.namespace}" if key.namespace else str(key.gvr))
        handler = self._delivery.stream_handler(str(key.gvr), planned.configs,
                                                planned.cluster_scoped, name=str(key),
                                                stored=informer.store.get_encoded,
                                                version=self._version_of(informer))
        informer.add_event_handler(handler)
        self._streams[key] = _Stream(key, informer, handler, dynamic, self._clock.time())
        informer.start()
        self._metrics.track_informer(informer)
        logger.info("controller %s: started an informer for %s", self._name, key)

    def _version_of(self, informer: SharedInformer) -> Callable[[], str | None] | None:
        """What tells the stream handler the informer's resourceVersion (progress tracked)."""
        if not self._track_progress:
            return None
        return lambda: informer.last_sync_resource_version

    def positions(self) -> list[tuple[str, SharedInformer, StreamHandler]]:
        """Each running informer's description, itself and its handler (any thread)."""
        return [(str(s.key), s.informer, s.handler) for s in list(self._streams.values())]

    def take_all(self) -> list[SharedInformer]:
        """Forget every informer and return them, for the caller to stop."""
        streams = list(self._streams.values())
        self._streams.clear()
        return [stream.informer for stream in streams]

    def informers(self) -> dict[str, SharedInformer]:
        """The running informers by description (``v1/pods in default ...``)."""
        return {str(key): stream.informer for key, stream in list(self._streams.items())}

    def counts(self) -> tuple[int, int]:
        """How many informers run for the configuration, and for runtime entries only."""
        streams = list(self._streams.values())
        dynamic = sum(1 for s in streams if s.dynamic)
        return len(streams) - dynamic, dynamic

    def watched(self) -> list[Watched]:
        """The running informers as the health probes see them.

        Read without the controller's lock (which reconcile holds while it talks to the
        API server): copying a dict is atomic under the GIL.
        """
        return [Watched(str(s.key), s.informer, s.started_at)
                for s in list(self._streams.values())]
