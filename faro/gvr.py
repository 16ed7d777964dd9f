"""Group/version/resource names, as faro's configuration writes them.

``v1/pods`` is the core group's ``pods``; ``apps/v1/deployments`` and
``example.com/v1alpha1/widgets`` name a group. :func:`GroupVersionResource.parse`
turns such a string into a value; ``str()`` turns it back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from faro._names import is_dns1123_label, is_dns1123_subdomain

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

        The version is ``v1``, ``v1beta1``...; the resource a DNS-1123 label and the group a
        DNS-1123 subdomain, as Kubernetes names them (:mod:`faro._names`). Raises ValueError
        naming the string when it has the wrong shape.
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
        if not is_dns1123_label(resource):
            raise ValueError(f"invalid resource {text!r}: {resource!r} is not a resource name "
                             "(lower-case plural, like pods)")
        if group and not is_dns1123_subdomain(group):
            raise ValueError(f"invalid resource {text!r}: {group!r} is not an API group")
        return cls(group, version, resource)

    @property
    def api_version(self) -> str:
        """``v1`` or ``group/version``, as in an object's apiVersion."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """``pods`` or ``resource.group`` (``widgets.example.com``): apimachinery's
        ``GroupResource.String()``, as in API errors, and a custom resource's CRD name."""
        return f"{self.resource}.{self.group}" if self.group else self.resource

    def path(self, namespace: str | None = None) -> str:
        """The collection's URL path, across namespaces or in ``namespace``."""
        prefix = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if namespace:
            return f"{prefix}/namespaces/{quote(namespace, safe='')}/{self.resource}"
        return f"{prefix}/{self.resource}"

    def __str__(self) -> str:
        return f"{self.api_version}/{self.resource}"
