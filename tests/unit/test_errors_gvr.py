"""ApiStatusError from API server answers, GroupVersionResource strings, and the naming rules
of faro._names they follow."""

from __future__ import annotations

import pytest

from faro._names import (
    KubeObject,
    dns1035_label_errors,
    dns1123_label_errors,
    dns1123_subdomain_errors,
    is_dns1123_label,
    is_dns1123_subdomain,
    key_of,
    label_key_errors,
    label_value_errors,
    object_key,
)
from faro.cache.handlers import KubeObject as HandlersKubeObject
from faro.cache.store import KubeObject as StoreKubeObject
from faro.cache.store import meta_namespace_key
from faro.errors import ApiStatusError
from faro.gvr import GroupVersionResource


def test_error_from_a_status_body() -> None:
    body = (b'{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Timeout",'
            b'"message":"Too large resource version: 10, current: 3","code":504,'
            b'"details":{"causes":[{"reason":"ResourceVersionTooLarge","message":"x"}]}}')
    error = ApiStatusError.from_status(504, body, request="GET /api/v1/pods")
    assert (error.status, error.reason) == (504, "Timeout")
    assert error.is_too_large_resource_version
    assert not error.is_expired
    assert str(error) == ("HTTP 504 Timeout: Too large resource version: 10, current: 3 "
                          "(GET /api/v1/pods)")


def test_error_from_an_in_stream_error_object_takes_its_code() -> None:
    error = ApiStatusError.from_status(500, {"reason": "Expired", "code": 410,
                                             "message": "too old resource version"})
    assert error.status == 410 and error.is_expired


def test_error_from_a_body_that_is_not_json_keeps_its_start() -> None:
    error = ApiStatusError.from_status(502, b"<html>bad gateway</html>", retry_after="5")
    assert error.message == "<html>bad gateway</html>"
    assert error.retry_after == 5.0
    assert ApiStatusError.from_status(503, None, retry_after="Wed, 21 Oct 2015").retry_after \
        is None


@pytest.mark.parametrize("status", [401, 403])
def test_unauthorized(status: int) -> None:
    assert ApiStatusError(status).is_unauthorized
    assert not ApiStatusError(404).is_unauthorized


@pytest.mark.parametrize(("text", "group", "version", "resource", "path"), [
    ("v1/pods", "", "v1", "pods", "/api/v1/namespaces/ns/pods"),
    ("apps/v1/deployments", "apps", "v1", "deployments", "/apis/apps/v1/namespaces/ns/deployments"),
    ("example.com/v1alpha1/widgets", "example.com", "v1alpha1", "widgets",
     "/apis/example.com/v1alpha1/namespaces/ns/widgets"),
])
def test_gvr_parse_str_and_paths(text: str, group: str, version: str, resource: str,
                                 path: str) -> None:
    gvr = GroupVersionResource.parse(text)
    assert (gvr.group, gvr.version, gvr.resource) == (group, version, resource)
    assert str(gvr) == text
    assert gvr.group_resource == (f"{resource}.{group}" if group else resource)
    assert gvr.path("ns") == path
    assert gvr.path() == path.replace("/namespaces/ns", "")


@pytest.mark.parametrize(("text", "message"), [
    ("pods", "expected 'version/resource'"),
    ("a/b/c/d", "expected 'version/resource'"),
    ("apps/1/deployments", "'1' is not an API version"),
    ("v1/Pods", "'Pods' is not a resource name"),
    ("Apps/v1/deployments", "'Apps' is not an API group"),
])
def test_gvr_parse_errors_name_the_string(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        GroupVersionResource.parse(text)
    assert repr(text) in str(info.value)


@pytest.mark.parametrize(("text", "message"), [
    ("v1/" + "a" * 64, "is not a resource name"),                       # a label: 63 at most
    ("a..b/v1/widgets", "'a..b' is not an API group"),
    ("a_b.com/v1/widgets", "'a_b.com' is not an API group"),
    (".".join(["a" * 63] * 4) + "/v1/widgets", "is not an API group"),  # 255 > 253
])
def test_gvr_names_follow_kubernetes_naming_rules(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GroupVersionResource.parse(text)


def test_gvr_accepts_the_longest_kubernetes_names() -> None:
    group = ".".join(["a" * 63] * 3 + ["b" * 61])                      # 253 characters
    gvr = GroupVersionResource.parse(f"{group}/v1/{'r' * 63}")
    assert (len(gvr.group), len(gvr.resource)) == (253, 63)
    # a subdomain's labels are not limited to 63 characters each (only the whole, to 253)
    assert GroupVersionResource.parse(f"{'a' * 70}.example.com/v1/widgets").group.startswith("a")


# ---------------------------------------------------------------------------------------------
# faro._names: the naming rules the configuration, the selectors and the cache share
# ---------------------------------------------------------------------------------------------


def test_object_keys() -> None:
    assert object_key("ns", "a") == "ns/a"
    assert object_key(None, "node-1") == object_key("", "node-1") == "node-1"
    assert key_of({"metadata": {"namespace": "ns", "name": "a"}}) == "ns/a"
    assert key_of({"metadata": {"name": "node-1"}}) == "node-1"
    with pytest.raises(KeyError):
        key_of({"metadata": {"namespace": "ns"}})
    assert meta_namespace_key({"metadata": {"namespace": "ns", "name": "a"}}) == "ns/a"


def test_kube_object_is_one_type() -> None:
    assert StoreKubeObject is HandlersKubeObject is KubeObject


def test_dns_names_as_apimachinery_words_them() -> None:
    assert is_dns1123_label("kube-system") and not is_dns1123_label("a" * 64)
    assert is_dns1123_subdomain("my.config") and not is_dns1123_subdomain("My.config")
    assert dns1123_label_errors("a" * 64 + "_") == [
        "must be no more than 63 characters",
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
        "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
        "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"]
    assert dns1123_subdomain_errors("a" * 254, "bytes") == ["must be no more than 253 bytes"]
    assert dns1035_label_errors("1a") == [
        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
        "an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
        "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"]
    assert dns1123_label_errors("ok") == dns1123_subdomain_errors("o.k") == []


def test_label_keys_and_values_as_apimachinery_words_them() -> None:
    assert label_key_errors("example.com/App_1") == label_value_errors("") == []
    assert label_key_errors("/" + "a" * 64) == [
        "prefix part must be non-empty", "name part must be no more than 63 bytes"]
    assert label_key_errors("a/b/c") == [
        "a valid label key must consist of alphanumeric characters, '-', '_' or '.', and must "
        "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
        "'123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') "
        "with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    # lengths count UTF-8 bytes, as Go's len()
    assert label_value_errors("é" * 32)[0] == "must be no more than 63 bytes"
    assert label_value_errors("v" * 64, "characters")[0] == "must be no more than 63 characters"
