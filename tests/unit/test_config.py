"""Configuration loading, validation and normalisation (faro.config).

Expected normalised forms are written out by hand from the rules in docs/config.md.
"""

from __future__ import annotations

import copy as copy_module
import dataclasses
import pickle
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from faro.config import (
    CONFIG_KEYS,
    EXPORT_KEYS,
    EXPORT_OUTPUTS,
    LOG_LEVELS,
    METRICS_KEYS,
    NAMESPACE_KEYS,
    PENDING_KEYS,
    RESOURCE_KEYS,
    RESOURCE_RULE_KEYS,
    SCOPES,
    SHARD_KEYS,
    Config,
    ConfigError,
    ExportConfig,
    MetricsConfig,
    NamespaceConfig,
    NormalizedConfig,
    ResourceConfig,
    ResourceRule,
    ShardConfig,
    load_config,
)
from faro.errors import FaroError
from faro.gvr import GroupVersionResource

PODS = GroupVersionResource("", "v1", "pods")
CONFIGMAPS = GroupVersionResource("", "v1", "configmaps")
SERVICES = GroupVersionResource("", "v1", "services")
NAMESPACES = GroupVersionResource("", "v1", "namespaces")
DEPLOYMENTS = GroupVersionResource("apps", "v1", "deployments")
JOBS = GroupVersionResource("batch", "v1", "jobs")
CRONJOBS = GroupVersionResource("batch", "v1", "cronjobs")
WIDGETS = GroupVersionResource("example.com", "v1alpha1", "widgets")


def nc(gvr: GroupVersionResource, source: str, *, scope: str | None = None,
       namespace: str | None = None, namespace_pattern: str | None = None,
       label: str | None = None, fields: str | None = None,
       name_pattern: str | None = None) -> NormalizedConfig:
    return NormalizedConfig(gvr=gvr, scope=scope, namespace=namespace,
                            namespace_pattern=namespace_pattern, label_selector=label,
                            field_selector=fields, name_pattern=name_pattern, source=source)


