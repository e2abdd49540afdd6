"""HTTP front doors: one token-checked view class for every task, and `/healthz`."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from .auth import Verdict, check_bearer
from .models import Trigger
from .runner import run_task
from .status import maintenance_status

DEBUG_NOTE = (
    "Ran without a token because DEBUG is true; production callers must send a Bearer token."
)


def unauthorized() -> JsonResponse:
    response = JsonResponse({"success": False, "error": "Unauthorized"}, status=401)
    response["WWW-Authenticate"] = "Bearer"
    return response


def endpoints_closed() -> JsonResponse:
    error = "CRON_SECRET is not set on the server; task endpoints are closed until it is."
    return JsonResponse({"success": False, "error": error}, status=503)


def bearer_gate(request: HttpRequest) -> JsonResponse | None:
    """The response that refuses this request, or None when it may proceed."""
    verdict = check_bearer(request)
    if verdict is Verdict.NO_SECRET:
        return endpoints_closed()
    if verdict is not Verdict.ALLOWED:
        return unauthorized()
    return None


@method_decorator(csrf_exempt, name="dispatch")
class TaskView(View):
    """POST runs the task; so does GET with a valid token (Vercel Cron sends GET)."""

    task_name: str = ""
    http_method_names = ["get", "post"]

    def post(self, request: HttpRequest) -> JsonResponse:
        return bearer_gate(request) or self.run()

    def get(self, request: HttpRequest) -> JsonResponse:
        if settings.DEBUG and "HTTP_AUTHORIZATION" not in request.META:
            return self.run(note=DEBUG_NOTE)
        return bearer_gate(request) or self.run()

    def run(self, note: str | None = None) -> JsonResponse:
        outcome = run_task(self.task_name, Trigger.HTTP, **self.task_options())
        body = outcome.body(debug=settings.DEBUG)
        if note:
            body["note"] = note
        return JsonResponse(body, status=outcome.http_status)

    def task_options(self) -> dict[str, Any]:
        return {}


@require_http_methods(["GET", "HEAD"])
def status(request: HttpRequest) -> JsonResponse:
    """For uptime monitors: 200 when every task is healthy, 503 otherwise (Bearer)."""
    refused = bearer_gate(request)
    if refused:
        return refused
    try:
        body = maintenance_status()
    except DatabaseError:
        body = {"healthy": False, "error": "database unavailable"}
    return JsonResponse(body, status=200 if body["healthy"] else 503)


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness for load balancers: 200 when the database answers, 503 when it does not."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        return JsonResponse({"status": "error", "error": "database unavailable"}, status=503)
    return JsonResponse({"status": "ok"})
