"""The ``watch`` app: one faro controller per serving process, started by ``ready()``.

- ``manage.py runserver`` with its autoreloader runs ``ready()`` twice: in the watching
  parent, which serves nothing, and in the serving child (``RUN_MAIN=true``). The
  controller starts only in the child (or in the one process of ``--noreload``).
- gunicorn imports the WSGI application in each worker after the fork (without
  ``--preload``): each worker's ``ready()`` starts a controller of its own. With
  ``--preload`` the master would start it and every worker would have a dead copy (faro
  then says so: docs/embedding.md), so do not preload.
- The controller stops at the process's exit: faro's exit hook delivers what is queued,
  for at most its ``exit_timeout``, whatever ends the process (a worker's SIGTERM
  included).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections import deque
from typing import Any

from django.apps import AppConfig
from django.conf import settings

from faro import Controller, KubernetesClient, MatchedEvent, event_record, load_config

logger = logging.getLogger("watch")


class RecentEvents:
    """A faro handler keeping the last ``size`` events; safe to read from any thread."""

    def __init__(self, size: int) -> None:
        self._events: deque[dict[str, Any]] = deque(maxlen=size)
        self._lock = threading.Lock()

    def on_matched(self, event: MatchedEvent) -> None:  # on faro's worker threads
        with self._lock:
            self._events.append(event_record(event))

    def last(self, limit: int) -> list[dict[str, Any]]:  # on the server's threads
        with self._lock:
            events = list(self._events)
        return events[-limit:] if limit > 0 else []


def autoreloader_parent() -> bool:
    """Whether this is ``runserver``'s watching parent, which serves nothing."""
    return ("runserver" in sys.argv and "--noreload" not in sys.argv
            and os.environ.get("RUN_MAIN") != "true")


class WatchConfig(AppConfig):
    name = "watch"
    controller: Controller | None = None
    recent: RecentEvents | None = None

    def ready(self) -> None:
        if autoreloader_parent() or WatchConfig.controller is not None:
            return
        recent = RecentEvents(settings.FARO_MAX_EVENTS)
        controller = Controller(KubernetesClient.from_environment(),
                                load_config(settings.FARO_CONFIG), name="faro-django")
        controller.add_event_handler(recent)  # before start(): the existing objects too
        controller.start()  # returns once the informers run
        WatchConfig.controller, WatchConfig.recent = controller, recent
        logger.info("faro controller started in process %d", os.getpid())