def error_of(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        Config.from_yaml(text, source="test.yaml")
    return info.value


# ---------------------------------------------------------------------------------------------
# Both formats, and the mix
# ---------------------------------------------------------------------------------------------

NAMESPACE_CENTRIC = """
output_dir: "./logs"
log_level: "info"
auto_shutdown_sec: 120
json_export: true

namespaces:
  - name_selector: "prod-.*"
    resources:
      "v1/pods":
        label_selector: "app=nginx"
      "v1/configmaps":
        name_selector: "config-.*"
  - name_selector: "staging"
    resources:
      "apps/v1/deployments": {}
      "example.com/v1alpha1/widgets":
      "v1/services": {name_selector: "frontend", field_selector: "spec.type=ClusterIP"}
"""


def test_namespace_centric_format_normalises_one_entry_per_resource_key() -> None:
    config = Config.from_yaml(NAMESPACE_CENTRIC)
    assert (config.output_dir, config.log_level, config.auto_shutdown_sec, config.json_export) \
        == ("./logs", "info", 120.0, True)
    assert config.namespaces == (
        NamespaceConfig("prod-.*", {"v1/pods": ResourceRule(label_selector="app=nginx"),
                                    "v1/configmaps": ResourceRule(name_selector="config-.*")}),
        NamespaceConfig("staging", {
            "apps/v1/deployments": ResourceRule(),
            "example.com/v1alpha1/widgets": ResourceRule(),
            "v1/services": ResourceRule(name_selector="frontend",
                                        field_selector="spec.type=ClusterIP")}),
    )
    assert config.resources == ()
    assert config.normalized == (
        nc(PODS, "namespaces[0].resources[v1/pods]", namespace_pattern="prod-.*",
           label="app=nginx"),
        nc(CONFIGMAPS, "namespaces[0].resources[v1/configmaps]", namespace_pattern="prod-.*",
           name_pattern="config-.*"),
        nc(DEPLOYMENTS, "namespaces[1].resources[apps/v1/deployments]", namespace="staging"),
        nc(WIDGETS, "namespaces[1].resources[example.com/v1alpha1/widgets]",
           namespace="staging"),
        nc(SERVICES, "namespaces[1].resources[v1/services]", namespace="staging",
           fields="metadata.name=frontend,spec.type=ClusterIP"),
    )
    # source is not part of equality, so check it separately
    assert [n.source for n in config.normalized] == [
        "namespaces[0].resources[v1/pods]", "namespaces[0].resources[v1/configmaps]",
        "namespaces[1].resources[apps/v1/deployments]",
        "namespaces[1].resources[example.com/v1alpha1/widgets]",
        "namespaces[1].resources[v1/services]"]


RESOURCE_CENTRIC = """
resources:
  - gvr: "v1/pods"
    scope: "Namespaced"
    namespace_names: ["default", "kube-system", "team-[0-9]+"]
    label_selector: "app=nginx"
  - gvr: "v1/namespaces"
    scope: "Cluster"
    name_selector: "prod-.*"
  - gvr: "batch/v1/cronjobs"
    namespace_names: ["production"]
    field_selector: "metadata.name=backup-job"
  - gvr: "v1/configmaps"
    label_selector: ""
    field_selector: ""
    name_selector: ""
"""


def test_resource_centric_format_normalises_one_entry_per_namespace() -> None:
    config = Config.from_yaml(RESOURCE_CENTRIC)
    assert config.namespaces == ()
    assert config.resources == (
        ResourceConfig("v1/pods", "Namespaced", ("default", "kube-system", "team-[0-9]+"),
                       label_selector="app=nginx"),
        ResourceConfig("v1/namespaces", "Cluster", name_selector="prod-.*"),
        ResourceConfig("batch/v1/cronjobs", namespace_names=("production",),
                       field_selector="metadata.name=backup-job"),
        ResourceConfig("v1/configmaps", label_selector="", field_selector="",
                       name_selector=""),
    )
    assert config.normalized == (
        nc(PODS, "resources[0]", scope="Namespaced", namespace="default", label="app=nginx"),
        nc(PODS, "resources[0]", scope="Namespaced", namespace="kube-system",
           label="app=nginx"),
        nc(PODS, "resources[0]", scope="Namespaced", namespace_pattern="team-[0-9]+",
           label="app=nginx"),
        nc(NAMESPACES, "resources[1]", scope="Cluster", name_pattern="prod-.*"),
        nc(CRONJOBS, "resources[2]", namespace="production", fields="metadata.name=backup-job"),
        nc(CONFIGMAPS, "resources[3]"),
    )
    assert [n.source for n in config.normalized] == [
        "resources[0]", "resources[0]", "resources[0]", "resources[1]", "resources[2]",
        "resources[3]"]


def test_both_formats_in_one_file_namespaces_first_then_resources() -> None:
    text = """
resources:
  - gvr: apps/v1/deployments
    namespace_names: [default]
namespaces:
  - name_selector: default
    resources:
      v1/pods: {label_selector: "tier in (web, api)"}
"""
    config = Config.from_yaml(text)
    assert config.normalized == (
        nc(PODS, "namespaces[0].resources[v1/pods]", namespace="default",
           label="tier in (api,web)"),
        nc(DEPLOYMENTS, "resources[0]", namespace="default"),
    )


# ---------------------------------------------------------------------------------------------
# The reference documents' examples
# ---------------------------------------------------------------------------------------------

README_NAMESPACE_CENTRIC = """
output_dir: "/var/faro/events"
log_level: "info"
auto_shutdown_sec: 0  # Run indefinitely (operator mode)
json_export: true

metrics:
  enabled: true
  port: 8080
  path: "/metrics"
  bind_addr: "0.0.0.0"

namespaces:
  - name_selector: "production"
    resources:
      "v1/pods":
        label_selector: "app=nginx"
      "v1/services": {}
      "apps/v1/deployments": {}
      "batch/v1/jobs": {}
"""

README_RESOURCE_CENTRIC = """
output_dir: "./logs"
log_level: "info"
json_export: true

metrics:
  enabled: true
  port: 8080

resources:
  - gvr: "v1/configmaps"
    namespace_names: ["default", "kube-system"]
    label_selector: "app=web"
  - gvr: "batch/v1/cronjobs"
    namespace_names: ["production"]
    field_selector: "metadata.name=backup-job"
"""

README_OPERATOR_CONFIGMAP = """
output_dir: "/var/faro/events"
log_level: "info"
auto_shutdown_sec: 0
json_export: true

metrics:
  enabled: true
  port: 8080
  path: "/metrics"

namespaces:
  - name_selector: "production"
    resources:
      "v1/pods": {}
      "v1/services": {}
      "apps/v1/deployments": {}
"""

ARCHITECTURE_SIMPLE = """
output_dir: "./logs"
log_level: "info"
json_export: true

namespaces:
  - name_selector: "default"
    resources:
      "v1/pods":
        label_selector: "app=nginx"
"""

ARCHITECTURE_MULTI_NAMESPACE = """
resources:
  - gvr: "v1/configmaps"
    scope: "Namespaced"
    namespace_names: ["kube-system", "default"]
    name_selector: "config-.*"
"""


def test_readme_namespace_centric_example() -> None:
    config = Config.from_yaml(README_NAMESPACE_CENTRIC)
    assert config.metrics == MetricsConfig(enabled=True, port=8080, path="/metrics",
                                           bind_addr="0.0.0.0")
    assert config.output_dir == "/var/faro/events"
    assert config.normalized == (
        nc(PODS, "", namespace="production", label="app=nginx"),
        nc(SERVICES, "", namespace="production"),
        nc(DEPLOYMENTS, "", namespace="production"),
        nc(JOBS, "", namespace="production"),
    )


def test_readme_resource_centric_example() -> None:
    config = Config.from_yaml(README_RESOURCE_CENTRIC)
    assert config.metrics == MetricsConfig(enabled=True, port=8080)
    assert config.normalized == (
        nc(CONFIGMAPS, "", namespace="default", label="app=web"),
        nc(CONFIGMAPS, "", namespace="kube-system", label="app=web"),
        nc(CRONJOBS, "", namespace="production", fields="metadata.name=backup-job"),
    )


def test_readme_operator_configmap_example() -> None:
    config = Config.from_yaml(README_OPERATOR_CONFIGMAP)
    assert config.metrics.enabled and config.metrics.path == "/metrics"
    assert config.normalized == (
        nc(PODS, "", namespace="production"),
        nc(SERVICES, "", namespace="production"),
        nc(DEPLOYMENTS, "", namespace="production"),
    )


def test_architecture_examples() -> None:
    assert Config.from_yaml(ARCHITECTURE_SIMPLE).normalized == (
        nc(PODS, "", namespace="default", label="app=nginx"),)
    assert Config.from_yaml(ARCHITECTURE_MULTI_NAMESPACE).normalized == (
        nc(CONFIGMAPS, "", scope="Namespaced", namespace="kube-system", name_pattern="config-.*"),
        nc(CONFIGMAPS, "", scope="Namespaced", namespace="default", name_pattern="config-.*"),
    )


# ---------------------------------------------------------------------------------------------
# Defaults and empty documents
# ---------------------------------------------------------------------------------------------


def test_defaults() -> None:
    config = Config()
    assert (config.output_dir, config.log_level, config.auto_shutdown_sec, config.json_export,
            config.workers, config.max_retries, config.unhealthy_after_sec) \
        == ("./output", "info", 0, False, 3, 5, 60)
    assert config.metrics == MetricsConfig(enabled=False, port=8080, path="/metrics",
                                           bind_addr="0.0.0.0")
    assert (config.namespaces, config.resources, config.normalized) == ((), (), ())
    assert config.source == "<dict>"


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n", "---\n", "null\n"])
def test_an_empty_document_is_the_default_config(text: str) -> None:
    config = Config.from_yaml(text)
    assert config == Config()
    assert config.source == "<string>"
    assert config.normalized == ()


def test_null_sections_are_empty() -> None:
    config = Config.from_yaml("metrics:\nnamespaces:\nresources:\n")
    assert config == Config()


def test_partial_metrics_section_keeps_other_defaults() -> None:
    config = Config.from_yaml("metrics: {enabled: true}")
    assert config.metrics == MetricsConfig(enabled=True, port=8080, path="/metrics",
                                           bind_addr="0.0.0.0")


def test_log_level_is_case_insensitive_and_stored_lower_case() -> None:
    assert Config.from_yaml("log_level: WARNING").log_level == "warning"
    assert Config(log_level="Debug").log_level == "debug"


def test_export_output_is_file_by_default_or_stdout() -> None:
    assert Config().export.output == "file"
    assert Config.from_yaml("export: {output: stdout}").export == ExportConfig(output="stdout")
    assert Config.from_yaml("json_export: true\nexport: {output: stdout, backups: 1}"
                            ).export == ExportConfig(output="stdout", backups=1)


def test_whole_seconds_are_stored_as_floats() -> None:
    config = Config.from_yaml("auto_shutdown_sec: 30\nunhealthy_after_sec: 2.5")
    assert (config.auto_shutdown_sec, config.unhealthy_after_sec) == (30.0, 2.5)
    assert isinstance(config.auto_shutdown_sec, float)


def test_zero_retries_and_zero_unhealthy_delay_are_allowed() -> None:
    config = Config.from_yaml("max_retries: 0\nunhealthy_after_sec: 0\nworkers: 1")
    assert (config.max_retries, config.unhealthy_after_sec, config.workers) == (0, 0.0, 1)


# ---------------------------------------------------------------------------------------------
# name_selector: exact names and regular expressions
# ---------------------------------------------------------------------------------------------


def namespace_scope(selector: str) -> tuple[str | None, str | None]:
    config = Config(namespaces=(NamespaceConfig(selector, {"v1/pods": ResourceRule()}),))
    (only,) = config.normalized
    return only.namespace, only.namespace_pattern


@pytest.mark.parametrize(("selector", "expected"), [
    ("default", ("default", None)),
    ("kube-system", ("kube-system", None)),
    ("0", ("0", None)),
    ("a" * 63, ("a" * 63, None)),
    ("prod-.*", (None, "prod-.*")),
    ("prod|staging", (None, "prod|staging")),
    ("team-[0-9]+", (None, "team-[0-9]+")),
    ("a" * 64 + ".*", (None, "a" * 64 + ".*")),
])
def test_namespace_selector_is_exact_for_a_dns_label_and_a_pattern_otherwise(
        selector: str, expected: tuple[str | None, str | None]) -> None:
    assert namespace_scope(selector) == expected


@pytest.mark.parametrize("selector", ["Production", "a" * 64, "my_ns", "-prod", "prod-"])
def test_namespace_selector_that_is_neither_a_name_nor_a_pattern_is_rejected(
        selector: str) -> None:
    with pytest.raises(ConfigError) as info:
        namespace_scope(selector)
    assert info.value.path == "namespaces[0].name_selector"
    assert f"{selector!r} is not a valid namespace name" in info.value.problem
    assert "could never match" in info.value.problem


def object_selectors(name: str, field_selector: str | None = None) -> tuple[str | None, ...]:
    config = Config(resources=(ResourceConfig("v1/configmaps", name_selector=name,
                                              field_selector=field_selector),))
    (only,) = config.normalized
    return only.field_selector, only.name_pattern


@pytest.mark.parametrize(("name", "expected"), [
    ("backup-job", ("metadata.name=backup-job", None)),
    ("my.config", ("metadata.name=my.config", None)),       # a DNS subdomain: exact
    ("a" * 253, ("metadata.name=" + "a" * 253, None)),
    ("a" * 254, (None, "a" * 254)),
    ("config-.*", (None, "config-.*")),
    ("Config", (None, "Config")),                        # not a name, matched by faro
    ("system:controller:job", (None, "system:controller:job")),
])
def test_object_name_selector_is_exact_for_a_dns_subdomain_and_a_pattern_otherwise(
        name: str, expected: tuple[str | None, str | None]) -> None:
    assert object_selectors(name) == expected


def test_matches_namespace_is_a_full_match() -> None:
    pattern = nc(PODS, "", namespace_pattern="prod-.*|staging")
    assert pattern.matches_namespace("prod-eu")
    assert pattern.matches_namespace("staging")
    assert not pattern.matches_namespace("staging-2")
    assert not pattern.matches_namespace("xprod-eu")
    exact = nc(PODS, "", namespace="default")
    assert exact.matches_namespace("default")
    assert not exact.matches_namespace("default2")
    everywhere = nc(PODS, "")
    assert everywhere.matches_namespace("anything")


def test_matches_name_is_a_full_match() -> None:
    config = Config.from_yaml("resources: [{gvr: v1/configmaps, name_selector: 'config-[a-z]+'}]")
    (only,) = config.normalized
    assert only.matches_name("config-app")
    assert not only.matches_name("config-app-2")
    assert not only.matches_name("my-config-app")
    assert nc(PODS, "").matches_name("anything")


# Patterns as users write them, and names around them: RE2 (faro's matcher) must agree with
# Python's re.fullmatch, which faro used before patterns were matched in linear time.
USUAL_PATTERNS = ["prod-.*", "prod|staging", "team-[0-9]+", "config-[a-z]+", "(?i)PROD-.*",
                  "a.c", "x{2,3}", r"[^.]+\.example\.com", "system:controller:.*", r"\d+",
                  r"web-\w+", "(app|web)-(eu|us)-[0-9]{1,3}", "^prod$"]
USUAL_NAMES = ["prod-eu", "preprod-eu", "prod", "staging", "staging-2", "team-1", "team-",
               "config-app", "config-app-2", "abc", "a.c", "xx", "xxxx", "db.example.com",
               "a.b.example.com", "system:controller:job", "123", "web-a_1", "app-eu-7",
               "web-us-1000", "", "PROD-X"]


@pytest.mark.parametrize("pattern", USUAL_PATTERNS)
def test_patterns_match_as_python_re_fullmatch_did(pattern: str) -> None:
    python = re.compile(pattern)
    entry = nc(CONFIGMAPS, "", namespace_pattern=pattern, name_pattern=pattern)
    for name in USUAL_NAMES:
        expected = python.fullmatch(name) is not None
        assert entry.matches_name(name) == expected, name
        assert entry.matches_namespace(name) == expected, name


def test_a_catastrophic_pattern_is_matched_in_linear_time() -> None:
    # With Python's re, (a+)+$ against a...ab takes time doubling with each "a": 40 of them
    # would take days. RE2 answers at once, however long the name (at most 253 characters).
    config = Config.from_yaml("""
        resources:
          - gvr: v1/configmaps
            namespace_names: ["(x+x+)+y"]
            name_selector: "(a+)+$"
        """)
    (only,) = config.normalized
    assert not only.matches_name("a" * 252 + "b")
    assert only.matches_name("a" * 253)
    assert not only.matches_namespace("x" * 62 + "z")
    assert only.matches_namespace("x" * 62 + "y")


# ---------------------------------------------------------------------------------------------
# Selectors: canonical text and the metadata.name merge
# ---------------------------------------------------------------------------------------------


def test_selectors_are_stored_in_canonical_form() -> None:
    config = Config(resources=(ResourceConfig(
        "v1/pods", label_selector=" tier in (web, api) , app = nginx, app=nginx",
        field_selector="status.phase=Running,spec.nodeName=n1,status.phase=Running"),))
    (only,) = config.normalized
    assert only.label_selector == "app=nginx,tier in (api,web)"
    assert only.field_selector == "spec.nodeName=n1,status.phase=Running"


def test_exact_name_is_added_to_the_field_selector() -> None:
    assert object_selectors("web-0", "status.phase=Running") == (
        "metadata.name=web-0,status.phase=Running", None)


def test_exact_name_already_in_the_field_selector_is_not_repeated() -> None:
    assert object_selectors("web-0", "metadata.name=web-0") == ("metadata.name=web-0", None)


def test_exact_name_next_to_a_compatible_inequality() -> None:
    assert object_selectors("web-0", "metadata.name!=web-1") == (
        "metadata.name!=web-1,metadata.name=web-0", None)


def test_regex_name_leaves_the_field_selector_alone() -> None:
    assert object_selectors("web-.*", "metadata.name=web-1") == (
        "metadata.name=web-1", "web-.*")


@pytest.mark.parametrize("field_selector", ["metadata.name=other", "metadata.name!=web-0"])
def test_exact_name_contradicting_the_field_selector_is_rejected(field_selector: str) -> None:
    with pytest.raises(ConfigError) as info:
        object_selectors("web-0", field_selector)
    assert info.value.path == "resources[0].name_selector"
    assert info.value.problem == (f"the name 'web-0' contradicts the field selector term "
                                  f"{field_selector!r}, so nothing could match")


# ---------------------------------------------------------------------------------------------
# Duplicates
# ---------------------------------------------------------------------------------------------


def test_duplicate_namespace_entries_are_rejected_naming_both_paths() -> None:
    error = error_of("""
namespaces:
  - name_selector: prod
    resources: {v1/pods: {label_selector: "app=a,tier=b"}}
  - name_selector: prod
    resources: {v1/pods: {label_selector: "tier=b, app=a"}}
""")
    assert error.path == "namespaces[1].resources[v1/pods]"
    assert error.problem.startswith("duplicates namespaces[0].resources[v1/pods]")


def test_resource_entry_duplicating_a_namespace_entry_is_rejected() -> None:
    error = error_of("""
namespaces:
  - name_selector: prod
    resources: {v1/pods: {}}
resources:
  - gvr: v1/configmaps
  - gvr: v1/pods
    namespace_names: [prod]
""")
    assert str(error) == ("test.yaml: resources[1]: duplicates namespaces[0].resources[v1/pods] "
                          "(the same resource, namespace and selectors)")


def test_same_resource_with_different_selectors_is_not_a_duplicate() -> None:
    config = Config.from_yaml("""
resources:
  - {gvr: v1/pods, label_selector: app=a}
  - {gvr: v1/pods, label_selector: app=b}
  - {gvr: v1/pods, name_selector: "a-.*"}
  - {gvr: v1/pods, namespace_names: [default]}
  - {gvr: v1/pods, scope: Namespaced}
""")
    assert len(config.normalized) == 5


def test_same_namespace_twice_in_namespace_names_is_rejected() -> None:
    error = error_of("resources: [{gvr: v1/pods, namespace_names: [a, b, a]}]")
    assert error.path == "resources[0].namespace_names[2]"
    assert error.problem == "duplicates resources[0].namespace_names[0] ('a')"


def test_normalized_config_equality_and_hash_ignore_source() -> None:
    one = nc(PODS, "resources[0]", namespace="a")
    two = nc(PODS, "namespaces[3].resources[v1/pods]", namespace="a")
    assert one == two and hash(one) == hash(two)
    assert one != nc(PODS, "resources[0]", namespace="b")


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------

ALL_TOP = ("output_dir, log_level, auto_shutdown_sec, json_export, workers, max_retries, "
           "unhealthy_after_sec, metrics, export, pending, shard, namespaces, resources")


@pytest.mark.parametrize(("text", "path", "problem"), [
    ("namespace: []", "namespace",
     f"unknown key 'namespace'; did you mean 'namespaces'? (allowed keys: {ALL_TOP})"),
    ("log-level: info", "log-level",
     f"unknown key 'log-level'; did you mean 'log_level'? (allowed keys: {ALL_TOP})"),
    ("autoShutdownSec: 3", "autoShutdownSec",
     f"unknown key 'autoShutdownSec'; did you mean 'auto_shutdown_sec'? (allowed keys: "
     f"{ALL_TOP})"),
    ("colour: red", "colour", f"unknown key 'colour' (allowed keys: {ALL_TOP})"),
    ("1: x", "1", f"unknown key the integer 1 (allowed keys: {ALL_TOP})"),
    ("metrics: {enable: true}", "metrics.enable",
     "unknown key 'enable'; did you mean 'enabled'? (allowed keys: enabled, port, path, "
     "bind_addr)"),
    ("namespaces: [{name_selector: a, resource: {v1/pods: }}]", "namespaces[0].resource",
     "unknown key 'resource'; did you mean 'resources'? (allowed keys: name_selector, "
     "resources)"),
    ("namespaces: [{name_selector: a, resources: {v1/pods: {labels: x}}}]",
     "namespaces[0].resources[v1/pods].labels",
     "unknown key 'labels'; did you mean 'label_selector'? (allowed keys: label_selector, "
     "field_selector, name_selector)"),
    ("resources: [{gvr: v1/pods, namespace_name: [a]}]", "resources[0].namespace_name",
     "unknown key 'namespace_name'; did you mean 'namespace_names'? (allowed keys: gvr, scope, "
     "namespace_names, name_selector, label_selector, field_selector)"),
    ("resources: [{gvr: v1/pods, namespace: a}]", "resources[0].namespace",
     "unknown key 'namespace'; did you mean 'namespace_names'? (allowed keys: gvr, scope, "
     "namespace_names, name_selector, label_selector, field_selector)"),
])
def test_unknown_keys_are_rejected_with_a_suggestion_and_the_allowed_keys(
        text: str, path: str, problem: str) -> None:
    error = error_of(text)
    assert (error.source, error.path, error.problem) == ("test.yaml", path, problem)


@pytest.mark.parametrize(("text", "path", "problem"), [
    # types
    ("resources: [{gvr: v1/pods, namespace_names: default}]", "resources[0].namespace_names",
     "expected a list of namespace names, got the string 'default' (write [\"default\"])"),
    ("resources: [{gvr: v1/pods, namespace_names: {a: b}}]", "resources[0].namespace_names",
     "expected a list of namespace names, got a mapping"),
    ("resources: [{gvr: v1/pods, namespace_names: [no]}]", "resources[0].namespace_names[0]",
     "expected a namespace name or regular expression, got false (quote it to make it a "
     "string)"),
    ("resources: {gvr: v1/pods}", "resources", "expected a list of entries, got a mapping"),
    ("resources: v1/pods", "resources",
     "expected a list of entries, got the string 'v1/pods'"),
    ("resources: [v1/pods]", "resources[0]", "expected a mapping, got the string 'v1/pods'"),
    ("namespaces: [prod]", "namespaces[0]", "expected a mapping, got the string 'prod'"),
    ("metrics: [1]", "metrics", "expected a mapping, got a list"),
    ("metrics: {enabled: 'yes'}", "metrics.enabled",
     "expected true or false, got the string 'yes'"),
    ("metrics: {enabled: 1}", "metrics.enabled", "expected true or false, got the integer 1"),
    ("metrics: {port: '8080'}", "metrics.port", "expected an integer, got the string '8080'"),
    ("metrics: {port: true}", "metrics.port", "expected an integer, got true"),
    ("metrics: {port: 8080.0}", "metrics.port", "expected an integer, got the number 8080.0"),
    ("workers: 2.5", "workers", "expected an integer, got the number 2.5"),
    ("json_export: 'true'", "json_export", "expected true or false, got the string 'true'"),
    ("auto_shutdown_sec: true", "auto_shutdown_sec",
     "expected a number of seconds, got true"),
    ("auto_shutdown_sec: '10'", "auto_shutdown_sec",
     "expected a number of seconds, got the string '10'"),
    ("auto_shutdown_sec: .nan", "auto_shutdown_sec", "must be a finite number, got nan"),
    ("output_dir: 5", "output_dir",
     "expected a directory, got the integer 5 (quote it to make it a string)"),
    ("output_dir:", "output_dir", "expected a directory, got null"),
    ("resources: [{gvr: v1/pods, label_selector: 5}]", "resources[0].label_selector",
     "expected a label selector, got the integer 5 (quote it to make it a string)"),
    ("resources: [{gvr: v1/pods, name_selector: [a]}]", "resources[0].name_selector",
     "expected an object name or regular expression, got a list"),
    ("namespaces: [{name_selector: a, resources: [v1/pods]}]", "namespaces[0].resources",
     "expected a mapping from resources (like v1/pods) to their selectors, got a list"),
    ("namespaces: [{name_selector: a, resources: }]", "namespaces[0].resources",
     "expected a mapping from resources (like v1/pods) to their selectors, got null"),
    ("namespaces: [{name_selector: a, resources: {v1/pods: app=x}}]",
     "namespaces[0].resources[v1/pods]",
     "expected a mapping of selectors (or {}), got the string 'app=x'"),
    ("namespaces: [{name_selector: a, resources: {1: {}}}]", "namespaces[0].resources[1]",
     "expected a resource like v1/pods as the key, got the integer 1"),
    # selectors
    ("resources: [{gvr: v1/pods, label_selector: 'app in (a'}]",
     "resources[0].label_selector",
     "invalid label selector 'app in (a': unable to parse requirement: found '', "
     "expected: ',' or ')'"),
    ("namespaces: [{name_selector: a, resources: {v1/pods: {field_selector: phase}}}]",
     "namespaces[0].resources[v1/pods].field_selector",
     "invalid field selector 'phase': invalid selector: 'phase'; can't understand 'phase'"),
    ("resources: [{gvr: v1/pods, field_selector: 'a=b=c'}]", "resources[0].field_selector",
     "invalid field selector 'a=b=c': unescaped character in value: '=' (in 'a=b=c')"),
    # resources
    ("resources: [{gvr: pods}]", "resources[0].gvr",
     "invalid resource 'pods': expected 'version/resource' for the core group (v1/pods) or "
     "'group/version/resource' (apps/v1/deployments)"),
    ("resources: [{gvr: apps/deployments/v1}]", "resources[0].gvr",
     "invalid resource 'apps/deployments/v1': 'deployments' is not an API version "
     "(like v1, v1beta1)"),
    ("namespaces: [{name_selector: a, resources: {v1/Pods: {}}}]",
     "namespaces[0].resources[v1/Pods]",
     "invalid resource 'v1/Pods': 'Pods' is not a resource name (lower-case plural, like pods)"),
    ("resources: [{gvr: ''}]", "resources[0].gvr",
     "must not be empty (expected a resource like v1/pods)"),
    ("resources: [{scope: Cluster}]", "resources[0]", "missing required key 'gvr'"),
    ("resources: [{gvr: v1/pods, scope: namespace}]", "resources[0].scope",
     "unknown scope 'namespace'; did you mean 'Namespaced'? (allowed: Namespaced, Cluster)"),
    ("resources: [{gvr: v1/pods, scope: Clustered}]", "resources[0].scope",
     "unknown scope 'Clustered'; did you mean 'Cluster'? (allowed: Namespaced, Cluster)"),
    ("resources: [{gvr: v1/pods, scope: ''}]", "resources[0].scope",
     "unknown scope '' (allowed: Namespaced, Cluster)"),
    ("resources: [{gvr: v1/nodes, scope: Cluster, namespace_names: [a]}]",
     "resources[0].namespace_names",
     "a Cluster-scoped resource has no namespaces: remove namespace_names, or the scope"),
    ("resources: [{gvr: v1/pods, namespace_names: ['']}]", "resources[0].namespace_names[0]",
     "must not be empty (expected a namespace name or regular expression)"),
    ("resources: [{gvr: v1/pods, name_selector: 'web-('}]", "resources[0].name_selector",
     "'web-(' is not a valid object name, so it is read as a regular expression, and it is "
     "not a valid one: missing ), unterminated subpattern at position 4"),
    ("resources: [{gvr: v1/pods, namespace_names: ['team-[']}]",
     "resources[0].namespace_names[0]",
     "'team-[' is not a valid namespace name, so it is read as a regular expression, and it "
     "is not a valid one: unterminated character set at position 5"),
    # patterns are matched in linear time (RE2): constructs that need backtracking are refused
    ("resources: [{gvr: v1/pods, name_selector: '(web)-\\1'}]", "resources[0].name_selector",
     "'(web)-\\\\1' is not a valid object name, so it is read as a regular expression, and it "
     "uses syntax that is not supported (invalid escape sequence: \\1) because patterns must "
     "match in linear time (RE2 syntax: no backreferences, lookahead or lookbehind)"),
    ("namespaces: [{name_selector: 'team-(?!test).*', resources: {v1/pods: }}]",
     "namespaces[0].name_selector",
     "'team-(?!test).*' is not a valid namespace name, so it is read as a regular expression, "
     "and it uses syntax that is not supported (invalid perl operator: (?!) because patterns "
     "must match in linear time (RE2 syntax: no backreferences, lookahead or lookbehind)"),
    ("resources: [{gvr: v1/pods, namespace_names: ['(?<=a)b']}]",
     "resources[0].namespace_names[0]",
     "'(?<=a)b' is not a valid namespace name, so it is read as a regular expression, and it "
     "uses syntax that is not supported (invalid perl operator: (?<=) because patterns must "
     "match in linear time (RE2 syntax: no backreferences, lookahead or lookbehind)"),
    # namespaces
    ("namespaces: [{resources: {v1/pods: }}]", "namespaces[0]",
     "missing required key 'name_selector'"),
    ("namespaces: [{name_selector: a}]", "namespaces[0]", "missing required key 'resources'"),
    ("namespaces: [{name_selector: '', resources: {v1/pods: }}]",
     "namespaces[0].name_selector",
     "must not be empty (expected a namespace name or regular expression)"),
    ("namespaces: [{name_selector: a, resources: {}}]", "namespaces[0].resources",
     'must list at least one resource (like "v1/pods": {})'),
    # scalars
    ("log_level: warn", "log_level",
     "unknown log level 'warn'; did you mean 'warning'? (allowed: debug, info, warning, "
     "error, fatal)"),
    ("log_level: verbose", "log_level",
     "unknown log level 'verbose' (allowed: debug, info, warning, error, fatal)"),
    ("log_level: ''", "log_level", "must not be empty (expected a log level)"),
    ("auto_shutdown_sec: -1", "auto_shutdown_sec", "must not be negative, got -1"),
    ("unhealthy_after_sec: -0.5", "unhealthy_after_sec", "must not be negative, got -0.5"),
    ("max_retries: -1", "max_retries", "must not be negative, got -1"),
    ("workers: 0", "workers", "must be at least 1, got 0"),
    ("metrics: {port: -1}", "metrics.port", "must be between 0 and 65535, got -1"),
    ("metrics: {port: 65536}", "metrics.port", "must be between 0 and 65535, got 65536"),
    ("export: {max_bytes: -1}", "export.max_bytes", "must not be negative, got -1"),
    ("export: {backups: 1.5}", "export.backups", "expected an integer, got the number 1.5"),
    ("export: {fsync: sometimes}", "export.fsync", "expected true or false, got the string "
                                                   "'sometimes'"),
    ("export: {rotate: 1}", "export.rotate",
     "unknown key 'rotate' (allowed keys: output, max_bytes, backups, fsync)"),
    ("export: {output: stdot}", "export.output",
     "unknown output 'stdot'; did you mean 'stdout'? (allowed: file, stdout)"),
    ("export: {output: STDOUT}", "export.output",
     "unknown output 'STDOUT'; did you mean 'stdout'? (allowed: file, stdout)"),
    ("export: {output: stderr}", "export.output",
     "unknown output 'stderr' (allowed: file, stdout)"),
    ("export: {output: ''}", "export.output",
     "must not be empty (expected where the event lines go)"),
    ("export: {output: 1}", "export.output",
     "expected where the event lines go, got the integer 1 (quote it to make it a string)"),
    ("metrics: {path: metrics}", "metrics.path", "must start with '/', got 'metrics'"),
    ("metrics: {path: ''}", "metrics.path", "must not be empty (expected a URL path)"),
    ("metrics: {path: /readyz}", "metrics.path",
     "/readyz is the health probe's path; choose another (default /metrics)"),
    ("metrics: {bind_addr: ' '}", "metrics.bind_addr",
     "must not be empty (expected an address to listen on)"),
    ("output_dir: ''", "output_dir", "must not be empty (expected a directory)"),
])
def test_invalid_values_name_the_path_and_the_problem(text: str, path: str,
                                                      problem: str) -> None:
    error = error_of(text)
    assert (error.source, error.path, error.problem) == ("test.yaml", path, problem)
    assert str(error) == f"test.yaml: {path}: {problem}"


def test_valid_edge_values_are_accepted() -> None:
    config = Config.from_yaml("metrics: {port: 1}\nworkers: 1")
    assert config.metrics.port == 1
    assert Config.from_yaml("metrics: {port: 65535}").metrics.port == 65535


@pytest.mark.parametrize(("text", "problem"), [
    ("a: [1", "invalid YAML at line 1, column 6: expected ',' or ']', but got '<stream end>' "
              "(while parsing a flow sequence at line 1)"),
    ("workers: 3\n  log_level: info\n", "invalid YAML at line 2, column 12: mapping values "
                                       "are not allowed here"),
    ("a: !!python/object:os.system x", "invalid YAML at line 1, column 4: could not determine "
     "a constructor for the tag 'tag:yaml.org,2002:python/object:os.system'"),
    ("a: 1\n---\nb: 2\n", "invalid YAML at line 2, column 1: but found another document "
                         "(expected a single document in the stream at line 1)"),
])
def test_yaml_syntax_errors_give_line_and_column(text: str, problem: str) -> None:
    error = error_of(text)
    assert (error.path, error.problem) == ("", problem)
    assert str(error) == f"test.yaml: {problem}"


def test_duplicate_keys_are_rejected_with_their_lines() -> None:
    error = error_of("workers: 2\nlog_level: info\nworkers: 4\n")
    assert error.problem == ("line 3, column 1: duplicate key 'workers' (first at line 1); "
                             "a key may appear only once in a mapping")
    nested = error_of("""
namespaces:
  - name_selector: prod
    resources:
      "v1/pods": {}
      "v1/pods": {label_selector: app=x}
""")
    assert nested.problem.startswith("line 6, column 7: duplicate key 'v1/pods' (first at line 5)")


def test_yaml_merge_keys_are_not_mistaken_for_duplicates() -> None:
    config = Config.from_yaml("""
resources:
  - &base {gvr: v1/pods, label_selector: app=web}
  - <<: *base
    gvr: v1/services
""")
    assert config.normalized == (nc(PODS, "", label="app=web"), nc(SERVICES, "", label="app=web"))


@pytest.mark.parametrize(("text", "got"), [
    ("- a\n- b\n", "a list"), ("just text", "the string 'just text'"), ("42", "the integer 42")])
def test_a_document_that_is_not_a_mapping_is_rejected(text: str, got: str) -> None:
    error = error_of(text)
    assert (error.path, error.problem) == (
        "", f"expected a mapping of settings at the top of the document, got {got}")


def test_from_dict_rejects_a_non_mapping_and_names_its_source() -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_dict([1, 2], source="api")  # type: ignore[arg-type]
    assert str(info.value) == "api: expected a mapping of settings at the top of the document, " \
                              "got a list"
    with pytest.raises(ConfigError) as info:
        Config.from_dict({"workers": -2})
    assert str(info.value) == "<dict>: workers: must be at least 1, got -2"


def test_config_error_formatting_and_types() -> None:
    error = ConfigError("f.yaml", "resources[0].gvr", "bad")
    assert str(error) == "f.yaml: resources[0].gvr: bad"
    assert str(ConfigError("f.yaml", "", "bad")) == "f.yaml: bad"
    assert str(ConfigError("", "workers", "bad")) == "workers: bad"
    assert isinstance(error, FaroError) and isinstance(error, ValueError)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.source, copy.path, copy.problem, str(copy)) == (
        "f.yaml", "resources[0].gvr", "bad", "f.yaml: resources[0].gvr: bad")


