"""JSON views: the recent events and the controller's readiness, with the serving pid."""

from __future__ import annotations

import os

from django.http import HttpRequest, JsonResponse

from watch.apps import WatchConfig


def events(request: HttpRequest) -> JsonResponse:
    """``GET /events?limit=N``: the most recent events (faro's JSON export lines)."""
    recent = WatchConfig.recent
    limit = int(request.GET.get("limit", "100"))
    return JsonResponse({"pid": os.getpid(),
                         "events": recent.last(limit) if recent is not None else []})


def readyz(request: HttpRequest) -> JsonResponse:
    """``GET /readyz``: 200 while this process's controller is ready, 503 otherwise."""
    controller = WatchConfig.controller
    ready = controller is not None and controller.is_ready()
    return JsonResponse({"pid": os.getpid(), "ready": ready}, status=200 if ready else 503)
