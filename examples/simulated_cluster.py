"""Run faro against its simulated Kubernetes API server: no cluster needed.

Run it with ``make demo`` (or ``python examples/simulated_cluster.py`` once faro
is installed). It starts a ``SimulatedCluster``, starts a faro ``Controller``
with a configuration in both formats (namespace-centric and resource-centric),
then creates, updates and deletes objects the way a user would and prints each
event faro hands to its handler. If ``kubectl`` is on PATH it also shows kubectl
driving the same server. It exits by itself within a few seconds; the exit
status is 0 when every expected event arrived.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading

from faro import Config, Controller, KubernetesClient, MatchedEvent
from faro.testing import SimulatedCluster

CONFIG = """
namespaces:                       # namespace-centric: what to watch in a namespace
  - name_selector: demo
    resources:
      "v1/configmaps": {label_selector: "tier=web"}
      "apps/v1/deployments": {}
resources:                        # resource-centric: where to watch a resource
  - gvr: v1/namespaces
    name_selector: "demo|team-.*"   # not a plain name, so a regular expression
"""

MANIFEST = """
apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: demo
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: "nginx:1.27"}
"""

EXPECTED = {
    ("v1/namespaces", "demo"): ["ADDED"],
    ("apps/v1/deployments", "demo/web"): ["ADDED", "UPDATED"],
    ("v1/configmaps", "demo/settings"): ["ADDED", "UPDATED", "DELETED"],
    ("v1/namespaces", "team-a"): ["ADDED"],
}


class Printer:
    """A handler: prints each event and tells the main thread when all expected arrived."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], list[str]] = {}
        self.all_seen = threading.Event()
        self._lock = threading.Lock()

    def say(self, line: str) -> None:
        with self._lock:  # handlers run on several worker threads: one line at a time
            print(line, flush=True)

    def on_matched(self, event: MatchedEvent) -> None:
        self.say(f"{event.event_type.value:<8} {event.gvr:<20} {event.key:<14} "
                 f"rv={event.resource_version:<4} labels={dict(event.labels)}"
                 f"{'  (existed before start)' if event.is_initial else ''}")
        with self._lock:
            self.seen.setdefault((event.gvr, event.key), []).append(event.event_type.value)
            if all(self.seen.get(key) == types for key, types in EXPECTED.items()):
                self.all_seen.set()


def _make_changes(cluster: SimulatedCluster) -> None:
    """What an operator or a user would do to the cluster."""
    settings = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "settings", "namespace": "demo",
                             "labels": {"tier": "web"}}, "data": {"color": "blue"}}
    cluster.create(settings)
    cluster.patch("v1", "ConfigMap", "settings", {"data": {"color": "green"}}, namespace="demo")
    other = {"apiVersion": "v1", "kind": "ConfigMap",       # not tier=web: faro never sees it
             "metadata": {"name": "other", "namespace": "demo"}}
    cluster.create(other)
    cluster.patch("apps/v1", "Deployment", "web", {"spec": {"replicas": 3}}, namespace="demo")
    cluster.delete("v1", "ConfigMap", "settings", namespace="demo")
    cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}})


def _tls_available() -> bool:
    try:
        import cryptography  # noqa: F401
    except ImportError:
        return False
    return True


def _show_kubectl(cluster: SimulatedCluster) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None or cluster.ca_pem is None:
        print("\n(kubectl not found or no TLS: skipping the kubectl part)")
        return
    with tempfile.TemporaryDirectory() as cache:
        for args in (["get", "namespaces"], ["get", "deployments", "-n", "demo"]):
            command = [kubectl, "--kubeconfig", cluster.kubeconfig_path, "--cache-dir", cache,
                       *args]
            print(f"\n$ kubectl {' '.join(args)}")
            result = subprocess.run(command, capture_output=True, text=True, timeout=60)
            print((result.stdout or result.stderr).rstrip())


def main() -> int:
    # kubectl sends credentials only over HTTPS; TLS needs the 'cryptography' package.
    with SimulatedCluster(tls=_tls_available()) as cluster:
        print(f"Simulated API server at {cluster.url}")
        print(f"kubeconfig: {cluster.kubeconfig_path}\n")
        cluster.apply(MANIFEST)                       # exists before faro starts

        printer = Printer()
        client = KubernetesClient.from_environment(kubeconfig=cluster.kubeconfig_path)
        controller = Controller(client, Config.from_yaml(CONFIG, source="demo config"))
        controller.add_event_handler(printer)         # before start: sees the initial objects
        controller.set_ready_callback(lambda: printer.say("-- faro is ready --"))
        with controller:                              # start() ... stop()
            if not controller.wait_until_ready(timeout=30):
                print("faro did not become ready", file=sys.stderr)
                return 1
            _make_changes(cluster)
            complete = printer.all_seen.wait(timeout=30)
        client.close()
        _show_kubectl(cluster)
    print(f"\n{sum(map(len, printer.seen.values()))} events; the simulated cluster has stopped.")
    if not complete:
        print(f"missing events: expected {EXPECTED}, got {printer.seen}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