# ---------------------------------------------------------------------------------------------
# Every problem in one error
# ---------------------------------------------------------------------------------------------


def problems_of(error: ConfigError) -> list[tuple[str, str]]:
    return [(each.path, each.problem) for each in error.errors]


def test_one_problem_is_its_own_only_error() -> None:
    error = error_of("workers: 0")
    assert error.errors == (error,)
    assert str(error) == "test.yaml: workers: must be at least 1, got 0"


def test_every_problem_of_a_namespace_centric_file_is_listed_with_its_path() -> None:
    error = error_of("""
namespaces:
  - name_selector: Production
    resources:
      v1/Pods: {}
      v1/services: {label_selector: "app in (a"}
  - name_selector: staging
    resources:
      v1/configmaps: {labels: x}
""")
    assert problems_of(error) == [
        ("namespaces[0].name_selector",
         "'Production' is not a valid namespace name (at most 63 lower-case letters, digits "
         "and '-', starting and ending with a letter or digit) and has no regular-expression "
         "syntax, so it could never match a namespace"),
        ("namespaces[0].resources[v1/Pods]",
         "invalid resource 'v1/Pods': 'Pods' is not a resource name (lower-case plural, like "
         "pods)"),
        ("namespaces[0].resources[v1/services].label_selector",
         "invalid label selector 'app in (a': unable to parse requirement: found '', "
         "expected: ',' or ')'"),
        ("namespaces[1].resources[v1/configmaps].labels",
         "unknown key 'labels'; did you mean 'label_selector'? (allowed keys: label_selector, "
         "field_selector, name_selector)"),
    ]
    assert (error.source, error.path) == ("test.yaml", "namespaces[0].name_selector")
    assert error.problem == error.errors[0].problem
    assert error.errors[0] is error
    assert all(each.source == "test.yaml" and each.errors == (each,)
               for each in error.errors[1:])


