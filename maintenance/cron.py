"""What each system crontab entry calls: `manage.py crontab run <hash>` imports this.

django-crontab runs the job inside a bare `except:` that logs the traceback and exits 0,
even for SystemExit, so a failed job would look fine to cron. The runner records the
failed run in the run log regardless; to make it visible to cron too (its mail, syslog,
wrappers that watch the exit status), a failure prints one line to stderr and ends the
process with status 1 through `os._exit`, after flushing output and closing connections.

Cron starts jobs with an almost empty environment: they see the `.env` file, never what
was only exported in the shell that ran `crontab add`. Check W201 says so at that moment.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from django.conf import settings
from django.core.checks import Warning, register
from django.db import connections
from django.utils import timezone

from .models import Trigger
from .runner import RunOutcome, run_task


def run_task_from_cron(name: str) -> None:
    """Run task `name` for cron, print one line, and exit 1 when it failed."""
    outcome = run_task(name, Trigger.CRON)
    if not outcome.failed:
        print(summary(outcome), flush=True)
        return
    print(summary(outcome), file=sys.stderr, flush=True)
    exit_now(1)


def summary(outcome: RunOutcome) -> str:
    stamp = timezone.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    detail = outcome.error if outcome.failed else outcome.message
    return f"{stamp} cron {outcome.task} {outcome.status} run={outcome.run_id}: {detail}"


def exit_now(status: int) -> None:
    logging.shutdown()
    connections.close_all()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


# Variables that change what a cron job does, or whether it finds its entry (the *_CRON).
CRON_VARIABLES = (
    "DATABASE_URL",
    "SECRET_KEY",
    "CRON_SECRET",
    "CLOUD_DEPLOY",
    "ENABLE_WELCOME_EMAILS",
    "EMAIL_URL",
    "DEFAULT_FROM_EMAIL",
    "APP_URL",
    "PKCE_STATE_TTL_SECONDS",
    "OAUTH_SESSION_TTL_SECONDS",
    "PKCE_CLEANUP_CRON",
    "SCHEDULED_EMAILS_CRON",
    "OAUTH_SESSION_CLEANUP_CRON",
    "MAINTENANCE_DELETE_BATCH_SIZE",
)
W201 = "maintenance.W201"


def env_file_values(path: str) -> dict[str, str]:
    """The `KEY=value` lines of an env file (enough to compare, not a full parser)."""
    if not path or not Path(path).is_file():
        return {}
    values = {}
    for line in Path(path).read_text().splitlines():
        key, sep, value = line.strip().removeprefix("export ").partition("=")
        if sep and key and not key.startswith("#"):
            values[key.strip()] = value.strip().strip("'\"")
    return values


def shell_only_variables(environ: Mapping[str, str], env_file: str) -> list[str]:
    """Variables set here that a cron job will not see, or will see with another value."""
    in_file = env_file_values(env_file)
    return [
        name for name in CRON_VARIABLES if name in environ and in_file.get(name) != environ[name]
    ]


@register("crontab")
def check_cron_environment(app_configs=None, **kwargs) -> list[Warning]:
    """Only `manage.py crontab ...`: other commands do not install entries."""
    if sys.argv[1:2] != ["crontab"]:
        return []
    names = shell_only_variables(os.environ, settings.ENV_FILE)
    if not names:
        return []
    return [
        Warning(
            f"{', '.join(names)} set in this shell but not (or differently) in "
            f"{settings.ENV_FILE or 'the .env file'}: the crontab entries will not see "
            "these values.",
            hint="Put them in the project's .env file (cron reads it), or point the "
            "entries at another file with CRONTAB_COMMAND_PREFIX=PLUGGEDIN_ENV_FILE=/path.",
            id=W201,
        )
    ]
