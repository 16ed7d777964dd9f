"""Informer core: a thread-safe cache of one collection, kept in sync by list and watch.

Modelled on client-go's ``tools/cache``, one concept per module:

- :mod:`~faro.cache.store`: the thread-safe, indexed object store;
- :mod:`~faro.cache.listwatch`: the LIST and WATCH requests of one collection;
- :mod:`~faro.cache.reflector`: the list/watch loop (relists, backoff, health);
- :mod:`~faro.cache.shared_informer`: the informer users create: thread, handlers, sync;
- :mod:`~faro.cache.handlers`, :mod:`~faro.cache.backoff`, :mod:`~faro.cache.health`,
  :mod:`~faro.cache.transform`: the pieces they are configured with.
"""

from faro._names import KubeObject
from faro.cache.backoff import Backoff
from faro.cache.handlers import ResourceEventHandler, ResourceEventHandlerFuncs
from faro.cache.health import InformerHealth
from faro.cache.listwatch import ListPage, ListWatch
from faro.cache.shared_informer import SharedInformer
from faro.cache.store import NAMESPACE_INDEX, IndexFunc, Store, meta_namespace_key
from faro.cache.transform import Transform, strip_managed_fields

__all__ = [
    "NAMESPACE_INDEX",
    "Backoff",
    "IndexFunc",
    "InformerHealth",
    "KubeObject",
    "ListPage",
    "ListWatch",
    "ResourceEventHandler",
    "ResourceEventHandlerFuncs",
    "SharedInformer",
    "Store",
    "Transform",
    "meta_namespace_key",
    "strip_managed_fields",
]
