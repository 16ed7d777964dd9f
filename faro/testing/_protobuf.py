"""Kubernetes protobuf request bodies, decoded to the dicts a JSON client would send.

kubectl's typed generators (``kubectl create namespace|configmap|secret|serviceaccount|
deployment|job|cronjob|service``) send ``application/vnd.kubernetes.protobuf`` and never
fall back to JSON. :func:`decode` turns such a body into the object the same client
would have sent as JSON, so the rest of the server sees no difference.

Contract:

* The body is the ``k8s\\x00`` magic followed by a ``runtime.Unknown`` whose
  ``typeMeta`` names the kind and whose ``raw`` is the object's message.
* Only the messages in :data:`_SCHEMA` are known: the kinds in :data:`_KINDS` and the
  nested types kubectl's generators fill (numbers and names from the Kubernetes
  ``generated.proto`` files of k8s.io/api and k8s.io/apimachinery); status messages
  only with their scalar fields, which the generators send as zeros. An unknown kind,
  an unknown field number or a content encoding raises :class:`ApiError` 415 naming the
  kind, or the message type and field number, so a gap is never silently dropped.
* A body that is not valid protobuf (truncated, bad wire type, bad UTF-8) raises 400.
  Repeated fields are read unpacked, as gogo-protobuf writes them; no repeated field of
  the table is numeric, so packed encoding never applies.
* The result follows Go's JSON encoding of the same object: JSON names are the proto
  field names; a scalar that is zero is left out unless the Go field is a pointer or has
  no ``omitempty`` (such fields are on the wire only when Go would print them); an
  embedded message on the wire is kept even when empty (Go prints ``{}``); ``bytes``
  become base64; ``Time`` an RFC 3339 string (omitted when zero); ``Quantity`` its
  string; ``IntOrString`` an int or a string.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, NamedTuple

from faro.testing._errors import ApiError

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"

# Wire types.
VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5

_SCALARS = {"string", "bytes", "int32", "int64", "bool"}


class _Field(NamedTuple):
    name: str
    type: str  # a scalar in _SCALARS or a message name in _SCHEMA
    label: str = ""  # "", "repeated", or "map" (map<string, type>)
    always: bool = False  # Go pointer or no omitempty: print the zero value too


def _f(name: str, type_: str = "string") -> _Field:
    return _Field(name, type_)


def _list(name: str, type_: str = "string") -> _Field:
    return _Field(name, type_, "repeated")


def _map(name: str, type_: str = "string") -> _Field:
    return _Field(name, type_, "map")


def _keep(name: str, type_: str = "string") -> _Field:
    """A scalar Go prints even when zero: a pointer, or a field without ``omitempty``."""
    return _Field(name, type_, "", True)


_SCHEMA: dict[str, dict[int, _Field]] = {
    # runtime
    "Unknown": {1: _f("typeMeta", "TypeMeta"), 2: _f("raw", "bytes"),
                3: _f("contentEncoding"), 4: _f("contentType")},
    "TypeMeta": {1: _f("apiVersion"), 2: _f("kind")},
    # meta/v1, util/intstr, api/resource
    "ObjectMeta": {
        1: _f("name"), 2: _f("generateName"), 3: _f("namespace"), 4: _f("selfLink"),
        5: _f("uid"), 6: _f("resourceVersion"), 7: _f("generation", "int64"),
        8: _f("creationTimestamp", "Time"), 9: _f("deletionTimestamp", "Time"),
        10: _keep("deletionGracePeriodSeconds", "int64"), 11: _map("labels"),
        12: _map("annotations"), 13: _list("ownerReferences", "OwnerReference"),
        14: _list("finalizers"),
    },
    "OwnerReference": {
        5: _keep("apiVersion"), 1: _keep("kind"), 3: _keep("name"), 4: _keep("uid"),
        6: _keep("controller", "bool"), 7: _keep("blockOwnerDeletion", "bool"),
    },
    "Time": {1: _f("seconds", "int64"), 2: _f("nanos", "int32")},
    "LabelSelector": {1: _map("matchLabels"),
                      2: _list("matchExpressions", "LabelSelectorRequirement")},
    "LabelSelectorRequirement": {1: _keep("key"), 2: _keep("operator"), 3: _list("values")},
    "IntOrString": {1: _f("type", "int64"), 2: _f("intVal", "int32"), 3: _f("strVal")},
    "Quantity": {1: _f("string")},
    # core/v1
    "Namespace": {1: _f("metadata", "ObjectMeta"), 2: _f("spec", "NamespaceSpec"),
                  3: _f("status", "NamespaceStatus")},
    "NamespaceSpec": {1: _list("finalizers")},
    "NamespaceStatus": {1: _f("phase")},
    "ConfigMap": {1: _f("metadata", "ObjectMeta"), 4: _keep("immutable", "bool"),
                  2: _map("data"), 3: _map("binaryData", "bytes")},
    "Secret": {1: _f("metadata", "ObjectMeta"), 5: _keep("immutable", "bool"),
               2: _map("data", "bytes"), 4: _map("stringData"), 3: _f("type")},
    "ServiceAccount": {
        1: _f("metadata", "ObjectMeta"), 2: _list("secrets", "ObjectReference"),
        3: _list("imagePullSecrets", "LocalObjectReference"),
        4: _keep("automountServiceAccountToken", "bool"),
    },
    "ObjectReference": {1: _f("kind"), 2: _f("namespace"), 3: _f("name"), 4: _f("uid"),
                        5: _f("apiVersion"), 6: _f("resourceVersion"), 7: _f("fieldPath")},
    "LocalObjectReference": {1: _f("name")},
    "Service": {1: _f("metadata", "ObjectMeta"), 2: _f("spec", "ServiceSpec"),
                3: _f("status", "ServiceStatus")},
    "ServiceSpec": {
        1: _list("ports", "ServicePort"), 2: _map("selector"), 3: _f("clusterIP"),
        18: _list("clusterIPs"), 4: _f("type"), 5: _list("externalIPs"),
        7: _f("sessionAffinity"), 8: _f("loadBalancerIP"),
        9: _list("loadBalancerSourceRanges"), 10: _f("externalName"),
        11: _f("externalTrafficPolicy"), 12: _f("healthCheckNodePort", "int32"),
        13: _f("publishNotReadyAddresses", "bool"), 19: _list("ipFamilies"),
        17: _keep("ipFamilyPolicy"), 20: _keep("allocateLoadBalancerNodePorts", "bool"),
        21: _keep("loadBalancerClass"), 22: _keep("internalTrafficPolicy"),
        23: _keep("trafficDistribution"),
    },
    "ServicePort": {1: _f("name"), 2: _f("protocol"), 6: _keep("appProtocol"),
                    3: _keep("port", "int32"), 4: _f("targetPort", "IntOrString"),
                    5: _f("nodePort", "int32")},
    "ServiceStatus": {1: _f("loadBalancer", "LoadBalancerStatus")},
    "LoadBalancerStatus": {},
    "Pod": {1: _f("metadata", "ObjectMeta"), 2: _f("spec", "PodSpec"),
            3: _f("status", "PodStatus")},
    "PodStatus": {
        17: _f("observedGeneration", "int64"), 1: _f("phase"), 3: _f("message"),
        4: _f("reason"), 11: _f("nominatedNodeName"), 5: _f("hostIP"), 6: _f("podIP"),
        7: _f("startTime", "Time"), 9: _f("qosClass"), 14: _f("resize"),
    },
    "PodTemplateSpec": {1: _f("metadata", "ObjectMeta"), 2: _f("spec", "PodSpec")},
    "PodSpec": {
        20: _list("initContainers", "Container"), 2: _list("containers", "Container"),
        3: _f("restartPolicy"), 4: _keep("terminationGracePeriodSeconds", "int64"),
        5: _keep("activeDeadlineSeconds", "int64"), 6: _f("dnsPolicy"),
        7: _map("nodeSelector"), 8: _f("serviceAccountName"), 9: _f("serviceAccount"),
        21: _keep("automountServiceAccountToken", "bool"), 10: _f("nodeName"),
        11: _f("hostNetwork", "bool"), 12: _f("hostPID", "bool"), 13: _f("hostIPC", "bool"),
        27: _keep("shareProcessNamespace", "bool"),
        15: _list("imagePullSecrets", "LocalObjectReference"), 16: _f("hostname"),
        17: _f("subdomain"), 19: _f("schedulerName"), 24: _f("priorityClassName"),
        25: _keep("priority", "int32"), 29: _keep("runtimeClassName"),
        30: _keep("enableServiceLinks", "bool"), 31: _keep("preemptionPolicy"),
        32: _map("overhead", "Quantity"), 35: _keep("setHostnameAsFQDN", "bool"),
        37: _keep("hostUsers", "bool"), 40: _f("resources", "ResourceRequirements"),
        41: _keep("hostnameOverride"),
    },
    "Container": {
        1: _keep("name"), 2: _f("image"), 3: _list("command"), 4: _list("args"),
        5: _f("workingDir"), 6: _list("ports", "ContainerPort"), 7: _list("env", "EnvVar"),
        8: _f("resources", "ResourceRequirements"), 24: _keep("restartPolicy"),
        13: _f("terminationMessagePath"), 20: _f("terminationMessagePolicy"),
        14: _f("imagePullPolicy"), 16: _f("stdin", "bool"), 17: _f("stdinOnce", "bool"),
        18: _f("tty", "bool"),
    },
    "ContainerPort": {1: _f("name"), 2: _f("hostPort", "int32"),
                      3: _keep("containerPort", "int32"), 4: _f("protocol"), 5: _f("hostIP")},
    "EnvVar": {1: _keep("name"), 2: _f("value")},
    "ResourceRequirements": {1: _map("limits", "Quantity"), 2: _map("requests", "Quantity"),
                             3: _list("claims", "ResourceClaim")},
    "ResourceClaim": {1: _keep("name"), 2: _f("request")},
    # apps/v1
    "Deployment": {1: _f("metadata", "ObjectMeta"), 2: _f("spec", "DeploymentSpec"),
                   3: _f("status", "DeploymentStatus")},
    "DeploymentSpec": {
        1: _keep("replicas", "int32"), 2: _f("selector", "LabelSelector"),
        3: _f("template", "PodTemplateSpec"), 4: _f("strategy", "DeploymentStrategy"),
        5: _f("minReadySeconds", "int32"), 6: _keep("revisionHistoryLimit", "int32"),
        7: _f("paused", "bool"), 9: _keep("progressDeadlineSeconds", "int32"),
    },
    "DeploymentStrategy": {1: _f("type"), 2: _f("rollingUpdate", "RollingUpdateDeployment")},
    "RollingUpdateDeployment": {1: _f("maxUnavailable", "IntOrString"),
                                2: _f("maxSurge", "IntOrString")},
    "DeploymentStatus": {
        1: _f("observedGeneration", "int64"), 2: _f("replicas", "int32"),
        3: _f("updatedReplicas", "int32"), 7: _f("readyReplicas", "int32"),
        4: _f("availableReplicas", "int32"), 5: _f("unavailableReplicas", "int32"),
        9: _keep("terminatingReplicas", "int32"), 8: _keep("collisionCount", "int32"),
    },
    # batch/v1
    "Job": {1: _f("metadata", "ObjectMeta"), 2: _f("spec", "JobSpec"),
            3: _f("status", "JobStatus")},
    "JobSpec": {
        1: _keep("parallelism", "int32"), 2: _keep("completions", "int32"),
        3: _keep("activeDeadlineSeconds", "int64"), 7: _keep("backoffLimit", "int32"),
        12: _keep("backoffLimitPerIndex", "int32"), 13: _keep("maxFailedIndexes", "int32"),
        4: _f("selector", "LabelSelector"), 5: _keep("manualSelector", "bool"),
        6: _f("template", "PodTemplateSpec"), 8: _keep("ttlSecondsAfterFinished", "int32"),
        9: _keep("completionMode"), 10: _keep("suspend", "bool"),
        14: _keep("podReplacementPolicy"), 15: _keep("managedBy"),
    },
    "JobStatus": {
        2: _f("startTime", "Time"), 3: _f("completionTime", "Time"), 4: _f("active", "int32"),
        5: _f("succeeded", "int32"), 6: _f("failed", "int32"),
        11: _keep("terminating", "int32"), 7: _f("completedIndexes"),
        10: _keep("failedIndexes"), 9: _keep("ready", "int32"),
    },
    "JobTemplateSpec": {1: _f("metadata", "ObjectMeta"), 2: _f("spec", "JobSpec")},
    "CronJob": {1: _f("metadata", "ObjectMeta"), 2: _f("spec", "CronJobSpec"),
                3: _f("status", "CronJobStatus")},
    "CronJobSpec": {
        1: _keep("schedule"), 8: _keep("timeZone"), 2: _keep("startingDeadlineSeconds", "int64"),
        3: _f("concurrencyPolicy"), 4: _keep("suspend", "bool"),
        5: _f("jobTemplate", "JobTemplateSpec"),
        6: _keep("successfulJobsHistoryLimit", "int32"),
        7: _keep("failedJobsHistoryLimit", "int32"),
    },
    "CronJobStatus": {4: _f("lastScheduleTime", "Time"),
                      5: _f("lastSuccessfulTime", "Time")},
}

# (apiVersion, kind) of a top-level object -> its message in _SCHEMA.
_KINDS = {
    ("v1", "Namespace"): "Namespace",
    ("v1", "ConfigMap"): "ConfigMap",
    ("v1", "Secret"): "Secret",
    ("v1", "ServiceAccount"): "ServiceAccount",
    ("v1", "Service"): "Service",
    ("v1", "Pod"): "Pod",
    ("apps/v1", "Deployment"): "Deployment",
    ("batch/v1", "Job"): "Job",
    ("batch/v1", "CronJob"): "CronJob",
}


def _time(value: dict[str, Any]) -> str | None:
    seconds = value.get("seconds", 0)
    if not seconds and not value.get("nanos"):
        return None  # the zero Time: Go prints null, a JSON client's object has none
    try:
        moment = datetime.fromtimestamp(seconds, timezone.utc)
    except (OverflowError, OSError, ValueError) as error:
        raise _bad(f"Time with {seconds} seconds") from error
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _int_or_string(value: dict[str, Any]) -> int | str:
    return str(value.get("strVal", "")) if value.get("type") == 1 else int(value.get("intVal", 0))


# Messages printed by Go as a JSON scalar; None means "omit the field".
_CONVERT: dict[str, Callable[[dict[str, Any]], Any]] = {
    "Time": _time,
    "IntOrString": _int_or_string,
    "Quantity": lambda value: str(value.get("string", "0")),
}

_WIRE_OF = {"string": LENGTH, "bytes": LENGTH, "int32": VARINT, "int64": VARINT,
            "bool": VARINT}


def _bad(message: str) -> ApiError:
    return ApiError(400, f"the body of the request could not be decoded: {message}")


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """The unsigned varint at ``pos`` and the position after it."""
    result = shift = 0
    while True:
        if pos >= len(data):
            raise _bad("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise _bad("varint longer than 10 bytes")


def fields(data: bytes) -> list[tuple[int, int, int | bytes]]:
    """The wire fields of one message: ``(number, wire type, value)`` in order.

    Varints and fixed32/fixed64 values are unsigned ints, length-delimited ones bytes.
    Raises :class:`ApiError` 400 on truncated or malformed input (groups included).
    """
    result: list[tuple[int, int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _bad("field number 0")
        value: int | bytes
        if wire == VARINT:
            value, pos = _varint(data, pos)
        elif wire in (FIXED32, FIXED64):
            size = 4 if wire == FIXED32 else 8
            if pos + size > len(data):
                raise _bad(f"truncated fixed{size * 8} field {number}")
            value, pos = int.from_bytes(data[pos:pos + size], "little"), pos + size
        elif wire == LENGTH:
            size, pos = _varint(data, pos)
            if pos + size > len(data):
                raise _bad(f"truncated length-delimited field {number}")
            value, pos = data[pos:pos + size], pos + size
        else:
            raise _bad(f"unsupported wire type {wire} of field {number}")
        result.append((number, wire, value))
    return result


def _scalar(type_: str, value: int | bytes, where: str) -> Any:
    if isinstance(value, bytes):
        if type_ == "bytes":
            return base64.b64encode(value).decode("ascii")
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as error:
            raise _bad(f"{where} is not UTF-8") from error
    if type_ == "bool":
        return value != 0
    bits = 32 if type_ == "int32" else 64
    value &= (1 << bits) - 1  # a negative int32 is sent as a 10-byte varint
    return value - (1 << bits) if value >> (bits - 1) else value


def _value(type_: str, wire: int, value: int | bytes, where: str) -> Any:
    expected = _WIRE_OF.get(type_, LENGTH)
    if wire != expected:
        raise _bad(f"{where} has wire type {wire}, expected {expected}")
    if type_ in _SCALARS:
        return _scalar(type_, value, where)
    assert isinstance(value, bytes)
    decoded = decode_message(value, type_)
    convert = _CONVERT.get(type_)
    return convert(decoded) if convert else decoded


def decode_message(data: bytes, message: str) -> dict[str, Any]:
    """Decode ``data`` as the message ``message`` of :data:`_SCHEMA` to its JSON form.

    Raises :class:`ApiError` 415 for a field number the schema does not know and 400
    for malformed input.
    """
    schema = _SCHEMA[message]
    result: dict[str, Any] = {}
    for number, wire, value in fields(data):
        spec = schema.get(number)
        if spec is None:
            raise ApiError(415, f"the simulator cannot decode protobuf field {number} of "
                           f"{message} (wire type {wire}); send this object as JSON")
        where = f"field {number} ({spec.name}) of {message}"
        if spec.label == "map":
            if wire != LENGTH:
                raise _bad(f"{where} has wire type {wire}, expected {LENGTH}")
            assert isinstance(value, bytes)
            key, item = "", None
            for entry_number, entry_wire, entry_value in fields(value):
                if entry_number == 1:
                    key = _value("string", entry_wire, entry_value, f"key of {where}")
                elif entry_number == 2:
                    item = _value(spec.type, entry_wire, entry_value, f"value of {where}")
                else:
                    raise _bad(f"map entry of {where} has field {entry_number}")
            if item is None:  # every map value here is a string, bytes or a message
                item = _value(spec.type, LENGTH, b"", f"value of {where}")
            result.setdefault(spec.name, {})[key] = item
            continue
        decoded = _value(spec.type, wire, value, where)
        if spec.label == "repeated":
            result.setdefault(spec.name, []).append(decoded)
        elif decoded is None or (spec.type in _SCALARS and not spec.always and not decoded):
            result.pop(spec.name, None)
        else:
            result[spec.name] = decoded
    return result


def decode(body: bytes) -> dict[str, Any]:
    """The object a ``application/vnd.kubernetes.protobuf`` request body carries.

    Returns the dict a JSON client would have sent, ``apiVersion`` and ``kind`` included.
    Raises :class:`ApiError` 415 for an unknown kind, field or content encoding and 400
    for a body that is not a Kubernetes protobuf envelope.
    """
    if not body.startswith(MAGIC):
        raise _bad("protobuf body without the k8s\\x00 prefix")
    unknown = decode_message(body[len(MAGIC):], "Unknown")
    if unknown.get("contentEncoding"):
        raise ApiError(415, f"the simulator cannot decode protobuf content encoding "
                       f"{unknown['contentEncoding']!r}")
    type_meta = unknown.get("typeMeta", {})
    api_version, kind = type_meta.get("apiVersion", ""), type_meta.get("kind", "")
    message = _KINDS.get((api_version, kind))
    if message is None:
        raise ApiError(415, f"the simulator cannot decode protobuf bodies of kind {kind!r} "
                       f"in {api_version!r}; send this object as JSON")
    raw = base64.b64decode(unknown.get("raw", ""))  # bytes come back as base64 (JSON form)
    return {"kind": kind, "apiVersion": api_version, **decode_message(raw, message)}
