"""WSGI entry point; importing it means this process serves requests."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pluggedin.settings")

application = get_wsgi_application()
