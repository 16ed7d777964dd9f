"""The WSGI application (``gunicorn faroproject.wsgi``): Django starts the ``watch`` app,
whose ``ready()`` starts this process's controller."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "faroproject.settings")
application = get_wsgi_application()
