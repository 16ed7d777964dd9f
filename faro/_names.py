"""Kubernetes' naming rules, in one place: object names, label keys and values, object keys, the
object type.

Everything that checks a name (the configuration, the selectors, the group/version/resource
parser, the simulated API server) or builds an object's key (the cache, the informers,
delivery, the simulator) uses these, so the rules cannot drift apart. The checks and their
messages follow apimachinery's ``IsDNS1123Label``, ``IsDNS1123Subdomain``, ``IsDNS1035Label``,
``IsQualifiedName`` (label keys) and ``IsValidLabelValue``.

Lengths are counted in UTF-8 bytes, as Go's ``len`` does (for the ASCII a valid name is made
of, bytes and characters are the same). apimachinery has worded its too-long message both
"must be no more than N characters" and "... N bytes" over its versions; the ``unit`` argument
picks the wording a caller mirrors.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final, Literal

__all__ = [
    "DNS1035_LABEL_FMT",
    "DNS1123_LABEL_FMT",
    "DNS1123_LABEL_MAX_LENGTH",
    "DNS1123_SUBDOMAIN_FMT",
    "DNS1123_SUBDOMAIN_MAX_LENGTH",
    "LABEL_VALUE_FMT",
    "LABEL_VALUE_MAX_LENGTH",
    "QUALIFIED_NAME_FMT",
    "QUALIFIED_NAME_MAX_LENGTH",
    "KubeObject",
    "LengthUnit",
    "dns1035_label_errors",
    "dns1123_label_errors",
    "dns1123_subdomain_errors",
    "is_dns1123_label",
    "is_dns1123_subdomain",
    "key_of",
    "label_key_errors",
    "label_value_errors",
    "object_key",
    "version_before",
]

KubeObject = dict[str, Any]
"""An object as decoded from the API server's JSON: the one type alias faro uses for it."""

LengthUnit = Literal["characters", "bytes"]
"""The word of a too-long message: ``"must be no more than 63 characters"`` (or ``bytes``)."""

DNS1123_LABEL_FMT: Final = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN_FMT: Final = DNS1123_LABEL_FMT + "(\\." + DNS1123_LABEL_FMT + ")*"
DNS1035_LABEL_FMT: Final = "[a-z]([-a-z0-9]*[a-z0-9])?"
QUALIFIED_NAME_FMT: Final = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
"""The name part of a label key (after an optional ``prefix/``)."""
LABEL_VALUE_FMT: Final = "(" + QUALIFIED_NAME_FMT + ")?"

DNS1123_LABEL_MAX_LENGTH: Final = 63
DNS1123_SUBDOMAIN_MAX_LENGTH: Final = 253
QUALIFIED_NAME_MAX_LENGTH: Final = 63
LABEL_VALUE_MAX_LENGTH: Final = 63

_DNS1123_LABEL: Final = re.compile(DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN: Final = re.compile(DNS1123_SUBDOMAIN_FMT)
_DNS1035_LABEL: Final = re.compile(DNS1035_LABEL_FMT)
_QUALIFIED_NAME: Final = re.compile(QUALIFIED_NAME_FMT)
_LABEL_VALUE: Final = re.compile(LABEL_VALUE_FMT)

_DNS1123_LABEL_MSG: Final = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character")
_DNS1123_SUBDOMAIN_MSG: Final = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    "or '.', and must start and end with an alphanumeric character")
_DNS1035_LABEL_MSG: Final = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
    "an alphabetic character, and end with an alphanumeric character")
_QUALIFIED_NAME_MSG: Final = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character")
_LABEL_VALUE_MSG: Final = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character")


def _length(text: str) -> int:
    # Go's len(): UTF-8 bytes (a lone surrogate, which no Go string holds, counts as 3).
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def is_dns1123_label(text: str) -> bool:
    """Whether ``text`` is a DNS-1123 label (a namespace's name): at most 63 characters."""
    return len(text) <= DNS1123_LABEL_MAX_LENGTH and _DNS1123_LABEL.fullmatch(text) is not None


def is_dns1123_subdomain(text: str) -> bool:
    """Whether ``text`` is a DNS-1123 subdomain (most objects' names): at most 253 characters."""
    return len(text) <= DNS1123_SUBDOMAIN_MAX_LENGTH and \
        _DNS1123_SUBDOMAIN.fullmatch(text) is not None


