"""What each system crontab entry calls: `manage.py crontab run <hash>` imports this.

django-crontab runs the job inside a bare `except:` that logs the traceback and exits 0,
even for SystemExit, so a failed job would look fine to cron. The runner records the
failed run in the run log regardless; to make it visible to cron too (its mail, syslog,
wrappers that watch the exit status), a failure prints one line to stderr and ends the
process with status 1 through `os._exit`, after flushing output and closing connections.
"""

from __future__ import annotations

import logging
import os
import sys

from django.db import connections
from django.utils import timezone

from maintenance.isotime import iso_utc
from maintenance.models import Trigger
from maintenance.outcome import RunOutcome
from maintenance.runs.runner import run_task


def run_task_from_cron(name: str) -> None:
    """Run task `name` for cron, print one line, and exit 1 when it failed."""
    outcome = run_task(name, Trigger.CRON)
    if not outcome.failed:
        print(summary(outcome), flush=True)
        return
    print(summary(outcome), file=sys.stderr, flush=True)
    exit_now(1)


def summary(outcome: RunOutcome) -> str:
    stamp = iso_utc(timezone.now(), "seconds")
    detail = outcome.error if outcome.failed else outcome.message
    return f"{stamp} cron {outcome.task} {outcome.status} run={outcome.run_id}: {detail}"


def exit_now(status: int) -> None:
    logging.shutdown()
    connections.close_all()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
