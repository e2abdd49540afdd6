"""The system crontab: entries in step with the declarations, and what cron jobs will see.

W201 and W202 speak only under `manage.py crontab ...`: other commands install nothing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import Warning, register

from maintenance.conf import maintenance_settings
from maintenance.envfile import shell_only_variables

W005 = Warning(
    "The installed crontab entries for this project are out of date with CRONJOBS, so "
    "cron runs old schedules or fails with 'No job with hash ... found'.",
    hint="Run `python manage.py crontab add --verbosity 0` as the user whose crontab runs "
    "the tasks (it replaces this project's entries; at the default verbosity django-crontab "
    "stops with 'No job with hash' while listing the stale ones).",
    id="maintenance.W005",
)
W201 = "maintenance.W201"
W202 = "maintenance.W202"


def installing() -> bool:
    return sys.argv[1:2] == ["crontab"]


@register("maintenance")
def check_crontab_in_sync(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """Only when CRONJOBS is defined and some entries for this project are installed: an
    installation that triggers tasks by other means has nothing to keep in sync."""
    if not settings.CRONJOBS:
        return []
    from maintenance.triggers.crontab_sync import crontab_drift  # imports django-crontab

    drift = crontab_drift()
    return [W005] if drift and drift.installed and not drift.in_sync else []


@register("crontab")
def check_cron_environment(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    if not installing():
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


@register("crontab")
def check_cron_log_folder(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """Cron's shell runs nothing when it cannot open the log its entry appends to, so
    `manage.py crontab add` makes the folder first."""
    if not installing():
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
