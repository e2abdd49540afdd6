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
from django.core.checks import Error, Tags, Warning, register

from . import registry
from .conf import AppSettings, maintenance_settings, task_setting
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
CRON_FIELDS = 5


def setting_errors(settings_objects: list[AppSettings]) -> list[Error]:
    """E001 for every setting whose value its table refuses (apps pass their own)."""
    return [
        Error(
            f"{name} is {value!r}, which is not accepted.",
            hint=f"Set {name} to {accepted}.",
            id=E001,
        )
        for app_settings in settings_objects
        for name, value, accepted in app_settings.problems()
    ]


@register("maintenance")
def check_maintenance_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    return setting_errors([maintenance_settings]) + task_setting_errors()


def task_setting_errors() -> list[Error]:
    """E002 for a task's `<TASK>_CRON` or `<TASK>_INTERVAL_SECONDS` that cannot work."""
    errors = []
    for task in registry.all_tasks():
        prefix = task.name.upper()
        cron = task_setting(task.name, "CRON")
        if cron is not None and len(str(cron).split()) != CRON_FIELDS:
            errors.append(
                Error(
                    f"{prefix}_CRON is {cron!r}, not a cron expression.",
                    hint=f"Set {prefix}_CRON to five fields, e.g. {task.cron!r}.",
                    id=E002,
                )
            )
        seconds = task_setting(task.name, "INTERVAL_SECONDS")
        if seconds is not None and not _positive_number(seconds):
            errors.append(
                Error(
                    f"{prefix}_INTERVAL_SECONDS is {seconds!r}, not a positive number.",
                    hint=f"Set {prefix}_INTERVAL_SECONDS to a number of seconds above 0, "
                    f"e.g. {int(task.interval.total_seconds())}.",
                    id=E002,
                )
            )
    return errors


def _positive_number(value: Any) -> bool:
    try:
        return 0 < float(value) < float("inf")
    except (TypeError, ValueError):
        return False