def test_every_problem_of_a_resource_centric_file_is_listed_with_its_path() -> None:
    error = error_of("""
resources:
  - gvr: pods
    namespace_names: [default, default]
  - gvr: v1/configmaps
    scope: Clustered
    field_selector: "a=b=c"
  - gvr: v1/secrets
    namespace_name: [a]
""")
    assert str(error) == (
        "test.yaml: resources[0].gvr: invalid resource 'pods': expected 'version/resource' for "
        "the core group (v1/pods) or 'group/version/resource' (apps/v1/deployments)\n"
        "  and 4 more problems:\n"
        "  resources[0].namespace_names[1]: duplicates resources[0].namespace_names[0] "
        "('default')\n"
        "  resources[1].scope: unknown scope 'Clustered'; did you mean 'Cluster'? (allowed: "
        "Namespaced, Cluster)\n"
        "  resources[1].field_selector: invalid field selector 'a=b=c': unescaped character in "
        "value: '=' (in 'a=b=c')\n"
        "  resources[2].namespace_name: unknown key 'namespace_name'; did you mean "
        "'namespace_names'? (allowed keys: gvr, scope, namespace_names, name_selector, "
        "label_selector, field_selector)")
    assert len(error.errors) == 5


def test_problems_are_listed_in_document_order() -> None:
    # The file's order, not the order of the settings in Config.
    error = error_of("""
resources: [{gvr: v1/pods, label_selector: "=x"}]
metrics: {path: metrics, port: -1}
namespaces: [{resources: {v1/pods: }}]
colour: red
workers: 0
""")
    assert [each.path for each in error.errors] == [
        "resources[0].label_selector", "metrics.path", "metrics.port", "namespaces[0]",
        "colour", "workers"]


