"""Fixtures for tests that talk HTTP to the simulated API server.

``cluster`` is a fresh plain-HTTP SimulatedCluster per test; ``api`` is a raw
HTTP client for it (see ``helpers.py``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from faro.testing import SimulatedCluster
from tests.integration.helpers import RawClient


@pytest.fixture
def cluster() -> Iterator[SimulatedCluster]:
    with SimulatedCluster(too_large_rv_wait=0.3, namespace_cleanup_delay=0.05) as sim:
        yield sim


@pytest.fixture
def api(cluster: SimulatedCluster) -> Iterator[RawClient]:
    client = RawClient(cluster.url, cluster.token)
    yield client
    client.close()
