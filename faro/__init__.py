"""faro: watch Kubernetes resources the way client-go informers do.

The simulated API server for tests and demos lives in :mod:`faro.testing`.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