def test_with_overrides_and_the_constructor_list_every_problem() -> None:
    with pytest.raises(ConfigError) as info:
        Config().with_overrides(worker=4, log_level="loud", max_retries=-1)
    assert [each.path for each in info.value.errors] == ["worker", "log_level", "max_retries"]
    with pytest.raises(ConfigError) as info:
        Config(workers=0, metrics=MetricsConfig(port=-1), resources=(ResourceConfig("pods"),),
               source="flags")
    assert [each.path for each in info.value.errors] == [
        "workers", "metrics.port", "resources[0].gvr"]
    assert str(info.value).startswith("flags: workers: must be at least 1, got 0\n"
                                      "  and 2 more problems:\n  metrics.port: ")


def test_resource_config_from_dict_and_normalize_list_every_problem() -> None:
    with pytest.raises(ConfigError) as info:
        ResourceConfig.from_dict({"gvr": "v1/pods", "labels": "a", "names": ["x"]},
                                 path="add[0]", source="add_resources")
    assert [each.path for each in info.value.errors] == ["add[0].labels", "add[0].names"]
    with pytest.raises(ConfigError) as info:
        ResourceConfig("v1/Pods", scope="global", namespace_names=("A",)).normalize()
    assert [each.path for each in info.value.errors] == [
        "resources[0].gvr", "resources[0].scope", "resources[0].namespace_names[0]"]


