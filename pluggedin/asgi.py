"""ASGI entry point; importing it means this process serves requests, so it also starts
the in-process maintenance scheduler (see maintenance/triggers/scheduler.py)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pluggedin.settings")

application = get_asgi_application()

from maintenance.triggers.scheduler import start_in_process  # noqa: E402 - needs the apps loaded

start_in_process()
