"""System checks for a maintenance deployment (`manage.py check`, `check --deploy`).

Each check is a module-level constant named by its id, with a message that states the
fact and a hint that gives the fix. Registered from `MaintenanceConfig.ready()`; the
emails app keeps its own in `emails/checks.py`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register, run_checks
from django.core.exceptions import ImproperlyConfigured

from . import registry
from .conf import LARGEST_NUMBER, AppSettings, maintenance_settings, task_setting, web_url
from .envfile import shell_only_variables

MIN_CRON_SECRET_LENGTH = 32

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
W005 = Warning(
    "The installed crontab entries for this project are out of date with CRONJOBS, so "
    "cron runs old schedules or fails with 'No job with hash ... found'.",
    hint="Run `python manage.py crontab add --verbosity 0` as the user whose crontab runs "
    "the tasks (it replaces this project's entries; at the default verbosity django-crontab "
    "stops with 'No job with hash' while listing the stale ones).",
    id="maintenance.W005",
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
    from django.urls import Resolver404, resolve

    from .auth import METRICS_SECRETS, configured_secret
    from .views import metrics

    try:
        routed = resolve("/metrics").func is metrics
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


@register("maintenance")
def check_crontab_in_sync(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """Only when CRONJOBS is defined and some entries for this project are installed: an
    installation that triggers tasks by other means has nothing to keep in sync."""
    if not settings.CRONJOBS:
        return []
    from .crontab_sync import crontab_drift

    drift = crontab_drift()
    return [W005] if drift and drift.installed and not drift.in_sync else []


W201 = "maintenance.W201"


@register("crontab")
def check_cron_environment(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """Only `manage.py crontab ...`: other commands do not install entries."""
    if sys.argv[1:2] != ["crontab"]:
        return []
    env_file = maintenance_settings.ENV_FILE
    names = shell_only_variables(os.environ, env_file)
    if not names:
        return []
    return [
        Warning(
            f"{', '.join(names)} set in this shell but not (or differently) in "
            f"{env_file or 'the .env file'}: the crontab entries will not see these values.",
            hint="Put them in the project's .env file (cron reads it), or point the "
            "entries at another file with CRONTAB_COMMAND_PREFIX=PLUGGEDIN_ENV_FILE=/path.",
            id=W201,
        )
    ]


W202 = "maintenance.W202"


@register("crontab")
def check_cron_log_folder(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """Cron's shell runs nothing when it cannot open the log its entry appends to, so
    `manage.py crontab add` makes the folder first."""
    if sys.argv[1:2] != ["crontab"]:
        return []
    folder = Path(settings.CRON_LOG_FILE).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return [
            Warning(
                f"Cannot create {folder} for CRON_LOG_FILE ({exc.strerror}): cron will run "
                "none of the entries.",
                hint="Create the folder for the user whose crontab runs the tasks, or set "
                "CRON_LOG_FILE to a writable path.",
                id=W202,
            )
        ]
    return []


W301 = "maintenance.W301"


@register("maintenance", deploy=True)
def check_long_pauses(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """A pause nobody lifted: the task's work piles up while every trigger skips it.

    Says nothing when the pauses cannot be read (no database yet, not migrated, database
    access refused in this process): a check must never break `manage.py check`."""
    from .pauses import describe, is_long, pauses_in_force

    try:
        paused = pauses_in_force()
    except Exception:
        return []
    return [
        Warning(
            f"{name} has been {describe(pause)}; that is more than a day, and every trigger "
            "skips it meanwhile.",
            hint=f"Resume it with `python manage.py maintenance_resume {name}` once the cause "
            "is fixed, or pause it again with --for so the pause lapses by itself.",
            id=W301,
        )
        for name, pause in sorted(paused.items())
        if is_long(pause)
    ]


E001 = "maintenance.E001"
E002 = "maintenance.E002"
# The checks that validate settings values: cheap (no database, no crontab), run by
# `manage.py check` with the others and, through `configuration_error()`, by every entry
# point before anything runs.
SETTINGS = "settings"
MIN_INTERVAL_SECONDS = 1
# (lowest, highest, names) of the five cron fields: minute, hour, day of month, month,
# day of week (0 and 7 are Sunday).
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
CRON_FIELDS = ((0, 59, ()), (0, 23, ()), (1, 31, ()), (1, 12, MONTHS), (0, 7, DAYS))


def setting_errors(settings_objects: list[AppSettings]) -> list[Error]:
    """E001 for every setting whose value its table refuses (apps pass their own)."""
    return [
        Error(
            f"{name} is {value}, which is not accepted."
            if value is not None
            else f"{name} is set to a value that is not accepted (not shown: a secret).",
            hint=f"Set {name} to {accepted}.",
            id=E001,
        )
        for app_settings in settings_objects
        for name, value, accepted in app_settings.problems()
    ]


@register("maintenance", SETTINGS)
def check_maintenance_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    return setting_errors([maintenance_settings]) + task_setting_errors()


def task_setting_errors() -> list[Error]:
    """E002 for a task's `<TASK>_CRON`, `<TASK>_INTERVAL_SECONDS` or `<TASK>_HEARTBEAT_URL`
    that cannot work."""
    errors = []
    for task in registry.all_tasks():
        prefix = task.name.upper()
        cron = task_setting(task.name, "CRON")
        if cron is not None and not is_cron_expression(cron):
            errors.append(
                Error(
                    f"{prefix}_CRON is {cron!r}, not a cron expression.",
                    hint=f"Set {prefix}_CRON to five fields (minute 0-59, hour 0-23, day "
                    f"1-31, month 1-12, weekday 0-7), e.g. {task.cron!r}.",
                    id=E002,
                )
            )
        seconds = task_setting(task.name, "INTERVAL_SECONDS")
        if seconds is not None and not _interval(seconds):
            errors.append(
                Error(
                    f"{prefix}_INTERVAL_SECONDS is {seconds!r}, not a number of seconds of "
                    f"at least {MIN_INTERVAL_SECONDS}.",
                    hint=f"Set {prefix}_INTERVAL_SECONDS to a number of seconds from "
                    f"{MIN_INTERVAL_SECONDS} to {LARGEST_NUMBER}, e.g. "
                    f"{int(task.interval.total_seconds())}.",
                    id=E002,
                )
            )
        url = task_setting(task.name, "HEARTBEAT_URL")
        if url is not None and web_url(url):
            errors.append(  # the URL itself is a secret of the monitor: never repeated
                Error(
                    f"{prefix}_HEARTBEAT_URL is set but is not a URL a ping can reach.",
                    hint=f"Set {prefix}_HEARTBEAT_URL to {web_url(url)}, or unset it.",
                    id=E002,
                )
            )
    return errors


def _interval(value: Any) -> bool:
    try:
        return MIN_INTERVAL_SECONDS <= float(value) <= LARGEST_NUMBER
    except (TypeError, ValueError):
        return False


def is_cron_expression(expression: Any) -> bool:
    """Five fields the `crontab` binary and every exported schedule accept: `*`, numbers
    within each field's range, ranges `a-b`, steps `/n`, lists, month and day names."""
    fields = str(expression).split()
    return len(fields) == len(CRON_FIELDS) and all(
        _cron_field(field, *limits) for field, limits in zip(fields, CRON_FIELDS, strict=True)
    )


