"""Settings of the faro example project: the least Django needs, and the ``watch`` app.

No database, no templates, no sessions: the app only serves JSON views.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-a-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["watch.apps.WatchConfig"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "faroproject.urls"
WSGI_APPLICATION = "faroproject.wsgi.application"
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True

# faro's own settings: the configuration file (default: the examples' resource-centric one)
# and how many recent events the views keep. The cluster is the one faro finds (in-cluster,
# $KUBECONFIG, ~/.kube/config).
FARO_CONFIG = os.environ.get(
    "FARO_CONFIG", str(BASE_DIR.parent / "configs" / "resource-centric.yaml"))
FARO_MAX_EVENTS = 100

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"faro": {"handlers": ["console"], "level": "INFO"},
                "watch": {"handlers": ["console"], "level": "INFO"}},
}
