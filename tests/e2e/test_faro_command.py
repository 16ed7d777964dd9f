"""Black-box end-to-end tests: the ``faro`` command, driven by kubectl, judged by its JSON file.

Each test runs the phases of the Go original's end-to-end suite:

1. start ``faro run`` with a configuration and wait for its ``faro is ready`` line;
2. apply manifests with kubectl, apply them again changed, then delete them;
3. once faro logged the last expected event, stop it with SIGTERM (it must exit 0);
4. load the JSON events file it wrote;
5. compare: every monitored object has exactly ADDED, UPDATED, DELETED, in that order, with the
   uid kubectl saw; unmonitored objects (other namespaces, names, labels, kinds) have none.

The cluster is a TLS simulator shared by the module or, when ``FARO_E2E_KUBECONFIG`` names a
kubeconfig, that real cluster, unchanged: the tests only use uniquely named namespaces, which
they delete, and they look only at the objects they created.
"""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

import faro
from tests.integration.kube import (
    DEADLINE,
    Kubectl,
    LineReader,
    eventually,
    unique,
)

pytestmark = [pytest.mark.kubectl, pytest.mark.e2e, pytest.mark.cluster]

ROOT = Path(faro.__file__).resolve().parent.parent
STARTUP = 30.0 + DEADLINE  # a fresh interpreter imports faro, then lists everything
STOP = 40.0  # faro stops within 30 s; the rest is interpreter exit
SECRET_VALUE = "hunter2-e2e"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

Key = tuple[str, str, str]  # (gvr, namespace or "", name)