def _regex_error(message: str, fmt: str, *examples: str) -> str:
    # apimachinery's RegexError, its double spaces included.
    if not examples:
        return f"{message} (regex used for validation is '{fmt}')"
    shown = " or ".join(f"'{example}', " for example in examples)
    return f"{message} (e.g. {shown}regex used for validation is '{fmt}')"


def _max_length_error(limit: int, unit: LengthUnit) -> str:
    return f"must be no more than {limit} {unit}"


def _errors(text: str, limit: int, unit: LengthUnit, pattern: re.Pattern[str], message: str,
            *examples: str) -> list[str]:
    problems = []
    if _length(text) > limit:
        problems.append(_max_length_error(limit, unit))
    if pattern.fullmatch(text) is None:
        problems.append(_regex_error(message, pattern.pattern, *examples))
    return problems


def dns1123_label_errors(text: str, unit: LengthUnit = "characters") -> list[str]:
    """What is wrong with ``text`` as a DNS-1123 label, as kube-apiserver words it ([] if valid)."""
    return _errors(text, DNS1123_LABEL_MAX_LENGTH, unit, _DNS1123_LABEL, _DNS1123_LABEL_MSG,
                   "my-name", "123-abc")


def dns1123_subdomain_errors(text: str, unit: LengthUnit = "characters") -> list[str]:
    """What is wrong with ``text`` as a DNS-1123 subdomain, as kube-apiserver words it."""
    return _errors(text, DNS1123_SUBDOMAIN_MAX_LENGTH, unit, _DNS1123_SUBDOMAIN,
                   _DNS1123_SUBDOMAIN_MSG, "example.com")


def dns1035_label_errors(text: str, unit: LengthUnit = "characters") -> list[str]:
    """What is wrong with ``text`` as a DNS-1035 label (a Service's name), as the server says."""
    return _errors(text, DNS1123_LABEL_MAX_LENGTH, unit, _DNS1035_LABEL, _DNS1035_LABEL_MSG,
                   "my-name", "abc-123")


def label_key_errors(key: str, unit: LengthUnit = "bytes") -> list[str]:
    """What is wrong with ``key`` as a label (or annotation) key, as kube-apiserver words it.

    A key is a name of at most 63 characters, optionally after a DNS-1123 subdomain prefix and
    ``/`` (``app``, ``example.com/tier``). Returns [] for a valid key.
    """
    parts = key.split("/")
    if len(parts) > 2:
        return ["a valid label key "
                + _regex_error(_QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT,
                               "MyName", "my.name", "123-abc")
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    problems: list[str] = []
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            problems.append("prefix part must be non-empty")
        else:
            problems.extend("prefix part " + p for p in dns1123_subdomain_errors(prefix, unit))
    name = parts[-1]
    if not name:
        problems.append("name part must be non-empty")
    elif _length(name) > QUALIFIED_NAME_MAX_LENGTH:
        problems.append("name part " + _max_length_error(QUALIFIED_NAME_MAX_LENGTH, unit))
    if _QUALIFIED_NAME.fullmatch(name) is None:
        problems.append("name part " + _regex_error(_QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT,
                                                    "MyName", "my.name", "123-abc"))
    return problems


def label_value_errors(value: str, unit: LengthUnit = "bytes") -> list[str]:
    """What is wrong with ``value`` as a label value (at most 63 characters, may be empty)."""
    return _errors(value, LABEL_VALUE_MAX_LENGTH, unit, _LABEL_VALUE, _LABEL_VALUE_MSG,
                   "MyValue", "my_value", "12345")


def object_key(namespace: str | None, name: str) -> str:
    """An object's key in a cache: ``namespace/name``, or ``name`` when cluster-scoped.

    The same key client-go's ``MetaNamespaceKeyFunc`` makes; an empty namespace counts as none.
    """
    return f"{namespace}/{name}" if namespace else name


def key_of(obj: Mapping[str, Any]) -> str:
    """``object_key`` of an object from its ``metadata``.

    Raises KeyError when the object has no ``metadata`` or no ``metadata.name``.
    """
    metadata = obj["metadata"]
    return object_key(metadata.get("namespace"), metadata["name"])


def version_before(version: str, than: str) -> bool:
    """Whether resourceVersion ``version`` may come before ``than``.

    resourceVersions are opaque to clients, but etcd's (and so every kube-apiserver's) are
    integers: compared as such when both are; otherwise True (what cannot be told apart is
    treated as possibly older: watched again, kept).
    """
    if version.isdigit() and than.isdigit():
        return int(version) < int(than)
    return True
