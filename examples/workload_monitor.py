"""Discover workloads at runtime and watch their resources: a dynamic controller.

The configuration watches only namespaces: those carrying a label (``--label``, any
label selector: ``workload``, ``workload=true``, ``tier in (a,b)``; filtered by the API
server) and/or whose name matches a regular expression (``--name-pattern``; filtered by
faro). Each such namespace belongs to a workload whose id is extracted from the
namespace's name with ``--id-regex`` (its first group; ``wl-shop`` and ``wl-shop-db``
both belong to workload ``shop`` with the default ``^wl-([a-z0-9]+)``).

When a workload namespace appears (or exists at start), the monitor asks the running
controller to watch that namespace's ConfigMaps and Deployments (``--watch``)::

    controller.add_resources([{"gvr": "v1/configmaps", "namespace_names": ["wl-shop"]}, ...])
    controller.start_informers()

and when the namespace is deleted (or loses its label) it stops them with
``controller.remove_resources([...])``. Each event of a workload's resources is printed
with the workload id::

    [shop] ADDED    v1/configmaps        wl-shop/settings

Try it against faro's simulated API server. In one terminal::

    faro sim --kubeconfig-out sim.kubeconfig

(HTTPS: the kubeconfig carries the CA, which the Python client and kubectl both use;
``faro sim --http`` works for this example too, not for kubectl.) In a second one::

    python examples/workload_monitor.py --kubeconfig sim.kubeconfig

and in a third::

    kubectl --kubeconfig sim.kubeconfig create namespace wl-shop
    kubectl --kubeconfig sim.kubeconfig label namespace wl-shop workload=true
    kubectl --kubeconfig sim.kubeconfig -n wl-shop create configmap settings --from-literal=a=b
    kubectl --kubeconfig sim.kubeconfig delete namespace wl-shop

It stops on Ctrl-C, after ``--run-for`` seconds, or after ``--exit-after-events``
events of workload resources (namespace events do not count).
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import threading
from dataclasses import dataclass
from types import FrameType
from typing import Any

from faro import (
    ClientConfigError,
    Config,
    ConfigError,
    Controller,
    FaroError,
    KubernetesClient,
    MatchedEvent,
)

_print_lock = threading.RLock()


def say(line: str) -> None:
    """Print one line; handlers run on several threads, and print() is not atomic."""
    with _print_lock:
        print(line, flush=True)


@dataclass(frozen=True)
class Workload:
    id: str
    namespace: str


class WorkloadMonitor:
    """The handler: adds and removes resources as workload namespaces come and go."""

    def __init__(self, controller: Controller, id_regex: re.Pattern[str],
                 resources: list[str], exit_after: int = 0) -> None:
        self.controller = controller
        self.id_regex = id_regex
        self.resources = resources
        self.exit_after = exit_after
        self._workloads: dict[str, Workload] = {}  # namespace -> workload
        self._events = 0
        self._lock = threading.Lock()

    def workload_id(self, namespace: str) -> str:
        match = self.id_regex.search(namespace)
        if match is None:
            return namespace  # no id in the name: the namespace is the workload
        return match.group(1) if match.re.groups else match.group(0)

    def entries(self, namespace: str) -> list[dict[str, Any]]:
        return [{"gvr": gvr, "namespace_names": [namespace]} for gvr in self.resources]

    def on_matched(self, event: MatchedEvent) -> None:
        if event.gvr == "v1/namespaces":
            self.on_namespace(event)
        else:
            self.on_workload_resource(event)

    def on_namespace(self, event: MatchedEvent) -> None:
        # faro hands one object's events to one worker at a time, in order: the ADDED
        # and DELETED of a namespace never race. Different namespaces may run at once.
        namespace = event.name
        with self._lock:
            known = self._workloads.get(namespace)
        if event.event_type == "DELETED":
            if known is None:
                return
            self.controller.remove_resources(self.entries(namespace))
            with self._lock:
                del self._workloads[namespace]
            say(f"WORKLOAD {known.id}: namespace {namespace} is gone: stopped watching it "
                f"({self.informers()})")
        elif known is None and event.object["metadata"].get("deletionTimestamp") is None:
            workload = Workload(self.workload_id(namespace), namespace)
            with self._lock:  # before the informers start: their events come at once
                self._workloads[namespace] = workload
            self.controller.add_resources(self.entries(namespace))
            try:
                self.controller.start_informers()
            except ConfigError as error:  # a resource this cluster cannot serve: the others run
                say(f"WORKLOAD {workload.id}: {error}")
            say(f"WORKLOAD {workload.id}: watching {', '.join(self.resources)} in namespace "
                f"{namespace} ({self.informers()})")

    def on_workload_resource(self, event: MatchedEvent) -> None:
        with self._lock:
            workload = self._workloads.get(event.namespace)
        # None: an event queued before its namespace was removed, delivered after.
        workload_id = workload.id if workload is not None else self.workload_id(event.namespace)
        initial = "  (existed before)" if event.is_initial else ""
        say(f"[{workload_id}] {event.event_type.value:<8} {event.gvr:<20} {event.key}{initial}")
        with self._lock:
            self._events += 1
            done = self._events == self.exit_after
        if done:
            say(f"-- {self.exit_after} workload events: stopping --")
            self.controller.stop()

    def informers(self) -> str:
        active = self.controller.get_active_informers()
        return f"informers: {active.config_driven} configured + {active.dynamic} added at runtime"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, "
                        "$KUBECONFIG, ~/.kube/config)")
    parser.add_argument("--context", help="kubeconfig context (default: its current-context)")
    parser.add_argument("--label", default="workload",
                        help="label selector of workload namespaces, '' for none "
                        "(default: %(default)s)")
    parser.add_argument("--name-pattern", default="",
                        help="regular expression workload namespace names must match "
                        "(default: any name)")
    parser.add_argument("--id-regex", default=r"^wl-([a-z0-9]+)",
                        help="extracts the workload id from a namespace name: its first group "
                        "(default: %(default)s)")
    parser.add_argument("--watch", action="append", metavar="GVR",
                        help="resource to watch in workload namespaces; repeatable "
                        "(default: v1/configmaps and apps/v1/deployments)")
    parser.add_argument("--run-for", type=float, default=0, metavar="SECONDS",
                        help="stop after this many seconds (default: 0, never)")
    parser.add_argument("--exit-after-events", type=int, default=0, metavar="N",
                        help="stop after N events of workload resources (default: 0, never)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.label and not args.name_pattern:
        print("workload_monitor: give --label or --name-pattern (or both)", file=sys.stderr)
        return 2
    namespaces: dict[str, Any] = {"gvr": "v1/namespaces", "scope": "Cluster"}
    if args.label:
        namespaces["label_selector"] = args.label
    if args.name_pattern:
        namespaces["name_selector"] = args.name_pattern
    try:
        id_regex = re.compile(args.id_regex)
        config = Config.from_dict({"auto_shutdown_sec": args.run_for,
                                   "resources": [namespaces]}, source="workload_monitor")
        watch = args.watch or ["v1/configmaps", "apps/v1/deployments"]
        Config.from_dict({"resources": [{"gvr": gvr} for gvr in watch]}, source="--watch")
        client = KubernetesClient.from_environment(kubeconfig=args.kubeconfig,
                                                   context=args.context)
    except (re.error, ConfigError) as error:
        print(f"workload_monitor: {error}", file=sys.stderr)
        return 2
    except ClientConfigError as error:
        print(f"workload_monitor: {error}", file=sys.stderr)
        return 1

    with client:
        controller = Controller(client, config)
        monitor = WorkloadMonitor(controller, id_regex, watch, args.exit_after_events)
        controller.add_event_handler(monitor)
        controller.set_ready_callback(lambda: say("-- ready: watching for workload namespaces --"))

        def on_signal(signum: int, frame: FrameType | None) -> None:
            say(f"-- {signal.Signals(signum).name}: stopping --")
            signal.signal(signum, signal.SIG_DFL)  # a second one ends the process at once
            threading.Thread(target=controller.stop, name="stopper").start()

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        try:
            controller.run()
        except FaroError as error:
            print(f"workload_monitor: cannot start: {error}", file=sys.stderr)
            controller.stop()
            return 1
        controller.stop()
    say("-- stopped --")
    return 0


if __name__ == "__main__":
    sys.exit(main())
