"""The examples run as their docstrings say, against the simulated cluster.

Each test starts a ``SimulatedCluster`` in this process, runs an example as a user
would (``python examples/X.py --kubeconfig ...``) with its self-ending option, changes
objects in the cluster, and checks what a user would notice: the lines it prints, what
it did to the cluster, what it sent to a local HTTP endpoint. Every wait is on a
condition with a deadline.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from faro.testing import SimulatedCluster

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CONFIGS = EXAMPLES / "configs"
DEADLINE = 60.0  # seconds; generous: interpreter and client start are slow on CI machines


def test_the_simulated_cluster_demo_shows_every_expected_event() -> None:
    result = subprocess.run([sys.executable, str(EXAMPLES / "simulated_cluster.py")],
                            capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "-- faro is ready --" in lines
    assert any(line.startswith("DELETED  v1/configmaps        demo/settings") for line in lines)
    assert any("apps/v1/deployments  demo/web" in line and "(existed before start)" in line
               for line in lines)
    assert not any("demo/other" in line for line in lines)  # filtered by its label


# ------------------------------------------------------------------------------ helpers


def wait_for(condition: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)  # polling interval, not synchronisation


class Example:
    """An example running as a subprocess; its stdout lines are collected as they come."""

    def __init__(self, script: str, *args: str, cwd: Path) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self.process = subprocess.Popen(
            [sys.executable, "-u", str(EXAMPLES / script), *args], cwd=cwd,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.stderr = ""
        self._readers = [threading.Thread(target=self._read_stdout, daemon=True),
                         threading.Thread(target=self._read_stderr, daemon=True)]
        for reader in self._readers:
            reader.start()

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        self.stderr = self.process.stderr.read()

    def output(self) -> list[str]:
        with self._lock:
            return list(self.lines)

    def describe(self) -> str:
        return "\nstdout:\n" + "\n".join(self.output()) + "\nstderr:\n" + self.stderr[-4000:]

    def wait_for_line(self, predicate: Callable[[str], bool], what: str) -> str:
        def found() -> str | None:
            if self.process.poll() is not None:
                for reader in self._readers:
                    reader.join(5)
                line = next((line for line in self.output() if predicate(line)), None)
                if line is None:
                    pytest.fail(f"the example exited ({self.process.returncode}) before "
                                f"{what}{self.describe()}")
                return line
            return next((line for line in self.output() if predicate(line)), None)

        try:
            return wait_for(found, what)  # type: ignore[no-any-return]
        except BaseException:
            print(self.describe())
            raise

    def finish(self, timeout: float = DEADLINE) -> int:
        """Wait for the example to end by itself; returns its exit status."""
        try:
            returncode = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"the example did not end within {timeout:.0f} s{self.describe()}")
        for reader in self._readers:
            reader.join(5)
        return returncode

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def cluster() -> Iterator[SimulatedCluster]:
    with SimulatedCluster() as simulated:
        yield simulated


@pytest.fixture
def run_example(tmp_path: Path) -> Iterator[Callable[..., Example]]:
    """Start examples in ``tmp_path`` (any files they write land there); kill leftovers."""
    started: list[Example] = []

    def start(script: str, *args: str) -> Example:
        example = Example(script, *args, cwd=tmp_path)
        started.append(example)
        return example

    yield start
    for example in started:
        example.kill()


def configmap(name: str, namespace: str = "default", **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "data": {"color": "blue"}}


def deployment(name: str, namespace: str = "default", **labels: str) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"run": name}},
                     "template": {"metadata": {"labels": {"run": name}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}


def namespace(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": labels}}


def event_lines(lines: list[str]) -> set[tuple[str, str, str]]:
    """(type, resource, key) of every event line an example printed."""
    return {(parts[0], parts[1], parts[2]) for parts in (line.split() for line in lines)
            if len(parts) >= 3 and parts[0] in ("ADDED", "UPDATED", "DELETED")}


# ------------------------------------------------------------------------------ configs


@pytest.mark.parametrize("name", ["namespace-centric", "resource-centric", "with-metrics"])
def test_each_example_configuration_passes_faro_validate(name: str) -> None:
    result = subprocess.run([sys.executable, "-m", "faro", "validate",
                             str(CONFIGS / f"{name}.yaml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert ": valid:" in result.stdout


# ------------------------------------------------------------------------ library_usage


def test_library_usage_prints_each_matched_event_and_stops_after_n(
        run_example: Callable[..., Example]) -> None:
    # HTTPS, as `faro sim` serves by default: the Python client uses the kubeconfig's CA.
    with SimulatedCluster(tls=True) as tls_cluster:
        tls_cluster.create(configmap("before"))  # exists before start: an initial ADDED
        example = run_example("library_usage.py", "--kubeconfig", tls_cluster.kubeconfig_path,
                              "--config", str(CONFIGS / "resource-centric.yaml"),
                              "--exit-after-events", "7")
        example.wait_for_line(lambda line: line.startswith("-- faro is ready: 3 informers"),
                              "the ready line")
        tls_cluster.create(configmap("web"))
        tls_cluster.patch("v1", "ConfigMap", "web", {"data": {"color": "green"}},
                          namespace="default")
        tls_cluster.create(deployment("unlabelled"))  # no 'app' label: the server filters
        tls_cluster.create(deployment("api", app="api"))
        tls_cluster.create(namespace("team-a"))  # matches 'team-.*': watched from now on
        tls_cluster.create(namespace("sandbox"))  # does not match
        example.wait_for_line(lambda line: "v1/namespaces" in line and "team-a" in line,
                              "namespace team-a")
        tls_cluster.create(configmap("settings", "team-a"))
        tls_cluster.delete("v1", "ConfigMap", "web", namespace="default")
        assert example.finish() == 0, example.describe()

    lines = example.output()
    assert event_lines(lines) == {
        ("ADDED", "v1/configmaps", "default/before"),
        ("ADDED", "v1/configmaps", "default/web"),
        ("UPDATED", "v1/configmaps", "default/web"),
        ("DELETED", "v1/configmaps", "default/web"),
        ("ADDED", "apps/v1/deployments", "default/api"),
        ("ADDED", "v1/namespaces", "team-a"),
        ("ADDED", "v1/configmaps", "team-a/settings"),
    }, example.describe()
    assert any("default/before" in line and "(existed before start)" in line for line in lines)
    assert "-- 7 events: stopping --" in lines
    assert lines[-1] == "-- stopped --"


def test_library_usage_stops_cleanly_on_sigint(cluster: SimulatedCluster,
                                               run_example: Callable[..., Example]) -> None:
    example = run_example("library_usage.py", "--kubeconfig", cluster.kubeconfig_path,
                          "--config", str(CONFIGS / "namespace-centric.yaml"))
    example.wait_for_line(lambda line: line.startswith("-- faro is ready"), "the ready line")
    cluster.create(configmap("web"))
    example.wait_for_line(lambda line: line.startswith("ADDED") and "default/web" in line,
                          "the ADDED line of default/web")
    example.process.send_signal(signal.SIGINT)
    assert example.finish() == 0, example.describe()
    assert example.output()[-2:] == ["-- SIGINT: stopping --", "-- stopped --"]


# ---------------------------------------------------------------------- worker_dispatcher


class Receiver:
    """A tiny HTTP endpoint on 127.0.0.1 that records the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        lock = self._lock = threading.Lock()
        bodies, paths = self.bodies, self.paths

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    bodies.append(body)
                    paths.append(self.path)
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/faro"
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()

    def received(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.bodies)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    endpoint = Receiver()
    yield endpoint
    endpoint.close()


