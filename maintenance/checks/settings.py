"""Settings values that cannot work: cheap checks (no database, no crontab) that
`manage.py check` runs with the others and that every entry point runs, through
`configuration_error()`, before it runs anything."""

from __future__ import annotations

from typing import Any

from django.core.checks import Error, register, run_checks
from django.core.exceptions import ImproperlyConfigured

from maintenance import registry
from maintenance.conf import (
    AppSettings,
    maintenance_settings,
    task_seconds,
    task_setting,
    web_url,
)
from maintenance.schedules import cron

E001 = "maintenance.E001"
E002 = "maintenance.E002"
SETTINGS = "settings"  # the tag of these checks, which the emails and oauth apps reuse


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
    """E002 for a task's `<TASK>_CRON`, `<TASK>_STARTING_DEADLINE_SECONDS`,
    `<TASK>_MAX_RUNTIME_SECONDS` or `<TASK>_HEARTBEAT_URL` that cannot work, and for the
    retired `<TASK>_INTERVAL_SECONDS`."""
    errors = []
    for task in registry.all_tasks():
        default_runtime = int(task.max_runtime.total_seconds())
        errors += _cron_errors(task) + _interval_errors(task) + _heartbeat_errors(task)
        errors += _seconds_errors(
            task, "STARTING_DEADLINE_SECONDS", "or unset it (until the next tick)"
        )
        errors += _seconds_errors(task, "MAX_RUNTIME_SECONDS", f"e.g. {default_runtime}")
    return errors


def _cron_errors(task: registry.Task) -> list[Error]:
    expression = task_setting(task.name, "CRON")
    if expression is None:
        return []
    try:
        cron.parse(expression)
    except cron.CronError as exc:
        prefix = task.name.upper()
        return [
            Error(
                f"{prefix}_CRON is {expression!r}: {exc}.",
                hint=f"Set {prefix}_CRON to five fields (minute 0-59, hour 0-23, day 1-31, "
                f"month 1-12, weekday 0-7) that fire, e.g. {task.cron!r}.",
                id=E002,
            )
        ]
    return []


def _interval_errors(task: registry.Task) -> list[Error]:
    """`<TASK>_INTERVAL_SECONDS` is retired: the schedule (`<TASK>_CRON`) is the clock."""
    if task_setting(task.name, "INTERVAL_SECONDS") is None:
        return []
    prefix = task.name.upper()
    return [
        Error(
            f"{prefix}_INTERVAL_SECONDS is retired: set {prefix}_CRON instead.",
            hint=f"Unset {prefix}_INTERVAL_SECONDS and set {prefix}_CRON, e.g. {task.cron!r}.",
            id=E002,
        )
    ]


def _seconds_errors(task: registry.Task, suffix: str, otherwise: str) -> list[Error]:
    """E002 for a duration the one parser every reader uses (`task_seconds`) refuses."""
    try:
        task_seconds(task.name, suffix)
    except ValueError as accepted:
        name = f"{task.name.upper()}_{suffix}"
        value = task_setting(task.name, suffix)
        return [
            Error(
                f"{name} is {value!r}, not {accepted}.",
                hint=f"Set {name} to {accepted}, {otherwise}.",
                id=E002,
            )
        ]
    return []


def _heartbeat_errors(task: registry.Task) -> list[Error]:
    url = task_setting(task.name, "HEARTBEAT_URL")
    if url is None or not web_url(url):
        return []
    prefix = task.name.upper()
    return [  # the URL itself is a secret of the monitor: never repeated
        Error(
            f"{prefix}_HEARTBEAT_URL is set but is not a URL a ping can reach.",
            hint=f"Set {prefix}_HEARTBEAT_URL to {web_url(url)}, or unset it.",
            id=E002,
        )
    ]


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
