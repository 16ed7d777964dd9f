"""Testing support: a simulated Kubernetes API server.

:class:`SimulatedCluster` runs a kube-apiserver look-alike on 127.0.0.1 that
``kubectl``, the official ``kubernetes`` client and faro talk to over real HTTP.
Use it to try faro without a cluster and to test your own handlers.
"""

from faro.testing._errors import ApiError
from faro.testing.clock import FakeClock
from faro.testing.cluster import SimulatedCluster

__all__ = ["ApiError", "FakeClock", "SimulatedCluster"]