def test_worker_dispatcher_annotates_configmaps_once_and_posts_notifications(
        cluster: SimulatedCluster, receiver: Receiver,
        run_example: Callable[..., Example]) -> None:
    def digest(data: dict[str, str]) -> str:
        content = json.dumps({"data": data, "binaryData": {}}, sort_keys=True)
        return hashlib.sha256(content.encode()).hexdigest()

    example = run_example("worker_dispatcher.py", "--kubeconfig", cluster.kubeconfig_path,
                          "--notify-url", receiver.url, "--exit-after-events", "6")
    example.wait_for_line(lambda line: line.startswith("-- ready: workers"), "the ready line")

    # ADDED -> the worker annotates; its own change comes back as UPDATED and is skipped.
    cluster.create(configmap("web"))
    example.wait_for_line(lambda line: line.startswith("SKIP") and "default/web" in line,
                          "the worker skipping its own annotation")
    annotations = cluster.get("v1", "ConfigMap", "web", "default")["metadata"]["annotations"]
    assert annotations["faro.example/data-sha256"] == digest({"color": "blue"})

    # The data changes: a new digest, written once.
    cluster.patch("v1", "ConfigMap", "web", {"data": {"color": "green"}}, namespace="default")
    wait_for(lambda: sum(line.startswith("SKIP") for line in example.output()) == 2,
             "the second skip")
    annotations = cluster.get("v1", "ConfigMap", "web", "default")["metadata"]["annotations"]
    assert annotations["faro.example/data-sha256"] == digest({"color": "green"})

    cluster.create(namespace("team-a"))
    cluster.create(namespace("sandbox"))  # not team-.*: never dispatched
    cluster.delete("v1", "ConfigMap", "web", namespace="default")
    assert example.finish() == 0, example.describe()

    lines = example.output()
    annotated = [line for line in lines if line.startswith("ANNOTATED")]
    assert len(annotated) == 2, example.describe()  # no loop on its own UPDATED events
    assert "-- 6 events handled: stopping --" in lines
    assert lines[-1] == "-- stopped --"
    assert not any("sandbox" in line for line in lines)

    bodies = receiver.received()
    assert set(receiver.paths) == {"/hooks/faro"}
    assert [(b["action"], b["key"]) for b in bodies if b["resource"] == "v1/configmaps"] == [
        ("configmap-annotated", "default/web"),
        ("configmap-annotated", "default/web"),
        ("configmap-deleted", "default/web"),
    ]
    assert [b["digest"] for b in bodies if b["action"] == "configmap-annotated"] == [
        digest({"color": "blue"}), digest({"color": "green"})]
    namespaces = [b for b in bodies if b["resource"] == "v1/namespaces"]
    assert [(b["action"], b["key"], b["phase"]) for b in namespaces] == [
        ("namespace-added", "team-a", "Active")]