def faro_command(tmp_path: Path, kubeconfig: str, config: dict[str, Any],
                 args: Sequence[str] = (), env: Mapping[str, str] | None = None
                 ) -> tuple[list[str], dict[str, str]]:
    """``faro run`` of ``config`` (written to tmp_path) with more ``args``, and its
    environment (``env`` added to ours)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    environ = {**os.environ, **(env or {})}
    environ["PYTHONPATH"] = os.pathsep.join([str(ROOT),
                                             *filter(None, [environ.get("PYTHONPATH")])])
    return ([sys.executable, "-m", "faro", "run", "--config", str(config_path),
             "--output-dir", str(tmp_path / "output"), "--kubeconfig", kubeconfig, *args],
            environ)


class Faro:
    """A running ``faro run`` (stdout and stderr merged, unless ``split``) and what it
    announced."""

    def __init__(self, tmp_path: Path, kubeconfig: str, config: dict[str, Any],
                 args: Sequence[str] = (), env: Mapping[str, str] | None = None, *,
                 split: bool = False) -> None:
        """Start ``faro run`` with ``config`` and more ``args`` (``env`` added to ours);
        with ``split``, stdout and stderr are read apart (the log lines are stderr's)."""
        argv, environ = faro_command(tmp_path, kubeconfig, config, args, env)
        self.config_path = tmp_path / "config.yaml"
        self.output_dir = tmp_path / "output"
        self.split = split
        self.reader = LineReader(argv, env=environ, cwd=tmp_path, merge_stderr=not split,
                                 read_stderr=split)
        self.line(lambda text: "faro is ready" in text, timeout=STARTUP)

    def line(self, predicate: Callable[[str], bool], timeout: float = DEADLINE) -> str:
        """The first log line (already read or still to come) satisfying ``predicate``: of
        the merged output, or of stderr when split."""
        seen = self.reader.stderr_seen if self.split else self.reader.seen
        for text in seen:
            if predicate(text):
                return text
        if self.split:
            return self.reader.wait_for_stderr(predicate, timeout=timeout)
        return self.reader.wait_for(predicate, timeout=timeout)

    def wait_event(self, event_type: str, key: Key) -> None:
        """Wait for the event's log line: ``CONFIG [TYPE] gvr namespace/name (UID: ...)``."""
        gvr, namespace, name = key
        prefix = f"CONFIG [{event_type}] {gvr} {namespace + '/' if namespace else ''}{name} "
        self.line(lambda text: prefix in text)

    def metrics_url(self) -> str:
        line = self.line(lambda text: "serving metrics on http://" in text)
        match = re.search(r"http://[^/\s]+:(\d+)(/\S*)", line)
        assert match is not None, line
        return f"http://127.0.0.1:{match.group(1)}{match.group(2)}"

    def stop(self) -> list[dict[str, Any]]:
        """SIGTERM; assert exit 0; returns the events of the JSON file, in file order."""
        self.reader.process.send_signal(signal.SIGTERM)
        rest = self.reader.rest(timeout=STOP)
        assert self.reader.process.returncode == 0, "\n".join(self.reader.seen + rest)
        files = sorted(self.output_dir.glob("events-*.json"))
        assert len(files) == 1, files
        assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
        return [orjson.loads(line) for line in files[0].read_bytes().splitlines()]

    def close(self) -> None:
        self.reader.close()


@pytest.fixture
def run_faro(tmp_path: Path, kubeconfig: str) -> Iterator[Callable[..., Faro]]:
    """``run_faro(config, *args, split=False)`` starts a :class:`Faro`."""
    started: list[Faro] = []

    def start(config: dict[str, Any], *args: str, split: bool = False) -> Faro:
        started.append(Faro(tmp_path, kubeconfig, config, args, split=split))
        return started[-1]

    yield start
    for process in started:
        process.close()


def manifest(*objects: dict[str, Any]) -> str:
    return yaml.safe_dump_all(objects)


def namespace(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": labels}}


def configmap(name: str, ns: str, version: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "data": {"version": version}}


def secret(name: str, ns: str, version: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": ns, "labels": {"app": "faro-e2e"}},
            "stringData": {"password": SECRET_VALUE, "version": version}}


def service(name: str, ns: str, port: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": {"app": name}, "ports": [{"port": port}]}}


GVR_OF_KIND = {"ConfigMap": "v1/configmaps", "Secret": "v1/secrets", "Service": "v1/services",
               "Namespace": "v1/namespaces"}


def key_of(obj: dict[str, Any]) -> Key:
    metadata = obj["metadata"]
    return GVR_OF_KIND[obj["kind"]], metadata.get("namespace", ""), metadata["name"]


def uid_of(kubectl: Kubectl, key: Key) -> str:
    gvr, ns, name = key
    args = ["get", gvr.rsplit("/", 1)[1], name] + (["-n", ns] if ns else [])
    return str(kubectl.json(*args)["metadata"]["uid"])


def by_object(events: list[dict[str, Any]]) -> dict[Key, list[dict[str, Any]]]:
    grouped: dict[Key, list[dict[str, Any]]] = {}
    for event in events:
        key = (event["gvr"], event.get("namespace", ""), event["name"])
        grouped.setdefault(key, []).append(event)
    return grouped


def compare(events: list[dict[str, Any]], created: list[dict[str, Any]],
            monitored: list[dict[str, Any]], uids: dict[Key, str]
            ) -> dict[Key, list[dict[str, Any]]]:
    """Phase 5: each monitored object has exactly ADDED, UPDATED, DELETED with kubectl's uid
    (and its namespace); the other created objects have no event. Returns events by object."""
    grouped = by_object(events)
    for obj in monitored:
        key = key_of(obj)
        history = grouped.get(key, [])
        assert [e["eventType"] for e in history] == ["ADDED", "UPDATED", "DELETED"], key
        assert {e["uid"] for e in history} == {uids[key]}, key
        assert all(e.get("namespace", "") == key[1] for e in history), key
    for obj in created:
        if obj not in monitored:
            assert key_of(obj) not in grouped, f"unmonitored {key_of(obj)} was reported"
    return grouped


def apply_update_delete(kubectl: Kubectl, created: list[dict[str, Any]],
                        changed: list[dict[str, Any]]) -> dict[Key, str]:
    """Phase 2: apply, apply changed, delete; returns the uid kubectl saw for each object."""
    kubectl.apply(manifest(*created))
    uids = {key_of(obj): uid_of(kubectl, key_of(obj)) for obj in created}
    kubectl.apply(manifest(*changed))
    kubectl.ok("delete", "-f", "-", "--wait=false", stdin=manifest(*created))
    return uids


def test_namespace_centric_config_reports_each_monitored_object_once_per_change(
        kubectl: Kubectl, names: Callable[[str], str],
        run_faro: Callable[[dict[str, Any]], Faro]) -> None:
    ns_a, ns_b, ns_c = names("a"), names("b"), names("c")
    kubectl.apply(manifest(namespace(ns_a), namespace(ns_b), namespace(ns_c)))
    faro_run = run_faro({
        "json_export": True,
        "namespaces": [
            {"name_selector": ns_a, "resources": {
                "v1/configmaps": {"label_selector": "app=faro-e2e"}, "v1/secrets": {}}},
            {"name_selector": ns_b, "resources": {"v1/configmaps": {}}},
        ],
    })

    def objects(version: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        monitored = [configmap("settings", ns_a, version, app="faro-e2e"),
                     secret("creds", ns_a, version),
                     configmap("settings", ns_b, version, app="other")]
        unmonitored = [configmap("other", ns_a, version, app="other"),  # label
                       configmap("settings", ns_c, version, app="faro-e2e"),  # namespace
                       service("web", ns_a, 80 if version == "1" else 81)]  # kind
        return unmonitored + monitored, monitored

    created, monitored = objects("1")
    changed, _ = objects("2")
    uids = apply_update_delete(kubectl, created, changed)
    for obj in monitored:
        faro_run.wait_event("DELETED", key_of(obj))
    events = faro_run.stop()

    grouped = compare(events, created, monitored, uids)
    assert all("initial" not in e and "finalStateUnknown" not in e
               for obj in monitored for e in grouped[key_of(obj)])

    # The secret's values appear nowhere: not as data, not in kubectl's last-applied annotation
    # (which the ConfigMaps keep).
    secret_events = grouped[("v1/secrets", ns_a, "creds")]
    assert all(LAST_APPLIED not in e["annotations"] for e in secret_events)
    assert all(LAST_APPLIED in e["annotations"] for e in grouped[key_of(monitored[0])])
    assert SECRET_VALUE not in orjson.dumps(events).decode()
    assert all(set(e) <= {"timestamp", "eventType", "gvr", "namespace", "name", "uid",
                          "resourceVersion", "labels", "annotations", "initial",
                          "finalStateUnknown"} for e in events)

    # The same events went to the log file, one line each.
    [log_file] = (faro_run.output_dir / "logs").glob("faro-*.log")
    log = log_file.read_text()
    for obj in monitored:
        gvr, ns, name = key_of(obj)
        for event_type in ("ADDED", "UPDATED", "DELETED"):
            assert log.count(f"CONFIG [{event_type}] {gvr} {ns}/{name} ") == 1


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    with urllib.request.urlopen(url, timeout=DEADLINE) as response:
        text = response.read().decode()
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(samples: dict[str, list[tuple[dict[str, str], float]]], metric: str, /,
          **labels: str) -> float:
    return sum(v for found, v in samples.get(metric, [])
               if all(found.get(k) == want for k, want in labels.items()))


def test_resource_centric_config_with_selectors_cluster_scope_and_metrics(
        kubectl: Kubectl, names: Callable[[str], str],
        run_faro: Callable[[dict[str, Any]], Faro]) -> None:
    run = unique("run")
    ns_a, ns_b, ns_c, ns_x = names("a"), names("b"), names("c"), names("x")
    faro_run = run_faro({
        "json_export": True,
        "metrics": {"enabled": True, "port": 0, "bind_addr": "127.0.0.1"},
        "resources": [
            {"gvr": "v1/namespaces", "label_selector": f"faro-e2e={run}"},
            {"gvr": "v1/configmaps", "namespace_names": [ns_a, ns_b],
             "field_selector": "metadata.name=target"},
            {"gvr": "v1/configmaps", "namespace_names": [ns_c], "name_selector": "web-.*"},
        ],
    })
    metrics_url = faro_run.metrics_url()
    base_url = metrics_url.rsplit("/", 1)[0]

    monitored_namespaces = [namespace(ns, **{"faro-e2e": run}) for ns in (ns_a, ns_b, ns_c)]
    kubectl.apply(manifest(*monitored_namespaces, namespace(ns_x)))  # ns_x: label
    ns_uids = {key_of(ns): uid_of(kubectl, key_of(ns)) for ns in monitored_namespaces}

    def objects(version: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        monitored = [configmap("target", ns_a, version), configmap("target", ns_b, version),
                     configmap("web-1", ns_c, version)]
        unmonitored = [configmap("other", ns_a, version),  # field selector
                       configmap("api-1", ns_c, version),  # name pattern
                       configmap("target", ns_x, version)]  # namespace
        return unmonitored + monitored, monitored

    created, monitored = objects("1")
    changed, _ = objects("2")
    kubectl.apply(manifest(*created))
    uids = {key_of(obj): uid_of(kubectl, key_of(obj)) for obj in created}
    for obj in monitored:
        faro_run.wait_event("ADDED", key_of(obj))

    # Scraped while it runs: what it saw so far, its informers, its queue and its probes.
    samples = scrape(metrics_url)
    assert value(samples, "faro_events_total", gvr="v1/configmaps", event_type="ADDED") >= 3
    assert value(samples, "faro_events_filtered_total", gvr="v1/configmaps") >= 1  # api-1
    # namespaces; configmaps of ns_a and ns_b (one shared informer); configmaps of ns_c
    assert value(samples, "faro_informers", status="active") >= 3
    assert value(samples, "faro_informers", status="failed") == 0
    health = samples["faro_informer_health"]
    assert health and all(v == 1 for _, v in health)
    assert value(samples, "faro_tracked_resources", gvr="v1/namespaces") >= 3
    assert value(samples, "workqueue_adds_total", name="faro") >= 6
    labels = {v for series in samples.values() for found, _ in series for v in found.values()}
    assert not labels & ({"target", "web-1", "api-1"} | set(uids.values()))
    for probe in ("healthz", "readyz"):
        with urllib.request.urlopen(f"{base_url}/{probe}", timeout=DEADLINE) as response:
            assert response.status == 200

    kubectl.apply(manifest(*changed))
    kubectl.ok("label", "namespace", ns_a, ns_b, ns_c, "phase=updated")
    kubectl.ok("delete", "-f", "-", "--wait=false", stdin=manifest(*created))
    for obj in monitored:
        faro_run.wait_event("DELETED", key_of(obj))
    kubectl.ok("delete", "namespace", ns_a, ns_b, ns_c, ns_x, "--wait=false")
    for ns in monitored_namespaces:
        faro_run.wait_event("DELETED", key_of(ns))
    events = faro_run.stop()

    grouped = compare(events, created, monitored, uids)
    # A namespace is cluster-scoped (no "namespace" field). Deleting one updates it (it turns
    # Terminating) before it is gone, so: ADDED, our label change, the deletion's updates,
    # DELETED.
    for ns in monitored_namespaces:
        key = key_of(ns)
        history = grouped.get(key, [])
        types = [e["eventType"] for e in history]
        assert types[0] == "ADDED" and types[-1] == "DELETED", (key, types)
        assert len(types) >= 3 and set(types[1:-1]) == {"UPDATED"}, (key, types)
        assert history[1]["labels"].get("phase") == "updated", history[1]
        assert all("namespace" not in e and e["uid"] == ns_uids[key] for e in history)
    assert ("v1/namespaces", "", ns_x) not in grouped


def test_kill_9_leaves_whole_lines_and_loses_nothing_flushed(
        kubectl: Kubectl, names: Callable[[str], str],
        run_faro: Callable[[dict[str, Any]], Faro]) -> None:
    """Lines are written in batches at most 0.1 s after their event: a ``faro run`` killed
    with SIGKILL (no stop, no flush) leaves a file of whole lines, every event in it."""
    ns = names("kill")
    kubectl.apply(manifest(namespace(ns)))
    faro_run = run_faro({"json_export": True,
                         "namespaces": [{"name_selector": ns,
                                         "resources": {"v1/configmaps": {}}}]})
    created = [configmap(f"cm-{number:02}", ns, "1") for number in range(40)]
    kubectl.apply(manifest(*created))
    for obj in created:
        faro_run.wait_event("ADDED", key_of(obj))
    files = sorted(faro_run.output_dir.glob("events-*.json"))
    assert len(files) == 1, files

    def names_in_file() -> set[str]:
        return {orjson.loads(line)["name"] for line in files[0].read_bytes().splitlines()
                if line.strip()}

    wanted = {obj["metadata"]["name"] for obj in created}
    eventually(lambda: wanted <= names_in_file(), "every event's line in the file")
    faro_run.reader.process.send_signal(signal.SIGKILL)
    faro_run.reader.process.wait(timeout=DEADLINE)
    data = files[0].read_bytes()
    assert data.endswith(b"\n")
    lines = [orjson.loads(line) for line in data.splitlines()]  # every line whole
    # Only the test's own objects (a real cluster adds kube-root-ca.crt to every namespace).
    mine = [line for line in lines if line["namespace"] == ns and line["name"] in wanted]
    assert sorted(line["name"] for line in mine) == sorted(wanted)  # once each


# ------------------------------------------------------------------ --output stdout

EVENT_KEYS = {"timestamp": str, "eventType": str, "gvr": str, "namespace": str, "name": str,
              "uid": str, "resourceVersion": str, "labels": dict, "annotations": dict,
              "initial": bool, "finalStateUnknown": bool}
REQUIRED_KEYS = ("timestamp", "eventType", "gvr", "name", "uid", "resourceVersion", "labels",
                 "annotations")


def event_line(line: str) -> dict[str, Any]:
    """One JSON event line as the export writes it (docs/export.md): compact JSON, its keys
    in the documented order and of the documented types; the event."""
    event: dict[str, Any] = orjson.loads(line)
    assert orjson.dumps(event).decode() == line, f"not as the export writes it: {line}"
    assert all(key in event for key in REQUIRED_KEYS), line
    assert list(event) == [key for key in EVENT_KEYS if key in event], line
    assert all(isinstance(value, EVENT_KEYS[key]) for key, value in event.items()), line
    assert event["eventType"] in ("ADDED", "UPDATED", "DELETED"), line
    return event


def test_output_stdout_writes_the_event_lines_to_stdout_and_only_the_logs_to_stderr(
        kubectl: Kubectl, names: Callable[[str], str],
        run_faro: Callable[..., Faro]) -> None:
    """``--output stdout`` (without json_export in the file: the flag implies it): stdout has
    nothing but whole JSON event lines, the lines the file would have, every one of them
    even when faro is stopped right after the last event (the lines of its last batch are
    written at the stop); the logs are on stderr; no events file is written."""
    ns = names("stdout")
    kubectl.apply(manifest(namespace(ns)))
    faro_run = run_faro({"namespaces": [{"name_selector": ns,
                                         "resources": {"v1/configmaps": {}}}]},
                        "--output", "stdout", split=True)
    faro_run.line(lambda text: "writing matched events as JSON lines to standard output" in text)
    created = [configmap(f"cm-{number:02}", ns, "1", app="faro-e2e") for number in range(30)]
    changed = [configmap(f"cm-{number:02}", ns, "2", app="faro-e2e") for number in range(30)]
    uids = apply_update_delete(kubectl, created, changed)
    for obj in created:
        faro_run.wait_event("DELETED", key_of(obj))
    faro_run.reader.process.send_signal(signal.SIGTERM)  # at once: lines may still be batched
    stdout = faro_run.reader.seen + faro_run.reader.rest(timeout=STOP)
    stderr = faro_run.reader.stderr_seen + faro_run.reader.stderr_rest(timeout=STOP)
    assert faro_run.reader.process.returncode == 0, "\n".join(stderr)

    events = [event_line(line) for line in stdout]  # every line of stdout is an event line
    compare(events, created, created, uids)
    # The same events were logged, on stderr, and no event line went there.
    for obj in created:
        _, _, name = key_of(obj)
        for event_type in ("ADDED", "UPDATED", "DELETED"):
            assert sum(f"CONFIG [{event_type}] v1/configmaps {ns}/{name} " in line
                       for line in stderr) == 1, (event_type, name)
    assert not any(line.lstrip().startswith("{") for line in stderr)
    assert any("faro is ready" in line for line in stderr)
    assert stderr[-1].endswith("faro stopped"), stderr[-3:]
    assert not list(faro_run.output_dir.glob("events-*.json"))
    assert list((faro_run.output_dir / "logs").glob("faro-*.log"))


def test_output_stdout_stops_faro_when_the_reader_closes_it(
        kubectl: Kubectl, names: Callable[[str], str], tmp_path: Path, kubeconfig: str) -> None:
    """``faro run --output stdout | head``: once the reader closes the pipe nothing faro
    writes can arrive, so it stops (exit 1), saying why on stderr."""
    ns = names("closed")
    kubectl.apply(manifest(namespace(ns), configmap("cm", ns, "1")))
    argv, env = faro_command(tmp_path, kubeconfig, {"namespaces": [
        {"name_selector": ns, "resources": {"v1/configmaps": {}}}]}, ["--output", "stdout"])
    log = tmp_path / "stderr.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr, env=env,
                                   cwd=tmp_path)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # as `head -n 1` reads: the ADDED of cm
        assert event_line(first.decode().rstrip("\n"))["name"] == "cm"
        eventually(lambda: "faro is ready" in log.read_text(), "faro is ready", STARTUP)
        process.stdout.close()
        process.wait(timeout=STOP)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = log.read_text()
    assert process.returncode == 1, text
    assert "standard output was closed by its reader" in text
    assert text.rstrip().endswith("faro stopped"), text[-2000:]
