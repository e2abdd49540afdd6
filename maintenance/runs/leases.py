"""A run's lease on its own row: how long it holds its task unless renewed.

A run's `running` row holds its task (`claims.py`); its `lease_expires_at`, on the
database's clock, says until when. While the run lives a thread renews it every third of
`MAINTENANCE_LOCK_LEASE_SECONDS`, never past the run's deadline plus `DEADLINE_GRACE`
(time to record a timed-out end), so a run stuck beyond its deadline lets the next
trigger in. Each renewal is one `UPDATE` of its own, so nothing is held on a pooled
connection between statements. A runner that dies stops renewing: its task is free once
the lease runs out, or at once for a trigger on the same host, which sees its pid gone.

A run whose renewal finds its row no longer `running` (a runner stalled past its lease,
and another trigger closed its row and took the task) has lost its hold: the renewal
cancels the run's deadline (`deadlines.py`) with `lost_hold`, so the task stops at its
next check between batches or messages instead of running beside the new holder.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import timedelta

from django.db import DatabaseError, connection
from django.db.models.functions import Now

from maintenance.conf import maintenance_settings
from maintenance.logs.log_events import LOCK_RENEWAL_FAILED, log_event
from maintenance.models import RunStatus, TaskRun
from maintenance.runs.deadlines import Deadline
from maintenance.runs.host import host_name

logger = logging.getLogger(__name__)

# How long past its deadline a run keeps its lease: time to record its timed-out end.
DEADLINE_GRACE = timedelta(seconds=30)
TOOK_THE_TASK = (RunStatus.RUNNING, RunStatus.SUCCEEDED, RunStatus.FAILED)  # not skips, misses
LOST_HOLD = "Lost its hold on the task: its lease ran out and {closer} closed it"


def lease_seconds(limit: float | None = None) -> float:
    """The lease a claim or a renewal takes: MAINTENANCE_LOCK_LEASE_SECONDS, or less when
    only `limit` seconds are left before the deadline plus its grace."""
    lease = float(maintenance_settings.MAINTENANCE_LOCK_LEASE_SECONDS)
    return lease if limit is None else min(lease, limit)


def hold_limit(deadline_seconds: float) -> float:
    """How long after its claim a run may hold its task at most: deadline plus grace."""
    return deadline_seconds + DEADLINE_GRACE.total_seconds()


def lost_hold(run_id: int, task: str) -> str:
    """The error of run `run_id`, which lost its hold on `task`: its row was closed by
    the next claimant, the first run of the task after it that took the task."""
    taker = (
        TaskRun.objects.for_task(task)
        .filter(pk__gt=run_id, status__in=TOOK_THE_TASK)
        .order_by("pk")
        .values_list("pk", "trigger", "host", "pid")
        .first()
    )
    if taker is None:
        return LOST_HOLD.format(closer="another runner")
    pk, trigger, host, pid = taker
    return LOST_HOLD.format(closer=f"run {pk} ({trigger}, host {host or '?'}, pid {pid or '?'})")


def process_alive(pid: int) -> bool:
    """Whether process `pid` on this host still exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def gone_here(host: str, pid: int | None) -> bool:
    """Whether a runner on this host is known dead (its pid gone). One on another host
    cannot be checked from here: its lease decides."""
    return host == host_name() and pid is not None and not process_alive(pid)


class Renewal:
    """Renews run `run_id`'s lease every third of the lease until stopped, on its own
    connection, never past `limit` seconds after `claimed` (a `time.monotonic()` value).
    When the row is no longer the run's own, it cancels the deadline given to `stopping`."""

    def __init__(self, run_id: int, task: str, claimed: float, limit: float) -> None:
        self.run_id, self.task, self.claimed, self.limit = run_id, task, claimed, limit
        self.deadline: Deadline | None = None
        self.every = max(lease_seconds() / 3, 0.1)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-renewal-{task}", daemon=True)

    def stopping(self, deadline: Deadline) -> Renewal:
        """This renewal, set to cancel `deadline` should the run lose its hold."""
        self.deadline = deadline
        return self

    def __enter__(self) -> Renewal:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopped.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            while not self._stopped.wait(self.every):
                left = self.limit - (time.monotonic() - self.claimed)
                if left <= 0:
                    return  # past the deadline and its grace: the lease runs out
                if not self._renew(lease_seconds(left)):
                    return  # another run holds the task now: nothing left to renew
        finally:
            connection.close()  # this thread's own connection

    def _renew(self, seconds: float) -> bool:
        """One renewal; False when the run lost its hold (its deadline is then cancelled)."""
        try:
            held = TaskRun.objects.filter(pk=self.run_id, status=RunStatus.RUNNING)
            if held.update(lease_expires_at=Now() + timedelta(seconds=seconds)):
                return True
            reason = lost_hold(self.run_id, self.task)
        except DatabaseError as exc:  # the next renewal reconnects and tries again
            connection.close()
            log_event(
                logger,
                logging.WARNING,
                LOCK_RENEWAL_FAILED,
                task=self.task,
                reason=str(exc).strip(),
            )
            return True
        log_event(logger, logging.WARNING, LOCK_RENEWAL_FAILED, task=self.task, reason=reason)
        if self.deadline is not None:
            self.deadline.cancel(reason)
        return False
