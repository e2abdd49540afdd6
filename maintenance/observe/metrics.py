"""`GET /metrics`: every task's runs, health and backlog in the Prometheus text format.

A custom `prometheus_client` collector reads the figures from the database on each scrape
(the run log, its pruned tallies and the backlog counts), never from process memory, so
every gunicorn worker and every host answers the same, and a scrape balanced across them
never sees a counter jump or go backwards. Families, each labelled by `task`:

- `pluggedin_maintenance_task_info` (gauge 1; `schedule`, `interval_seconds`: the
  schedule's typical gap between ticks)
- `pluggedin_maintenance_last_success_timestamp_seconds`,
  `pluggedin_maintenance_last_failure_timestamp_seconds` (the run's `finished_at`; no
  sample for a task that never succeeded / never failed)
- `pluggedin_maintenance_last_run_duration_seconds` (the latest run that took the task)
- `pluggedin_maintenance_runs_total` (counter; `trigger`, `status`): finished runs, skips
  included; runs counted out of the log stay counted through `RunTally` (`retention.py`)
- `pluggedin_maintenance_missed_ticks_total` (counter): ticks no run served, the runs with
  status `missed` (a catch-up run past its 100 rows adds the rest to the tallies), counted
  through the same tallies as `runs_total`, so it never goes down
- `pluggedin_maintenance_last_tick_lateness_seconds` (gauge): how late after its tick the
  latest succeeded run with a tick started (`late_ms`); no sample before the first
- `pluggedin_maintenance_healthy` (1/0, as the status endpoint's `healthy`)
- `pluggedin_maintenance_paused` (1/0, a pause in `maintenance_task_pauses` in force)
- `pluggedin_maintenance_backlog` (gauge; `kind`): each task's declared backlog, bounded
  (`counts.py`)

A scrape is a fixed number of queries whatever the table sizes: one for the latest runs
(indexed), one for the latest ticked successes (indexed), one for the pauses in force, one
for the run counts (a few dozen tallies plus the runs finished since the last prune,
through the partial index on uncounted rows), and the bounded backlog counts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

from django.db.models import Count, Subquery
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from maintenance import registry
from maintenance.models import RunStatus, RunTally, TaskRun, Trigger
from maintenance.observe.status import current_health, status_now
from maintenance.runs import pauses
from maintenance.runs.retention import uncounted_finished_runs
from maintenance.schedules import cron

PREFIX = "pluggedin_maintenance_"
FINISHED = [RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.SKIPPED]


def finished_run_counts() -> Counter[tuple[str, str, str]]:
    """Finished runs per (task, trigger, status): the tallies, plus the finished runs in the
    log not yet counted into them (those since the last prune; see
    `retention.fold_run_counts`).

    One statement (a UNION), so it sees one snapshot: a fold committing meanwhile moves runs
    from the log to the tallies without the sum counting them twice or not at all."""
    in_log = (
        uncounted_finished_runs()
        .values_list("task", "trigger", "status")
        .annotate(runs=Count("pk"))
    )
    tallied = RunTally.objects.order_by().values_list("task", "trigger", "status", "count")
    counts: Counter[tuple[str, str, str]] = Counter()
    for task, trigger, status, runs in in_log.union(tallied, all=True):
        counts[(task, trigger, status)] += runs
    return counts


def last_outcomes(tasks: list[str]) -> dict[tuple[str, str], TaskRun]:
    """The latest succeeded and the latest failed run of each task, by (task, status), in
    one statement: a scalar subquery per pair, each one step down the run log's
    (task, status, started_at) index."""
    latest = [
        Subquery(
            TaskRun.objects.filter(task=task, status=status)
            .order_by("-started_at", "-id")
            .values("pk")[:1]
        )
        for task in tasks
        for status in (RunStatus.SUCCEEDED, RunStatus.FAILED)
    ]
    if not latest:
        return {}
    return {(run.task, run.status): run for run in TaskRun.objects.filter(pk__in=latest)}


def last_tick_lateness(tasks: list[str]) -> dict[str, int]:
    """`late_ms` of each task's latest succeeded run with a tick, in one statement: a scalar
    subquery per task, one step down the (task, tick) index."""
    latest = [
        Subquery(
            TaskRun.objects.filter(task=task, status=RunStatus.SUCCEEDED, tick__isnull=False)
            .order_by("-tick", "-id")
            .values("pk")[:1]
        )
        for task in tasks
    ]
    if not latest:
        return {}
    rows = TaskRun.objects.filter(pk__in=latest, late_ms__isnull=False).values_list(
        "task", "late_ms"
    )
    return dict(rows)


def interval_seconds(task: registry.Task) -> int:
    """The gap between two ticks of the schedule in force; of the declared schedule when
    E002 refuses `<TASK>_CRON`."""
    try:
        return int(task.every.total_seconds())
    except cron.CronError:
        return int(cron.parse(task.cron).typical_gap().total_seconds())


class MaintenanceCollector:
    """Reads the families above from the database on each `collect()`."""

    def collect(self) -> Iterator[Metric]:
        now = status_now()  # the database's clock, as status reads it
        tasks = registry.all_tasks()
        paused = pauses.pauses_in_force()
        runs = finished_run_counts()
        outcomes = last_outcomes([task.name for task in tasks])
        lateness = last_tick_lateness([task.name for task in tasks])
        family = _Families()
        for task in tasks:
            family.info.add_metric([task.name, task.schedule, str(interval_seconds(task))], 1)
            family.add_tick_figures(task.name, runs, lateness.get(task.name))
            success = outcomes.get((task.name, RunStatus.SUCCEEDED))
            failure = outcomes.get((task.name, RunStatus.FAILED))
            for run, gauge in ((success, family.last_success), (failure, family.last_failure)):
                if run is not None and run.finished_at is not None:
                    gauge.add_metric([task.name], run.finished_at.timestamp())
            latest = max(
                (run for run in (success, failure) if run and run.duration_ms is not None),
                key=lambda run: (run.started_at, run.pk),
                default=None,
            )
            if latest is not None:
                family.duration.add_metric([task.name], latest.duration_ms / 1000)
            pause = paused.get(task.name)
            healthy, _ = current_health(task, now, pause, task.blocked_reason(), success)
            family.healthy.add_metric([task.name], 1 if healthy else 0)
            family.paused.add_metric([task.name], 0 if pause is None else 1)
            for kind, count in task.pending().items():
                family.backlog.add_metric([task.name, kind], count)
            # Every trigger and finished status from zero, so rate() and increase() see a
            # series before its first increment; plus any other value the log holds.
            pairs = {(trigger, status) for trigger in Trigger.values for status in FINISHED}
            pairs |= {(trigger, status) for name, trigger, status in runs if name == task.name}
            for trigger, status in sorted(pairs):
                family.runs.add_metric(
                    [task.name, trigger, status], runs[task.name, trigger, status]
                )
        yield from family.all()


class _Families:
    def __init__(self) -> None:
        self.info = _gauge("task_info", "Declared task (always 1).", "schedule", "interval_seconds")
        self.last_success = _gauge(
            "last_success_timestamp_seconds", "Finish time of the task's last successful run."
        )
        self.last_failure = _gauge(
            "last_failure_timestamp_seconds", "Finish time of the task's last failed run."
        )
        self.duration = _gauge(
            "last_run_duration_seconds", "Duration of the task's last run that took the task."
        )
        self.runs = CounterMetricFamily(
            PREFIX + "runs_total",
            "Finished runs of the task (skips included), by trigger and status.",
            labels=["task", "trigger", "status"],
        )
        self.missed = CounterMetricFamily(
            PREFIX + "missed_ticks_total",
            "Ticks of the task's schedule that no run served.",
            labels=["task"],
        )
        self.lateness = _gauge(
            "last_tick_lateness_seconds",
            "How late after its tick the task's latest succeeded scheduled run started.",
        )
        self.healthy = _gauge(
            "healthy",
            "1 when the latest tick past its deadline was served and the latest run did not"
            " fail (or the task is paused or disabled here), as status says.",
        )
        self.paused = _gauge("paused", "1 while the task is paused.")
        self.backlog = _gauge("backlog", "Work waiting for the task, by kind.", "kind")

    def add_tick_figures(
        self, task: str, runs: Counter[tuple[str, str, str]], late_ms: int | None
    ) -> None:
        """Missed ticks (every trigger's `missed` runs) and the latest ticked lateness."""
        missed = sum(
            n for (name, _, status), n in runs.items() if (name, status) == (task, "missed")
        )
        self.missed.add_metric([task], missed)
        if late_ms is not None:
            self.lateness.add_metric([task], late_ms / 1000)

    def all(self) -> list[Metric]:
        return list(vars(self).values())


def _gauge(name: str, documentation: str, *labels: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, documentation, labels=["task", *labels])


METRICS_REGISTRY = CollectorRegistry(auto_describe=False)
METRICS_REGISTRY.register(MaintenanceCollector())


def exposition(accept: str) -> tuple[bytes, str]:
    """The scrape body in the format the `Accept` header asks for, and its content type."""
    encode: Callable[[CollectorRegistry], bytes]
    encode, content_type = choose_encoder(accept)
    return encode(METRICS_REGISTRY), content_type
