"""``faro demo``: faro against a simulated cluster in this process, scripted, by itself.

The contract (docs/cli.md, "Try it: faro demo"): write :data:`DEMO_CONFIG` (both
configuration formats) to ``--output-dir`` (default :data:`DEMO_OUTPUT_DIR`), set up logging
there, start the simulator (HTTPS when ``cryptography`` is installed, else plain HTTP), run
faro as ``faro run`` does, make the changes of :func:`_demo_steps` (some filtered out by the
configuration, :data:`DEMO_FILTERED`), wait for every event of :data:`DEMO_EXPECTED` (at
most ``--timeout`` seconds), optionally ``--linger``, stop, and print a summary on stdout
(the event lines go to stderr). Exit 0 when every expected event arrived and the JSON event
file was written (or when a signal ended it), 1 otherwise; a bad flag value exits 2.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from faro.cli._process import (
    EXIT_FAILURE,
    EXIT_OK,
    POLL,
    STOP_TIMEOUT,
    Shutdown,
    Starting,
    exit_at_once,
    fail,
    fail_config,
    setup_logging,
    signals_to_main_thread,
    unexpected,
)
from faro.cli.run import announce_ready
from faro.cli.sim import have_cryptography

if TYPE_CHECKING:
    from faro.config import Config
    from faro.events import MatchedEvent
    from faro.logs import LoggingSetup
    from faro.testing import SimulatedCluster

demo_logger = logging.getLogger("faro.demo")

DEMO_OUTPUT_DIR = "faro-demo-output"
"""Where ``faro demo`` writes its configuration, log file and JSON events by default."""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser],
               version: str) -> None:
    demo = commands.add_parser(
        "demo", allow_abbrev=False,
        help="run faro against a built-in simulated cluster and show its events",
        description="Start the simulated API server in this process (HTTPS when the "
        "'cryptography' package is installed, else HTTP), run faro with a sample "
        "configuration in both formats, create, update and delete objects (some that the "
        "configuration filters out), stream the event lines, then stop and say where the "
        "JSON events and the log file are. Exits by itself: 0 when every expected event "
        "arrived.",
    )
    demo.add_argument("--version", action="version", version=version)
    demo.add_argument("--output-dir", metavar="DIR", default=DEMO_OUTPUT_DIR,
                      help=f"where the configuration, log file and JSON events go "
                      f"(default: {DEMO_OUTPUT_DIR})")
    demo.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                      help="how long to wait for readiness, and then for the expected events "
                      "(default: 30)")
    demo.add_argument("--linger", type=float, default=0.0, metavar="SECONDS",
                      help="after the scripted changes, keep faro and the simulator running "
                      "this long (Ctrl-C ends it early) to try kubectl against the printed "
                      "kubeconfig (default: 0)")
    demo.set_defaults(command_parser=demo)


DEMO_CONFIG = """\
# faro demo: both configuration formats in one file (docs/config.md).
output_dir: {output_dir}
log_level: info
json_export: true                 # every matched event as one JSON line: events-*.json
metrics: {{enabled: true, port: 0, bind_addr: 127.0.0.1}}    # port 0: a free port

namespaces:                       # namespace-centric: what to watch in a namespace
  - name_selector: demo           # an exact name: the API server filters
    resources:
      "v1/configmaps": {{label_selector: "tier=web"}}     # server-side label selector
      "apps/v1/deployments": {{}}
  - name_selector: "team-.*"      # a regular expression: namespaces as they come and go
    resources:
      "v1/configmaps": {{name_selector: settings}}        # exact name: server-side

resources:                        # resource-centric: where to watch a resource
  - gvr: v1/namespaces            # cluster-scoped
    scope: Cluster
    name_selector: "demo|team-.*"   # not a plain name: a regular expression, client-side