# ----------------------------------------------------------------------- workload_monitor


def test_workload_monitor_adds_and_removes_informers_as_workload_namespaces_come_and_go(
        cluster: SimulatedCluster, run_example: Callable[..., Example]) -> None:
    cluster.create(namespace("wl-alpha", workload="true"))  # a workload before start
    cluster.create(configmap("config", "wl-alpha"))
    cluster.create(namespace("plain"))  # no label: never a workload
    cluster.create(configmap("ignored", "plain"))

    example = run_example("workload_monitor.py", "--kubeconfig", cluster.kubeconfig_path,
                          "--label", "workload", "--id-regex", "^wl-([a-z0-9]+)",
                          "--exit-after-events", "5")
    example.wait_for_line(lambda line: line.startswith("WORKLOAD alpha: watching "
                                                       "v1/configmaps, apps/v1/deployments in "
                                                       "namespace wl-alpha"),
                          "workload alpha found at start")
    example.wait_for_line(lambda line: line.startswith("[alpha] ADDED") and
                          "wl-alpha/config  (existed before)" in line,
                          "the existing ConfigMap of workload alpha")

    # A workload namespace created after start: informers are added to the running controller.
    cluster.create(namespace("wl-beta-db", workload="true"))
    line = example.wait_for_line(lambda line: line.startswith("WORKLOAD beta:"),
                                 "workload beta found at runtime")
    assert line.endswith("in namespace wl-beta-db (informers: 1 configured + 4 added at "
                         "runtime)"), line
    cluster.create(deployment("api", "wl-beta-db"))
    cluster.create(configmap("cfg", "wl-beta-db"))
    cluster.create(namespace("other"))
    cluster.create(configmap("x", "other"))
    example.wait_for_line(lambda line: line.startswith("[beta] ADDED") and "wl-beta-db/cfg"
                          in line, "the ConfigMap of workload beta")

    # The namespace goes away: its informers are removed.
    cluster.delete("v1", "ConfigMap", "config", namespace="wl-alpha")
    cluster.delete("v1", "Namespace", "wl-alpha")
    line = example.wait_for_line(lambda line: line.startswith("WORKLOAD alpha: namespace "
                                                              "wl-alpha is gone"),
                                 "workload alpha removed")
    assert line.endswith("(informers: 1 configured + 2 added at runtime)"), line
    cluster.create(configmap("late", "wl-beta-db"))  # the fifth workload event: it stops
    assert example.finish() == 0, example.describe()

    lines = example.output()
    workload_events = {tuple(line.split()[:4]) for line in lines if line.startswith("[")}
    assert workload_events == {
        ("[alpha]", "ADDED", "v1/configmaps", "wl-alpha/config"),
        ("[alpha]", "DELETED", "v1/configmaps", "wl-alpha/config"),
        ("[beta]", "ADDED", "apps/v1/deployments", "wl-beta-db/api"),
        ("[beta]", "ADDED", "v1/configmaps", "wl-beta-db/cfg"),
        ("[beta]", "ADDED", "v1/configmaps", "wl-beta-db/late"),
    }, example.describe()
    assert not any("plain" in line or "other" in line for line in lines)
    assert "-- 5 workload events: stopping --" in lines
    assert lines[-1] == "-- stopped --"


