"""HTTP front doors: one token-checked view class for every task, status, `/metrics` and
`/healthz`."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from maintenance import registry
from maintenance.auth import METRICS_SECRETS, TASK_SECRETS, Verdict, check_bearer, configured_secret
from maintenance.models import Trigger
from maintenance.observe.metrics import exposition
from maintenance.observe.status import maintenance_status
from maintenance.registry import BadOption
from maintenance.runs.runner import run_task

DEBUG_NOTE = (
    "Ran without a token because DEBUG is true and CRON_SECRET is not set; "
    "production callers must send a Bearer token."
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


def debug_opens(request: HttpRequest) -> bool:
    """A tokenless GET runs under DEBUG for manual testing on a machine that has no secret
    yet; once `CRON_SECRET` is set, DEBUG opens nothing a secret closes."""
    tokenless = "HTTP_AUTHORIZATION" not in request.META
    return settings.DEBUG and tokenless and configured_secret(TASK_SECRETS) is None


@method_decorator(csrf_exempt, name="dispatch")
class TaskView(View):
    """POST runs the task; so does GET with a valid token (Vercel Cron sends GET).

    Mounted once per declared task by `maintenance/urls.py` as
    `TaskView.as_view(task_name=...)`. Query parameters are the task's declared options
    (`?dry_run=1`, `?limit=500`); any other parameter, or a bad value, is a 400 naming it.
    """

    task_name: str = ""
    http_method_names = ["get", "post"]

    def post(self, request: HttpRequest) -> JsonResponse:
        return bearer_gate(request) or self.run(request)

    def get(self, request: HttpRequest) -> JsonResponse:
        if debug_opens(request):
            return self.run(request, note=DEBUG_NOTE)
        return bearer_gate(request) or self.run(request)

    def run(self, request: HttpRequest, note: str | None = None) -> JsonResponse:
        """Options are read after the Bearer check: strangers learn nothing."""
        try:
            query = request.GET.copy()
            force = query.pop(FORCE_PARAMETER, ["0"])[-1] in SWITCH_ON
            options = query_options(registry.get(self.task_name), query)
        except BadOption as exc:
            return JsonResponse({"success": False, "error": str(exc)}, status=400)
        outcome = run_task(self.task_name, Trigger.HTTP, force=force, **options)
        body = outcome.body(debug=settings.DEBUG)
        if note:
            body["note"] = note
        return JsonResponse(body, status=outcome.http_status)


FORCE_PARAMETER = "force"  # ?force=1: a manual run, whatever the schedule's tick
SWITCH_ON = frozenset({"1", "true", "yes", "on"})


def query_options(task: registry.Task, query: QueryDict) -> dict[str, Any]:
    unknown = [name for name in query if task.option(name) is None]
    if unknown:
        accepted = ", ".join(option.name for option in task.options) or "none"
        raise BadOption(
            f"unknown query parameter {', '.join(sorted(unknown))} (accepted: {accepted})"
        )
    return {name: task.option(name).from_text(query[name]) for name in query}


@csrf_exempt  # a PUT or DELETE gets 405, not Django's CSRF page
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


@csrf_exempt
@require_http_methods(["GET", "HEAD"])
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus scrape target (Bearer METRICS_TOKEN, else CRON_SECRET); 503 when neither
    is set or the database does not answer, so `up` drops and the target-down alert fires."""
    verdict = check_bearer(request, METRICS_SECRETS)
    if verdict is Verdict.NO_SECRET:
        error = "Neither METRICS_TOKEN nor CRON_SECRET is set on the server; /metrics is closed."
        return JsonResponse({"success": False, "error": error}, status=503)
    if verdict is not Verdict.ALLOWED:
        return unauthorized()
    try:
        body, content_type = exposition(request.headers.get("Accept", ""))
    except DatabaseError:
        return JsonResponse({"success": False, "error": "database unavailable"}, status=503)
    return HttpResponse(body, content_type=content_type)


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness for load balancers: 200 when the database answers, 503 when it does not."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        return JsonResponse({"status": "error", "error": "database unavailable"}, status=503)
    return JsonResponse({"status": "ok"})