@pytest.mark.parametrize(("text", "path", "problem"), [
    # a section of the wrong type: its content is not looked at
    ("metrics: [{port: -1}]", "metrics", "expected a mapping, got a list"),
    ("resources: {gvr: pods, scope: x}", "resources", "expected a list of entries, got a mapping"),
    ("resources: [{gvr: v1/pods, namespace_names: {a: [B]}}]", "resources[0].namespace_names",
     "expected a list of namespace names, got a mapping"),
    # a misspelt required key is not also missing
    ("resources: [{gvrs: pods}]", "resources[0].gvrs",
     "unknown key 'gvrs'; did you mean 'gvr'? (allowed keys: gvr, scope, namespace_names, "
     "name_selector, label_selector, field_selector)"),
    ("namespaces: [{name_selectors: a, resources: {v1/pods: }}]",
     "namespaces[0].name_selectors",
     "unknown key 'name_selectors'; did you mean 'name_selector'? (allowed keys: "
     "name_selector, resources)"),
    # the namespaces of a Cluster-scoped resource are to go, not to be fixed
    ("resources: [{gvr: v1/nodes, scope: Cluster, namespace_names: ['[', 5]}]",
     "resources[0].namespace_names",
     "a Cluster-scoped resource has no namespaces: remove namespace_names, or the scope"),
    # a key that is not a resource is not also checked as one
    ("namespaces: [{name_selector: a, resources: {1: {}}}]", "namespaces[0].resources[1]",
     "expected a resource like v1/pods as the key, got the integer 1"),
])
def test_problems_that_follow_from_another_are_not_reported(text: str, path: str,
                                                            problem: str) -> None:
    error = error_of(text)
    assert problems_of(error) == [(path, problem)]


def test_an_entry_with_a_problem_is_not_also_a_duplicate() -> None:
    error = error_of("""
resources:
  - {gvr: v1/pods, namespace_names: [a]}
  - {gvr: v1/pods, namespace_names: [a], colour: red}
  - {gvr: v1/pods, namespace_names: [a]}
""")
    assert problems_of(error) == [
        ("resources[1].colour", "unknown key 'colour' (allowed keys: gvr, scope, "
                                "namespace_names, name_selector, label_selector, "
                                "field_selector)"),
        ("resources[2]", "duplicates resources[0] (the same resource, namespace and selectors)"),
    ]


def test_config_error_with_more_problems() -> None:
    more = ConfigError("f.yaml", "b", "two", [ConfigError("f.yaml", "c", "three")])
    error = ConfigError("f.yaml", "a", "one", [more, ConfigError("g.yaml", "", "four")])
    assert [(e.source, e.path, e.problem) for e in error.errors] == [
        ("f.yaml", "a", "one"), ("f.yaml", "b", "two"), ("f.yaml", "c", "three"),
        ("g.yaml", "", "four")]
    assert all(each.errors == (each,) for each in error.errors[1:])
    assert str(error) == ("f.yaml: a: one\n  and 3 more problems:\n  b: two\n  c: three\n"
                          "  g.yaml: four")
    assert str(ConfigError("f.yaml", "a", "one", [ConfigError("f.yaml", "b", "two")])) == \
        "f.yaml: a: one\n  and 1 more problem:\n  b: two"
    for copy in (pickle.loads(pickle.dumps(error)), copy_module.deepcopy(error)):
        assert str(copy) == str(error)
        assert copy.errors[0] is copy
        assert [str(e) for e in copy.errors] == [str(e) for e in error.errors]


@pytest.mark.parametrize("text", [
    "a: " + "[" * 5000 + "]" * 5000,                                 # deeper than Python goes
    "namespaces: &n [{name_selector: a, resources: {v1/pods: *n}}, *n]",  # recursive
    "resources: &r [{gvr: v1/pods, namespace_names: *r}, *r]",
    "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
    "resources: [*d, *d, {gvr: *d, scope: *d, namespace_names: *d, label_selector: *d}]\n",
])
def test_hostile_documents_give_a_config_error(text: str) -> None:
    error = error_of(text)
    assert error.errors[0] is error and len(error.errors) < 50


