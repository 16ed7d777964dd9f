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
from faro.export import EventExporter, event_record
from faro.gvr import GroupVersionResource
from faro.logs import LoggingSetup, setup_logging
from faro.metrics import ControllerMetrics
from faro.server import MetricsServer, MetricsServerError

__version__ = "0.1.0"

__all__ = [
    "APIResource",
    "ActiveInformers",
    "ApiStatusError",
    "ClientConfigError",
    "Config",
    "ConfigError",
    "Controller",
    "ControllerMetrics",
    "Discovery",
    "DiscoveryError",
    "EventExporter",
    "EventHandler",
    "EventType",
    "ExportConfig",
    "FaroError",
    "GroupVersionResource",
    "JSONMiddleware",
    "KubernetesClient",
    "LoggingSetup",
    "MatchedEvent",
    "MetricsConfig",
    "MetricsServer",
    "MetricsServerError",
    "NamespaceConfig",
    "NormalizedConfig",
    "ResourceConfig",
    "ResourceRule",
    "__version__",
    "event_record",
    "load_config",
    "setup_logging",
]
