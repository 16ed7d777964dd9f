"""The informer planner (faro._plan): pure, so every case is a value in and a value out.

The offline cases check the plan `faro validate` prints: ``render`` below is the
informers section of its text output, built from the plan the way the command builds it,
and the expected texts are what the command printed for the repository's example
configurations and documentation when the planner moved here.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from faro._plan import (
    KUBERNETES_CLUSTER_SCOPED,
    OFFLINE,
    Plan,
    PlannedInformer,
    Served,
    Snapshot,
    StreamKey,
    plan_informers,
)
from faro.config import Config, NormalizedConfig
from faro.gvr import GroupVersionResource
from tests.test_cli import RESOURCE_CENTRIC

ROOT = Path(__file__).resolve().parent.parent.parent
CONFIGMAPS = GroupVersionResource("", "v1", "configmaps")
NAMESPACES = GroupVersionResource("", "v1", "namespaces")
WIDGETS = GroupVersionResource("example.com", "v1", "widgets")
NAMESPACED = Served(namespaced=True)
CLUSTER = Served(namespaced=False)


def entries(text: str) -> tuple[NormalizedConfig, ...]:
    return Config.from_yaml(textwrap.dedent(text)).normalized


def live(widgets: Served | None = None) -> Snapshot:
    """A cluster serving configmaps and namespaces as Kubernetes does, and widgets so."""
    served = {CONFIGMAPS: NAMESPACED, NAMESPACES: CLUSTER}
    if widgets is not None:
        served[WIDGETS] = widgets
    return Snapshot(served)


def shape(plan: Plan) -> list[tuple[str, list[str]]]:
    """Each informer's request and the sources of the entries it serves."""
    return [(str(informer.key), [e.config.source for e in informer.entries])
            for informer in plan.informers]


SHARED = "in all namespaces, filtered by faro to"
BY_FARO = "(filtered by faro)"


def expected_lines(text: str) -> list[str]:
    """``text``'s lines, ``<shared>`` standing for :data:`SHARED`, ``<by faro>`` for
    :data:`BY_FARO`, ``<team>`` and ``<config>`` for two patterns (long lines)."""
    return text.replace("<shared>", SHARED).replace("<by faro>", BY_FARO) \
        .replace("<team>", "namespaces matching 'team-.*'") \
        .replace("<config>", "names matching 'config-.*' (client-side)").splitlines()


def render(plan: Plan) -> list[str]:
    """The informers section of `faro validate`'s text output, from ``plan``."""
    lines = []
    for number, informer in enumerate(plan.informers, 1):
        key = informer.key
        shared = f", shared by {len(informer.entries)} entries" if len(informer.entries) > 1 \
            else ""
        lines.append(f"  [{number}] {key.gvr} {informer.target}{shared}")
        if key.label_selector:
            lines.append(f"      label selector (server-side): {key.label_selector}")
        if key.field_selector:
            lines.append(f"      field selector (server-side): {key.field_selector}")
        for entry in informer.entries:
            notes = f": {'; '.join(entry.notes)}" if entry.notes else ""
            lines.append(f"      entry {entry.config.source}{notes}")
    return lines


# ------------------------------------------------------------------------------ sharing


def test_entries_making_the_same_request_share_one_informer() -> None:
    plan = plan_informers(entries("""
        namespaces:
          - name_selector: default
            resources: {"v1/configmaps": {name_selector: "a-.*"}}
        resources:
          - {gvr: v1/configmaps, namespace_names: [default], name_selector: "b-.*"}
          - {gvr: v1/configmaps, label_selector: "team=x"}
        """), live(), namespaces=["default"])

    assert shape(plan) == [
        ("v1/configmaps in default", ["namespaces[0].resources[v1/configmaps]", "resources[0]"]),
        ("v1/configmaps labels 'team=x'", ["resources[1]"]),
    ]
    shared = plan.informers[0]
    assert not shared.cluster_scoped
    assert [e.notes for e in shared.entries] == [
        ("names matching 'a-.*' (client-side)",), ("names matching 'b-.*' (client-side)",)]
    assert plan.warnings == () and plan.unserved == ()
    assert plan.by_key() == {i.key: i for i in plan.informers}