# ------------------------------------------------------------------------------ flask_app


def get_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_flask_app_lists_recent_events_and_stops_on_sigint(
        cluster: SimulatedCluster, run_example: Callable[..., Example]) -> None:
    pytest.importorskip("flask")
    cluster.create(configmap("before"))
    example = run_example("flask_app.py", "--kubeconfig", cluster.kubeconfig_path,
                          "--config", str(CONFIGS / "namespace-centric.yaml"),
                          "--port", "0", "--max-events", "3")
    line = example.wait_for_line(lambda line: line.startswith("-- serving on http://127.0.0.1:"),
                                 "the serving line")
    base = line.split()[3]
    assert wait_for(lambda: get_json(f"{base}/healthz") == (200, {"ready": True}),
                    "/healthz to answer 200")

    cluster.create(configmap("web"))
    cluster.patch("v1", "ConfigMap", "web", {"data": {"color": "green"}}, namespace="default")
    cluster.create(namespace("team-a"))
    cluster.create(configmap("settings", "team-a"))

    def listed() -> list[tuple[str, str, str]]:
        status, body = get_json(f"{base}/events")
        assert status == 200
        return [(e["eventType"], e.get("namespace", ""), e["name"]) for e in body["events"]]

    # Events of different objects may be handled in any order: compare as sets.
    wait_for(lambda: sorted(listed()) == [("ADDED", "default", "web"),
                                          ("ADDED", "team-a", "settings"),
                                          ("UPDATED", "default", "web")],
             "the three most recent events in /events")
    assert ("ADDED", "default", "before") not in listed()  # only the last --max-events kept
    status, body = get_json(f"{base}/events?limit=1")
    assert status == 200 and len(body["events"]) == 1
    assert body["events"][0]["gvr"] == "v1/configmaps"

    example.process.send_signal(signal.SIGINT)
    assert example.finish() == 0, example.describe()
    assert example.output()[-2:] == ["-- SIGINT: stopping --", "-- stopped --"]


def test_flask_app_says_when_flask_is_missing() -> None:
    code = ("import runpy, sys; sys.modules['flask'] = None; "
            f"runpy.run_path({str(EXAMPLES / 'flask_app.py')!r}, run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    assert "this example needs Flask: pip install flask" in result.stderr
