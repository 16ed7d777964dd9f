"""faro: watch Kubernetes resources the way client-go informers do.

The usual start::

    from faro import Controller, KubernetesClient, load_config

    controller = Controller(KubernetesClient.from_environment(), load_config("config.yaml"))
    controller.add_event_handler(lambda event: print(event.event_type, event.gvr, event.key))
    controller.run()

The informer and work-queue machinery underneath is in :mod:`faro.cache` and
:mod:`faro.workqueue`; the simulated API server for tests and demos in
:mod:`faro.testing`.
"""

from faro.client import ClientConfigError, KubernetesClient
from faro.config import (
    Config,
    ConfigError,
    ExportConfig,
    MetricsConfig,
    NamespaceConfig,
    NormalizedConfig,
    ResourceConfig,
    ResourceRule,
    load_config,
)
from faro.controller import ActiveInformers, Controller
from faro.discovery import APIResource, Discovery, DiscoveryError
from faro.errors import ApiStatusError, FaroError
from faro.events import EventHandler, EventType, JSONMiddleware, MatchedEvent
from faro.gvr import GroupVersionResource

__version__ = "0.1.0"

__all__ = [
    "APIResource",
    "ActiveInformers",
    "ApiStatusError",
    "ClientConfigError",
    "Config",
    "ConfigError",
    "Controller",
    "Discovery",
    "DiscoveryError",
    "EventHandler",
    "EventType",
    "ExportConfig",
    "FaroError",
    "GroupVersionResource",
    "JSONMiddleware",
    "KubernetesClient",
    "MatchedEvent",
    "MetricsConfig",
    "NamespaceConfig",
    "NormalizedConfig",
    "ResourceConfig",
    "ResourceRule",
    "__version__",
    "load_config",
]
