"""ASGI entry point; importing it means this process serves requests."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pluggedin.settings")

application = get_asgi_application()
