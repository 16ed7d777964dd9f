"""The Grafana dashboard (deploy/grafana) and the alerting rules (deploy/prometheus).

What a user of them relies on:

* every metric a dashboard query, a dashboard variable or a rule names is one faro exposes:
  the names are collected from a real :class:`faro.Controller` watching the simulator, scraped
  over HTTP once every series has appeared (events delivered and filtered, watch restarts and
  relists, and the leader and shard gauges, set as a leader-elected sharded controller sets
  them), histograms with their ``_bucket``, ``_sum`` and ``_count`` series;
* the dashboard is a well-formed Grafana model: a ``datasource`` variable of type prometheus
  that every panel and query uses, unique panel ids, panels on the 24-column grid without
  overlapping, every query with an expression and a unique refId, every variable defined;
* every alert has an expression, a ``for``, a severity label and summary and description
  annotations; ``promtool check rules`` accepts the rules and the dashboard's expressions,
  and ``promtool test rules`` passes deploy/prometheus/faro-rules.test.yaml (and fails when a
  rule is broken). The promtool tests are skipped, saying why, where promtool is not
  installed (.ci/run installs it).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from faro.testing import SimulatedCluster
from tests.integration.controller_helpers import Controllers, Events
from tests.integration.helpers import configmap, eventually
from tests.integration.test_metrics import METRICS, drop_watches_until, scrape

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy" / "grafana" / "faro-dashboard.json"
RULES = ROOT / "deploy" / "prometheus" / "faro-rules.yaml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "faro-rules.test.yaml"
RULES_FILE = "faro-rules.rules.yaml"  # what faro-rules.test.yaml loads: the rules' spec

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SEVERITIES = {"critical", "warning", "info"}
# Grafana's own variables, which a query may use without defining them.
GRAFANA_VARIABLES = {"__rate_interval", "__interval", "__interval_ms", "__range",
                     "__range_s", "__range_ms", "__from", "__to"}

# ------------------------------------------------------------------------ PromQL names

_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_GRAFANA_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+|\[\[\w+\]\]")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)",
                         re.IGNORECASE)
# A name: not part of a number (1e-8, 0x1f) or of a longer name, and not a function's (one
# followed by an opening parenthesis: rate, sum, histogram_quantile, absent...).
_NAME = re.compile(r"(?<![\w:.])[A-Za-z_:][\w:]*(?![\w:]|\s*\()")
_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
             "group_right", "bool", "offset", "atan2", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects.

    Left out: string literals (label values, regular expressions), Grafana variables, label
    matchers ``{...}``, ranges and subqueries ``[...]``, the label lists of ``by``,
    ``without``, ``on``, ``ignoring``, ``group_left`` and ``group_right``, functions and
    aggregations (names followed by ``(``), keywords and numbers. A selector that names its
    metric only through ``__name__`` is refused: the check could not see the name.
    """
    text = _STRING.sub(" ", expr)
    if "__name__" in text:
        raise ValueError(f"select metrics by name, not through __name__: {expr}")
    text = _GRAFANA_VARIABLE.sub(" ", text)
    for pattern in (_MATCHERS, _RANGE, _LABEL_LIST):
        while True:  # innermost first: a subquery's range may hold a matcher's braces
            text, count = pattern.subn(" ", text)
            if not count:
                break
    return {name for name in _NAME.findall(text) if name.lower() not in _KEYWORDS}


