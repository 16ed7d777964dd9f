"""Unit tests of faro.testing._protobuf: wire decoding and the Kubernetes message table.

Bodies are built with the small encoder below (the protobuf wire format: a key varint
``number << 3 | wire type``, then a varint, 4/8 little-endian bytes, or a length-prefixed
payload), plus one body captured from kubectl 1.32's ``kubectl create namespace demo``.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from faro.testing._errors import ApiError
from faro.testing._protobuf import FIXED32, FIXED64, LENGTH, VARINT, decode, fields


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative numbers: two's complement, 10 bytes
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def num(number: int, value: int) -> bytes:
    return varint(number << 3 | VARINT) + varint(value)


def msg(number: int, *parts: bytes | str) -> bytes:
    payload = b"".join(p.encode() if isinstance(p, str) else p for p in parts)
    return varint(number << 3 | LENGTH) + varint(len(payload)) + payload


def entry(number: int, key: str, value: bytes | str | None) -> bytes:
    """One map entry; ``value`` None leaves the value field out."""
    return msg(number, msg(1, key), b"" if value is None else msg(2, value))


def envelope(api_version: str, kind: str, *fields_: bytes) -> bytes:
    return b"k8s\x00" + msg(1, msg(1, api_version), msg(2, kind)) + msg(2, *fields_)


def error_of(body: bytes) -> ApiError:
    with pytest.raises(ApiError) as caught:
        decode(body)
    return caught.value


# Captured from `kubectl create namespace demo` (kubectl v1.32): gogo-protobuf writes every
# non-pointer field, zeros included, and an empty Time for creationTimestamp.
KUBECTL_NAMESPACE = bytes.fromhex(
    "6b3873000a0f0a02763112094e616d657370616365121c0a140a0464656d6f1200"
    "1a0022002a0032003800420012001a020a001a002200")


# ----------------------------------------------------------------------------- wire format


def test_fields_reads_every_wire_type_in_order() -> None:
    data = (num(1, 300) + varint(2 << 3 | FIXED32) + (7).to_bytes(4, "little")
            + varint(3 << 3 | FIXED64) + (2**40).to_bytes(8, "little") + msg(4, "hé"))

    assert fields(data) == [(1, VARINT, 300), (2, FIXED32, 7), (3, FIXED64, 2**40),
                            (4, LENGTH, "hé".encode())]


@pytest.mark.parametrize("data", [
    varint(1 << 3 | VARINT) + b"\x80",          # varint cut after a continuation byte
    varint(1 << 3 | LENGTH) + varint(5) + b"abc",  # payload shorter than its length
    varint(1 << 3 | FIXED32) + b"\x01\x02",     # fixed32 with 2 of 4 bytes
    varint(1 << 3 | FIXED64) + b"\x01" * 7,     # fixed64 with 7 of 8 bytes
    b"\x80",                                     # key cut
    varint(1 << 3 | VARINT) + b"\xff" * 10 + b"\x01",  # varint longer than 10 bytes
    varint(1 << 3 | 3),                          # start group: not used by Kubernetes
    varint(0 << 3 | VARINT) + b"\x00",           # field number 0
], ids=["varint", "length", "fixed32", "fixed64", "key", "long-varint", "group", "zero"])
def test_malformed_wire_data_is_400(data: bytes) -> None:
    with pytest.raises(ApiError) as caught:
        fields(data)
    assert caught.value.code == 400
    assert "could not be decoded" in caught.value.message


def test_a_truncated_kubectl_body_is_400_at_every_cut_inside_a_field() -> None:
    # The envelope's fields end at these offsets (typeMeta, raw, an empty contentEncoding,
    # an empty contentType): a cut there is a valid, shorter message.
    type_meta_end, raw_end = len(b"k8s\x00") + 2 + 15, len(KUBECTL_NAMESPACE) - 4
    boundaries = {type_meta_end, raw_end, raw_end + 2}
    codes = set()
    for cut in range(len(b"k8s\x00") + 1, len(KUBECTL_NAMESPACE)):
        if cut not in boundaries:
            codes.add(error_of(KUBECTL_NAMESPACE[:cut]).code)
    assert codes == {400}
    assert decode(KUBECTL_NAMESPACE[:type_meta_end]) == {"kind": "Namespace", "apiVersion": "v1"}
    assert decode(KUBECTL_NAMESPACE[:raw_end]) == decode(KUBECTL_NAMESPACE)


# --------------------------------------------------------------------------- the envelope


def test_the_kubectl_namespace_body_decodes_to_the_json_kubectl_would_send() -> None:
    assert decode(KUBECTL_NAMESPACE) == {
        "kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "demo"},
        "spec": {}, "status": {}}


def test_a_body_without_the_magic_prefix_is_400() -> None:
    error = error_of(KUBECTL_NAMESPACE[4:])
    assert error.code == 400
    assert "k8s" in error.message


def test_an_unknown_kind_is_415_naming_it() -> None:
    error = error_of(envelope("rbac.authorization.k8s.io/v1", "Role", msg(1, msg(1, "r"))))
    assert (error.code, error.reason) == (415, "UnsupportedMediaType")
    assert "'Role'" in error.message
    assert "'rbac.authorization.k8s.io/v1'" in error.message


def test_a_known_kind_in_another_version_is_415() -> None:
    assert error_of(envelope("apps/v1beta1", "Deployment")).code == 415


def test_a_content_encoding_is_415() -> None:
    body = (b"k8s\x00" + msg(1, msg(1, "v1"), msg(2, "ConfigMap")) + msg(2, b"\x1f\x8b")
            + msg(3, "gzip"))
    error = error_of(body)
    assert error.code == 415
    assert "gzip" in error.message


@pytest.mark.parametrize(("body", "message", "number"), [
    (envelope("v1", "ConfigMap", msg(9, "x")), "ConfigMap", 9),
    (envelope("v1", "ConfigMap", msg(1, msg(1, "a"), msg(15, "x"))), "ObjectMeta", 15),
    (envelope("v1", "Pod", msg(2, msg(1, msg(1, "vol")))), "PodSpec", 1),  # volumes
    (envelope("apps/v1", "Deployment", msg(3, msg(6, msg(1, "Available")))),
     "DeploymentStatus", 6),  # conditions
    (envelope("v1", "ConfigMap", varint(20 << 3 | FIXED64) + bytes(8)), "ConfigMap", 20),
], ids=["top-level", "nested", "pod-volumes", "status-conditions", "fixed64"])
def test_an_unknown_field_is_415_naming_the_message_and_number(
    body: bytes, message: str, number: int,
) -> None:
    error = error_of(body)
    assert (error.code, error.reason) == (415, "UnsupportedMediaType")
    assert f"field {number} of {message} " in error.message


def test_a_field_with_the_wrong_wire_type_is_400() -> None:
    error = error_of(envelope("v1", "ConfigMap", msg(1, num(1, 5))))  # name as a varint
    assert error.code == 400
    assert "field 1 (name) of ObjectMeta" in error.message


def test_invalid_utf8_in_a_string_is_400() -> None:
    error = error_of(envelope("v1", "ConfigMap", msg(1, msg(1, b"\xff\xfe"))))
    assert error.code == 400
    assert "not UTF-8" in error.message


# ---------------------------------------------------------------------- field conversions


def _deployment_spec(*spec: bytes) -> dict[str, Any]:
    obj = decode(envelope("apps/v1", "Deployment", msg(2, *spec)))
    spec_json: dict[str, Any] = obj["spec"]
    return spec_json


def test_negative_int32_and_int64_varints_keep_their_sign() -> None:
    assert varint(-1) == b"\xff" * 9 + b"\x01"  # what Go writes for int32(-1) too
    spec = _deployment_spec(num(1, -3), num(5, -(2**31)))
    assert spec == {"replicas": -3, "minReadySeconds": -(2**31)}
    # An int32 keeps the low 32 bits of the varint, as every protobuf parser does.
    assert _deployment_spec(num(1, 0xFFFFFFFF), num(5, 2**32 + 5)) == {
        "replicas": -1, "minReadySeconds": 5}

    meta = decode(envelope("v1", "ConfigMap", msg(1, num(10, -(2**63)), num(7, -1))))
    assert meta["metadata"] == {"deletionGracePeriodSeconds": -(2**63), "generation": -1}
    assert decode(envelope("v1", "ConfigMap", msg(1, num(7, 2**63 - 1))))["metadata"] == {
        "generation": 2**63 - 1}


def test_zero_scalars_follow_go_json_omitempty_and_pointers() -> None:
    spec = _deployment_spec(num(1, 0), num(5, 0), num(7, 0), msg(4, msg(1, "")))
    # replicas is a pointer (kept at 0), minReadySeconds and paused are omitempty values,
    # strategy an embedded struct (printed even when empty).
    assert spec == {"replicas": 0, "strategy": {}}

    cron = decode(envelope("batch/v1", "CronJob", msg(2, msg(1, ""), num(4, 0))))
    assert cron["spec"] == {"schedule": "", "suspend": False}  # no omitempty; a *bool
    port = decode(envelope("v1", "Service", msg(2, msg(1, msg(1, ""), num(3, 0)))))
    assert port["spec"]["ports"] == [{"port": 0}]


def test_the_last_occurrence_of_a_scalar_wins_and_a_zero_clears_it() -> None:
    meta = decode(envelope("v1", "ConfigMap", msg(1, msg(1, "a"), msg(1, "b"),
                                                 msg(3, "ns"), msg(3, ""))))["metadata"]
    assert meta == {"name": "b"}


def test_repeated_fields_are_unpacked_and_keep_order_and_empty_items() -> None:
    obj = decode(envelope("v1", "Namespace", msg(2, msg(1, "b"), msg(1, ""), msg(1, "a"))))
    assert obj["spec"] == {"finalizers": ["b", "", "a"]}


def test_repeated_and_nested_messages() -> None:
    container = msg(2, msg(1, "web"), msg(2, "nginx"), msg(3, "sh"), msg(3, "-c"),
                    msg(6, num(3, 80), msg(4, "TCP")), msg(6, num(3, 443)),
                    msg(7, msg(1, "MODE"), msg(2, "fast")), msg(7, msg(1, "EMPTY")),
                    msg(8, entry(1, "cpu", msg(1, "500m")), entry(2, "memory", msg(1, "1Gi"))))
    spec = _deployment_spec(msg(2, entry(1, "app", "web"), msg(2, msg(1, "tier"),
                                                                msg(2, "In"), msg(3, "a"))),
                            msg(3, msg(1, entry(11, "app", "web")), msg(2, container)))
    assert spec == {
        "selector": {"matchLabels": {"app": "web"},
                     "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a"]}]},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{
                "name": "web", "image": "nginx", "command": ["sh", "-c"],
                "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443}],
                "env": [{"name": "MODE", "value": "fast"}, {"name": "EMPTY"}],
                "resources": {"limits": {"cpu": "500m"}, "requests": {"memory": "1Gi"}},
            }]},
        },
    }


def test_maps_of_strings_and_of_bytes() -> None:
    raw = bytes(range(256))
    configmap = decode(envelope("v1", "ConfigMap", entry(2, "a", "1"), entry(2, "b", "x"),
                                entry(2, "a", "2"), entry(2, "empty", None),
                                entry(3, "bin", raw)))
    assert configmap["data"] == {"a": "2", "b": "x", "empty": ""}
    assert configmap["binaryData"] == {"bin": base64.b64encode(raw).decode()}

    secret = decode(envelope("v1", "Secret", entry(2, "pw", "hunter2"), entry(2, "e", None),
                             entry(4, "plain", "text"), msg(3, "Opaque"), num(5, 1)))
    assert secret == {"kind": "Secret", "apiVersion": "v1", "type": "Opaque",
                      "immutable": True, "stringData": {"plain": "text"},
                      "data": {"pw": base64.b64encode(b"hunter2").decode(), "e": ""}}


def test_a_map_entry_with_an_unknown_field_is_400() -> None:
    body = envelope("v1", "ConfigMap", msg(2, msg(1, "k"), msg(3, "v")))
    assert error_of(body).code == 400


def test_time_is_rfc3339_and_the_zero_time_is_omitted() -> None:
    owner = msg(13, msg(5, "batch/v1"), msg(1, "CronJob"), msg(3, "tick"), msg(4, "u-1"),
                num(6, 1), num(7, 0))
    deleted = msg(9, num(1, 1700000000), num(2, 5))
    meta = decode(envelope("batch/v1", "Job", msg(1, msg(1, "j"), msg(8), deleted, owner,
                                                  msg(14, "f"))))["metadata"]
    assert meta == {
        "name": "j", "deletionTimestamp": "2023-11-14T22:13:20Z", "finalizers": ["f"],
        "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "tick",
                             "uid": "u-1", "controller": True, "blockOwnerDeletion": False}],
    }


def test_int_or_string_becomes_an_int_or_a_string() -> None:
    ports = msg(2, msg(1, msg(1, "http"), num(3, 80), msg(4, num(2, 8080))),
                msg(1, num(3, 443), msg(4, num(1, 1), msg(3, "https"))),
                msg(1, num(3, 53), msg(4)))
    assert decode(envelope("v1", "Service", ports))["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": 8080},
        {"port": 443, "targetPort": "https"},
        {"port": 53, "targetPort": 0},
    ]
