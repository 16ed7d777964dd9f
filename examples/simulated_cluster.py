"""Try faro's simulated Kubernetes API server: no cluster needed.

Run it with ``make demo`` (or ``python examples/simulated_cluster.py`` once faro
is installed). It starts a ``SimulatedCluster``, watches ConfigMaps in a
namespace through the official ``kubernetes`` client, then creates, updates,
labels and deletes objects and prints every event the watch delivers. If
``kubectl`` is on PATH it also shows kubectl driving the same server. It exits
by itself within a few seconds.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading
from typing import Any

from kubernetes import client, watch

from faro.testing import SimulatedCluster

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


def _tls_available() -> bool:
    try:
        import cryptography  # noqa: F401
    except ImportError:
        return False
    return True


def _make_changes(cluster: SimulatedCluster) -> None:
    """What an operator or a user would do to the cluster."""
    config = {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "settings", "namespace": "demo"}, "data": {"color": "blue"}}
    cluster.create(config)
    cluster.patch("v1", "ConfigMap", "settings", {"data": {"color": "green"}}, namespace="demo")
    cluster.patch("v1", "ConfigMap", "settings", {"metadata": {"labels": {"tier": "web"}}},
                  namespace="demo")
    cluster.delete("v1", "ConfigMap", "settings", namespace="demo")


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
        cluster.apply(MANIFEST)
        v1 = client.CoreV1Api(cluster.api_client)
        start = cluster.resource_version
        threading.Thread(target=_make_changes, args=(cluster,), daemon=True).start()

        stream = watch.Watch()
        seen = 0
        event: dict[str, Any]
        for event in stream.stream(v1.list_namespaced_config_map, "demo",
                                   resource_version=str(start), timeout_seconds=10):
            obj = event["object"]
            print(f"{event['type']:<9} configmap/{obj.metadata.name} "
                  f"rv={obj.metadata.resource_version} data={obj.data} "
                  f"labels={obj.metadata.labels}")
            seen += 1
            if seen == 4:
                stream.stop()
        _show_kubectl(cluster)
    print(f"\n{seen} events received; the simulated cluster has stopped.")
    return 0 if seen == 4 else 1


if __name__ == "__main__":
    sys.exit(main())