@pytest.mark.parametrize(("expr", "names"), [
    ("faro_leader", {"faro_leader"}),
    ('sum by (gvr, event_type) (rate(faro_events_total{job=~"$job", gvr!="by (x)"}'
     "[$__rate_interval]))", {"faro_events_total"}),
    ("histogram_quantile(0.99, sum by (le, name) (rate(workqueue_queue_duration_seconds_bucket"
     '{name="faro"}[5m])))', {"workqueue_queue_duration_seconds_bucket"}),
    ("sum(rate(x_total[5m])) by (reason) > 1e-8 and on (instance) group_left (pod) up_info",
     {"x_total", "up_info"}),
    ("time() - max without (instance) (faro_informer_last_event_timestamp_seconds offset 5m)",
     {"faro_informer_last_event_timestamp_seconds"}),
    ("absent(faro_leader) or vector(0) unless bool 0x1f", {"faro_leader"}),
    ("max_over_time(rate(a:b:rate5m[5m])[1h:1m]) > Inf", {"a:b:rate5m"}),
    ("label_replace(faro_shard, \"x\", \"$1\", \"index\", \"(.*)\")", {"faro_shard"}),
    ("count_values(\"version\", build_info) / ignoring(version) count(build_info)",
     {"build_info"}),
    ("rate (faro_relists_total[5m])", {"faro_relists_total"}),
])
def test_metric_names_are_read_out_of_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_a_selector_by_name_label_is_refused() -> None:
    with pytest.raises(ValueError, match="__name__"):
        metric_names('{__name__=~"faro_.*"}')


# ---------------------------------------------------------------------------- sources


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(DASHBOARD.read_bytes())
    return data


def rule_object() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(RULES.read_text())
    return data


def rules() -> list[dict[str, Any]]:
    return [rule for group in rule_object()["spec"]["groups"] for rule in group["rules"]]


