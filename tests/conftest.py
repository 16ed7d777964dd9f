"""Suite-wide pytest configuration for faro's tests.

Sections:

* ``kubectl`` marker: tests that run the real kubectl binary.
"""

from __future__ import annotations

import os
import shutil

import pytest

# ---------------------------------------------------------------------------------------------
# kubectl marker
#
# Tests marked ``@pytest.mark.kubectl`` need the kubectl binary on PATH. Without it they are
# skipped, unless FARO_REQUIRE_KUBECTL=1 (set by .ci/run), in which case each of them fails so
# that a machine lacking kubectl cannot pass CI by silently skipping them.
# ---------------------------------------------------------------------------------------------

REQUIRE_KUBECTL_ENV = "FARO_REQUIRE_KUBECTL"


def _kubectl_missing() -> bool:
    return shutil.which("kubectl") is None


def _kubectl_required() -> bool:
    return os.environ.get(REQUIRE_KUBECTL_ENV, "").strip() == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip kubectl-marked tests when kubectl is missing and not required."""
    if not _kubectl_missing() or _kubectl_required():
        return
    skip = pytest.mark.skip(reason="kubectl not found on PATH")
    for item in items:
        if item.get_closest_marker("kubectl") is not None:
            item.add_marker(skip)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Fail kubectl-marked tests when kubectl is missing but required."""
    if item.get_closest_marker("kubectl") is None:
        return
    if _kubectl_missing() and _kubectl_required():
        pytest.fail(
            f"kubectl not found on PATH, and {REQUIRE_KUBECTL_ENV}=1 requires tests marked "
            "'kubectl' to run: install kubectl or unset the variable to skip them",
            pytrace=False,
        )