def test_a_namespace_entry_folds_into_the_all_namespaces_informer_of_the_same_request() -> None:
    plan = plan_informers(entries("""
        resources:
          - {gvr: v1/configmaps, namespace_names: [kube-system]}
          - {gvr: v1/configmaps}
          - {gvr: v1/configmaps, namespace_names: [default], label_selector: app}
        """), live(), namespaces=["default", "kube-system"])

    # The all-namespaces request takes the place where the first request it serves appeared;
    # another selector is another request, so the third entry keeps its own informer.
    assert shape(plan) == [("v1/configmaps", ["resources[0]", "resources[1]"]),
                           ("v1/configmaps in default labels 'app'", ["resources[2]"])]
    assert plan.informers[0].entries[0].notes == ("only namespace kube-system (filtered by faro)",)
    assert plan.informers[0].target == "in all namespaces"


def test_a_cluster_scoped_resource_gets_one_cluster_wide_informer_and_a_warning() -> None:
    plan = plan_informers(entries("""
        namespaces:
          - name_selector: default
            resources: {"v1/namespaces": {}}
          - name_selector: "team-.*"
            resources: {"v1/namespaces": {}}
        resources:
          - {gvr: v1/namespaces, name_selector: "prod-.*"}
        """), live(), namespaces=["default", "team-a"])

    [informer] = plan.informers
    assert informer.key == StreamKey(NAMESPACES, None, None, None)
    assert informer.cluster_scoped and informer.target == "cluster-wide (Cluster-scoped)"
    ignored = ("its namespace filter does not apply: the resource is cluster-scoped (watched "
               "cluster-wide, as the controller warns)")
    assert [e.notes for e in informer.entries] == [
        (ignored,), (ignored,), ("names matching 'prod-.*' (client-side)",)]
    assert [(w.config.source, w.message) for w in plan.warnings] == [
        (f"namespaces[{i}].resources[v1/namespaces]", "v1/namespaces is cluster-scoped: the "
         "namespace filter does not apply; one informer watches it cluster-wide")
        for i in (0, 1)]


# ----------------------------------------------------------------------------- patterns

PATTERNS = """
    resources:
      - {gvr: v1/configmaps, namespace_names: ["team-.*"]}
      - {gvr: v1/configmaps, namespace_names: [team-b, other]}
    """


def forbidden(snapshot: Snapshot) -> Snapshot:
    """``snapshot`` with the credentials unable to list configmaps cluster-wide."""
    return replace(snapshot, cluster_list_forbidden=frozenset({CONFIGMAPS}))


def test_patterns_and_listed_namespaces_share_one_all_namespaces_informer() -> None:
    for namespaces in (["team-a", "team-b", "kube-x"], [], None):
        plan = plan_informers(entries(PATTERNS), live(), namespaces=namespaces)

        assert shape(plan) == [("v1/configmaps", ["resources[0]", "resources[1]",
                                                  "resources[1]"])]
        [informer] = plan.informers
        assert informer.shared and informer.key.namespace is None
        assert informer.target == ("in all namespaces, filtered by faro to namespaces team-b, "
                                   "other and namespaces matching 'team-.*'")
        assert [e.notes for e in informer.entries] == [
            ("only namespaces matching 'team-.*' (filtered by faro)",),
            ("only namespace team-b (filtered by faro)",),
            ("only namespace other (filtered by faro)",)]


def test_one_listed_namespace_keeps_its_own_informer_and_selectors_keep_requests_apart() -> None:
    plan = plan_informers(entries("""
        resources:
          - {gvr: v1/configmaps, namespace_names: [default]}
          - {gvr: v1/configmaps, namespace_names: [a, b], label_selector: app=web}
          - {gvr: v1/configmaps, namespace_names: ["team-.*"], label_selector: app=db}
        """), live(), namespaces=None)

    assert shape(plan) == [("v1/configmaps in default", ["resources[0]"]),
                           ("v1/configmaps labels 'app=web'", ["resources[1]", "resources[1]"]),
                           ("v1/configmaps labels 'app=db'", ["resources[2]"])]
    assert [i.shared for i in plan.informers] == [False, True, True]