# ---------------------------------------------------------------------------------------------
# scope: any case, as the Go original's files write it
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("written", "scope"), [
    ("cluster", "Cluster"), ("Cluster", "Cluster"), ("CLUSTER", "Cluster"),
    ("namespaced", "Namespaced"), ("Namespaced", "Namespaced"), ("NAMESPACED", "Namespaced"),
    ("nameSpaced", "Namespaced"),
])
def test_scope_is_accepted_in_any_case_and_stored_canonically(written: str, scope: str) -> None:
    config = Config.from_yaml(f"resources: [{{gvr: v1/nodes, scope: {written}}}]")
    assert config.resources == (ResourceConfig("v1/nodes", scope),)
    assert [n.scope for n in config.normalized] == [scope]
    assert config.to_dict()["resources"] == [{"gvr": "v1/nodes", "scope": scope}]
    assert Config(resources=(ResourceConfig("v1/nodes", written),)) == config
    assert ResourceConfig("v1/nodes", written).normalize()[0].scope == scope


def test_lower_case_cluster_scope_still_has_no_namespaces() -> None:
    error = error_of("resources: [{gvr: v1/nodes, scope: cluster, namespace_names: [a]}]")
    assert problems_of(error) == [(
        "resources[0].namespace_names",
        "a Cluster-scoped resource has no namespaces: remove namespace_names, or the scope")]


# ---------------------------------------------------------------------------------------------
# Construction from Python, ResourceConfig.normalize
# ---------------------------------------------------------------------------------------------


def test_constructor_accepts_lists_and_validates() -> None:
    resource = ResourceConfig("v1/pods", namespace_names=["a", "b"])  # type: ignore[arg-type]
    assert resource.namespace_names == ("a", "b")
    config = Config(resources=[resource])  # type: ignore[arg-type]
    assert config.resources == (resource,)
    assert len(config.normalized) == 2
    with pytest.raises(ConfigError) as info:
        Config(workers=0, source="flags")
    assert str(info.value) == "flags: workers: must be at least 1, got 0"
    with pytest.raises(ConfigError) as info:
        Config(metrics=MetricsConfig(port=70000))
    assert info.value.path == "metrics.port"


def test_constructor_accepts_mappings_as_in_the_file() -> None:
    config = Config(metrics={"enabled": True},  # type: ignore[arg-type]
                    resources=[{"gvr": "v1/pods", "namespace_names": ["x"]}])  # type: ignore[arg-type]
    assert config.metrics == MetricsConfig(enabled=True)
    assert config.resources == (ResourceConfig("v1/pods", namespace_names=("x",)),)


def test_namespace_config_resources_are_read_only_and_hashable() -> None:
    rules = {"v1/pods": ResourceRule()}
    entry = NamespaceConfig("prod", rules)
    rules["v1/services"] = ResourceRule()           # the caller's dict is copied
    assert list(entry.resources) == ["v1/pods"]
    with pytest.raises(TypeError):
        entry.resources["v1/x"] = ResourceRule()  # type: ignore[index]
    assert entry == NamespaceConfig("prod", {"v1/pods": ResourceRule()})
    assert hash(entry) == hash(NamespaceConfig("prod", {"v1/pods": ResourceRule()}))
    config = Config.from_yaml(NAMESPACE_CENTRIC)
    assert hash(config) == hash(Config.from_yaml(NAMESPACE_CENTRIC))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.workers = 9  # type: ignore[misc]


def test_from_dict_accepts_the_dataclasses_inside_mappings() -> None:
    config = Config.from_dict({
        "metrics": MetricsConfig(enabled=True),
        "namespaces": [{"name_selector": "a", "resources": {"v1/pods": ResourceRule("x=y")}}],
        "resources": [ResourceConfig("v1/services")]})
    assert config.metrics.enabled
    assert config.normalized == (nc(PODS, "", namespace="a", label="x=y"), nc(SERVICES, ""))


def test_config_pickles_and_deep_copies() -> None:
    config = Config.from_yaml(NAMESPACE_CENTRIC + RESOURCE_CENTRIC, source="c.yaml")
    for copy in (pickle.loads(pickle.dumps(config)), copy_module.deepcopy(config)):
        assert copy == config
        assert copy.normalized == config.normalized
        assert copy.source == "c.yaml"


def test_resource_config_normalize() -> None:
    resource = ResourceConfig("apps/v1/deployments", "Namespaced", ("default", "prod-.*"),
                              name_selector="web", label_selector="app=web")
    assert resource.normalize() == (
        nc(DEPLOYMENTS, "", scope="Namespaced", namespace="default", label="app=web",
           fields="metadata.name=web"),
        nc(DEPLOYMENTS, "", scope="Namespaced", namespace_pattern="prod-.*", label="app=web",
           fields="metadata.name=web"),
    )
    assert {n.source for n in resource.normalize("resources[7]")} == {"resources[7]"}
    assert resource.normalize()[0].source == "resources[0]"
    with pytest.raises(ConfigError) as info:
        ResourceConfig("v1/pods", scope="clustered").normalize("added[2]", "add_resources")
    assert str(info.value) == ("add_resources: added[2].scope: unknown scope 'clustered'; did "
                               "you mean 'Cluster'? (allowed: Namespaced, Cluster)")


def test_resource_config_from_dict() -> None:
    assert ResourceConfig.from_dict({"gvr": "v1/pods", "namespace_names": ["a"], "scope": None}) \
        == ResourceConfig("v1/pods", namespace_names=("a",))
    assert ResourceConfig.from_dict({"gvr": "v1/pods", "namespace_names": None}) \
        == ResourceConfig("v1/pods")
    with pytest.raises(ConfigError) as info:
        ResourceConfig.from_dict({"gvr": "v1/pods", "labels": "a=b"}, path="add[1]",
                                 source="add_resources")
    assert str(info.value).startswith("add_resources: add[1].labels: unknown key 'labels'; "
                                      "did you mean 'label_selector'?")
    with pytest.raises(ConfigError) as info:
        ResourceConfig.from_dict({"scope": "Cluster"})
    assert str(info.value) == "<dict>: resources[0]: missing required key 'gvr'"
    with pytest.raises(ConfigError) as info:
        ResourceConfig.from_dict("v1/pods", path="add[0]")  # type: ignore[arg-type]
    assert str(info.value) == "<dict>: add[0]: expected a mapping, got the string 'v1/pods'"
    # values are checked by normalize
    loose = ResourceConfig.from_dict({"gvr": "v1/pods", "namespace_names": "a"})
    with pytest.raises(ConfigError, match=r"namespace_names: expected a list"):
        loose.normalize()


def test_allowed_key_sets_follow_the_dataclasses() -> None:
    assert CONFIG_KEYS == ("output_dir", "log_level", "auto_shutdown_sec", "json_export",
                           "workers", "max_retries", "unhealthy_after_sec", "metrics",
                           "export", "pending", "shard", "namespaces", "resources")
    assert SHARD_KEYS == ("index", "count")
    assert METRICS_KEYS == ("enabled", "port", "path", "bind_addr")
    assert EXPORT_KEYS == ("output", "max_bytes", "backups", "fsync")
    assert EXPORT_OUTPUTS == ("file", "stdout")
    assert PENDING_KEYS == ("max_events", "max_bytes", "max_events_per_informer",
                            "max_bytes_per_informer", "unready_after_sec", "stuck_handler_sec")
    assert NAMESPACE_KEYS == ("name_selector", "resources")
    assert RESOURCE_RULE_KEYS == ("label_selector", "field_selector", "name_selector")
    assert RESOURCE_KEYS == ("gvr", "scope", "namespace_names", "name_selector",
                             "label_selector", "field_selector")
    assert LOG_LEVELS == ("debug", "info", "warning", "error", "fatal")
    assert SCOPES == ("Namespaced", "Cluster")


# ---------------------------------------------------------------------------------------------
# load_config
# ---------------------------------------------------------------------------------------------


def test_load_config_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(README_RESOURCE_CENTRIC, encoding="utf-8")
    config = load_config(path)
    assert config.source == str(path)
    assert config == Config.from_yaml(README_RESOURCE_CENTRIC)
    assert load_config(str(path)).source == str(path)


def test_load_config_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("workers: 0\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: workers: must be at least 1, got 0"


def test_load_config_of_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert (info.value.source, info.value.path) == (str(path), "")
    assert info.value.problem == "cannot read the file: No such file or directory"


def test_load_config_of_a_directory_and_of_binary(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"{tmp_path}: cannot read the file: ")):
        load_config(tmp_path)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"workers: \xff\n")
    with pytest.raises(ConfigError) as info:
        load_config(binary)
    assert info.value.problem == "not UTF-8 text (byte 9: invalid start byte)"


