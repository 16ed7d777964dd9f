"""Kubernetes' naming rules, in one place: object names, object keys, the object type.

Everything that checks a name (the configuration, the selectors, the group/version/resource
parser, the simulated API server) or builds an object's key (the cache, the informers,
delivery, the simulator) uses these, so the rules cannot drift apart. The checks and their
messages follow apimachinery's ``IsDNS1123Label``, ``IsDNS1123Subdomain`` and
``IsDNS1035Label``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

__all__ = [
    "DNS1035_LABEL_FMT",
    "DNS1123_LABEL_FMT",
    "DNS1123_SUBDOMAIN_FMT",
    "KubeObject",
    "dns1035_label_errors",
    "dns1123_label_errors",
    "dns1123_subdomain_errors",
    "is_dns1123_label",
    "is_dns1123_subdomain",
    "key_of",
    "object_key",
]

KubeObject = dict[str, Any]
"""An object as decoded from the API server's JSON: the one type alias faro uses for it."""

DNS1123_LABEL_FMT: Final = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN_FMT: Final = DNS1123_LABEL_FMT + "(\\." + DNS1123_LABEL_FMT + ")*"
DNS1035_LABEL_FMT: Final = "[a-z]([-a-z0-9]*[a-z0-9])?"

DNS1123_LABEL_MAX_LENGTH: Final = 63
DNS1123_SUBDOMAIN_MAX_LENGTH: Final = 253

_DNS1123_LABEL: Final = re.compile(DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN: Final = re.compile(DNS1123_SUBDOMAIN_FMT)
_DNS1035_LABEL: Final = re.compile(DNS1035_LABEL_FMT)

_DNS1123_LABEL_MSG: Final = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character")
_DNS1123_SUBDOMAIN_MSG: Final = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    "or '.', and must start and end with an alphanumeric character")
_DNS1035_LABEL_MSG: Final = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
    "an alphabetic character, and end with an alphanumeric character")


def is_dns1123_label(text: str) -> bool:
    """Whether ``text`` is a DNS-1123 label (a namespace's name): at most 63 characters."""
    return len(text) <= DNS1123_LABEL_MAX_LENGTH and _DNS1123_LABEL.fullmatch(text) is not None


def is_dns1123_subdomain(text: str) -> bool:
    """Whether ``text`` is a DNS-1123 subdomain (most objects' names): at most 253 characters."""
    return len(text) <= DNS1123_SUBDOMAIN_MAX_LENGTH and \
        _DNS1123_SUBDOMAIN.fullmatch(text) is not None


def _regex_error(message: str, fmt: str, examples: str) -> str:
    # The shape of apimachinery's RegexError (its double spaces included).
    return f"{message} (e.g. {examples}, regex used for validation is '{fmt}')"


def _errors(text: str, limit: int, pattern: re.Pattern[str], message: str,
            examples: str) -> list[str]:
    problems = []
    if len(text) > limit:
        problems.append(f"must be no more than {limit} characters")
    if pattern.fullmatch(text) is None:
        problems.append(_regex_error(message, pattern.pattern, examples))
    return problems


def dns1123_label_errors(text: str) -> list[str]:
    """What is wrong with ``text`` as a DNS-1123 label, as kube-apiserver words it ([] if valid)."""
    return _errors(text, DNS1123_LABEL_MAX_LENGTH, _DNS1123_LABEL, _DNS1123_LABEL_MSG,
                   "'my-name',  or '123-abc'")


def dns1123_subdomain_errors(text: str) -> list[str]:
    """What is wrong with ``text`` as a DNS-1123 subdomain, as kube-apiserver words it."""
    return _errors(text, DNS1123_SUBDOMAIN_MAX_LENGTH, _DNS1123_SUBDOMAIN,
                   _DNS1123_SUBDOMAIN_MSG, "'example.com'")


def dns1035_label_errors(text: str) -> list[str]:
    """What is wrong with ``text`` as a DNS-1035 label (a Service's name), as the server says."""
    return _errors(text, DNS1123_LABEL_MAX_LENGTH, _DNS1035_LABEL, _DNS1035_LABEL_MSG,
                   "'my-name',  or 'abc-123'")


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
