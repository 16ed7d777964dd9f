"""What a user of the Go original (T0MASD/faro) brings to faro: its configurations, its names.

The three configurations are copied verbatim from the Go original's README: "Namespace-Centric
Configuration" and "Resource-Centric Configuration" (shared with tests/unit/test_config.py)
and the operator's ConfigMap under "Operator Deployment". Each is written to a file and read
with ``load_config``, as ``faro run --config`` reads it. The Go original's end-to-end
configurations also write ``scope`` in lower case (``scope: "cluster"``);
``GO_STYLE_LOWER_CASE_SCOPE`` is one in that style. The rest shows what the original's users
will find renamed, added or dropped (docs/differences.md cites these tests).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest

from faro import Config, ConfigError, Controller, event_record, load_config
from faro.config import MetricsConfig, NormalizedConfig
from faro.gvr import GroupVersionResource
from faro.metrics import ControllerMetrics
from faro.testing import SimulatedCluster
from tests.integration.controller_helpers import Controllers, Events, controllers
from tests.integration.helpers import configmap
from tests.unit.test_config import README_NAMESPACE_CENTRIC, README_RESOURCE_CENTRIC

__all__ = ["controllers"]

PODS = GroupVersionResource("", "v1", "pods")
SERVICES = GroupVersionResource("", "v1", "services")
CONFIGMAPS = GroupVersionResource("", "v1", "configmaps")
NAMESPACES = GroupVersionResource("", "v1", "namespaces")
DEPLOYMENTS = GroupVersionResource("apps", "v1", "deployments")
JOBS = GroupVersionResource("batch", "v1", "jobs")
CRONJOBS = GroupVersionResource("batch", "v1", "cronjobs")
SECRETS = GroupVersionResource("", "v1", "secrets")

# --------------------------------------------------------------------- verbatim, from the README

# The README's blank lines inside config.yaml hold four spaces; kept, written as "\x20".
README_OPERATOR_CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: faro-operator-config
  namespace: faro-system
data:
  config.yaml: |
    output_dir: "/var/faro/events"
    log_level: "info"
    auto_shutdown_sec: 0
    json_export: true
\x20\x20\x20\x20
    metrics:
      enabled: true
      port: 8080
      path: "/metrics"
\x20\x20\x20\x20
    namespaces:
      - name_selector: "production"
        resources:
          "v1/pods": {}
          "v1/services": {}
          "apps/v1/deployments": {}
"""

# ------------------------------------------------------------ in the style of the Go e2e configs

GO_STYLE_LOWER_CASE_SCOPE = """\
# Namespaces by exact name, and what runs in them
output_dir: "./logs/scopes"
log_level: "debug"
auto_shutdown_sec: 120
json_export: true

resources:
  - gvr: "v1/namespaces"
    scope: "cluster"
    name_selector: "faro-main"
  - gvr: "v1/namespaces"
    scope: "cluster"
    name_selector: "faro-app"
  - gvr: "batch/v1/jobs"
    scope: "namespaced"
    namespace_names:
      - "faro-main"
      - "faro-app"
"""

GO_STYLE_NAME_PER_RESOURCE = """\
# The namespace, and one ConfigMap in it by name
output_dir: "./logs/names"
log_level: "debug"
auto_shutdown_sec: 120
json_export: true

resources:
  - gvr: "v1/namespaces"
    scope: "Cluster"
    name_selector: "faro-test"

namespaces:
  - name_selector: "faro-test"
    resources:
      "v1/configmaps":
        name_selector: "test-config-1"
      "v1/secrets":
        name_selector: "app-.*"
"""


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def nc(gvr: GroupVersionResource, *, scope: str | None = None, namespace: str | None = None,
       label: str | None = None, fields: str | None = None,
       name_pattern: str | None = None) -> NormalizedConfig:
    return NormalizedConfig(gvr=gvr, scope=scope, namespace=namespace, label_selector=label,
                            field_selector=fields, name_pattern=name_pattern)


# ------------------------------------------------------------------------ the README's examples


def test_the_readme_namespace_centric_example_loads_unchanged(tmp_path: Path) -> None:
    config = load(tmp_path, README_NAMESPACE_CENTRIC)
    assert (config.output_dir, config.log_level, config.auto_shutdown_sec,
            config.json_export) == ("/var/faro/events", "info", 0, True)
    assert config.metrics == MetricsConfig(enabled=True, port=8080, path="/metrics",
                                           bind_addr="0.0.0.0")
    assert config.normalized == (
        nc(PODS, namespace="production", label="app=nginx"),
        nc(SERVICES, namespace="production"),
        nc(DEPLOYMENTS, namespace="production"),
        nc(JOBS, namespace="production"),
    )


