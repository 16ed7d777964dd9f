"""Unit tests of faro.testing._patch: JSON merge patch, JSON patch, strategic merge patch."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import pytest

from faro.testing._patch import (
    BUILTIN_MERGE_KEYS,
    FieldStrategy,
    PatchError,
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
    strategic_merge_keys,
)

DEPLOYMENT = BUILTIN_MERGE_KEYS[("apps", "Deployment")]
POD = BUILTIN_MERGE_KEYS[("", "Pod")]


def _smp(target: dict[str, Any], patch: dict[str, Any], schema: Mapping[str, FieldStrategy]
         ) -> dict[str, Any]:
    """Apply a strategic merge patch, checking that neither input changes."""
    target_before, patch_before = copy.deepcopy(target), copy.deepcopy(patch)
    result = apply_strategic_merge_patch(target, patch, schema)
    assert target == target_before, "the target was mutated"
    assert patch == patch_before, "the patch was mutated"
    return result


def _deployment(containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": containers},
            },
            **spec,
        },
    }


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    containers: list[dict[str, Any]] = obj["spec"]["template"]["spec"]["containers"]
    return containers


def _template_patch(pod_spec_patch: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {"template": {"spec": pod_spec_patch}}}


# --------------------------------------------------------------------------
# JSON merge patch (RFC 7386)
# --------------------------------------------------------------------------

# RFC 7386 Appendix A, every example.
RFC7386_EXAMPLES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "expected"), RFC7386_EXAMPLES)
def test_merge_patch_rfc7386_examples(target: Any, patch: Any, expected: Any) -> None:
    assert apply_merge_patch(target, patch) == expected


def test_merge_patch_rfc7386_section3_example() -> None:
    target = {
        "title": "Goodbye!",
        "author": {"givenName": "John", "familyName": "Doe"},
        "tags": ["example", "sample"],
        "content": "This will be unchanged",
    }
    patch = {
        "title": "Hello!",
        "phoneNumber": "+01-123-456-7890",
        "author": {"familyName": None},
        "tags": ["example"],
    }
    assert apply_merge_patch(target, patch) == {
        "title": "Hello!",
        "author": {"givenName": "John"},
        "tags": ["example"],
        "content": "This will be unchanged",
        "phoneNumber": "+01-123-456-7890",
    }


def test_merge_patch_kubectl_label_shape() -> None:
    # `kubectl label cm/x tier- env=prod --type merge` sends this shape.
    target = {"metadata": {"name": "x", "labels": {"tier": "db", "app": "x"}}, "data": {"k": "v"}}
    patch = {"metadata": {"labels": {"tier": None, "env": "prod"}}}
    assert apply_merge_patch(target, patch) == {
        "metadata": {"name": "x", "labels": {"app": "x", "env": "prod"}},
        "data": {"k": "v"},
    }


def test_merge_patch_leaves_inputs_alone_and_shares_nothing() -> None:
    target = {"metadata": {"labels": {"a": "1"}}, "spec": {"list": [1, 2]}}
    patch = {"metadata": {"annotations": {"n": "v"}}, "data": {"items": [{"x": 1}]}}
    target_before, patch_before = copy.deepcopy(target), copy.deepcopy(patch)
    result = apply_merge_patch(target, patch)
    result["metadata"]["labels"]["a"] = "changed"
    result["spec"]["list"].append(3)
    result["data"]["items"][0]["x"] = 2
    assert target == target_before
    assert patch == patch_before


# --------------------------------------------------------------------------
# JSON patch (RFC 6902)
# --------------------------------------------------------------------------

# RFC 6902 Appendix A examples that succeed.
RFC6902_SUCCESSES = [
    pytest.param({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}],
                 {"baz": "qux", "foo": "bar"}, id="A.1 add object member"),
    pytest.param({"foo": ["bar", "baz"]}, [{"op": "add", "path": "/foo/1", "value": "qux"}],
                 {"foo": ["bar", "qux", "baz"]}, id="A.2 add array element"),
    pytest.param({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}],
                 {"foo": "bar"}, id="A.3 remove object member"),
    pytest.param({"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}],
                 {"foo": ["bar", "baz"]}, id="A.4 remove array element"),
    pytest.param({"baz": "qux", "foo": "bar"},
                 [{"op": "replace", "path": "/baz", "value": "boo"}],
                 {"baz": "boo", "foo": "bar"}, id="A.5 replace"),
    pytest.param({"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
                 [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
                 {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}},
                 id="A.6 move value"),
    pytest.param({"foo": ["all", "grass", "cows", "eat"]},
                 [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
                 {"foo": ["all", "cows", "eat", "grass"]}, id="A.7 move array element"),
    pytest.param({"baz": "qux", "foo": ["a", 2, "c"]},
                 [{"op": "test", "path": "/baz", "value": "qux"},
                  {"op": "test", "path": "/foo/1", "value": 2}],
                 {"baz": "qux", "foo": ["a", 2, "c"]}, id="A.8 test success"),
    pytest.param({"foo": "bar"}, [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
                 {"foo": "bar", "child": {"grandchild": {}}}, id="A.10 add nested member"),
    pytest.param({"foo": "bar"},
                 [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}],
                 {"foo": "bar", "baz": "qux"}, id="A.11 ignore unknown members"),
    pytest.param({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}],
                 {"/": 9, "~1": 10}, id="A.14 ~ escape ordering"),
    pytest.param({"foo": ["bar"]}, [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
                 {"foo": ["bar", ["abc", "def"]]}, id="A.16 add array value with -"),
]


@pytest.mark.parametrize(("target", "ops", "expected"), RFC6902_SUCCESSES)
def test_json_patch_rfc6902_examples(target: Any, ops: list[Any], expected: Any) -> None:
    assert apply_json_patch(target, ops) == expected


@pytest.mark.parametrize(
    ("target", "ops", "message"),
    [
        pytest.param({"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}],
                     "test failed", id="A.9 test failure"),
        pytest.param({"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}],
                     "does not exist", id="A.12 add to nonexistent target"),
        pytest.param({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": "10"}],
                     "test failed", id="A.15 string is not number"),
    ],
)
def test_json_patch_rfc6902_error_examples(target: Any, ops: list[Any], message: str) -> None:
    with pytest.raises(PatchError, match=message):
        apply_json_patch(target, ops)


def test_json_patch_on_a_pod_with_escaped_keys() -> None:
    # The shape `kubectl patch --type json` users send to edit annotations with "/" in the key.
    pod = {"metadata": {"name": "p", "annotations": {"example.com/owner": "a", "x~y": "1"}},
           "spec": {"containers": [{"name": "app", "image": "app:1"}]}}
    ops = [
        {"op": "replace", "path": "/metadata/annotations/example.com~1owner", "value": "b"},
        {"op": "remove", "path": "/metadata/annotations/x~0y"},
        {"op": "add", "path": "/spec/containers/-", "value": {"name": "side", "image": "s:1"}},
        {"op": "copy", "from": "/spec/containers/0/image", "path": "/metadata/labels"},
        {"op": "test", "path": "/spec/containers/1/name", "value": "side"},
    ]
    assert apply_json_patch(pod, ops) == {
        "metadata": {"name": "p", "annotations": {"example.com/owner": "b"}, "labels": "app:1"},
        "spec": {"containers": [{"name": "app", "image": "app:1"},
                                {"name": "side", "image": "s:1"}]},
    }


def test_json_patch_whole_document_operations() -> None:
    assert apply_json_patch({"a": 1}, [{"op": "replace", "path": "", "value": [1]}]) == [1]
    assert apply_json_patch({"a": 1}, [{"op": "add", "path": "", "value": {"b": 2}}]) == {"b": 2}
    with pytest.raises(PatchError, match="whole document"):
        apply_json_patch({"a": 1}, [{"op": "remove", "path": ""}])


def test_json_patch_move_to_same_place_is_a_no_op() -> None:
    assert apply_json_patch({"a": [1]}, [{"op": "move", "from": "/a", "path": "/a"}]) == {"a": [1]}


def test_json_patch_test_compares_as_json() -> None:
    doc = {"n": 1, "flag": True, "obj": {"a": [1, {"b": None}]}}
    assert apply_json_patch(doc, [{"op": "test", "path": "/n", "value": 1.0},
                                  {"op": "test", "path": "/obj",
                                   "value": {"a": [1.0, {"b": None}]}}]) == doc
    with pytest.raises(PatchError, match="test failed"):
        apply_json_patch(doc, [{"op": "test", "path": "/flag", "value": 1}])
    with pytest.raises(PatchError, match="test failed"):
        apply_json_patch(doc, [{"op": "test", "path": "/n", "value": True}])


@pytest.mark.parametrize(
    ("ops", "message"),
    [
        pytest.param({"op": "add"}, "must be an array", id="not a list"),
        pytest.param(["add"], "is not an object", id="operation not an object"),
        pytest.param([{"op": "frobnicate", "path": "/a"}], "unknown op", id="unknown op"),
        pytest.param([{"path": "/a", "value": 1}], "unknown op", id="missing op"),
        pytest.param([{"op": "add", "value": 1}], 'missing member "path"', id="missing path"),
        pytest.param([{"op": "replace", "path": "/a"}], 'missing member "value"',
                     id="missing value"),
        pytest.param([{"op": "move", "path": "/b"}], 'missing member "from"', id="missing from"),
        pytest.param([{"op": "add", "path": 3, "value": 1}], "must be a string",
                     id="path not a string"),
        pytest.param([{"op": "add", "path": "a", "value": 1}], 'start with "/"',
                     id="pointer without slash"),
        pytest.param([{"op": "add", "path": "/a~2", "value": 1}], "not followed by 0 or 1",
                     id="bad escape"),
        pytest.param([{"op": "remove", "path": "/missing"}], "does not exist",
                     id="remove missing member"),
        pytest.param([{"op": "replace", "path": "/missing", "value": 1}], "does not exist",
                     id="replace missing member"),
        pytest.param([{"op": "remove", "path": "/list/5"}], "out of range",
                     id="remove index out of range"),
        pytest.param([{"op": "add", "path": "/list/4", "value": 1}], "out of range",
                     id="add index past the end"),
        pytest.param([{"op": "remove", "path": "/list/-"}], "not an array index",
                     id="dash outside add"),
        pytest.param([{"op": "add", "path": "/list/01", "value": 1}], "not an array index",
                     id="leading zero"),
        pytest.param([{"op": "add", "path": "/a/b", "value": 1}], "not an object or array",
                     id="descend into scalar"),
        pytest.param([{"op": "copy", "from": "/nope", "path": "/b"}], "does not exist",
                     id="copy from missing"),
        pytest.param([{"op": "move", "from": "/obj", "path": "/obj/inner"}], "its own child",
                     id="move into own child"),
        pytest.param([{"op": "test", "path": "/nope", "value": None}], "does not exist",
                     id="test missing path"),
    ],
)
def test_json_patch_errors(ops: Any, message: str) -> None:
    doc = {"a": 1, "list": [1, 2, 3], "obj": {"x": 1}}
    with pytest.raises(PatchError, match=message):
        apply_json_patch(doc, ops)


def test_json_patch_error_names_the_failing_operation_and_is_atomic() -> None:
    doc = {"metadata": {"labels": {"a": "1"}}}
    before = copy.deepcopy(doc)
    ops = [
        {"op": "add", "path": "/metadata/labels/b", "value": "2"},
        {"op": "remove", "path": "/metadata/annotations"},
    ]
    with pytest.raises(PatchError, match=r"operation 1 \(remove\)"):
        apply_json_patch(doc, ops)
    assert doc == before


def test_json_patch_result_shares_nothing_with_inputs() -> None:
    value = {"items": [1]}
    doc = {"keep": {"x": [1]}}
    ops = [{"op": "add", "path": "/new", "value": value}]
    result = apply_json_patch(doc, ops)
    result["new"]["items"].append(2)
    result["keep"]["x"].append(2)
    assert value == {"items": [1]}
    assert doc == {"keep": {"x": [1]}}


# --------------------------------------------------------------------------
# Strategic merge patch: maps and atomic lists
# --------------------------------------------------------------------------


def test_smp_kubectl_label_and_annotate() -> None:
    # `kubectl label deploy/web tier=frontend app-` then `kubectl annotate --overwrite`.
    target = _deployment([{"name": "app", "image": "app:1"}])
    target["metadata"]["annotations"] = {"note": "old"}
    patch = {"metadata": {"labels": {"tier": "frontend", "app": None},
                          "annotations": {"note": "new"}}}
    result = _smp(target, patch, DEPLOYMENT)
    assert result["metadata"]["labels"] == {"tier": "frontend"}
    assert result["metadata"]["annotations"] == {"note": "new"}
    assert result["spec"] == target["spec"]


def test_smp_null_for_an_absent_key_is_ignored_and_new_values_lose_their_nulls() -> None:
    target = _deployment([{"name": "app", "image": "app:1"}])
    patch = {"metadata": {"annotations": {"a": "1", "b": None}, "missing": None},
             "spec": {"paused": None}}
    result = _smp(target, patch, DEPLOYMENT)
    assert result["metadata"]["annotations"] == {"a": "1"}
    assert "missing" not in result["metadata"]
    assert "paused" not in result["spec"]


def test_smp_lists_without_merge_strategy_are_replaced_atomically() -> None:
    pod = {"metadata": {"name": "p"}, "spec": {
        "containers": [{"name": "app", "image": "a", "args": ["--a", "--b"]}],
        "tolerations": [{"key": "k1", "operator": "Exists"}, {"key": "k2", "operator": "Exists"}],
    }}
    patch = {"spec": {
        "tolerations": [{"key": "k3", "operator": "Exists"}],
        "containers": [{"name": "app", "args": ["--c"]}],
    }}
    result = _smp(pod, patch, POD)
    assert result["spec"]["tolerations"] == [{"key": "k3", "operator": "Exists"}]
    assert result["spec"]["containers"] == [{"name": "app", "image": "a", "args": ["--c"]}]


def test_smp_endpoints_subsets_and_serviceaccount_image_pull_secrets_are_atomic() -> None:
    endpoints = {"metadata": {"name": "svc"}, "subsets": [
        {"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]}
    patch = {"subsets": [{"addresses": [{"ip": "10.0.0.2"}], "ports": [{"port": 80}]}]}
    result = _smp(endpoints, patch, BUILTIN_MERGE_KEYS[("", "Endpoints")])
    assert result["subsets"] == patch["subsets"]

    account = {"metadata": {"name": "sa"}, "secrets": [{"name": "token-a"}],
               "imagePullSecrets": [{"name": "pull-a"}]}
    patch = {"secrets": [{"name": "token-b"}], "imagePullSecrets": [{"name": "pull-b"}]}
    result = _smp(account, patch, BUILTIN_MERGE_KEYS[("", "ServiceAccount")])
    assert result["secrets"] == [{"name": "token-b"}, {"name": "token-a"}]
    assert result["imagePullSecrets"] == [{"name": "pull-b"}]


def test_smp_replace_directive_in_a_map() -> None:
    target = _deployment([{"name": "app", "image": "app:1"}])
    target["spec"]["template"]["metadata"]["labels"] = {"app": "web", "old": "x"}
    patch = {"spec": {"template": {"metadata": {"labels": {"$patch": "replace", "app": "web2"}}}}}
    result = _smp(target, patch, DEPLOYMENT)
    assert result["spec"]["template"]["metadata"]["labels"] == {"app": "web2"}


def test_smp_replace_directive_on_the_whole_object() -> None:
    target = {"metadata": {"name": "c", "labels": {"a": "1"}}, "data": {"k": "v"}}
    patch = {"$patch": "replace", "metadata": {"name": "c"}, "data": {"n": "m"}}
    result = _smp(target, patch, BUILTIN_MERGE_KEYS[("", "ConfigMap")])
    assert result == {"metadata": {"name": "c"}, "data": {"n": "m"}}


def test_smp_delete_directive_in_a_map() -> None:
    target = _deployment([{"name": "app", "image": "app:1"}])
    target["spec"]["template"]["metadata"]["annotations"] = {"a": "1", "b": "2"}
    patch = {"spec": {"template": {"metadata": {
        "annotations": {"$patch": "delete"},
        "newmap": {"$patch": "delete"},
    }}}}
    result = _smp(target, patch, DEPLOYMENT)
    assert result["spec"]["template"]["metadata"]["annotations"] == {}
    assert "newmap" not in result["spec"]["template"]["metadata"]


@pytest.mark.parametrize("directive", ["merge", "bogus"])
def test_smp_other_patch_directives_in_a_map_are_rejected(directive: str) -> None:
    # Upstream accepts only replace and delete in a map; "$patch: merge" is an error too.
    target = _deployment([{"name": "app", "image": "app:1"}])
    patch = {"metadata": {"labels": {"$patch": directive, "x": "y"}}}
    with pytest.raises(PatchError, match="unknown patch type"):
        apply_strategic_merge_patch(target, patch, DEPLOYMENT)


def test_smp_retain_keys_on_deployment_strategy() -> None:
    # kubectl apply switching RollingUpdate → Recreate; rollingUpdate was defaulted by the server.
    target = _deployment([{"name": "app", "image": "app:1"}], strategy={
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    result = _smp(target, patch, DEPLOYMENT)
    assert result["spec"]["strategy"] == {"type": "Recreate"}


def test_smp_retain_keys_keeps_listed_keys_and_merges_them() -> None:
    target = _deployment([{"name": "app", "image": "app:1"}], strategy={
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
    patch = {"spec": {"strategy": {"$retainKeys": ["type", "rollingUpdate"],
                                   "rollingUpdate": {"maxSurge": 1}}}}
    result = _smp(target, patch, DEPLOYMENT)
    assert result["spec"]["strategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}}


@pytest.mark.parametrize(
    "strategy_patch",
    [
        pytest.param({"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": {}},
                     id="sets an unlisted key"),
        pytest.param({"$retainKeys": "type", "type": "Recreate"}, id="not a list"),
    ],
)
def test_smp_retain_keys_errors(strategy_patch: dict[str, Any]) -> None:
    target = _deployment([{"name": "app", "image": "app:1"}], strategy={"type": "RollingUpdate"})
    with pytest.raises(PatchError, match="retainKeys"):
        apply_strategic_merge_patch(target, {"spec": {"strategy": strategy_patch}}, DEPLOYMENT)


# --------------------------------------------------------------------------
# Strategic merge patch: lists merged by key
# --------------------------------------------------------------------------


def test_smp_kubectl_apply_image_change_and_env_removal() -> None:
    # The three-way patch kubectl 1.32 `apply` sends when the manifest changes the image and
    # drops env B. Live state also has a server-added sidecar and env C added by someone else.
    live = _deployment([
        {"name": "app", "image": "app:1",
         "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"},
                 {"name": "C", "value": "3"}]},
        {"name": "sidecar", "image": "proxy:1"},
    ])
    patch = {
        "metadata": {"annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": '{"kind":"Deployment"}\n'}},
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "app"}],
            "containers": [{
                "$setElementOrder/env": [{"name": "A"}],
                "env": [{"$patch": "delete", "name": "B"}],
                "image": "app:2",
                "name": "app",
            }],
        }}},
    }
    result = _smp(live, patch, DEPLOYMENT)
    assert _containers(result) == [
        {"name": "app", "image": "app:2",
         "env": [{"name": "A", "value": "1"}, {"name": "C", "value": "3"}]},
        {"name": "sidecar", "image": "proxy:1"},
    ]
    assert result["metadata"]["annotations"] == {
        "kubectl.kubernetes.io/last-applied-configuration": '{"kind":"Deployment"}\n'}
    assert result["metadata"]["labels"] == {"app": "web"}


def test_smp_kubectl_apply_replaces_one_container_with_another() -> None:
    # Manifest went from [app, old] to [app, new]; "injected" exists only on the server.
    # Upstream ranks the server-only item against the live list whose deleted slot the new
    # container took, so "injected" lands before "new".
    live = _deployment([{"name": "app", "image": "a"}, {"name": "old", "image": "o"},
                        {"name": "injected", "image": "i"}])
    patch = _template_patch({
        "$setElementOrder/containers": [{"name": "app"}, {"name": "new"}],
        "containers": [{"name": "new", "image": "n"}, {"$patch": "delete", "name": "old"}],
    })
    result = _smp(live, patch, DEPLOYMENT)
    assert [c["name"] for c in _containers(result)] == ["app", "injected", "new"]


def test_smp_set_element_order_reorders_without_content_changes() -> None:
    live = _deployment([{"name": "a", "image": "a"}, {"name": "b", "image": "b"},
                        {"name": "server", "image": "s"}, {"name": "c", "image": "c"}])
    patch = _template_patch({
        "$setElementOrder/containers": [{"name": "c"}, {"name": "a"}, {"name": "b"}]})
    result = _smp(live, patch, DEPLOYMENT)
    # "server" precedes "c" in the live list, so upstream emits it before "c".
    assert [c["name"] for c in _containers(result)] == ["server", "c", "a", "b"]
    assert _containers(result)[1] == {"name": "c", "image": "c"}

    live = _deployment([{"name": "a", "image": "a"}, {"name": "b", "image": "b"},
                        {"name": "c", "image": "c"}, {"name": "server", "image": "s"}])
    result = _smp(live, patch, DEPLOYMENT)
    assert [c["name"] for c in _containers(result)] == ["c", "a", "b", "server"]


def test_smp_set_element_order_must_agree_with_the_patch_list() -> None:
    live = _deployment([{"name": "a", "image": "a"}, {"name": "b", "image": "b"}])
    patch = _template_patch({
        "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
        "containers": [{"name": "b", "image": "b2"}, {"name": "a", "image": "a2"}],
    })
    with pytest.raises(PatchError, match="doesn't match"):
        apply_strategic_merge_patch(live, patch, DEPLOYMENT)


def test_smp_set_element_order_with_a_malformed_key_is_rejected() -> None:
    live = _deployment([{"name": "a", "image": "a"}])
    patch = _template_patch({"$setElementOrderX": [{"name": "a"}]})
    with pytest.raises(PatchError, match="setElementOrder"):
        apply_strategic_merge_patch(live, patch, DEPLOYMENT)


def test_smp_patch_delete_of_a_container() -> None:
    # kubectl patch deploy/web -p '{"spec":{"template":{"spec":{"containers":
    #   [{"name":"sidecar","$patch":"delete"}]}}}}'
    live = _deployment([{"name": "app", "image": "a"}, {"name": "sidecar", "image": "s"}])
    patch = _template_patch({"containers": [{"name": "sidecar", "$patch": "delete"}]})
    result = _smp(live, patch, DEPLOYMENT)
    assert _containers(result) == [{"name": "app", "image": "a"}]


def test_smp_patch_delete_without_merge_key_is_rejected() -> None:
    live = _deployment([{"name": "app", "image": "a"}])
    patch = _template_patch({"containers": [{"$patch": "delete", "image": "a"}]})
    with pytest.raises(PatchError, match="merge key"):
        apply_strategic_merge_patch(live, patch, DEPLOYMENT)


def test_smp_patch_replace_as_a_list_element() -> None:
    live = _deployment([{"name": "app", "image": "a", "env": [{"name": "X", "value": "1"}]},
                        {"name": "sidecar", "image": "s"}])
    patch = _template_patch({"containers": [{"$patch": "replace"},
                                            {"name": "only", "image": "o"}]})
    result = _smp(live, patch, DEPLOYMENT)
    assert _containers(result) == [{"name": "only", "image": "o"}]


@pytest.mark.parametrize(
    ("element", "message"),
    [
        ({"$patch": "merge", "name": "app"}, "cannot yet be specified"),
        ({"$patch": "bogus", "name": "app"}, "unknown patch type"),
    ],
)
def test_smp_other_list_element_directives_are_rejected(element: dict[str, Any],
                                                        message: str) -> None:
    live = _deployment([{"name": "app", "image": "a"}])
    with pytest.raises(PatchError, match=message):
        apply_strategic_merge_patch(live, _template_patch({"containers": [element]}), DEPLOYMENT)


def test_smp_new_items_come_before_server_items_without_set_element_order() -> None:
    # Upstream interleaving: an item only in the patch is not ranked in the live list, so it
    # precedes the live items that the patch does not mention.
    live = _deployment([{"name": "a", "image": "a"}, {"name": "b", "image": "b"}])
    patch = _template_patch({"containers": [{"name": "c", "image": "c"}]})
    result = _smp(live, patch, DEPLOYMENT)
    assert [c["name"] for c in _containers(result)] == ["c", "a", "b"]


def test_smp_patch_order_wins_for_items_it_names() -> None:
    live = _deployment([{"name": "a", "image": "a"}, {"name": "b", "image": "b"},
                        {"name": "c", "image": "c"}])
    patch = _template_patch({"containers": [{"name": "c", "image": "c2"},
                                            {"name": "a", "image": "a2"}]})
    result = _smp(live, patch, DEPLOYMENT)
    assert _containers(result) == [{"name": "b", "image": "b"}, {"name": "c", "image": "c2"},
                                   {"name": "a", "image": "a2"}]


def test_smp_container_fields_merge_by_their_keys() -> None:
    live = _deployment([{
        "name": "app", "image": "a",
        "ports": [{"containerPort": 80, "protocol": "TCP"}],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
    }])
    live["spec"]["template"]["spec"]["volumes"] = [{"name": "data", "emptyDir": {}}]
    patch = _template_patch({
        "containers": [{
            "name": "app",
            "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 9090}],
            "volumeMounts": [{"name": "cache", "mountPath": "/cache"}],
            "resources": {"limits": {"memory": "2Gi"}},
        }],
        "volumes": [{"name": "cache", "emptyDir": {"medium": "Memory"}}],
    })
    result = _smp(live, patch, DEPLOYMENT)
    (container,) = _containers(result)
    assert container["ports"] == [{"containerPort": 80, "protocol": "TCP", "name": "http"},
                                  {"containerPort": 9090}]
    assert container["volumeMounts"] == [{"name": "cache", "mountPath": "/cache"},
                                         {"name": "data", "mountPath": "/data"}]
    assert container["resources"] == {"limits": {"cpu": "1", "memory": "2Gi"}}
    assert result["spec"]["template"]["spec"]["volumes"] == [
        {"name": "cache", "emptyDir": {"medium": "Memory"}}, {"name": "data", "emptyDir": {}}]


def test_smp_merge_key_values_compare_as_json() -> None:
    # containerPort 80 must not match a port whose key is the string "80" or true/1 confusion.
    live = _deployment([{"name": "app", "image": "a", "ports": [{"containerPort": 1}]}])
    patch = _template_patch({"containers": [{"name": "app", "ports": [
        {"containerPort": True, "name": "odd"}]}]})
    (container,) = _containers(_smp(live, patch, DEPLOYMENT))
    assert container["ports"] == [{"containerPort": True, "name": "odd"}, {"containerPort": 1}]


def test_smp_list_item_without_merge_key_is_rejected() -> None:
    live = _deployment([{"name": "app", "image": "a"}])
    patch = _template_patch({"containers": [{"image": "b"}]})
    with pytest.raises(PatchError, match="does not contain declared merge key"):
        apply_strategic_merge_patch(live, patch, DEPLOYMENT)


@pytest.mark.parametrize(
    ("finalizers", "message"),
    [
        ([["a"]], "lists of lists"),
        ([1, "a"], "not identical"),
    ],
)
def test_smp_malformed_lists_are_rejected(finalizers: list[Any], message: str) -> None:
    target = {"metadata": {"name": "c", "finalizers": ["x"]}}
    with pytest.raises(PatchError, match=message):
        apply_strategic_merge_patch(target, {"metadata": {"finalizers": finalizers}},
                                    BUILTIN_MERGE_KEYS[("", "ConfigMap")])


def test_smp_service_ports_merge_by_port() -> None:
    service = {"metadata": {"name": "web"}, "spec": {"type": "ClusterIP", "ports": [
        {"name": "http", "port": 80, "targetPort": 8080},
        {"name": "https", "port": 443, "targetPort": 8443}]}}
    patch = {"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}
    result = _smp(service, patch, BUILTIN_MERGE_KEYS[("", "Service")])
    assert result["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": 9090},
        {"name": "https", "port": 443, "targetPort": 8443}]


def test_smp_owner_references_merge_by_uid() -> None:
    target = {"metadata": {"name": "rs", "ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "u1"}]}}
    patch = {"metadata": {"ownerReferences": [
        {"uid": "u1", "controller": True},
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "cfg", "uid": "u2"}]}}
    result = _smp(target, patch, BUILTIN_MERGE_KEYS[("apps", "ReplicaSet")])
    assert result["metadata"]["ownerReferences"] == [
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "u1",
         "controller": True},
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "cfg", "uid": "u2"}]


def test_smp_status_conditions_merge_by_type() -> None:
    # The status patch a kubelet-like controller sends.
    pod = {"metadata": {"name": "p"}, "status": {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "True"},
        {"type": "Ready", "status": "False", "reason": "ContainersNotReady"}]}}
    patch = {"status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "reason": None}]}}
    result = _smp(pod, patch, POD)
    assert result["status"] == {"phase": "Running", "conditions": [
        {"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}]}


def test_smp_cronjob_pod_template_lives_under_job_template() -> None:
    cronjob = {"metadata": {"name": "nightly"}, "spec": {"schedule": "0 0 * * *", "jobTemplate": {
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
            {"name": "job", "image": "j:1", "env": [{"name": "A", "value": "1"}]}]}}}}}}
    patch = {"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [
        {"name": "job", "env": [{"name": "B", "value": "2"}]}]}}}}}}
    result = _smp(cronjob, patch, BUILTIN_MERGE_KEYS[("batch", "CronJob")])
    (container,) = result["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container == {"name": "job", "image": "j:1",
                         "env": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}]}


def test_smp_appended_items_lose_nulls_and_directives() -> None:
    live = _deployment([{"name": "app", "image": "a"}])
    patch = _template_patch({"containers": [{
        "name": "new", "image": "n", "command": None,
        "$setElementOrder/env": [{"name": "X"}], "env": [{"name": "X", "value": "1"}]}]})
    result = _smp(live, patch, DEPLOYMENT)
    assert _containers(result)[0] == {"name": "new", "image": "n",
                                      "env": [{"name": "X", "value": "1"}]}


# --------------------------------------------------------------------------
# Strategic merge patch: lists of scalars (metadata.finalizers)
# --------------------------------------------------------------------------

CONFIGMAP = BUILTIN_MERGE_KEYS[("", "ConfigMap")]


def _with_finalizers(*finalizers: str) -> dict[str, Any]:
    return {"metadata": {"name": "c", "finalizers": list(finalizers)}, "data": {}}


def test_smp_finalizers_merge_as_a_set() -> None:
    result = _smp(_with_finalizers("a.io/x", "b.io/y"),
                  {"metadata": {"finalizers": ["b.io/y", "c.io/z"]}}, CONFIGMAP)
    assert result["metadata"]["finalizers"] == ["a.io/x", "b.io/y", "c.io/z"]


def test_smp_new_finalizer_without_set_element_order_goes_first() -> None:
    # `kubectl patch cm/c -p '{"metadata":{"finalizers":["c.io/z"]}}'` on the real server.
    result = _smp(_with_finalizers("a.io/x", "b.io/y"),
                  {"metadata": {"finalizers": ["c.io/z"]}}, CONFIGMAP)
    assert result["metadata"]["finalizers"] == ["c.io/z", "a.io/x", "b.io/y"]


def test_smp_kubectl_apply_adds_a_finalizer_in_manifest_order() -> None:
    patch = {"metadata": {"$setElementOrder/finalizers": ["a.io/x", "c.io/z", "b.io/y"],
                          "finalizers": ["c.io/z"]}}
    result = _smp(_with_finalizers("a.io/x", "b.io/y"), patch, CONFIGMAP)
    assert result["metadata"]["finalizers"] == ["a.io/x", "c.io/z", "b.io/y"]


def test_smp_kubectl_apply_removes_a_finalizer() -> None:
    # Manifest dropped b.io/y; server.io/keep was added by a controller and must stay.
    patch = {"metadata": {"$setElementOrder/finalizers": ["a.io/x"],
                          "$deleteFromPrimitiveList/finalizers": ["b.io/y"]}}
    result = _smp(_with_finalizers("a.io/x", "b.io/y", "server.io/keep"), patch, CONFIGMAP)
    assert result["metadata"]["finalizers"] == ["a.io/x", "server.io/keep"]


def test_smp_delete_from_primitive_list_with_additions_in_the_same_patch() -> None:
    patch = {"metadata": {"finalizers": ["c.io/z"],
                          "$deleteFromPrimitiveList/finalizers": ["a.io/x", "not.there/q"]}}
    result = _smp(_with_finalizers("a.io/x", "b.io/y"), patch, CONFIGMAP)
    assert result["metadata"]["finalizers"] == ["c.io/z", "b.io/y"]


def test_smp_delete_from_absent_primitive_list_adds_nothing() -> None:
    target = {"metadata": {"name": "c"}}
    patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a.io/x"]}}
    assert _smp(target, patch, CONFIGMAP) == {"metadata": {"name": "c"}}


def test_smp_malformed_delete_from_primitive_list_key_is_rejected() -> None:
    patch = {"metadata": {"$deleteFromPrimitiveListfinalizers": ["a.io/x"]}}
    with pytest.raises(PatchError, match="primitive list"):
        apply_strategic_merge_patch(_with_finalizers("a.io/x"), patch, CONFIGMAP)


# --------------------------------------------------------------------------
# Strategic merge patch: contract
# --------------------------------------------------------------------------


def test_smp_result_shares_nothing_with_inputs() -> None:
    live = _deployment([{"name": "app", "image": "a", "env": [{"name": "A", "value": "1"}]}])
    patch = _template_patch({"containers": [{"name": "new", "image": "n",
                                             "env": [{"name": "B", "value": "2"}]}]})
    live_before, patch_before = copy.deepcopy(live), copy.deepcopy(patch)
    result = apply_strategic_merge_patch(live, patch, DEPLOYMENT)
    for container in _containers(result):
        container["env"].append({"name": "Z"})
        container["image"] = "changed"
    result["metadata"]["labels"]["x"] = "y"
    result["spec"]["selector"]["matchLabels"].clear()
    assert live == live_before
    assert patch == patch_before


@pytest.mark.parametrize(("target", "patch"), [({}, []), ([], {}), ({}, None)])
def test_smp_needs_objects(target: Any, patch: Any) -> None:
    with pytest.raises(PatchError, match="JSON objects"):
        apply_strategic_merge_patch(target, patch, CONFIGMAP)


def test_patch_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="test failed"):
        apply_json_patch({"a": 1}, [{"op": "test", "path": "/a", "value": 2}])


# --------------------------------------------------------------------------
# The merge-key table
# --------------------------------------------------------------------------

SIMULATED_KINDS = [
    ("", "Namespace"), ("", "ConfigMap"), ("", "Secret"), ("", "Service"), ("", "Pod"),
    ("", "Event"), ("", "ServiceAccount"), ("", "Endpoints"),
    ("apps", "Deployment"), ("apps", "ReplicaSet"), ("apps", "StatefulSet"),
    ("apps", "DaemonSet"), ("batch", "Job"), ("batch", "CronJob"),
    ("coordination.k8s.io", "Lease"), ("apiextensions.k8s.io", "CustomResourceDefinition"),
]


@pytest.mark.parametrize(("group", "kind"), SIMULATED_KINDS)
def test_every_served_kind_has_a_schema_with_object_metadata(group: str, kind: str) -> None:
    schema = strategic_merge_keys(group, kind)
    assert schema is not None
    assert schema["metadata.finalizers"] == FieldStrategy("merge")
    assert schema["metadata.ownerReferences"] == FieldStrategy("merge", "uid")


def test_custom_resources_have_no_schema() -> None:
    assert strategic_merge_keys("example.com", "Widget") is None
    assert strategic_merge_keys("apps", "Widget") is None
    assert strategic_merge_keys("", "Deployment") is None


@pytest.mark.parametrize(
    ("group", "kind", "prefix"),
    [
        ("apps", "Deployment", "spec.template.spec"),
        ("apps", "ReplicaSet", "spec.template.spec"),
        ("apps", "StatefulSet", "spec.template.spec"),
        ("apps", "DaemonSet", "spec.template.spec"),
        ("batch", "Job", "spec.template.spec"),
        ("batch", "CronJob", "spec.jobTemplate.spec.template.spec"),
        ("", "Pod", "spec"),
    ],
)
def test_pod_spec_fields_are_the_same_everywhere(group: str, kind: str, prefix: str) -> None:
    schema = BUILTIN_MERGE_KEYS[(group, kind)]
    pod_spec = {path[len(prefix) + 1:]: strategy for path, strategy in schema.items()
                if path.startswith(prefix + ".") and not path.startswith(prefix + ".template")}
    assert pod_spec == {
        path[len("spec."):]: strategy for path, strategy in POD.items()
        if path.startswith("spec.")
    }
    assert pod_spec["containers"] == FieldStrategy("merge", "name")
    assert pod_spec["initContainers.env"] == FieldStrategy("merge", "name")
    assert pod_spec["containers.ports"] == FieldStrategy("merge", "containerPort")
    assert pod_spec["containers.volumeMounts"] == FieldStrategy("merge", "mountPath")
    assert pod_spec["containers.volumeDevices"] == FieldStrategy("merge", "devicePath")
    assert pod_spec["volumes"] == FieldStrategy("merge", "name", retain_keys=True)
    assert pod_spec["imagePullSecrets"] == FieldStrategy("merge", "name")
    assert pod_spec["hostAliases"] == FieldStrategy("merge", "ip")
    assert "tolerations" not in pod_spec


def test_schemas_are_read_only() -> None:
    with pytest.raises(TypeError):
        DEPLOYMENT["spec.template.spec.tolerations"] = FieldStrategy("merge", "key")  # type: ignore[index]
    assert "spec.template.spec.tolerations" not in DEPLOYMENT
