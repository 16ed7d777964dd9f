"""ApiStatusError from API server answers, and GroupVersionResource strings."""

from __future__ import annotations

import pytest

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