"""

DEMO_MANIFEST = """\
apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: demo}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "nginx:1.27"}]
"""

# (gvr, key) -> the event types faro must report, in order.
DEMO_EXPECTED: dict[tuple[str, str], list[str]] = {
    ("v1/namespaces", "demo"): ["ADDED"],
    ("apps/v1/deployments", "demo/web"): ["ADDED", "UPDATED"],
    ("v1/configmaps", "demo/settings"): ["ADDED", "UPDATED", "DELETED"],
    ("v1/namespaces", "team-a"): ["ADDED"],
    ("v1/configmaps", "team-a/settings"): ["ADDED"],
}

# What the demo changes that the configuration filters out, and why.
DEMO_FILTERED = (
    "ConfigMap demo/scratch (no tier=web label)",
    "ConfigMap team-a/other (name is not 'settings')",
    "Namespace sandbox (name does not match 'demo|team-.*')",
)


class _DemoRecorder:
    """A handler recording the demo's events, which the main thread waits for."""

    def __init__(self, expected: dict[tuple[str, str], list[str]]) -> None:
        self.expected = expected
        self.seen: dict[tuple[str, str], list[str]] = {}
        self._changed = threading.Condition()

    def __call__(self, event: MatchedEvent) -> None:
        with self._changed:
            self.seen.setdefault((event.gvr, event.key), []).append(event.event_type.value)
            self._changed.notify_all()

    def wait(self, predicate: Callable[[], bool], deadline: float,
             shutdown: Shutdown) -> bool:
        """Wait until ``predicate()`` (True), the monotonic ``deadline`` or a signal (False).

        Wakes at each event, and every POLL seconds to notice a signal (whose handler
        must not touch this lock).
        """
        with self._changed:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or shutdown.received is not None:
                    return False
                self._changed.wait(min(POLL, remaining))
            return True

    def has(self, gvr: str, key: str, event_type: str) -> bool:
        return event_type in self.seen.get((gvr, key), ())

    def missing(self) -> list[str]:
        """``gvr key: TYPE`` for every expected event not seen (in order, per object)."""
        out: list[str] = []
        for key, types in self.expected.items():
            seen = iter(self.seen.get(key, []))
            out += [f"{key[0]} {key[1]}: {t}" for t in types if t not in seen]
        return out

    def unexpected(self) -> list[str]:
        return [f"{gvr} {key}" for gvr, key in self.seen if (gvr, key) not in self.expected]

    @property
    def total(self) -> int:
        return sum(map(len, self.seen.values()))


def _configmap(name: str, namespace: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "data": {"color": "blue"}}


def _demo_steps(cluster: SimulatedCluster
                ) -> list[tuple[str, Callable[[], object], tuple[str, str, str] | None]]:
    """What a user would do to the cluster: (narration, change, the event it must cause)."""
    ns = {"apiVersion": "v1", "kind": "Namespace"}
    return [
        ("creating ConfigMap demo/settings with label tier=web (watched)",
         lambda: cluster.create(_configmap("settings", "demo", tier="web")),
         ("v1/configmaps", "demo/settings", "ADDED")),
        ("changing ConfigMap demo/settings",
         lambda: cluster.patch("v1", "ConfigMap", "settings", {"data": {"color": "green"}},
                               namespace="demo"),
         ("v1/configmaps", "demo/settings", "UPDATED")),
        ("creating ConfigMap demo/scratch without the label (the API server filters it out)",
         lambda: cluster.create(_configmap("scratch", "demo")), None),
        ("scaling Deployment demo/web to 3 replicas",
         lambda: cluster.patch("apps/v1", "Deployment", "web", {"spec": {"replicas": 3}},
                               namespace="demo"),
         ("apps/v1/deployments", "demo/web", "UPDATED")),
        ("creating Namespace team-a (matches 'team-.*': faro starts informers for it)",
         lambda: cluster.create({**ns, "metadata": {"name": "team-a"}}),
         ("v1/namespaces", "team-a", "ADDED")),
        ("creating ConfigMaps team-a/settings (watched) and team-a/other (not that name)",
         lambda: [cluster.create(_configmap(name, "team-a")) for name in ("settings", "other")],
         ("v1/configmaps", "team-a/settings", "ADDED")),
        ("creating Namespace sandbox (its name does not match: faro filters it out)",
         lambda: cluster.create({**ns, "metadata": {"name": "sandbox"}}), None),
        ("deleting ConfigMap demo/settings",
         lambda: cluster.delete("v1", "ConfigMap", "settings", namespace="demo"),
         ("v1/configmaps", "demo/settings", "DELETED")),
    ]


def command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from faro.config import ConfigError, load_config
    from faro.testing import SimulatedCluster

    if not args.timeout > 0:
        parser.error(f"argument --timeout: must be positive, got {args.timeout:g}")
    if not args.linger >= 0:
        parser.error(f"argument --linger: must not be negative, got {args.linger:g}")
    output_dir = args.output_dir
    config_path = os.path.join(output_dir, "faro-demo.yaml")
    try:
        os.makedirs(output_dir, exist_ok=True)
        Path(config_path).write_text(DEMO_CONFIG.format(output_dir=json.dumps(output_dir)),
                                     encoding="utf-8")
        config = load_config(config_path)
    except OSError as error:
        return fail(f"cannot write {config_path}: {error.strerror or error}", EXIT_FAILURE)
    except ConfigError as error:  # an --output-dir the configuration refuses (empty)
        return fail_config(error)
    try:
        logs = setup_logging(config)
    except OSError as error:
        return fail(f"cannot write the log file under {output_dir}: "
                    f"{error.strerror or error}", EXIT_FAILURE)
    shutdown = Shutdown()
    shutdown.install()
    tls = have_cryptography()
    cluster = SimulatedCluster(tls=tls)
    try:
        with signals_to_main_thread():
            cluster.start()
        demo_logger.info("simulated Kubernetes API server at %s%s", cluster.url,
                         "" if tls else " (plain HTTP: install faro[sim] for HTTPS)")
        return _demo_run(args, cluster, config, config_path, logs, shutdown)
    except Exception as error:
        return unexpected(error, logs)
    finally:
        cluster.stop()
        shutdown.restore()
        logs.close()


