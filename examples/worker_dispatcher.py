"""Dispatch matched events by resource to workers that act on them.

One faro handler, the ``Dispatcher``, routes each event by its resource (``event.gvr``)
to a resource-specific worker:

- ``ConfigMapWorker`` stamps every ConfigMap with an annotation holding a digest of its
  data (``faro.example/data-sha256``), through the Kubernetes API, and posts a JSON
  notification when it did, or when a ConfigMap was deleted. The annotation it writes
  is itself a change, so faro reports an UPDATED event for it: the worker sees that the
  digest already matches and leaves it alone (printing ``SKIP``), so it never loops. Its
  patch carries the resourceVersion it read, so a ConfigMap that changed meanwhile gives
  409 Conflict and is left to the newer event (``STALE``).
- ``NamespaceWorker`` posts a notification for every new namespace.

No queue or thread of our own is needed: faro already calls handlers on its worker
threads, one object at a time and in order, and calls a handler that raises (say, the
notification endpoint is down) again after a backoff, up to ``max_retries`` times.

Notifications are POSTed as JSON to ``--notify-url``, any endpoint that accepts a JSON
POST (a webhook receiver, a chat service's incoming webhook); an answer other than 2xx
is an error, retried by faro. Without ``--notify-url`` they are only printed.

Try it against faro's simulated API server. In one terminal::

    faro sim --kubeconfig-out sim.kubeconfig

(HTTPS: the kubeconfig carries the CA, which the Python client and kubectl both use;
``faro sim --http`` works for this example too, not for kubectl.) In a second one::

    python examples/worker_dispatcher.py --kubeconfig sim.kubeconfig

and in a third::

    kubectl --kubeconfig sim.kubeconfig create configmap web --from-literal=color=blue
    kubectl --kubeconfig sim.kubeconfig get configmap web -o yaml   # see the annotation
    kubectl --kubeconfig sim.kubeconfig create namespace team-a

It watches ConfigMaps in ``--namespace`` (default ``default``) and namespaces whose
name matches ``--namespace-pattern`` (default ``team-.*``). It stops on Ctrl-C, after
``--run-for`` seconds, or after ``--exit-after-events`` events were handled.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import signal
import sys
import threading
import urllib.request
from collections.abc import Mapping
from datetime import datetime, timezone
from types import FrameType
from typing import Any, Protocol

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from faro import (
    ClientConfigError,
    Config,
    ConfigError,
    Controller,
    FaroError,
    KubernetesClient,
    MatchedEvent,
)

ANNOTATION = "faro.example/data-sha256"


_print_lock = threading.RLock()


def say(line: str) -> None:
    """Print one line; handlers run on several threads, and print() is not atomic."""
    with _print_lock:
        print(line, flush=True)


class Notifier:
    """Posts JSON notifications to a URL (or only prints them without one)."""

    def __init__(self, url: str | None, timeout: float = 5.0) -> None:
        self.url = url
        self.timeout = timeout

    def notify(self, action: str, event: MatchedEvent, **details: Any) -> None:
        body = {"action": action, "resource": event.gvr, "key": event.key, "uid": event.uid,
                "event_type": event.event_type.value,
                "sent_at": datetime.now(timezone.utc).isoformat(), **details}
        if self.url is None:
            say(f"NOTIFY   {json.dumps(body)}")
            return
        request = urllib.request.Request(
            self.url, data=json.dumps(body).encode(), method="POST",
            headers={"Content-Type": "application/json"})
        # An error raises: faro calls this handler again after a backoff.
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            say(f"NOTIFIED {action} {event.key} -> HTTP {response.status}")


class Worker(Protocol):
    """A resource-specific worker."""

    name: str

    def handle(self, event: MatchedEvent) -> None: ...


def data_digest(configmap: Mapping[str, Any]) -> str:
    data = {"data": configmap.get("data") or {}, "binaryData": configmap.get("binaryData") or {}}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


class ConfigMapWorker:
    """Keeps a digest of each ConfigMap's data in an annotation; notifies on changes."""

    name = "configmap-worker"

    def __init__(self, api: k8s.CoreV1Api, notifier: Notifier) -> None:
        self.api = api
        self.notifier = notifier

    def handle(self, event: MatchedEvent) -> None:
        if event.event_type == "DELETED":
            say(f"DELETED  {event.key}")
            self.notifier.notify("configmap-deleted", event)
            return
        digest = data_digest(event.object)
        if event.annotations.get(ANNOTATION) == digest:
            # Our own annotation came back as an UPDATED event (or nothing to do): no loop.
            say(f"SKIP     {event.key}: already annotated ({event.event_type.value})")
            return
        patch = {"metadata": {"annotations": {ANNOTATION: digest},
                              # a precondition: 409 if the ConfigMap changed since this event
                              "resourceVersion": event.resource_version}}
        try:
            self.api.patch_namespaced_config_map(event.name, event.namespace, patch)
        except ApiException as error:
            if error.status == 409:  # a newer event is on its way: that one is handled
                say(f"STALE    {event.key}: changed since resourceVersion "
                    f"{event.resource_version}, the newer event will be handled")
                return
            if error.status == 404:  # deleted meanwhile: the DELETED event follows
                say(f"GONE     {event.key}")
                return
            raise  # anything else: faro retries after a backoff
        say(f"ANNOTATED {event.key} {ANNOTATION}={digest[:12]}...")
        self.notifier.notify("configmap-annotated", event, digest=digest)