def test_the_readme_resource_centric_example_loads_unchanged(tmp_path: Path) -> None:
    config = load(tmp_path, README_RESOURCE_CENTRIC)
    assert (config.output_dir, config.json_export) == ("./logs", True)
    assert config.metrics == MetricsConfig(enabled=True, port=8080)
    assert config.normalized == (
        nc(CONFIGMAPS, namespace="default", label="app=web"),
        nc(CONFIGMAPS, namespace="kube-system", label="app=web"),
        nc(CRONJOBS, namespace="production", fields="metadata.name=backup-job"),
    )


def test_the_readme_operator_configmap_config_loads_unchanged(tmp_path: Path) -> None:
    manifest = yaml.safe_load(README_OPERATOR_CONFIGMAP)
    assert (manifest["kind"], manifest["metadata"]["name"]) == \
        ("ConfigMap", "faro-operator-config")
    config = load(tmp_path, manifest["data"]["config.yaml"])
    assert (config.output_dir, config.auto_shutdown_sec, config.json_export) == \
        ("/var/faro/events", 0, True)
    assert config.metrics == MetricsConfig(enabled=True, port=8080, path="/metrics")
    assert config.normalized == (
        nc(PODS, namespace="production"),
        nc(SERVICES, namespace="production"),
        nc(DEPLOYMENTS, namespace="production"),
    )


# ------------------------------------------------------------------------------------- scope


def test_a_go_style_config_with_lower_case_scope_loads(tmp_path: Path) -> None:
    config = load(tmp_path, GO_STYLE_LOWER_CASE_SCOPE)
    assert [entry.scope for entry in config.resources] == ["Cluster", "Cluster", "Namespaced"]
    assert config.normalized == (
        nc(NAMESPACES, scope="Cluster", fields="metadata.name=faro-main"),
        nc(NAMESPACES, scope="Cluster", fields="metadata.name=faro-app"),
        nc(JOBS, scope="Namespaced", namespace="faro-main"),
        nc(JOBS, scope="Namespaced", namespace="faro-app"),
    )


@pytest.mark.parametrize(("written", "stored"), [
    ("cluster", "Cluster"), ("Cluster", "Cluster"), ("CLUSTER", "Cluster"),
    ("namespaced", "Namespaced"), ("Namespaced", "Namespaced"), ("NAMESPACED", "Namespaced"),
])
def test_scope_is_accepted_in_any_case_and_normalised(written: str, stored: str,
                                                      tmp_path: Path) -> None:
    gvr = "v1/nodes" if stored == "Cluster" else "v1/pods"
    config = load(tmp_path, f'resources:\n  - gvr: "{gvr}"\n    scope: "{written}"\n')
    assert config.resources[0].scope == stored
    assert [entry.scope for entry in config.normalized] == [stored]
    assert config.to_dict()["resources"][0]["scope"] == stored


def test_a_scope_that_is_neither_is_still_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, 'resources:\n  - gvr: "v1/nodes"\n    scope: "clustered"\n')
    assert raised.value.path == "resources[0].scope"
    assert "did you mean 'Cluster'?" in raised.value.problem


# ------------------------------------------------------------------ name_selector per resource


def test_a_name_selector_under_a_namespace_resource_is_kept(tmp_path: Path) -> None:
    """The Go original reads only label_selector under namespaces[].resources; faro also
    reads name_selector there (exact: a field selector; otherwise a pattern faro applies)."""
    config = load(tmp_path, GO_STYLE_NAME_PER_RESOURCE)
    assert config.normalized == (
        nc(CONFIGMAPS, namespace="faro-test", fields="metadata.name=test-config-1"),
        nc(SECRETS, namespace="faro-test", name_pattern="app-.*"),
        nc(NAMESPACES, scope="Cluster", fields="metadata.name=faro-test"),
    )
    assert config.namespaces[0].resources["v1/configmaps"].name_selector == "test-config-1"


# ---------------------------------------------------------------------- keys the Go code ignored


