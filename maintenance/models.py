"""The run log (`maintenance_task_runs`): also the one coordination record, since a run
claims its tick and holds its task through its own row (`maintenance/runs/claims.py`);
the run tallies and the operators' pauses."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import models
from django.db.models.functions import Now
from django.utils import timezone

from maintenance.isotime import utc_minute
from maintenance.logs.control_chars import escape_controls


class Trigger(models.TextChoices):
    COMMAND = "command", "Management command"
    HTTP = "http", "HTTP endpoint"
    CRON = "cron", "System crontab"
    SCHEDULER = "scheduler", "In-process scheduler"
    ADMIN = "admin", "Django admin"


class RunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"
    MISSED = "missed", "Missed"  # a tick no run served, written by the next run that took the task


# A run row whose lease ran out, on the database's clock (or that never had one): its
# runner is gone, and the next claimant of its task closes it.
LEASE_RAN_OUT = models.Q(lease_expires_at__isnull=True) | models.Q(lease_expires_at__lt=Now())


class TaskRunQuerySet(models.QuerySet):
    def for_task(self, task: str) -> TaskRunQuerySet:
        return self.filter(task=task)

    def succeeded(self) -> TaskRunQuerySet:
        return self.filter(status=RunStatus.SUCCEEDED)

    def last_run(self, task: str) -> TaskRun | None:
        return self.for_task(task).order_by("-started_at", "-id").first()

    def last_success(self, task: str) -> TaskRun | None:
        return self.for_task(task).succeeded().order_by("-started_at", "-id").first()

    def lapsed(self) -> TaskRunQuerySet:
        """`running` rows whose lease ran out on the database's clock: runs whose runner
        died, until the next claimant of their task closes them."""
        return self.filter(LEASE_RAN_OUT, status=RunStatus.RUNNING)


class TaskRun(models.Model):
    task = models.CharField(max_length=64)
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.RUNNING)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")
    host = models.CharField(max_length=255, blank=True, default="")
    pid = models.PositiveIntegerField(null=True, blank=True)
    # The schedule's tick this run aims at (scheduled triggers); null for manual runs.
    tick = models.DateTimeField(null=True, blank=True)
    late_ms = models.BigIntegerField(null=True, blank=True)  # started_at minus tick
    # Added to `RunTally` (retention folds finished runs before pruning); only counted
    # rows are ever pruned, so `runs_total` never loses a run.
    counted = models.BooleanField(default=False)
    # While `running`: until when the run holds its task, on the database's clock. Renewed
    # while the run lives; a row whose lease ran out was left by a runner that is gone.
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    objects = TaskRunQuerySet.as_manager()

    class Meta:
        db_table = "maintenance_task_runs"
        ordering = ["-started_at", "-id"]
        # Running a task from the admin (Run now, the changelist actions) is more than
        # viewing its log: its own permission, granted like any other (a group).
        permissions = [("run_task", "Can run a maintenance task now from the admin")]
        indexes = [
            models.Index(
                fields=["task", "status", "-started_at"], name="task_runs_task_status_idx"
            ),
            models.Index(fields=["started_at"], name="task_runs_started_idx"),
            models.Index(fields=["task", "-tick"], name="task_runs_task_tick_idx"),
            # The few rows that decide a tick among the many skips of a fleet's triggers.
            models.Index(
                fields=["task", "-tick"],
                condition=models.Q(status__in=["succeeded", "failed", "running", "missed"]),
                name="task_runs_deciding_idx",
            ),
            models.Index(
                fields=["status"], condition=models.Q(counted=False), name="task_runs_uncounted_idx"
            ),
        ]
        constraints = [
            # At most one run serves a tick: the database, not timing, settles the race
            # between triggers, processes and hosts. A failed run frees its tick for a retry.
            models.UniqueConstraint(
                fields=["task", "tick"],
                condition=models.Q(status__in=["running", "succeeded"], tick__isnull=False),
                name="task_runs_one_per_tick",
            ),
            # Single flight: one run of a task at a time, on one host or many.
            models.UniqueConstraint(
                fields=["task"],
                condition=models.Q(status="running"),
                name="task_runs_one_running",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.task} #{self.pk} ({self.status})"


class RunTally(models.Model):
    """Finished runs counted out of the run log, per task, trigger and status.

    Runs flagged `TaskRun.counted` are counted here, the others in the log itself;
    retention flags finished runs and adds them to these counts in one transaction, and
    deletes only flagged rows. So `pluggedin_maintenance_runs_total` (tallies plus the
    unflagged finished runs) never goes backwards, and a scrape counts only the few runs
    since the last prune, whatever the log's size.
    At most one row per (task, trigger, status): a few dozen rows.
    """

    task = models.CharField(max_length=64)
    trigger = models.CharField(max_length=16)
    status = models.CharField(max_length=16)
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        db_table = "maintenance_run_tallies"
        constraints = [
            models.UniqueConstraint(fields=["task", "trigger", "status"], name="run_tally_once")
        ]

    def __str__(self) -> str:
        return f"{self.task} {self.trigger} {self.status}: {self.count} counted out of the log"


# A pause this old is flagged by status and `check --deploy`: an incident's pause that
# nobody lifted leaves the task's work piling up unseen.
LONG_PAUSE = timedelta(days=1)


class TaskPauseQuerySet(models.QuerySet):
    def in_force(self, now: datetime | None = None) -> TaskPauseQuerySet:
        """Pauses that hold now (the database's clock unless `now` is given): open-ended,
        or not yet at their `paused_until`."""
        now = now or Now()
        return self.filter(models.Q(paused_until__isnull=True) | models.Q(paused_until__gt=now))


class TaskPause(models.Model):
    """An operator's pause of one task, read by every trigger on every host before it runs
    the task. One row per task; resuming deletes it, and a pause with `paused_until` lapses
    by itself when that time passes (the row stays until the task is paused or resumed)."""

    task = models.CharField(max_length=64, primary_key=True)
    reason = models.TextField()
    paused_by = models.CharField(max_length=150)
    paused_at = models.DateTimeField(default=timezone.now)
    paused_until = models.DateTimeField(null=True, blank=True)

    objects = TaskPauseQuerySet.as_manager()

    class Meta:
        db_table = "maintenance_task_pauses"

    def __str__(self) -> str:
        return f"{self.task} paused by {self.paused_by}"

    def in_force(self, now: datetime | None = None) -> bool:
        return self.paused_until is None or self.paused_until > (now or timezone.now())

    def is_long(self, now: datetime | None = None) -> bool:
        """True when the pause has held for more than LONG_PAUSE."""
        return (now or timezone.now()) - self.paused_at > LONG_PAUSE

    def describe(self) -> str:
        """`paused by cli:ann since 2026-11-25 18:40 UTC until 2026-11-25 20:40 UTC: ESP outage`."""
        until = f"until {utc_minute(self.paused_until)}" if self.paused_until else "until resumed"
        since = utc_minute(self.paused_at)
        return escape_controls(f"paused by {self.paused_by} since {since} {until}: {self.reason}")
