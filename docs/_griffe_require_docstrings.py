"""A griffe extension for the API reference: a public name of ``faro`` must have a docstring.

mkdocs.yml loads it into mkdocstrings' griffe. For every name in ``faro.__all__``, and for
every public member (a name not starting with ``_``) of the classes among them, defined in
faro itself, a missing or empty docstring is logged as a warning; ``mkdocs build --strict``
(``make docs``) turns that warning into a failed build. It also rewrites the Sphinx roles
the docstrings use (``:meth:`stop```, ``:class:`~faro.config.Config```) into inline code,
which Markdown shows as code instead of as a literal role.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

logger = griffe.get_logger("faro_docs")
_ROLE = re.compile(r":(?:py:)?(?:meth|class|func|attr|data|mod|exc|obj):`~?([^`]+)`")


class RequireDocstrings(griffe.Extension):
    """Warn about a public ``faro`` name without a docstring; show Sphinx roles as code."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        if pkg.name != "faro":
            return
        for name in sorted(str(export) for export in pkg.exports or ()):
            member = pkg[name]
            target = member.final_target if member.is_alias else member
            self._check(f"faro.{name}", target)
            if target.is_class:
                for child_name, child in target.members.items():
                    if child_name.startswith("_") or child.is_alias:
                        continue
                    self._check(f"faro.{name}.{child_name}", child)

    def _check(self, path: str, obj: Any) -> None:
        docstring = obj.docstring
        if docstring is None or not docstring.value.strip():
            logger.warning("%s has no docstring (a public name of faro: say what it does)",
                           path)
            return
        docstring.value = _ROLE.sub(lambda m: f"`{m.group(1).split('.')[-1]}`"
                                    if m.group(1).startswith("faro.") else f"`{m.group(1)}`",
                                    docstring.value)