def test_without_a_cluster_wide_list_a_pattern_is_one_informer_per_matching_namespace() -> None:
    plan = plan_informers(entries(PATTERNS), forbidden(live()),
                          namespaces=["team-a", "team-b", "kube-x"])

    assert shape(plan) == [("v1/configmaps in team-a", ["resources[0]"]),
                           ("v1/configmaps in team-b", ["resources[0]", "resources[1]"]),
                           ("v1/configmaps in other", ["resources[1]"])]
    assert all(not e.notes and not i.shared for i in plan.informers for e in i.entries)
    # No namespace matches yet: nothing to run for the pattern.
    assert shape(plan_informers(entries(PATTERNS)[:1], forbidden(live()), namespaces=[])) == []


def test_without_a_cluster_wide_list_and_unknown_namespaces_a_pattern_stays_symbolic() -> None:
    plan = plan_informers(entries(PATTERNS), forbidden(live()), namespaces=None)

    assert shape(plan) == [("v1/configmaps in namespaces matching 'team-.*'", ["resources[0]"]),
                           ("v1/configmaps in team-b", ["resources[1]"]),
                           ("v1/configmaps in other", ["resources[1]"])]
    symbolic = plan.informers[0]
    assert symbolic.key.namespace is None and symbolic.key.namespace_pattern == "team-.*"
    assert symbolic.target == ("in namespaces matching 'team-.*' (resolved at runtime: one "
                               "informer per matching namespace)")


@pytest.mark.parametrize("snapshot", [live(), forbidden(live())], ids=["shared", "forbidden"])
@pytest.mark.parametrize("namespaces", [None, ["team-a", "default"]])
def test_a_pattern_folds_into_the_all_namespaces_informer(
        namespaces: list[str] | None, snapshot: Snapshot) -> None:
    plan = plan_informers(entries("""
        resources:
          - {gvr: v1/configmaps, namespace_names: ["team-.*"]}
          - {gvr: v1/configmaps}
        """), snapshot, namespaces=namespaces)

    [informer] = plan.informers
    assert str(informer.key) == "v1/configmaps" and not informer.shared
    assert informer.target == "in all namespaces"
    assert [(e.config.source, e.notes) for e in informer.entries] == [
        ("resources[0]", ("only namespaces matching 'team-.*' (filtered by faro)",)),
        ("resources[1]", ())]


# ----------------------------------------------------------------- serving and origin


def test_an_unserved_resource_has_no_informer_and_is_reported() -> None:
    configured = entries("""
        resources:
          - {gvr: example.com/v1/widgets}
          - {gvr: v1/configmaps}
        """)
    plan = plan_informers(configured, live(), namespaces=[])

    assert shape(plan) == [("v1/configmaps", ["resources[1]"])]
    assert plan.unserved == (configured[0],)


def test_the_origin_is_part_of_the_request_so_a_replaced_crd_gets_a_new_informer() -> None:
    configured = entries("""
        resources:
          - {gvr: example.com/v1/widgets, namespace_names: [default]}
        """)

    def plan(served: Served) -> Plan:
        return plan_informers(configured, live(served), namespaces=["default"])

    first, again = plan(Served(True, "uid-1/Namespaced")), plan(Served(True, "uid-1/Namespaced"))
    replaced = plan(Served(True, "uid-2/Namespaced"))
    rescoped = plan(Served(False, "uid-3/Cluster"))

    assert first.informers[0].key == StreamKey(WIDGETS, "default", None, None, "uid-1/Namespaced")
    assert again.by_key().keys() == first.by_key().keys()
    assert replaced.informers[0].key.origin == "uid-2/Namespaced"
    assert replaced.by_key().keys().isdisjoint(first.by_key().keys())
    # Cluster-scoped now: one cluster-wide informer, and the namespace filter is ignored.
    assert rescoped.informers[0].key == StreamKey(WIDGETS, None, None, None, "uid-3/Cluster")
    assert rescoped.informers[0].cluster_scoped and len(rescoped.warnings) == 1


