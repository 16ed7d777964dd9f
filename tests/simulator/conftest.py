"""The simulator's tests use the same fixtures as faro's: a fresh cluster and a raw client."""

from tests.integration.conftest import api, cluster

__all__ = ["api", "cluster"]