# ---------------------------------------------------------------------------------------------
# with_overrides and to_dict
# ---------------------------------------------------------------------------------------------


def test_with_overrides_replaces_and_revalidates() -> None:
    config = Config.from_yaml(README_NAMESPACE_CENTRIC, source="c.yaml")
    changed = config.with_overrides(workers=8, log_level="DEBUG",
                                    metrics=dataclasses.replace(config.metrics, port=9090))
    assert (changed.workers, changed.log_level, changed.metrics.port) == (8, "debug", 9090)
    assert changed.normalized == config.normalized
    assert changed.source == "c.yaml"
    assert config.workers == 3                            # the original is unchanged
    with pytest.raises(ConfigError) as info:
        config.with_overrides(workers=0)
    assert str(info.value) == "c.yaml: workers: must be at least 1, got 0"
    with pytest.raises(ConfigError) as info:
        config.with_overrides(worker=4)
    assert info.value.path == "worker"
    assert info.value.problem.startswith("unknown key 'worker'; did you mean 'workers'?")


def test_with_overrides_recomputes_normalized() -> None:
    config = Config.from_yaml(README_NAMESPACE_CENTRIC)
    changed = config.with_overrides(namespaces=(), resources=(ResourceConfig("v1/pods"),))
    assert changed.normalized == (nc(PODS, "resources[0]"),)
    with pytest.raises(ConfigError) as info:
        config.with_overrides(resources=[{"gvr": "v1/services",
                                          "namespace_names": ["production"]}])
    assert info.value.path == "resources[0]"
    assert info.value.problem.startswith("duplicates namespaces[0].resources[v1/services]")


def test_to_dict_writes_every_setting() -> None:
    config = Config.from_yaml("""
workers: 4
namespaces:
  - name_selector: prod
    resources: {v1/pods: {label_selector: "app = web"}, v1/services: }
resources:
  - gvr: v1/configmaps
    scope: Namespaced
    namespace_names: [a]
  - gvr: v1/nodes
""")
    assert config.to_dict() == {
        "output_dir": "./output", "log_level": "info", "auto_shutdown_sec": 0.0,
        "json_export": False, "workers": 4, "max_retries": 5, "unhealthy_after_sec": 60.0,
        "metrics": {"enabled": False, "port": 8080, "path": "/metrics", "bind_addr": "0.0.0.0"},
        "export": {"output": "file", "max_bytes": 100 * 1024 * 1024, "backups": 5,
                   "fsync": False},
        "pending": {"max_events": 100_000, "max_bytes": 56 * 1024 * 1024,
                    "max_events_per_informer": 50_000,
                    "max_bytes_per_informer": 28 * 1024 * 1024,
                    "unready_after_sec": 60, "stuck_handler_sec": 60},
        "shard": {"index": 0, "count": 1},
        "namespaces": [{"name_selector": "prod",
                        "resources": {"v1/pods": {"label_selector": "app = web"},
                                      "v1/services": {}}}],
        "resources": [{"gvr": "v1/configmaps", "scope": "Namespaced", "namespace_names": ["a"]},
                      {"gvr": "v1/nodes"}],
    }


@pytest.mark.parametrize("text", [NAMESPACE_CENTRIC, RESOURCE_CENTRIC, README_NAMESPACE_CENTRIC,
                                  README_OPERATOR_CONFIGMAP, ""])
def test_to_dict_round_trips_through_from_dict_and_yaml(text: str) -> None:
    config = Config.from_yaml(text)
    again = Config.from_dict(config.to_dict())
    assert again == config
    assert again.normalized == config.normalized
    assert [n.source for n in again.normalized] == [n.source for n in config.normalized]
    assert Config.from_yaml(yaml.safe_dump(config.to_dict())) == config


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------

dns_labels = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?", fullmatch=True)
patterns = st.sampled_from(["prod-.*", "team-[0-9]+", "a|b", r"x\.y", ".*"])
selectors = st.sampled_from([None, "", "app=web", "tier in (a,b)", "!canary", "env!=dev"])
field_selectors = st.sampled_from([None, "", "status.phase=Running", "spec.nodeName!=n1"])
gvrs = st.sampled_from(["v1/pods", "apps/v1/deployments", "example.com/v1beta1/widgets"])

resource_configs = st.builds(
    ResourceConfig,
    gvr=gvrs,
    scope=st.sampled_from([None, "Namespaced"]),
    namespace_names=st.lists(st.one_of(dns_labels, patterns), max_size=3, unique=True)
    .map(tuple),
    name_selector=st.one_of(st.none(), dns_labels, patterns),
    label_selector=selectors,
    field_selector=field_selectors,
)
namespace_configs = st.builds(
    NamespaceConfig,
    name_selector=st.one_of(dns_labels, patterns),
    resources=st.dictionaries(gvrs, st.builds(ResourceRule, label_selector=selectors,
                                              field_selector=field_selectors,
                                              name_selector=st.one_of(st.none(), dns_labels)),
                              min_size=1, max_size=2),
)


@settings(max_examples=150, deadline=None)
@given(namespaces=st.lists(namespace_configs, max_size=3),
       resources=st.lists(resource_configs, max_size=3),
       workers=st.integers(1, 64),
       shutdown=st.floats(0, 1e6, allow_nan=False))
def test_any_valid_config_round_trips_and_normalises_consistently(
        namespaces: list[NamespaceConfig], resources: list[ResourceConfig], workers: int,
        shutdown: float) -> None:
    try:
        config = Config(namespaces=tuple(namespaces), resources=tuple(resources),
                        workers=workers, auto_shutdown_sec=shutdown)
    except ConfigError as exc:
        # the only generated mistakes are duplicate entries
        assert exc.problem.startswith("duplicates ")
        return
    assert Config.from_dict(config.to_dict()) == config
    assert Config.from_yaml(yaml.safe_dump(config.to_dict())) == config
    expected = sum(len(n.resources) for n in namespaces) + sum(
        max(1, len(r.namespace_names)) for r in resources)
    assert len(config.normalized) == expected
    assert len(set(config.normalized)) == expected
    for item in config.normalized:
        assert item.namespace is None or item.namespace_pattern is None
        if item.namespace is not None:
            assert item.matches_namespace(item.namespace)
            assert not item.matches_namespace(item.namespace + "x")
        if item.namespace_pattern is not None:
            assert item.matches_namespace("") == (re.fullmatch(item.namespace_pattern, "")
                                                  is not None)


@given(name=st.text(alphabet="abz09-.:_A", min_size=1, max_size=20))
def test_object_name_selector_means_the_same_exact_or_pattern(name: str) -> None:
    """An exact name goes to the server and a pattern stays with faro, but both select the
    same objects whenever the text is also a valid regular expression."""
    try:
        (only,) = ResourceConfig("v1/pods", name_selector=name).normalize()
    except ConfigError as exc:
        pytest.fail(f"{name!r} rejected: {exc}")
    if only.name_pattern is None:
        assert only.field_selector is not None
        assert f"metadata.name={name}" in only.field_selector.split(",")
    else:
        assert only.name_pattern == name
        assert only.matches_name(name) == (re.fullmatch(name, name) is not None)


@pytest.mark.parametrize(("shard", "message"), [
    ({"index": 2, "count": 2}, "shard.index: must be less than shard.count (2): shards are "
                               "numbered from 0, got 2"),
    ({"index": -1}, "shard.index: must not be negative, got -1"),
    ({"count": 0}, "shard.count: must be at least 1, got 0"),
    ({"idx": 1}, "shard.idx: unknown key 'idx'; did you mean 'index'? (allowed keys: index, "
                 "count)"),
    ("two", "shard: expected a mapping, got the string 'two'"),
])
def test_a_bad_shard_section_is_refused_naming_the_key(shard: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_dict({"shard": shard, "resources": [{"gvr": "v1/pods"}]})
    assert str(info.value) == f"<dict>: {message}"


def test_the_shard_section() -> None:
    config = Config.from_yaml("shard: {index: 1, count: 3}\nresources: [{gvr: v1/pods}]\n")
    assert config.shard == ShardConfig(index=1, count=3)
    assert Config.from_dict(config.to_dict()) == config
    assert Config.from_dict({"resources": [{"gvr": "v1/pods"}]}).shard == ShardConfig(0, 1)