def test_planning_is_pure() -> None:
    configured = entries(PATTERNS)
    plans = [plan_informers(configured, live(), namespaces=("team-a", "team-b"))
             for _ in range(2)]
    assert plans[0] == plans[1]
    assert plans[0].informers[0] is not plans[1].informers[0]


# ------------------------------------------------------------------------------ offline


def test_offline_scope_comes_from_kubernetes_resources_and_the_entrys_scope() -> None:
    plan = plan_informers(entries("""
        resources:
          - {gvr: v1/nodes}
          - {gvr: example.com/v1/widgets, scope: Cluster}
          - {gvr: example.com/v1/gadgets}
          - {gvr: v1/configmaps, scope: Namespaced}
        """), OFFLINE, namespaces=None)

    assert [(str(i.key), i.cluster_scoped, i.target) for i in plan.informers] == [
        ("v1/nodes", True, "cluster-wide (Cluster-scoped)"),
        ("example.com/v1/widgets", True, "cluster-wide (Cluster-scoped)"),
        ("example.com/v1/gadgets", False, "in all namespaces"),
        ("v1/configmaps", False, "in all namespaces"),
    ]
    assert plan.informers[3].entries[0].notes == ("scope Namespaced",)
    assert GroupVersionResource.parse("rbac.authorization.k8s.io/v1/clusterroles") in \
        KUBERNETES_CLUSTER_SCOPED
    assert OFFLINE.lookup(entries("resources: [{gvr: v1/pods}]")[0]) == NAMESPACED


EXAMPLES = {
    "namespace-centric.yaml": """\
  [1] v1/configmaps in namespace default
      entry namespaces[0].resources[v1/configmaps]
  [2] apps/v1/deployments in namespace default
      label selector (server-side): app
      entry namespaces[0].resources[apps/v1/deployments]
  [3] v1/configmaps <shared> <team>
      field selector (server-side): metadata.name=settings
      entry namespaces[1].resources[v1/configmaps]: only <team> <by faro>
""",
    "resource-centric.yaml": """\
  [1] v1/configmaps <shared> namespace default and <team>, shared by 2 entries
      entry resources[0]: only namespace default <by faro>
      entry resources[0]: only <team> <by faro>
  [2] apps/v1/deployments in namespace default
      label selector (server-side): app
      entry resources[1]
  [3] v1/namespaces cluster-wide (Cluster-scoped)
      entry resources[2]: names matching 'team-.*' (client-side); scope Cluster
""",
    "with-metrics.yaml": """\
  [1] v1/configmaps in namespace default
      entry resources[0]
  [2] apps/v1/deployments in all namespaces
      entry resources[1]
""",
}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_offline_plans_of_the_example_configs_are_what_validate_prints(name: str) -> None:
    config = Config.from_yaml((ROOT / "examples" / "configs" / name).read_text())
    plan = plan_informers(config.normalized, OFFLINE, namespaces=None)
    assert render(plan) == expected_lines(EXAMPLES[name])


def test_offline_plan_of_the_cli_guides_example_is_the_documented_output() -> None:
    # docs/cli.md shows `faro validate config.yaml` for this configuration (the CLI tests' own).
    config = Config.from_yaml(textwrap.dedent(RESOURCE_CENTRIC))
    guide = (ROOT / "docs" / "cli.md").read_text()
    [shown] = re.findall(r"\$ faro validate config\.yaml\n.*?Informers \(one list and watch "
                         r"request each\):\n(.*?)\n\n", guide, flags=re.DOTALL)
    assert render(plan_informers(config.normalized, OFFLINE, namespaces=None)) == \
        shown.splitlines()