class NamespaceWorker:
    """Announces new namespaces."""

    name = "namespace-worker"

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier

    def handle(self, event: MatchedEvent) -> None:
        if event.event_type != "ADDED":
            return
        phase = (event.object.get("status") or {}).get("phase", "unknown")
        say(f"NAMESPACE {event.key} (phase {phase})")
        self.notifier.notify("namespace-added", event, phase=phase)


class Dispatcher:
    """The faro handler: routes each event to the worker for its resource."""

    def __init__(self, controller: Controller, exit_after: int = 0) -> None:
        self.workers: dict[str, Worker] = {}
        self._controller = controller
        self._exit_after = exit_after
        self._handled = 0
        self._lock = threading.Lock()

    def register(self, gvr: str, worker: Worker) -> None:
        self.workers[gvr] = worker

    def on_matched(self, event: MatchedEvent) -> None:
        worker = self.workers.get(event.gvr)
        if worker is None:
            say(f"IGNORED  {event.event_type.value} {event.gvr} {event.key}: no worker")
        else:
            worker.handle(event)  # raises: faro retries this event for this handler
        with self._lock:
            self._handled += 1
            done = self._handled == self._exit_after
        if done:
            say(f"-- {self._exit_after} events handled: stopping --")
            self._controller.stop()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, "
                        "$KUBECONFIG, ~/.kube/config)")
    parser.add_argument("--context", help="kubeconfig context (default: its current-context)")
    parser.add_argument("--namespace", default="default",
                        help="namespace whose ConfigMaps to annotate (default: %(default)s)")
    parser.add_argument("--namespace-pattern", default="team-.*",
                        help="regular expression of namespaces to announce "
                        "(default: %(default)s)")
    parser.add_argument("--notify-url", help="URL to POST JSON notifications to "
                        "(default: print them)")
    parser.add_argument("--run-for", type=float, default=0, metavar="SECONDS",
                        help="stop after this many seconds (default: 0, never)")
    parser.add_argument("--exit-after-events", type=int, default=0, metavar="N",
                        help="stop after N events were handled (default: 0, never)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = Config.from_dict({
            "auto_shutdown_sec": args.run_for,
            "resources": [
                {"gvr": "v1/configmaps", "namespace_names": [args.namespace]},
                {"gvr": "v1/namespaces", "scope": "Cluster",
                 "name_selector": args.namespace_pattern},
            ],
        }, source="worker_dispatcher")
        client = KubernetesClient.from_environment(kubeconfig=args.kubeconfig,
                                                   context=args.context)
    except (ConfigError, ClientConfigError) as error:
        print(f"worker_dispatcher: {error}", file=sys.stderr)
        return 2 if isinstance(error, ConfigError) else 1

    with client:
        controller = Controller(client, config)
        notifier = Notifier(args.notify_url)
        dispatcher = Dispatcher(controller, args.exit_after_events)
        # The workers act through the same authenticated client faro uses.
        dispatcher.register("v1/configmaps",
                            ConfigMapWorker(k8s.CoreV1Api(controller.client.api_client), notifier))
        dispatcher.register("v1/namespaces", NamespaceWorker(notifier))
        controller.add_event_handler(dispatcher)
        controller.set_ready_callback(lambda: say(
            f"-- ready: workers {', '.join(w.name for w in dispatcher.workers.values())} --"))

        def on_signal(signum: int, frame: FrameType | None) -> None:
            say(f"-- {signal.Signals(signum).name}: stopping --")
            signal.signal(signum, signal.SIG_DFL)  # a second one ends the process at once
            threading.Thread(target=controller.stop, name="stopper").start()

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        try:
            controller.run()
        except FaroError as error:
            print(f"worker_dispatcher: cannot start: {error}", file=sys.stderr)
            controller.stop()
            return 1
        controller.stop()  # idempotent: waits until every handler has finished
    say("-- stopped --")
    return 0


if __name__ == "__main__":
    sys.exit(main())
