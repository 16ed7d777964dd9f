"""Group/version/resource names, as faro's configuration writes them.

``v1/pods`` is the core group's ``pods``; ``apps/v1/deployments`` and
``example.com/v1alpha1/widgets`` name a group. :func:`GroupVersionResource.parse`
turns such a string into a value; ``str()`` turns it back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from faro._selectors import _DNS1123_LABEL_FMT

_DNS_LABEL = re.compile(_DNS1123_LABEL_FMT)
_VERSION = re.compile(r"v[0-9]+((alpha|beta)[0-9]+)?")


@dataclass(frozen=True, slots=True)
class GroupVersionResource:
    """An API resource: ``group`` ("" for the core group), ``version`` and plural ``resource``."""

    group: str
    version: str
    resource: str

    @classmethod
    def parse(cls, text: str) -> GroupVersionResource:
        """Parse ``version/resource`` (core group) or ``group/version/resource``.

        Raises ValueError naming the string when it has the wrong shape.
        """
        parts = text.strip().split("/")
        if len(parts) == 2:
            group, (version, resource) = "", parts
        elif len(parts) == 3:
            group, version, resource = parts
        else:
            raise ValueError(
                f"invalid resource {text!r}: expected 'version/resource' for the core group "
                "(v1/pods) or 'group/version/resource' (apps/v1/deployments)")
        if not _VERSION.fullmatch(version):
            raise ValueError(f"invalid resource {text!r}: {version!r} is not an API version "
                             "(like v1, v1beta1)")
        if not _DNS_LABEL.fullmatch(resource):
            raise ValueError(f"invalid resource {text!r}: {resource!r} is not a resource name "
                             "(lower-case plural, like pods)")
        if group and not all(_DNS_LABEL.fullmatch(label) for label in group.split(".")):
            raise ValueError(f"invalid resource {text!r}: {group!r} is not an API group")
        return cls(group, version, resource)

    @property
    def api_version(self) -> str:
        """``v1`` or ``group/version``, as in an object's apiVersion."""
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None) -> str:
        """The collection's URL path, across namespaces or in ``namespace``."""
        prefix = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if namespace:
            return f"{prefix}/namespaces/{quote(namespace, safe='')}/{self.resource}"
        return f"{prefix}/{self.resource}"

    def __str__(self) -> str:
        return f"{self.api_version}/{self.resource}"
