"""Leader election on a ``coordination.k8s.io/v1`` Lease, with client-go's semantics.

One :class:`LeaderElector` per replica competes for one Lease; at most one of them
believes it leads at any moment, provided the replicas' clocks run at the same *rate*
(their wall clocks may disagree: see below).

Semantics (client-go ``tools/leaderelection`` with a ``LeaseLock``):

* **Acquire.** Every ``retry_period`` (times a random factor in ``[1, 2.2)``) the elector
  reads the Lease. Absent, it creates it naming itself. Held by another identity, it
  waits until the record has not changed for ``lease_duration`` seconds *as measured on
  the local monotonic clock since the record was last seen changing* (``observedTime``);
  the holder's ``renewTime`` is never compared with the local clock, so clock skew
  between machines does not matter. Empty ``holderIdentity`` (a released Lease) can be
  taken at once. Every write is a ``PUT`` carrying the resourceVersion that was read: a
  409 means another replica won this round.
* **Renew.** The leader rewrites ``renewTime`` every ``retry_period``. If no renewal
  succeeds within ``renew_deadline`` of the last successful one (measured from the moment
  that request was *sent*), or a read shows another holder, it stops leading and calls
  ``on_stopped_leading``; since ``renew_deadline < lease_duration``, that happens before
  any other replica may consider the Lease expired.
* **After losing.** Unlike client-go (whose ``Run`` returns after losing), the elector
  goes back to trying to acquire: a standby or a former leader keeps competing until
  :meth:`LeaderElector.stop`.
* **Release.** :meth:`LeaderElector.stop` of a leader writes the Lease with an empty
  ``holderIdentity`` and ``leaseDurationSeconds: 1`` (client-go's ``ReleaseOnCancel``) so
  a standby takes over within about one retry period, then calls ``on_stopped_leading``.
* ``leaseTransitions`` grows by one whenever the holder changes; ``acquireTime`` and
  ``renewTime`` are RFC 3339 micro times (``2006-01-02T15:04:05.000000Z``);
  ``leaseDurationSeconds`` is ``lease_duration`` rounded up to whole seconds, and standbys
  judge expiry by the record's value (as client-go does).

Threading: callbacks run on the elector's thread (``faro-leader-<name>``), one at a time;
an exception from one is logged and does not end the loop. They must return quickly (hand
work to another thread): no renewal happens while one runs, so a callback that outlasts
``renew_deadline`` costs the leadership. API errors are logged and
retried; no exception escapes the loop.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import random
import socket
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

import orjson
from kubernetes.client import ApiClient

from faro._http import send_json
from faro.clock import Clock, ClockEvent, RealClock

logger = logging.getLogger(__name__)

JITTER_FACTOR = 1.2
"""Acquire attempts wait ``retry_period * (1 + random() * JITTER_FACTOR)`` (client-go's)."""

_SPEC_FIELDS = ("holderIdentity", "leaseDurationSeconds", "acquireTime", "renewTime",
                "leaseTransitions")


def _spec_of(lease: dict[str, Any]) -> dict[str, Any]:
    """The election fields of a Lease's spec (what is compared between reads)."""
    spec = lease.get("spec") or {}
    return {key: value for key, value in spec.items() if key in _SPEC_FIELDS}


def default_identity() -> str:
    """``$POD_NAME`` if set and non-empty, else ``<hostname>_<pid>``."""
    pod = os.environ.get("POD_NAME", "").strip()
    return pod or f"{socket.gethostname()}_{os.getpid()}"


def micro_time(seconds: float) -> str:
    """RFC 3339 with microseconds in UTC (Kubernetes ``MicroTime``) of epoch ``seconds``."""
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclasses.dataclass(frozen=True)
class LeaderElectionConfig:
    """Where the Lease lives, who we are, and the timings (seconds).

    Raises :class:`ValueError` naming the offending field unless ``namespace``, ``name``
    and ``identity`` are non-empty, every duration is > 0, and
    ``lease_duration > renew_deadline > retry_period * 1.2`` (client-go's checks).
    """

    namespace: str
    """The namespace of the Lease."""
    name: str
    """The name of the Lease."""
    identity: str = dataclasses.field(default_factory=default_identity)
    """This replica in the Lease's ``holderIdentity``: ``$POD_NAME``, else ``<hostname>_<pid>``."""
    lease_duration: float = 15.0
    """How long a standby waits after the last renewal it saw before it takes the Lease."""
    renew_deadline: float = 10.0
    """How long a leader keeps trying to renew before it stops leading."""
    retry_period: float = 2.0
    """How often the Lease is tried (renewed or acquired), before jitter."""

    def __post_init__(self) -> None:
        for field in ("namespace", "name", "identity"):
            value = getattr(self, field)
            if not isinstance(value, str) or not value:
                raise ValueError(f"{field} must be a non-empty string, got {value!r}")
        for field in ("lease_duration", "renew_deadline", "retry_period"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{field} must be a positive number of seconds, got {value!r}")
        if self.lease_duration <= self.renew_deadline:
            raise ValueError(f"lease_duration ({self.lease_duration:g}) must be greater than "
                             f"renew_deadline ({self.renew_deadline:g})")
        if self.renew_deadline <= JITTER_FACTOR * self.retry_period:
            raise ValueError(f"renew_deadline ({self.renew_deadline:g}) must be greater than "
                             f"{JITTER_FACTOR:g} * retry_period ({self.retry_period:g})")


Callback = Callable[[], None]


class LeaderElector:
    """Competes for a Lease on its own thread; see the module docstring for semantics.

    ``api_client`` is a ``kubernetes.client.ApiClient`` (shared use is fine: the client is
    thread-safe for requests). ``on_started_leading()`` and ``on_stopped_leading()`` are
    called on the elector's thread each time it gains and loses leadership (the latter
    also after :meth:`stop` while leading); ``on_new_leader(identity)`` whenever the
    observed holder changes (our own identity included). ``refresh_credentials()`` is
    called when the server answers 401 (a rotated token): the next attempt sends the
    credentials it re-read. ``annotations()``, called on the elector's thread before each
    write of the Lease (create, take, renew, release), returns annotations to set on it,
    over those it has (a new holder keeps the old one's until it sets its own);
    ``on_observe(annotations)`` is called on the elector's thread with the Lease's
    annotations after each read of it (every retry period, leading or not).
    ``clock`` (default
    :class:`~faro.clock.RealClock`) measures every duration and wait.

    The constructor does no I/O and raises nothing beyond ``TypeError`` for bad arguments.
    :meth:`start`, :meth:`stop`, :meth:`is_leader` and :attr:`leader` are thread-safe.
    """

    def __init__(self, api_client: ApiClient, config: LeaderElectionConfig, *,
                 on_started_leading: Callback, on_stopped_leading: Callback,
                 on_new_leader: Callable[[str], None] | None = None,
                 refresh_credentials: Callable[[], object] | None = None,
                 annotations: Callable[[], Mapping[str, str]] | None = None,
                 on_observe: Callable[[dict[str, str]], None] | None = None,
                 clock: Clock | None = None) -> None:
        self._api_client = api_client
        self._refresh_credentials = refresh_credentials
        self._annotations = annotations
        self._on_observe = on_observe
        self._observed_annotations: dict[str, str] = {}
        self._collection = (f"/apis/coordination.k8s.io/v1/namespaces/"
                            f"{quote(config.namespace, safe='')}/leases")
        self._path = f"{self._collection}/{quote(config.name, safe='')}"
        self._config = config
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        self._on_new_leader = on_new_leader
        self._clock: Clock = clock if clock is not None else RealClock()
        self._stop = ClockEvent(self._clock)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._leading = False
        self._leader: str | None = None
        # What the loop saw last (its thread only): the Lease's spec and resourceVersion,
        # and the local monotonic time at which that spec was first seen.
        self._observed: dict[str, Any] | None = None
        self._observed_rv: str | None = None
        self._observed_time = 0.0
        self._attempt_sent = 0.0  # clock.now() when the last attempt's first request went

    @property
    def config(self) -> LeaderElectionConfig:
        """The configuration this elector runs with."""
        return self._config

    @property
    def leader(self) -> str | None:
        """The holder identity last observed on the Lease (None before the first read or
        while the Lease is released)."""
        return self._leader

    @property
    def thread(self) -> threading.Thread | None:
        """The elector's thread once :meth:`start` made it (for liveness checks)."""
        return self._thread

    @property
    def annotations(self) -> dict[str, str]:
        """The Lease's annotations as last read or written (a copy; {} before)."""
        return dict(self._observed_annotations)

    def is_leader(self) -> bool:
        """Whether this elector currently leads (False once it stopped leading)."""
        return self._leading

    def start(self) -> None:
        """Start the loop on the daemon thread ``faro-leader-<name>``.

        Raises :class:`RuntimeError` if already started.
        """
        with self._lock:
            if self._thread is not None:
                raise RuntimeError("LeaderElector already started")
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name=f"faro-leader-{self._config.name}")
            self._thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """End the loop (any thread); a leader releases the Lease and calls
        ``on_stopped_leading`` first.

        Waits up to ``timeout`` seconds (None: no limit) for the thread to end, unless
        called from the elector's own thread (a callback), where it only asks. Returns
        whether the thread has ended (True if it was never started). Never raises.
        """
        self._stop.set()
        thread = self._thread
        if thread is None:
            return True
        if thread is threading.current_thread():
            return False
        thread.join(timeout)
        return not thread.is_alive()

    # ------------------------------------------------------------------ loop

    def _run(self) -> None:
        config = self._config
        while not self._stop.is_set():
            try:
                acquired = self._try_acquire_or_renew(config.renew_deadline)
            except Exception:  # defensive: nothing may end the loop
                logger.exception("leader election %s: unexpected error", config.name)
                acquired = False
            if not acquired:
                self._stop.wait(config.retry_period * (1 + random.random() * JITTER_FACTOR))
                continue
            self._lead()

    def _lead(self) -> None:
        """Leading: renew until the deadline passes, another holder shows, or stop()."""
        config = self._config
        last_renew = self._attempt_sent  # conservative: before the acquiring write was sent
        self._leading = True
        logger.info("leader election %s: %s started leading", config.name, config.identity)
        self._call("on_started_leading", self._on_started)
        while not self._stop.wait(config.retry_period):
            sent = self._clock.now()
            remaining = last_renew + config.renew_deadline - sent
            renewed = False
            if remaining > 0:
                try:
                    renewed = self._try_acquire_or_renew(remaining)
                except Exception:
                    logger.exception("leader election %s: unexpected error", config.name)
            if renewed:
                last_renew = sent
                continue
            if self._leader not in (None, config.identity):
                logger.warning("leader election %s: %s lost the lease to %s", config.name,
                               config.identity, self._leader)
                break
            if self._clock.now() - last_renew >= config.renew_deadline:
                logger.warning("leader election %s: %s could not renew within %gs; stopping",
                               config.name, config.identity, config.renew_deadline)
                break
        self._leading = False
        if self._stop.is_set():
            self._release()
        logger.info("leader election %s: %s stopped leading", config.name, config.identity)
        self._call("on_stopped_leading", self._on_stopped)

    def _call(self, what: str, callback: Callable[[], None]) -> None:
        try:
            callback()
        except Exception:
            logger.exception("leader election %s: %s raised", self._config.name, what)

    # -------------------------------------------------------------- one round

    def _try_acquire_or_renew(self, timeout: float) -> bool:
        """One attempt to create, take or renew the Lease; True if we hold it now.

        Logs API and connection errors and returns False; raises nothing from the API.
        """
        config = self._config
        self._attempt_sent = self._clock.now()
        request_timeout = max(0.05, min(timeout, config.renew_deadline))
        now = micro_time(self._clock.time())
        status, lease = self._request("GET", self._path, None, request_timeout)
        if status == 404:
            created = {"holderIdentity": config.identity,
                       "leaseDurationSeconds": max(1, math.ceil(config.lease_duration)),
                       "acquireTime": now, "renewTime": now, "leaseTransitions": 0}
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": config.name, "namespace": config.namespace,
                                 "annotations": self._annotations_to_write({})},
                    "spec": created}
            # 409 here: another replica created it first.
            return self._write("POST", self._collection, body, request_timeout)
        if status != 200 or lease is None:
            return False
        spec = _spec_of(lease)
        rv = (lease.get("metadata") or {}).get("resourceVersion")
        self._observe_annotations(lease)
        if self._on_observe is not None:
            on_observe, annotations = self._on_observe, dict(self._observed_annotations)
            self._call("on_observe", lambda: on_observe(annotations))
        if spec != self._observed:
            self._observed = spec
            self._observed_time = self._clock.now()
        self._observed_rv = rv
        holder = spec.get("holderIdentity") or None
        self._observe_leader(holder)
        if holder is not None and holder != config.identity:
            duration = spec.get("leaseDurationSeconds") or config.lease_duration
            if self._observed_time + float(duration) > self._clock.now():
                return False  # held by another and not expired
        if holder == config.identity:
            acquire_time = spec.get("acquireTime") or now
            transitions = int(spec.get("leaseTransitions") or 0)
        else:
            acquire_time = now
            transitions = int(spec.get("leaseTransitions") or 0) + 1
        new_spec = {"holderIdentity": config.identity,
                    "leaseDurationSeconds": max(1, math.ceil(config.lease_duration)),
                    "acquireTime": acquire_time, "renewTime": now,
                    "leaseTransitions": transitions}
        return self._replace(new_spec, rv, request_timeout)

    def _replace(self, spec: dict[str, Any], rv: str | None, timeout: float) -> bool:
        """PUT the Lease with ``spec``, conditional on ``rv`` (409 if it is stale)."""
        config = self._config
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": config.name, "namespace": config.namespace,
                             "resourceVersion": rv,
                             "annotations": self._annotations_to_write(
                                 self._observed_annotations)},
                "spec": spec}
        return self._write("PUT", self._path, body, timeout)

    def _write(self, method: str, path: str, body: dict[str, Any], timeout: float) -> bool:
        """Send a create or an update; on success record the answer as observed."""
        status, lease = self._request(method, path, body, timeout)
        if status not in (200, 201) or lease is None:
            return False
        self._accept(lease)
        return True

    def _request(self, method: str, path: str, body: dict[str, Any] | None,
                 timeout: float) -> tuple[int, dict[str, Any] | None]:
        """Send one request; returns (status, decoded body if 2xx) or (0, None) when it
        could not be sent or read. Logs every failure but 404 (a missing Lease) and 409
        (another replica won the round).

        Raw through the client's urllib3 pool, not ``CoordinationV1Api``: the generated
        client turns the body into models and back, rewriting micro times (``+00:00``, and
        no fraction at a whole second), and its pool retries would sleep out a
        ``Retry-After`` inside a renewal that has a deadline.
        """
        try:
            status, data = send_json(self._api_client, method, path, body, timeout=timeout)
        except Exception as error:  # connection refused, timeout, bad header...
            logger.warning("leader election %s: %s %s failed: %s", self._config.name, method,
                           path, error if isinstance(error, ValueError)
                           else type(error).__name__)
            return 0, None
        if 200 <= status < 300:
            try:
                decoded = orjson.loads(data)
            except orjson.JSONDecodeError:
                logger.warning("leader election %s: %s %s: the answer is not JSON",
                               self._config.name, method, path)
                return 0, None
            return status, decoded if isinstance(decoded, dict) else None
        if status == 401 and self._refresh_credentials is not None:
            self._refresh_credentials()
        if status not in (404, 409):
            logger.warning("leader election %s: %s %s: HTTP %d %s", self._config.name,
                           method, path, status, data[:300].decode("utf-8", "replace"))
        return status, None

    def _annotations_to_write(self, current: Mapping[str, str]) -> dict[str, str]:
        """``current`` with what ``annotations()`` returns over it."""
        merged = dict(current)
        if self._annotations is not None:
            try:
                merged.update(self._annotations())
            except Exception:
                logger.exception("leader election %s: annotations() raised", self._config.name)
        return merged

    def _observe_annotations(self, lease: dict[str, Any]) -> None:
        annotations = (lease.get("metadata") or {}).get("annotations") or {}
        self._observed_annotations = {key: value for key, value in annotations.items()
                                      if isinstance(key, str) and isinstance(value, str)} \
            if isinstance(annotations, dict) else {}

    def _accept(self, lease: dict[str, Any]) -> None:
        """Record a Lease we just wrote as the observed one."""
        self._observe_annotations(lease)
        spec = _spec_of(lease)
        self._observed = spec
        self._observed_time = self._clock.now()
        self._observed_rv = (lease.get("metadata") or {}).get("resourceVersion")
        self._observe_leader(spec.get("holderIdentity") or None)

    def _observe_leader(self, holder: str | None) -> None:
        if holder == self._leader:
            return
        self._leader = holder
        if holder is not None and self._on_new_leader is not None:
            callback = self._on_new_leader
            self._call("on_new_leader", lambda: callback(holder))

    def _release(self) -> None:
        """Clear the holder (leaseDurationSeconds 1) if we still hold the Lease we saw."""
        config = self._config
        if self._observed is None or self._observed.get("holderIdentity") != config.identity:
            return
        now = micro_time(self._clock.time())
        spec = {"holderIdentity": "", "leaseDurationSeconds": 1, "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": int(self._observed.get("leaseTransitions") or 0)}
        if self._replace(spec, self._observed_rv, config.renew_deadline):
            logger.info("leader election %s: %s released the lease", config.name,
                        config.identity)