@pytest.mark.parametrize(("text", "path", "meant"), [
    # a misspelling (yaml.v2 drops it silently, so the Go original watches unfiltered)
    ('resources:\n  - gvr: "v1/pods"\n    label_selecter: "app=web"\n',
     "resources[0].label_selecter", "label_selector"),
    # keys of an older Go version (name_pattern, namespace_patterns), ignored by the current one
    ('namespaces:\n  - name_pattern: "prod"\n    resources: {"v1/pods": {}}\n',
     "namespaces[0].name_pattern", "name_selector"),
    ('resources:\n  - gvr: "v1/pods"\n    namespace_patterns: ["prod"]\n',
     "resources[0].namespace_patterns", "namespace_names"),
], ids=["misspelled", "old-name_pattern", "old-namespace_patterns"])
def test_a_key_the_go_original_would_ignore_is_an_error(text: str, path: str, meant: str,
                                                       tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, text)
    [error] = [e for e in raised.value.errors if e.path == path]
    key = path.rsplit(".", 1)[1]
    # Named, with the key meant: suggested when close, else among the allowed keys listed.
    assert error.problem.startswith(f"unknown key '{key}'")
    assert re.search(rf"did you mean '{meant}'\?|allowed keys: .*\b{meant}\b",
                     error.problem)


# ------------------------------------------------------------------------------------ metrics


def families() -> set[str]:
    """The metric families a controller's registry exposes, as a scrape names them."""
    text = generate_latest(ControllerMetrics().registry).decode()
    return set(re.findall(r"^# TYPE (\S+) ", text, re.MULTILINE))


def test_the_go_metric_names_kept_renamed_and_dropped() -> None:
    exposed = families()
    kept = {"faro_events_total", "faro_informer_health", "faro_informer_sync_duration_seconds"}
    renamed = {"faro_informers_total": "faro_informers",
               "faro_tracked_resources_total": "faro_tracked_resources",
               "faro_informer_last_event_timestamp":
                   "faro_informer_last_event_timestamp_seconds"}
    dropped = {"faro_uid_resolution_total", "faro_cache_hit_rate", "faro_gvr_per_informer"}
    assert kept <= exposed
    for old, new in renamed.items():
        assert new in exposed and old not in exposed
    assert not dropped & exposed
    # The Go registry also carried the Go runtime's and the process's collectors.
    assert not {name for name in exposed if name.startswith(("go_", "process_", "python_"))}


# ----------------------------------------------------------------------------------------- API


GO_TO_PYTHON = {
    "AddEventHandler": "add_event_handler", "AddJSONMiddleware": "add_json_middleware",
    "SetReadyCallback": "set_ready_callback", "IsReady": "is_ready",
    "AddResources": "add_resources", "StartInformers": "start_informers",
    "GetActiveInformers": "get_active_informers", "Start": "start", "Stop": "stop",
}


def test_the_go_controller_methods_exist_in_snake_case() -> None:
    for go_name, name in GO_TO_PYTHON.items():
        assert callable(getattr(Controller, name, None)), f"{go_name}: no Controller.{name}"


# --------------------------------------------------------------------------------- timestamps


@pytest.fixture
def cluster() -> Iterator[SimulatedCluster]:
    with SimulatedCluster() as sim:
        yield sim


def test_an_event_is_stamped_when_faro_observes_it_not_with_the_creation_time(
        cluster: SimulatedCluster, controllers: Controllers) -> None:
    created = cluster.create(configmap("stamped"))
    creation = datetime.strptime(created["metadata"]["creationTimestamp"],
                                 "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    before_start = datetime.now(timezone.utc)
    events = Events()
    controllers.make({"resources": [{"gvr": "v1/configmaps", "namespace_names": ["default"]}]},
                     events)
    (initial,) = events.wait_key("default/stamped", "ADDED")
    before_update = datetime.now(timezone.utc)
    cluster.patch("v1", "ConfigMap", "stamped", {"data": {"v": "2"}}, namespace="default")
    updated = events.wait_key("default/stamped", "ADDED", "UPDATED")[-1]
    after = datetime.now(timezone.utc)
    assert initial.is_initial
    # The original stamps ADDED and UPDATED with the object's creation time; faro with the
    # moment it saw each change, for the object that existed before it started too.
    assert creation <= before_start <= initial.timestamp <= before_update \
        <= updated.timestamp <= after
    assert creation < initial.timestamp < updated.timestamp
    assert event_record(updated)["timestamp"] == \
        updated.timestamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
