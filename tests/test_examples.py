"""The examples run as their docstrings say, against a cluster.

Each test runs an example as a user would (``python examples/X.py --kubeconfig ...``),
changes objects in the cluster, and checks what a user would notice: the lines it prints,
what it did to the cluster, what it sent to a local HTTP endpoint. Every wait is on a
condition with a deadline.

The tests marked ``cluster`` reach the cluster only through a kubeconfig (the examples, and
:class:`Cluster`, which writes through the official client): a TLS ``SimulatedCluster`` by
default, or unchanged the real cluster of ``FARO_E2E_KUBECONFIG`` (``make test-real``). A real
cluster is shared and has objects of its own (a ``kube-root-ca.crt`` ConfigMap in every
namespace, other runs' namespaces), so these tests give what they create unique names, judge
only the events of those objects, and delete them at the end.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
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
from kubernetes import config, dynamic
from kubernetes.dynamic.exceptions import ConflictError, NotFoundError

from tests.integration.kube import LineReader, eventually, target_kubeconfig, unique

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CONFIGS = EXAMPLES / "configs"
DEADLINE = 60.0  # seconds; generous: interpreter and client start are slow on CI machines,
# and a real cluster takes seconds to delete a namespace


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
    return eventually(condition, what, timeout)


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


class Cluster:
    """Creates, changes, reads and deletes objects through a kubeconfig, as any client does.

    The official client's ``DynamicClient``: the same calls drive the simulator and a real
    cluster. It remembers what it created: ``created`` holds their keys as faro prints them
    (``namespace/name``, or the name of a cluster-scoped object), and :meth:`close` deletes
    them, newest first (a namespace's objects before the namespace, which is not waited for).
    """

    def __init__(self, kubeconfig: str, cache_dir: Path) -> None:
        self.kubeconfig_path = kubeconfig
        self._api = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig)
        self._client = dynamic.DynamicClient(  # type: ignore[no-untyped-call]
            self._api, cache_file=str(cache_dir / "discovery.json"))
        self._made: list[tuple[str, str, str, str | None]] = []

    def _resource(self, api_version: str, kind: str) -> Any:
        return self._client.resources.get(api_version=api_version, kind=kind)

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        metadata = obj["metadata"]
        made = self._resource(obj["apiVersion"], obj["kind"]).create(
            body=obj, namespace=metadata.get("namespace"))
        self._made.append((obj["apiVersion"], obj["kind"], metadata["name"],
                           metadata.get("namespace")))
        return made.to_dict()  # type: ignore[no-any-return]

    def get(self, api_version: str, kind: str, name: str,
            namespace: str | None = None) -> dict[str, Any]:
        return self._resource(api_version, kind).get(  # type: ignore[no-any-return]
            name=name, namespace=namespace).to_dict()

    def patch(self, api_version: str, kind: str, name: str, patch: dict[str, Any],
              namespace: str | None = None) -> dict[str, Any]:
        """A JSON merge patch."""
        return self._resource(api_version, kind).patch(  # type: ignore[no-any-return]
            body=patch, name=name, namespace=namespace,
            content_type="application/merge-patch+json").to_dict()

    def delete(self, api_version: str, kind: str, name: str,
               namespace: str | None = None) -> None:
        self._resource(api_version, kind).delete(name=name, namespace=namespace)

    @property
    def created(self) -> set[str]:
        return {f"{namespace}/{name}" if namespace else name
                for _, _, name, namespace in self._made}

    def published_configmaps(self) -> set[str]:
        """The names of the ConfigMaps the cluster itself puts into every namespace.

        A real cluster's root-CA publisher adds ``kube-root-ca.crt`` to each namespace as
        it appears; the simulator adds none. They are the ones all built-in namespaces have.
        """
        configmaps = self._resource("v1", "ConfigMap")
        return set.intersection(*({item.metadata.name for item in
                                   configmaps.get(namespace=namespace).items}
                                  for namespace in ("default", "kube-system", "kube-public",
                                                    "kube-node-lease")))

    def close(self) -> None:
        try:
            for api_version, kind, name, namespace in reversed(self._made):
                # Gone already: the test deleted it (409: a namespace still terminating).
                with contextlib.suppress(NotFoundError, ConflictError):
                    self.delete(api_version, kind, name, namespace)
        finally:
            self._api.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """The cluster under test (a TLS simulator, or FARO_E2E_KUBECONFIG's); cleaned up after.

    Tests list it before ``run_example``, so that examples are stopped before it goes.
    """
    with target_kubeconfig() as kubeconfig:
        writer = Cluster(kubeconfig, tmp_path)
        try:
            yield writer
        finally:
            writer.close()


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


def event_lines(lines: list[str], keys: set[str]) -> set[tuple[str, str, str]]:
    """(type, resource, key) of every event line an example printed about one of ``keys``."""
    return {(parts[0], parts[1], parts[2]) for parts in (line.split() for line in lines)
            if len(parts) >= 3 and parts[0] in ("ADDED", "UPDATED", "DELETED")
            and parts[2] in keys}


# ------------------------------------------------------------------------------ configs


@pytest.mark.parametrize("name", ["namespace-centric", "resource-centric", "with-metrics"])
def test_each_example_configuration_passes_faro_validate(name: str) -> None:
    result = subprocess.run([sys.executable, "-m", "faro", "validate",
                             str(CONFIGS / f"{name}.yaml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert ": valid:" in result.stdout


# ------------------------------------------------------------------------ library_usage


@pytest.mark.cluster
def test_library_usage_prints_each_matched_event(
        cluster: Cluster, run_example: Callable[..., Example]) -> None:
    # The configuration watches ConfigMaps in default and team-.*, Deployments with an 'app'
    # label in default, and team-.* namespaces. A real cluster has objects of its own there:
    # only the events of what this test creates are judged, and it ends with SIGINT.
    before, web, unlabelled, api = (unique(name) for name in ("before", "web", "unlabelled",
                                                               "api"))
    team, sandbox = unique("team"), unique("sandbox")
    cluster.create(configmap(before))  # exists before start: an initial ADDED
    example = run_example("library_usage.py", "--kubeconfig", cluster.kubeconfig_path,
                          "--config", str(CONFIGS / "resource-centric.yaml"))
    ready = example.wait_for_line(lambda line: line.startswith("-- faro is ready:"),
                                  "the ready line")
    cluster.create(configmap(web))
    cluster.patch("v1", "ConfigMap", web, {"data": {"color": "green"}}, namespace="default")
    cluster.create(deployment(unlabelled))  # no 'app' label: the server filters
    cluster.create(deployment(api, app="api"))
    cluster.create(namespace(team))  # matches 'team-.*': watched from now on
    cluster.create(namespace(sandbox))  # does not match
    example.wait_for_line(lambda line: "v1/namespaces" in line and team in line,
                          f"namespace {team}")
    cluster.create(configmap("settings", team))
    cluster.delete("v1", "ConfigMap", web, namespace="default")
    expected = {
        ("ADDED", "v1/configmaps", f"default/{before}"),
        ("ADDED", "v1/configmaps", f"default/{web}"),
        ("UPDATED", "v1/configmaps", f"default/{web}"),
        ("DELETED", "v1/configmaps", f"default/{web}"),
        ("ADDED", "apps/v1/deployments", f"default/{api}"),
        ("ADDED", "v1/namespaces", team),
        ("ADDED", "v1/configmaps", f"{team}/settings"),
    }
    wait_for(lambda: expected <= event_lines(example.output(), cluster.created),
             "an event line for each change")
    example.process.send_signal(signal.SIGINT)
    assert example.finish() == 0, example.describe()

    lines = example.output()
    assert event_lines(lines, cluster.created) == expected, example.describe()
    assert any(f"default/{before}" in line and "(existed before start)" in line
               for line in lines)
    # Informers for default's ConfigMaps and Deployments, for the namespaces, and one for
    # the ConfigMaps of each team-.* namespace there was at start (a real cluster may have
    # some: other runs', or still terminating).
    teams = sum(line.split()[1] == "v1/namespaces" and "(existed before start)" in line
                for line in lines if line.startswith("ADDED"))
    assert ready == f"-- faro is ready: {3 + teams} informers --", example.describe()
    assert "-- SIGINT: stopping --" in lines
    assert lines[-1] == "-- stopped --"


@pytest.mark.cluster
def test_library_usage_stops_cleanly_on_sigint(cluster: Cluster,
                                               run_example: Callable[..., Example]) -> None:
    web = unique("web")
    example = run_example("library_usage.py", "--kubeconfig", cluster.kubeconfig_path,
                          "--config", str(CONFIGS / "namespace-centric.yaml"))
    example.wait_for_line(lambda line: line.startswith("-- faro is ready"), "the ready line")
    cluster.create(configmap(web))
    example.wait_for_line(lambda line: line.startswith("ADDED") and f"default/{web}" in line,
                          f"the ADDED line of default/{web}")
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


@pytest.mark.cluster
def test_worker_dispatcher_annotates_configmaps_once_and_posts_notifications(
        cluster: Cluster, receiver: Receiver, run_example: Callable[..., Example]) -> None:
    def digest(data: dict[str, str]) -> str:
        content = json.dumps({"data": data, "binaryData": {}}, sort_keys=True)
        return hashlib.sha256(content.encode()).hexdigest()

    # It annotates every ConfigMap of --namespace and announces namespaces matching
    # --namespace-pattern: both are this test's own. The ConfigMaps the cluster puts into
    # the namespace by itself (kube-root-ca.crt on a real one) are handled too: each is
    # ADDED (annotated) and UPDATED (skipped), two more events before it stops.
    configmaps, team, sandbox = unique("dispatch"), unique("team"), unique("sandbox")
    cluster.create(namespace(configmaps))
    web = f"{configmaps}/web"
    published = cluster.published_configmaps()
    events = 6 + 2 * len(published)
    example = run_example("worker_dispatcher.py", "--kubeconfig", cluster.kubeconfig_path,
                          "--namespace", configmaps, "--namespace-pattern", f"{team}.*",
                          "--notify-url", receiver.url, "--exit-after-events", str(events))
    example.wait_for_line(lambda line: line.startswith("-- ready: workers"), "the ready line")

    def about_web(prefix: str) -> list[str]:
        return [line for line in example.output()
                if line.startswith(prefix) and line.split()[1].rstrip(":") == web]

    # ADDED -> the worker annotates; its own change comes back as UPDATED and is skipped.
    cluster.create(configmap("web", configmaps))
    example.wait_for_line(lambda line: line.startswith("SKIP") and web in line,
                          "the worker skipping its own annotation")
    annotations = cluster.get("v1", "ConfigMap", "web", configmaps)["metadata"]["annotations"]
    assert annotations["faro.example/data-sha256"] == digest({"color": "blue"})

    # The data changes: a new digest, written once.
    cluster.patch("v1", "ConfigMap", "web", {"data": {"color": "green"}}, namespace=configmaps)
    wait_for(lambda: len(about_web("SKIP")) == 2, "the second skip")
    annotations = cluster.get("v1", "ConfigMap", "web", configmaps)["metadata"]["annotations"]
    assert annotations["faro.example/data-sha256"] == digest({"color": "green"})

    cluster.create(namespace(team))
    cluster.create(namespace(sandbox))  # does not match the pattern: never dispatched
    cluster.delete("v1", "ConfigMap", "web", namespace=configmaps)
    assert example.finish() == 0, example.describe()

    lines = example.output()
    assert len(about_web("ANNOTATED")) == 2, example.describe()  # no loop on its own UPDATEs
    assert sum(line.startswith("ANNOTATED") for line in lines) == 2 + len(published)
    assert f"-- {events} events handled: stopping --" in lines
    assert lines[-1] == "-- stopped --"
    assert not any(sandbox in line for line in lines)

    bodies = receiver.received()
    assert set(receiver.paths) == {"/hooks/faro"}
    about_web_bodies = [b for b in bodies if b["resource"] == "v1/configmaps" and b["key"] == web]
    assert [(b["action"], b["key"]) for b in about_web_bodies] == [
        ("configmap-annotated", web),
        ("configmap-annotated", web),
        ("configmap-deleted", web),
    ]
    assert [b["digest"] for b in about_web_bodies if b["action"] == "configmap-annotated"] == [
        digest({"color": "blue"}), digest({"color": "green"})]
    namespaces = [b for b in bodies if b["resource"] == "v1/namespaces"]
    assert [(b["action"], b["key"], b["phase"]) for b in namespaces] == [
        ("namespace-added", team, "Active")]


# ----------------------------------------------------------------------- workload_monitor


@pytest.mark.cluster
def test_workload_monitor_adds_and_removes_informers_as_workload_namespaces_come_and_go(
        cluster: Cluster, run_example: Callable[..., Example]) -> None:
    # Workload namespaces carry a label value of this test's own, so that no other
    # namespace of a shared cluster is taken for one.
    run = unique("run")
    alpha, beta = unique("wl-alpha"), unique("wl-beta-db")  # workloads alpha and beta
    plain, other = unique("plain"), unique("other")
    cluster.create(namespace(alpha, workload=run))  # a workload before start
    cluster.create(configmap("config", alpha))
    cluster.create(namespace(plain))  # no label: never a workload
    cluster.create(configmap("ignored", plain))
    example = run_example("workload_monitor.py", "--kubeconfig", cluster.kubeconfig_path,
                          "--label", f"workload={run}", "--id-regex", "^wl-([a-z0-9]+)")
    example.wait_for_line(lambda line: line.startswith("WORKLOAD alpha: watching "
                                                       "v1/configmaps, apps/v1/deployments in "
                                                       f"namespace {alpha} "),
                          "workload alpha found at start")
    example.wait_for_line(lambda line: line.startswith("[alpha] ADDED") and
                          f"{alpha}/config  (existed before)" in line,
                          "the existing ConfigMap of workload alpha")

    # A workload namespace created after start: informers are added to the running controller.
    cluster.create(namespace(beta, workload=run))
    line = example.wait_for_line(lambda line: line.startswith("WORKLOAD beta:"),
                                 "workload beta found at runtime")
    # Two namespaces with the same selectors: one shared informer per resource.
    assert line.endswith(f"in namespace {beta} (informers: 1 configured + 2 added at "
                         "runtime)"), line
    cluster.create(deployment("api", beta))
    cluster.create(configmap("cfg", beta))
    cluster.create(namespace(other))
    cluster.create(configmap("x", other))
    example.wait_for_line(lambda line: line.startswith("[beta] ADDED") and f"{beta}/cfg"
                          in line, "the ConfigMap of workload beta")

    # The namespace goes away: its informers are removed.
    cluster.delete("v1", "ConfigMap", "config", namespace=alpha)
    cluster.delete("v1", "Namespace", alpha)
    line = example.wait_for_line(lambda line: line.startswith(f"WORKLOAD alpha: namespace "
                                                              f"{alpha} is gone"),
                                 "workload alpha removed")
    assert line.endswith("(informers: 1 configured + 2 added at runtime)"), line
    cluster.create(configmap("late", beta))
    example.wait_for_line(lambda line: line.startswith("[beta] ADDED") and f"{beta}/late"
                          in line, "the last ConfigMap of workload beta")
    # Ended by a signal, not --exit-after-events (worker_dispatcher's test covers that): the
    # ConfigMaps a real cluster publishes into every namespace (kube-root-ca.crt) are workload
    # events too, and whether alpha's DELETED one arrives before faro stops watching alpha is
    # a race between two watches that no count can wait for.
    example.process.send_signal(signal.SIGINT)
    assert example.finish() == 0, example.describe()

    lines = example.output()
    workload_lines = [tuple(line.split()[:4]) for line in lines if line.startswith("[")]
    assert {line for line in workload_lines if line[3] in cluster.created} == {
        ("[alpha]", "ADDED", "v1/configmaps", f"{alpha}/config"),
        ("[alpha]", "DELETED", "v1/configmaps", f"{alpha}/config"),
        ("[beta]", "ADDED", "apps/v1/deployments", f"{beta}/api"),
        ("[beta]", "ADDED", "v1/configmaps", f"{beta}/cfg"),
        ("[beta]", "ADDED", "v1/configmaps", f"{beta}/late"),
    }, example.describe()
    assert not any(plain in line or other in line for line in lines)
    assert "-- SIGINT: stopping --" in lines
    assert lines[-1] == "-- stopped --"


# ------------------------------------------------------------------------------ flask_app


def get_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.cluster
def test_flask_app_lists_recent_events_and_stops_on_sigint(
        cluster: Cluster, run_example: Callable[..., Example]) -> None:
    pytest.importorskip("flask")
    before, web, team = unique("before"), unique("web"), unique("team")
    cluster.create(configmap(before))
    example = run_example("flask_app.py", "--kubeconfig", cluster.kubeconfig_path,
                          "--config", str(CONFIGS / "namespace-centric.yaml"),
                          "--port", "0", "--max-events", "3")
    line = example.wait_for_line(lambda line: line.startswith("-- serving on http://127.0.0.1:"),
                                 "the serving line")
    base = line.split()[3]
    assert wait_for(lambda: get_json(f"{base}/healthz") == (200, {"ready": True}),
                    "/healthz to answer 200")

    cluster.create(configmap(web))
    cluster.patch("v1", "ConfigMap", web, {"data": {"color": "green"}}, namespace="default")
    cluster.create(namespace(team))
    cluster.create(configmap("settings", team))

    def listed() -> list[tuple[str, str, str]]:
        status, body = get_json(f"{base}/events")
        assert status == 200
        return [(e["eventType"], e.get("namespace", ""), e["name"]) for e in body["events"]]

    # Events of different objects may be handled in any order: compare as sets.
    wait_for(lambda: sorted(listed()) == [("ADDED", "default", web),
                                          ("ADDED", team, "settings"),
                                          ("UPDATED", "default", web)],
             "the three most recent events in /events")
    assert ("ADDED", "default", before) not in listed()  # only the last --max-events kept
    status, body = get_json(f"{base}/events?limit=1")
    assert status == 200 and len(body["events"]) == 1
    assert body["events"][0]["gvr"] == "v1/configmaps"

    example.process.send_signal(signal.SIGINT)
    assert example.finish() == 0, example.describe()
    assert example.output()[-2:] == ["-- SIGINT: stopping --", "-- stopped --"]


def example_env(cluster: Cluster) -> dict[str, str]:
    """The environment a served example runs in: the cluster under test, the namespace-centric
    configuration, faro from this checkout."""
    return {**os.environ, "KUBECONFIG": cluster.kubeconfig_path, "PYTHONUNBUFFERED": "1",
            "FARO_CONFIG": str(CONFIGS / "namespace-centric.yaml"),
            "PYTHONPATH": os.pathsep.join([str(EXAMPLES.parent),
                                           *filter(None, [os.environ.get("PYTHONPATH")])])}


def each_gunicorn_worker_sees_a_new_object(cluster: Cluster, cwd: Path, *args: str) -> None:
    """Run ``gunicorn -w 2 ARGS``: every worker, each with a controller of its own, must list
    an object created through the API in ``/events`` (which names the worker's pid); SIGTERM
    to the master then ends every process within seconds, cleanly."""
    web = unique("web")
    server = LineReader([sys.executable, "-m", "gunicorn", "-w", "2", "-b", "127.0.0.1:0",
                         "--graceful-timeout", "20", *args],
                        env=example_env(cluster), cwd=cwd, merge_stderr=True)
    try:
        line = server.wait_for(lambda text: "Listening at: http://127.0.0.1:" in text)
        base = line.split("Listening at: ")[1].split()[0]
        booted = {int(text.rsplit(" ", 1)[1]) for text in
                  [server.wait_for(lambda text: "Booting worker with pid" in text)
                   for _ in range(2)]}
        cluster.create(configmap(web))
        seen: dict[int, bool] = {}

        def both_workers_list_it() -> bool:
            status, body = get_json(f"{base}/events")
            assert status == 200
            seen[body["pid"]] = seen.get(body["pid"], False) or any(
                e["name"] == web for e in body["events"])
            return len(seen) == 2 and all(seen.values())

        wait_for(both_workers_list_it, "both workers listing the new ConfigMap")
        assert set(seen) == booted  # the two workers, each with its own controller
        server.process.send_signal(signal.SIGTERM)
        began = time.monotonic()
        rest = server.rest(timeout=DEADLINE)
        assert server.process.returncode == 0, rest
        assert time.monotonic() - began < 10, rest
        # No worker left behind (the master reaps them before it exits).
        assert not [pid for pid in booted if Path(f"/proc/{pid}").exists()]
        assert not any("Traceback" in text for text in server.seen + rest), rest
    finally:
        server.close()


@pytest.mark.cluster
def test_flask_app_under_gunicorn_runs_a_controller_in_each_worker(
        cluster: Cluster, tmp_path: Path) -> None:
    """gunicorn forks its workers, then each one calls ``wsgi()``: every worker has a
    controller of its own, and they all stop with the workers."""
    pytest.importorskip("flask")
    pytest.importorskip("gunicorn")
    each_gunicorn_worker_sees_a_new_object(cluster, tmp_path, "--chdir", str(EXAMPLES),
                                           "flask_app:wsgi()")


# ------------------------------------------------------------------------------ django_app

DJANGO_APP = EXAMPLES / "django_app"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.cluster
def test_django_app_under_runserver_starts_one_controller_despite_the_autoreloader(
        cluster: Cluster, tmp_path: Path) -> None:
    pytest.importorskip("django")
    web = unique("web")
    port = free_port()
    server = LineReader([sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}"],
                        env=example_env(cluster), cwd=DJANGO_APP, merge_stderr=True)
    try:
        base = f"http://127.0.0.1:{port}"
        server.wait_for(lambda text: f"Starting development server at {base}/" in text)
        wait_for(lambda: get_json(f"{base}/readyz")[0] == 200, "/readyz to answer 200")
        cluster.create(configmap(web))
        wait_for(lambda: any(e["name"] == web for e in get_json(f"{base}/events")[1]["events"]),
                 "the new ConfigMap in /events")
        # ready() ran in the autoreloader's parent too: only the serving child started one.
        started = [text for text in server.seen if "faro controller started in process" in text]
        assert len(started) == 1, server.seen
        child = get_json(f"{base}/events")[1]["pid"]
        assert started[0].endswith(str(child))
        server.process.send_signal(signal.SIGTERM)
        server.rest(timeout=DEADLINE)
        # The serving child ends with the autoreloader: no process left behind.
        wait_for(lambda: not Path(f"/proc/{child}").exists(), "the serving child's exit",
                 timeout=10)
        assert not any("Traceback" in text for text in server.seen), server.seen
    finally:
        server.close()


@pytest.mark.cluster
def test_django_app_under_gunicorn_runs_a_controller_in_each_worker(
        cluster: Cluster) -> None:
    pytest.importorskip("django")
    pytest.importorskip("gunicorn")
    each_gunicorn_worker_sees_a_new_object(cluster, DJANGO_APP, "faroproject.wsgi")


def test_flask_app_says_when_flask_is_missing() -> None:
    code = ("import runpy, sys; sys.modules['flask'] = None; "
            f"runpy.run_path({str(EXAMPLES / 'flask_app.py')!r}, run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    assert "this example needs Flask: pip install flask" in result.stderr