def variable_query(variable: dict[str, Any]) -> str:
    query = variable.get("query", "")
    return str(query.get("query", "") if isinstance(query, dict) else query)


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, PromQL) for every panel query and every query variable's metric selector."""
    found = []
    model = dashboard()
    for panel in model["panels"]:
        for target in panel.get("targets", []):
            found.append((f"panel {panel['id']} {panel['title']!r} {target['refId']}",
                          target["expr"]))
    for variable in model["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable_query(variable)
        # label_values(<selector>, <label>): the selector is PromQL, the label is not.
        match = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", query)
        found.append((f"variable {variable['name']}", match.group(1) if match else query))
    return found


def rule_queries() -> list[tuple[str, str]]:
    return [(rule["alert"], rule["expr"]) for rule in rules()]


# ----------------------------------------------------------------- what faro exposes


@pytest.fixture(scope="module")
def exposed() -> Iterator[frozenset[str]]:
    """Every sample name a running controller serves on /metrics, once every family has a
    series: the leader and shard gauges set as leader election and sharding set them."""
    with SimulatedCluster(namespace_cleanup_delay=0.05) as cluster:
        controllers = Controllers(cluster)
        try:
            events = Events()
            controller = controllers.make({
                "metrics": METRICS,
                "resources": [{"gvr": "v1/configmaps", "namespace_names": ["default"],
                               "name_selector": "cm-.*"}],
            }, events)
            controller.metrics.set_leader("faro-shard-0", True)
            controller.metrics.set_shard(0, 2)
            cluster.create(configmap("cm-0"))  # a watch event, delivered
            cluster.create(configmap("other"))  # filtered by the name pattern
            events.wait_key("default/cm-0", "ADDED")
            eventually(lambda: scrape(controller).get("faro_events_filtered_total"),
                       what="the filtered event counted")
            # A change the informer does not watch, then a compaction: the resourceVersion
            # its watch resumes from is gone (410), so it lists again.
            cluster.create({"apiVersion": "v1", "kind": "Namespace",
                            "metadata": {"name": "elsewhere"}})
            cluster.create(configmap("unwatched", namespace="elsewhere"))
            cluster.compact()
            drop_watches_until(cluster, lambda: all(
                scrape(controller).get(name) for name in
                ("faro_watch_restarts_total", "faro_relists_total")))
            yield frozenset(scrape(controller))
        finally:
            controllers.stop_all()


def test_the_controller_exposes_what_the_dashboard_is_about(exposed: frozenset[str]) -> None:
    """The fixture means something: its scrape has the families, histograms by series."""
    assert {"faro_leader", "faro_shard", "faro_events_total", "faro_watch_restarts_total",
            "faro_relists_total", "workqueue_queue_duration_seconds_bucket",
            "workqueue_queue_duration_seconds_count", "faro_pending_held_informers",
            "faro_informer_sync_duration_seconds_sum"} <= exposed
    assert "workqueue_queue_duration_seconds" not in exposed  # only its series are
    assert not any(name.endswith("_created") for name in exposed)


def unknown_names(queries: list[tuple[str, str]], exposed: frozenset[str]
                  ) -> dict[str, set[str]]:
    """The names each query uses that faro does not expose (only queries that have some)."""
    unknown = {}
    for where, expr in queries:
        names = metric_names(expr)
        assert names, f"{where} names no metric: {expr}"
        if names - exposed:
            unknown[where] = names - exposed
    return unknown


def test_every_dashboard_query_names_metrics_faro_exposes(exposed: frozenset[str]) -> None:
    assert unknown_names(dashboard_queries(), exposed) == {}


def test_every_rule_names_metrics_faro_exposes(exposed: frozenset[str]) -> None:
    assert unknown_names(rule_queries(), exposed) == {}


def test_the_name_check_reports_a_metric_faro_does_not_expose(
        exposed: frozenset[str]) -> None:
    queries = [("a misspelt counter", "sum(rate(faro_event_total[5m]))"),
               ("a histogram without its suffix",
                "histogram_quantile(0.9, rate(workqueue_work_duration_seconds[5m]))"),
               ("fine", "faro_leader")]
    assert unknown_names(queries, exposed) == {
        "a misspelt counter": {"faro_event_total"},
        "a histogram without its suffix": {"workqueue_work_duration_seconds"}}


# --------------------------------------------------------------------------- dashboard


def test_the_dashboard_uses_a_prometheus_datasource_variable_everywhere() -> None:
    model = dashboard()
    assert model["title"] and re.fullmatch(r"[\w-]{1,40}", model["uid"])
    assert isinstance(model["schemaVersion"], int)
    variables = {variable["name"]: variable for variable in model["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("job", "instance"):
        assert variables[name]["type"] == "query"
        assert variables[name]["datasource"] == DATASOURCE
    for panel in model["panels"]:
        assert panel["datasource"] == DATASOURCE, panel["title"]
        for target in panel["targets"]:
            assert target.get("datasource", DATASOURCE) == DATASOURCE, panel["title"]


def overlap(a: dict[str, int], b: dict[str, int]) -> bool:
    return (a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
            and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"])


def check_panels(model: dict[str, Any]) -> None:
    """Panels with unique ids, on the grid without overlapping, each with queries."""
    panels = model["panels"]
    assert panels
    ids = [panel["id"] for panel in panels]
    assert all(isinstance(i, int) for i in ids) and len(set(ids)) == len(ids), ids
    for panel in panels:
        where = f"panel {panel['id']} {panel.get('title')!r}"
        assert panel.get("title") and panel.get("type") in {"timeseries", "stat"}, where
        assert panel.get("datasource"), where
        grid = panel["gridPos"]
        assert set(grid) == {"x", "y", "w", "h"}, where
        assert all(isinstance(grid[k], int) and grid[k] >= 0 for k in grid), where
        assert grid["w"] >= 1 and grid["h"] >= 1 and grid["x"] + grid["w"] <= 24, where
        targets = panel.get("targets")
        assert targets, f"{where} has no queries"
        refs = [target.get("refId") for target in targets]
        assert all(refs) and len(set(refs)) == len(refs), where
        for target in targets:
            assert isinstance(target.get("expr"), str) and target["expr"].strip(), where
    for index, panel in enumerate(panels):
        for other in panels[index + 1:]:
            assert not overlap(panel["gridPos"], other["gridPos"]), (panel["id"], other["id"])


def test_the_dashboard_panels_are_well_formed() -> None:
    check_panels(dashboard())


@pytest.mark.parametrize("breakage", ["duplicate id", "no datasource", "no expr",
                                      "overlap", "off the grid", "duplicate refId"])
def test_the_panel_check_catches_a_broken_dashboard(breakage: str) -> None:
    model = dashboard()
    first, second = model["panels"][0], model["panels"][1]
    if breakage == "duplicate id":
        second["id"] = first["id"]
    elif breakage == "no datasource":
        del second["datasource"]
    elif breakage == "no expr":
        second["targets"][0]["expr"] = ""
    elif breakage == "overlap":
        second["gridPos"] = dict(first["gridPos"])
    elif breakage == "off the grid":
        second["gridPos"]["x"] = 24 - second["gridPos"]["w"] + 1
    else:
        second["targets"].append(dict(second["targets"][0]))
    with pytest.raises(AssertionError):
        check_panels(model)


def test_every_variable_a_query_uses_is_defined_and_every_one_is_used() -> None:
    model = dashboard()
    defined = {variable["name"] for variable in model["templating"]["list"]}
    texts = [expr for _, expr in dashboard_queries()]
    texts += [variable_query(v) for v in model["templating"]["list"] if v["type"] == "query"]
    used = {match.group(1) or match.group(2) for text in texts
            for match in re.finditer(r"\$\{(\w+)[^}]*\}|\$(\w+)", text)}
    assert used - GRAFANA_VARIABLES <= defined, used - GRAFANA_VARIABLES - defined
    assert defined - {"datasource"} <= used, f"unused variables: {defined - used}"


def test_every_panel_query_selects_the_chosen_job_and_instance() -> None:
    for panel in dashboard()["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for name in metric_names(expr):
                selectors = re.findall(rf"(?<![\w:]){re.escape(name)}(\{{[^}}]*\}})?", expr)
                assert selectors, (panel["title"], name)
                for matchers in selectors:
                    assert 'job=~"$job"' in matchers and 'instance=~"$instance"' in matchers, \
                        (panel["title"], name, expr)


def test_the_dashboard_shows_what_issue_17_lists() -> None:
    """Events by resource and type, queue depth and latency, the pending bound, leader and
    shard, watch restarts and relists, decode errors, informer health, handler errors and
    events given up."""
    used = set().union(*(metric_names(expr) for _, expr in dashboard_queries()))
    assert {"faro_events_total", "workqueue_depth", "workqueue_queue_duration_seconds_bucket",
            "faro_pending_events", "faro_pending_held_informers", "faro_leader", "faro_shard",
            "faro_watch_restarts_total", "faro_relists_total",
            "faro_watch_decode_errors_total", "faro_informer_health", "faro_informers",
            "faro_handler_errors_total", "faro_events_given_up_total"} <= used
    by_type = [expr for _, expr in dashboard_queries() if "faro_events_total" in expr]
    assert any("gvr" in expr and "event_type" in expr for expr in by_type)


# ------------------------------------------------------------------------------- rules


def check_rule(rule: dict[str, Any]) -> None:
    """An alerting rule as faro's are written: a name, an expression, a ``for``, a severity,
    a summary and a description; nothing else."""
    name = rule.get("alert", "")
    assert re.fullmatch(r"Faro[A-Z][A-Za-z]+", name), rule
    assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, name
    assert isinstance(rule["expr"], str) and rule["expr"].strip(), name
    assert re.fullmatch(r"(\d+[smh])+", str(rule["for"])), name
    assert rule["labels"].get("severity") in SEVERITIES, name
    annotations = rule["annotations"]
    assert set(annotations) == {"summary", "description"}, name
    assert all(isinstance(text, str) and text.strip() for text in annotations.values()), name


def test_the_prometheusrule_object() -> None:
    obj = rule_object()
    assert obj["apiVersion"] == "monitoring.coreos.com/v1"
    assert obj["kind"] == "PrometheusRule"
    assert obj["metadata"]["name"] and obj["metadata"]["namespace"] == "faro-system"
    groups = obj["spec"]["groups"]
    names = [group["name"] for group in groups]
    assert len(set(names)) == len(names) and all(group["rules"] for group in groups)


def test_every_alert_has_an_expression_for_severity_and_annotations() -> None:
    alerts = rules()
    for rule in alerts:
        check_rule(rule)
    names = [rule["alert"] for rule in alerts]
    assert len(set(names)) == len(names), names
    assert {"FaroNoLeader", "FaroInformerNotSynced", "FaroInformerFailing",
            "FaroPendingBoundHeld", "FaroHandlerErrors", "FaroEventsGivenUp",
            "FaroExportErrors"} <= set(names)
    no_leader = next(rule for rule in alerts if rule["alert"] == "FaroNoLeader")
    assert re.fullmatch(r"sum by \([\w, ]*\blease\b[\w, ]*\) \(faro_leader\) < 1",
                        no_leader["expr"])


@pytest.mark.parametrize("breakage", [("for", None), ("labels", {}), ("annotations", {}),
                                      ("expr", " "), ("alert", "no leader")])
def test_the_rule_check_catches_a_broken_rule(breakage: tuple[str, Any]) -> None:
    rule = orjson.loads(orjson.dumps(rules()[0]))
    key, value = breakage
    if value is None:
        del rule[key]
    else:
        rule[key] = value
    with pytest.raises(AssertionError):
        check_rule(rule)


# ----------------------------------------------------------------------------- promtool


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (Debian: the prometheus package; .ci/run "
                    "installs its promtool): the rule files were checked by schema only")
    return path


def write_rules(directory: Path, groups: list[dict[str, Any]]) -> Path:
    path = directory / RULES_FILE
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return path


def run_promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120, check=False)


def test_promtool_accepts_the_rules(tmp_path: Path) -> None:
    path = write_rules(tmp_path, rule_object()["spec"]["groups"])
    done = run_promtool("check", "rules", str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules())} rules found" in done.stdout


def test_promtool_unit_tests_of_the_rules_pass(tmp_path: Path) -> None:
    write_rules(tmp_path, rule_object()["spec"]["groups"])
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    done = run_promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_has_a_unit_test() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())
    assert tests["rule_files"] == [RULES_FILE]
    tested = {case["alertname"] for test in tests["tests"]
              for case in test.get("alert_rule_test", [])}
    firing = {case["alertname"] for test in tests["tests"]
              for case in test.get("alert_rule_test", []) if case["exp_alerts"]}
    names = {rule["alert"] for rule in rules()}
    assert tested == names
    assert firing == names, f"never seen firing: {names - firing}"


@pytest.mark.parametrize(("alert", "broken"), [
    ("FaroNoLeader", "min by (namespace, job, lease) (faro_leader) < 1"),  # any standby
    ("FaroPendingBoundHeld", "sum by (namespace, job, instance) (faro_pending_held_informers) > 1"),
])
def test_promtool_unit_tests_fail_for_a_broken_rule(tmp_path: Path, alert: str,
                                                    broken: str) -> None:
    groups = rule_object()["spec"]["groups"]
    rule = next(rule for group in groups for rule in group["rules"] if rule["alert"] == alert)
    rule["expr"] = broken
    write_rules(tmp_path, groups)
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    done = run_promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert done.returncode != 0, done.stdout
    assert f"alertname: {alert}" in done.stdout + done.stderr


GRAFANA_VALUES = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}


def as_prometheus_sees_it(expr: str) -> str:
    """A dashboard query with Grafana's variables replaced as Grafana does before sending it
    (durations for its own, ``.*`` for a multi-value ``All`` in a regular expression)."""
    return re.sub(r"\$\{(\w+)[^}]*\}|\$(\w+)",
                  lambda m: GRAFANA_VALUES.get(m.group(1) or m.group(2), ".*"), expr)


def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    """Each query, as a recording rule of its own, passes ``promtool check rules``."""
    queries = [(where, expr) for where, expr in dashboard_queries()
               if not where.startswith("variable")]
    recorded = [{"record": f"faro:dashboard:query_{number}", "expr": as_prometheus_sees_it(expr)}
                for number, (_, expr) in enumerate(queries)]
    path = write_rules(tmp_path, [{"name": "dashboard", "rules": recorded}])
    done = run_promtool("check", "rules", str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    bad = write_rules(tmp_path, [{"name": "bad", "rules": [
        {"record": "faro:dashboard:bad", "expr": as_prometheus_sees_it(
            'sum by (gvr (rate(faro_events_total{job=~"$job"}[$__rate_interval]))')}]}])
    assert run_promtool("check", "rules", str(bad), cwd=tmp_path).returncode != 0


def test_the_dashboard_file_is_formatted_json() -> None:
    """Two-space indentation, as Grafana exports it, so diffs stay readable."""
    text = DASHBOARD.read_text()
    assert text == json.dumps(json.loads(text), indent=2, ensure_ascii=False) + "\n"