def _cron_field(field: str, lowest: int, highest: int, names: tuple[str, ...]) -> bool:
    def value(text: str) -> int | None:
        if text.lower() in names:
            return names.index(text.lower()) + (lowest if names is MONTHS else 0)
        number = int(text) if text.isascii() and text.isdigit() else None
        return number if number is not None and lowest <= number <= highest else None

    for item in field.split(","):
        span, slash, step = item.partition("/")
        if slash and not (step.isascii() and step.isdigit() and 0 < int(step) <= highest):
            return False
        if span == "*":
            continue
        first, dash, last = span.partition("-")
        start, end = value(first), value(last) if dash else None
        if start is None or (dash and (end is None or end < start)):
            return False
    return True


def configuration_error() -> str | None:
    """Every refused setting in one line (name, what it accepts, check id), or None.

    Task commands skip Django's system checks so that cron output stays clean; every entry
    point calls this instead before it runs anything: `manage.py` for each command, the
    runner for each run (HTTP views, the scheduler thread, the admin), the scheduler before
    it starts."""
    errors = [
        error
        for error in run_checks(tags=[SETTINGS])
        if error.is_serious() and not error.is_silenced()
    ]
    if not errors:
        return None
    return " ".join(f"{error.msg} {error.hint} ({error.id})" for error in errors)


def refuse_bad_settings() -> None:
    """Raise ImproperlyConfigured with `configuration_error()`, if any."""
    problem = configuration_error()
    if problem:
        raise ImproperlyConfigured(problem)