DOCUMENTED = [
    ("README.md", """\
        namespaces:
          - name_selector: production
            resources:
              "v1/pods": {label_selector: "app=nginx"}
              "apps/v1/deployments": {}
        resources:
          - gvr: v1/configmaps
            namespace_names: [default, "team-.*"]
            field_selector: metadata.name=settings
          - gvr: example.com/v1/widgets
        """, """\
  [1] v1/pods in namespace production
      label selector (server-side): app=nginx
      entry namespaces[0].resources[v1/pods]
  [2] apps/v1/deployments in namespace production
      entry namespaces[0].resources[apps/v1/deployments]
  [3] v1/configmaps <shared> namespace default and <team>, shared by 2 entries
      field selector (server-side): metadata.name=settings
      entry resources[0]: only namespace default <by faro>
      entry resources[0]: only <team> <by faro>
  [4] example.com/v1/widgets in all namespaces
      entry resources[1]
"""),
    ("docs/config.md namespace-centric", """\
        namespaces:
          - name_selector: "production"
            resources:
              "v1/pods":
                label_selector: "app=nginx"
              "v1/services": {}
              "apps/v1/deployments": {}
          - name_selector: "team-.*"
            resources:
              "v1/configmaps":
                name_selector: "config-.*"
              "batch/v1/jobs":
                field_selector: "status.successful=1"
        """, """\
  [1] v1/pods in namespace production
      label selector (server-side): app=nginx
      entry namespaces[0].resources[v1/pods]
  [2] v1/services in namespace production
      entry namespaces[0].resources[v1/services]
  [3] apps/v1/deployments in namespace production
      entry namespaces[0].resources[apps/v1/deployments]
  [4] v1/configmaps <shared> <team>
      entry namespaces[1].resources[v1/configmaps]: only <team> <by faro>; <config>
  [5] batch/v1/jobs <shared> <team>
      field selector (server-side): status.successful=1
      entry namespaces[1].resources[batch/v1/jobs]: only <team> <by faro>
"""),
    ("docs/config.md resource-centric", """\
        resources:
          - gvr: "v1/configmaps"
            namespace_names: ["default", "kube-system"]
            label_selector: "app=web"
          - gvr: "batch/v1/cronjobs"
            scope: "Namespaced"
            namespace_names: ["production"]
            field_selector: "metadata.name=backup-job"
          - gvr: "v1/namespaces"
            scope: "Cluster"
            name_selector: "prod-.*"
          - gvr: "apps/v1/deployments"
        """, """\
  [1] v1/configmaps <shared> namespaces default, kube-system, shared by 2 entries
      label selector (server-side): app=web
      entry resources[0]: only namespace default <by faro>
      entry resources[0]: only namespace kube-system <by faro>
  [2] batch/v1/cronjobs in namespace production
      field selector (server-side): metadata.name=backup-job
      entry resources[1]: scope Namespaced
  [3] v1/namespaces cluster-wide (Cluster-scoped)
      entry resources[2]: names matching 'prod-.*' (client-side); scope Cluster
  [4] apps/v1/deployments in all namespaces
      entry resources[3]
"""),
]


@pytest.mark.parametrize(("where", "text", "expected"), DOCUMENTED,
                         ids=[where for where, _, _ in DOCUMENTED])
def test_offline_plans_of_the_documented_configs_are_what_validate_prints(
        where: str, text: str, expected: str) -> None:
    plan = plan_informers(entries(text), OFFLINE, namespaces=None)
    assert render(plan) == expected_lines(expected), where


def test_the_offline_plan_carries_what_validates_json_lists() -> None:
    plan = plan_informers(entries("""
        resources:
          - {gvr: v1/configmaps, namespace_names: [default, "team-.*"], label_selector: app=web}
          - {gvr: v1/configmaps, label_selector: app=web}
          - {gvr: v1/namespaces, scope: Cluster, name_selector: "prod-.*"}
          - {gvr: v1/secrets, namespace_names: [default], name_selector: db}
        """), OFFLINE, namespaces=None)

    def document(informer: PlannedInformer) -> tuple[object, ...]:
        key = informer.key
        return (str(key.gvr), key.namespace, key.namespace_pattern, key.label_selector,
                key.field_selector, informer.cluster_scoped,
                [(e.config.source, e.config.namespace, e.config.namespace_pattern)
                 for e in informer.entries])

    assert [document(i) for i in plan.informers] == [
        ("v1/configmaps", None, None, "app=web", None, False,
         [("resources[0]", "default", None), ("resources[0]", None, "team-.*"),
          ("resources[1]", None, None)]),
        ("v1/namespaces", None, None, None, None, True, [("resources[2]", None, None)]),
        ("v1/secrets", "default", None, None, "metadata.name=db", False,
         [("resources[3]", "default", None)]),
    ]
