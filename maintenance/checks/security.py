"""The secrets that open the task, status and metrics endpoints."""

from __future__ import annotations

from typing import Any

from django.core.checks import Tags, Warning, register
from django.urls import Resolver404, resolve

from maintenance.auth import METRICS_SECRETS, configured_secret
from maintenance.conf import maintenance_settings

MIN_CRON_SECRET_LENGTH = 32
METRICS_URL_NAME = "metrics"

W001 = Warning(
    "CRON_SECRET is not set, so the task endpoints answer 503 and external cron cannot run "
    "the tasks.",
    hint="Set CRON_SECRET to at least 32 random characters, e.g. the output of "
    "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`.",
    id="maintenance.W001",
)
W002 = Warning(
    f"CRON_SECRET is shorter than {MIN_CRON_SECRET_LENGTH} characters.",
    hint="Use at least 32 random characters "
    "(`python -c 'import secrets; print(secrets.token_urlsafe(32))'`) and update the cron "
    "callers' Authorization header to match.",
    id="maintenance.W002",
)
W401 = Warning(
    "/metrics is routed but neither METRICS_TOKEN nor CRON_SECRET is set, so it answers 503 "
    "and Prometheus sees the target down.",
    hint="Set METRICS_TOKEN to at least 32 random characters (or rely on CRON_SECRET) and "
    "send it from the scrape config as `authorization: {credentials: ...}`.",
    id="maintenance.W401",
)


@register(Tags.security, deploy=True)
def check_metrics_token_set(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    try:
        routed = resolve("/metrics").url_name == METRICS_URL_NAME
    except Resolver404:
        routed = False
    return [W401] if routed and not configured_secret(METRICS_SECRETS) else []


@register(Tags.security, deploy=True)
def check_cron_secret_set(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    return [] if maintenance_settings.CRON_SECRET else [W001]


@register(Tags.security)
def check_cron_secret_strength(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    secret = maintenance_settings.CRON_SECRET
    return [W002] if secret and len(secret) < MIN_CRON_SECRET_LENGTH else []