def _demo_run(args: argparse.Namespace, cluster: SimulatedCluster, config: Config,
              config_path: str, logs: LoggingSetup, shutdown: Shutdown) -> int:
    from faro.client import KubernetesClient
    from faro.controller import Controller

    demo_logger.info("creating Namespace demo and Deployment demo/web before faro starts")
    cluster.apply(DEMO_MANIFEST)
    recorder = _DemoRecorder(DEMO_EXPECTED)
    client = KubernetesClient.from_environment(kubeconfig=cluster.kubeconfig_path)
    controller = Controller(client, config)
    controller.add_event_handler(recorder)
    controller.set_ready_callback(lambda: announce_ready(controller))
    metrics_url = ""
    try:
        starting = Starting(controller.start)  # a signal meanwhile is noticed below
        if starting.wait(shutdown):
            starting.result()
        address = controller.metrics_address
        if address is not None:
            metrics_url = f"http://{address[0]}:{address[1]}{config.metrics.path}"
        if not (shutdown.wait(args.timeout, until=controller.is_ready) or
                controller.is_ready()):
            return fail(f"faro did not become ready within {args.timeout:g} s "
                        f"(see {logs.log_file})", EXIT_FAILURE)
        deadline = time.monotonic() + args.timeout
        for narration, change, effect in _demo_steps(cluster):
            if shutdown.received is not None:
                break
            demo_logger.info("%s", narration)
            change()
            if effect is not None:  # its event line before the next step's narration
                recorder.wait(functools.partial(recorder.has, *effect), deadline, shutdown)
        recorder.wait(lambda: not recorder.missing(), deadline, shutdown)
        if args.linger and shutdown.received is None:
            demo_logger.info("still watching for %g s (Ctrl-C ends it): try kubectl "
                             "--kubeconfig %s get configmaps -A", args.linger,
                             cluster.kubeconfig_path)
            shutdown.wait(args.linger)
    finally:
        shutdown.stopping = True
        finished = controller.stop(timeout=STOP_TIMEOUT)
        client.close()
    if not finished:
        exit_at_once(f"faro did not stop within {STOP_TIMEOUT:g} s")
    return _demo_summary(recorder, controller.events_file, config, config_path, logs,
                         metrics_url, shutdown)


def _demo_summary(recorder: _DemoRecorder, events_file: Path | None, config: Config,
                  config_path: str, logs: LoggingSetup, metrics_url: str,
                  shutdown: Shutdown) -> int:
    missing = recorder.missing()
    expected = sum(map(len, DEMO_EXPECTED.values()))
    out = [""]
    if missing:
        how = "interrupted" if shutdown.received else "incomplete"
        out.append(f"faro demo {how}: {expected - len(missing)} of {expected} expected events "
                   f"arrived; missing: {', '.join(missing)}")
    else:
        out.append(f"faro demo: all {expected} expected events arrived "
                   f"({recorder.total} in all).")
    out.append("Filtered out, as configured: " + "; ".join(DEMO_FILTERED) + ".")
    unexpected = recorder.unexpected()
    if unexpected:
        out.append(f"Unexpected events for: {', '.join(unexpected)}")
    if events_file is not None and events_file.is_file():
        lines = len(events_file.read_bytes().splitlines())
        out.append(f"JSON events:    {events_file} ({lines} events)")
    else:
        out.append(f"JSON events:    none written in {config.output_dir} (json_export is on)")
    out.append(f"Log file:       {logs.log_file}")
    out.append(f"Configuration:  {config_path} (use it with: faro validate {config_path})")
    if metrics_url:
        out.append(f"Metrics were served at {metrics_url}")
    print("\n".join(out), flush=True)
    if shutdown.received:
        return EXIT_OK  # stopped on request
    written = events_file is not None and events_file.is_file()
    return EXIT_FAILURE if missing or unexpected or not written else EXIT_OK
