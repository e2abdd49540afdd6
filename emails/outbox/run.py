"""A run of the `scheduled_emails` task: batches, each claimed then sent, until done.

The run sends over `SCHEDULED_EMAILS_CONNECTIONS` lanes at once (`lanes.py`). Each lane
claims batches (see `claims.py`) and sends them message by message over its own
connection with a `BatchSender` (`batch.py`), each outcome recorded as soon as it is
known; the order of a batch is drawn in `emails/outbox/__init__.py`. When the SMTP
server cannot be reached, the claimed rows are backed off (the attempt counts) and the
run stops instead of hammering a server that is down; nothing is marked sent, and the run
fails (`TaskFailed`) with the counts of what did go out. A reply refusing one message is
that message's failure, never the run's. A run that reaches its deadline
(`<TASK>_MAX_RUNTIME_SECONDS`) hands the unsent rest of its batch back, as at the end of
its time budget, and fails as timed out with the same counts (at an HTTP run's budget,
`MAINTENANCE_HTTP_BUDGET_SECONDS`, the runner counts that stop a success). A run its
process ends mid-run hands every lane's batch back at once (`lanes.py`); one whose
deadline is cancelled (its scheduler stopping, its hold on the task lost) stops every lane
between messages and hands the rest back as at its deadline.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from emails.conf import email_settings
from emails.models import ScheduledEmail
from emails.outbox.batch import SmtpUnavailable
from emails.outbox.lanes import Lanes
from maintenance.outcome import TaskFailed
from maintenance.runs.clock import database_now
from maintenance.runs.deadlines import current


def process_scheduled_emails(
    *, limit: int | None = None, max_seconds: float | None = None, now: datetime | None = None
) -> dict[str, int]:
    """Send due onboarding emails: at most `limit`, for at most about `max_seconds`.

    Returns `sent`, `failed` (attempts that failed this run, retried later or given up),
    `cancelled` (opted out, deactivated, too late) and `remaining` (due or in flight after
    the run), summed over the lanes. `now` pins the clock, for tests. Raises `TaskFailed`,
    carrying the same counts, when the SMTP server cannot be reached or the run's deadline
    has passed.
    """
    limit = limit or email_settings.SCHEDULED_EMAILS_LIMIT
    budget = max_seconds or email_settings.SCHEDULED_EMAILS_MAX_SECONDS
    run_deadline = current()
    if run_deadline is not None:  # the run's deadline, when sooner than the time budget
        budget = min(budget, run_deadline.remaining())
    deadline = time.monotonic() + budget
    cancelled = cancel_unsendable(now or database_now())
    lanes = Lanes(limit=limit, deadline=deadline, now=now, run_deadline=run_deadline)
    counts = lanes.send()
    for failure in lanes.failures:  # a database outage, a signal: no counts to report
        if not isinstance(failure, SmtpUnavailable):
            raise failure
    counts.cancelled += cancelled
    result = {**counts.as_dict(), "remaining": remaining(now)}
    if lanes.failures:
        raise TaskFailed(str(lanes.failures[0]), result) from lanes.failures[0]
    if run_deadline is not None and run_deadline.passed():
        raise run_deadline.failure(result)
    return result


def cancel_unsendable(now: datetime) -> int:
    """Cancel pending emails that must never go out: opted-out, deactivated or address-less
    users, and emails overdue by more than the allowed lateness (a stale welcome)."""
    cutoff = now - timedelta(hours=email_settings.SCHEDULED_EMAILS_MAX_LATENESS_HOURS)
    unreachable = ScheduledEmail.objects.of_unreachable_users().cancel("user unreachable")
    stale = ScheduledEmail.objects.stale(cutoff).cancel(
        f"overdue by more than {email_settings.SCHEDULED_EMAILS_MAX_LATENESS_HOURS} h"
    )
    return unreachable + stale


def remaining(now: datetime | None) -> int:
    return ScheduledEmail.objects.due(now).count() + ScheduledEmail.objects.in_flight().count()
