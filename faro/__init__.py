"""faro: watch Kubernetes resources the way client-go informers do.

The usual start::

    from faro import Controller, KubernetesClient, load_config

    controller = Controller(KubernetesClient.from_environment(), load_config("config.yaml"))
    controller.add_event_handler(lambda event: print(event.event_type, event.gvr, event.key))
    controller.run()

These names are the public API (docs/api.md lists them with their contracts). Everything
else stays importable from its module: the informer and work-queue machinery in
:mod:`faro.cache` and :mod:`faro.workqueue`, the configuration's parts in
:mod:`faro.config`, metrics in :mod:`faro.metrics`, discovery in :mod:`faro.discovery`, and
the simulated API server for tests and demos in :mod:`faro.testing`.
"""

from faro.client import ClientConfigError, KubernetesClient
from faro.config import Config, ConfigError, ResourceConfig, load_config
from faro.controller import Controller
from faro.discovery import DiscoveryError
from faro.errors import ApiStatusError, FaroError
from faro.events import EventHandler, EventType, JSONMiddleware, MatchedEvent
from faro.export import event_record
from faro.leaderelection import LeaderElectionConfig
from faro.logs import setup_logging

__version__ = "0.1.0"
"""The installed version, as ``faro --version`` prints it."""

__all__ = [
    "ApiStatusError",
    "ClientConfigError",
    "Config",
    "ConfigError",
    "Controller",
    "DiscoveryError",
    "EventHandler",
    "EventType",
    "FaroError",
    "JSONMiddleware",
    "KubernetesClient",
    "LeaderElectionConfig",
    "MatchedEvent",
    "ResourceConfig",
    "__version__",
    "event_record",
    "load_config",
    "setup_logging",
]
