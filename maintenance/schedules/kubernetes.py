"""Kubernetes: one `batch/v1` CronJob per task, in one multi-document YAML stream.

The cluster schedules and the run's hold on its row keeps it single-flight, so no replica
needs a scheduler of its own. Each CronJob runs `python manage.py <command> --trigger cron` in the
app's image with its environment from a Secret and a ConfigMap; `Forbid` skips a tick
while the previous run is still going, a tick started later than half the gap between two
ticks is dropped (the next one is near), a run is stopped after the task's `max_runtime`, and a
failed run is not retried (`backoffLimit: 0`): the next tick is the retry.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from maintenance.registry import Task
from maintenance.schedules.base import (
    HEADER,
    Export,
    ExportFile,
    ExportOptions,
    ScheduleError,
    command_args,
    dashed,
    schedule_of,
)
from maintenance.schedules.base import seconds as max_runtime_seconds

FILE_NAME = "maintenance-cronjobs.yaml"
HISTORY_LIMIT = 3
MIN_STARTING_DEADLINE = 10  # the CronJob controller looks every 10 s
CRONJOB_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,50}[a-z0-9])?")  # a DNS label, 52 at most


def export(tasks: list[Task], options: ExportOptions) -> Export:
    documents = [cronjob(task, options) for task in tasks]
    body = yaml.dump_all(documents, Dumper=ManifestDumper, sort_keys=False, explicit_start=True)
    header = "# " + HEADER.format(format="kubernetes") + "\n"
    return Export([ExportFile(FILE_NAME, header + body)])


class ManifestDumper(yaml.SafeDumper):
    """YAML as `kubectl` users write it: lists indented under their key, no anchors."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)

    def ignore_aliases(self, data: Any) -> bool:
        return True


def cronjob(task: Task, options: ExportOptions) -> dict[str, Any]:
    schedule_of(task)
    name = dashed(task)
    if not CRONJOB_NAME.fullmatch(name):
        raise ScheduleError(
            f"{task.name}: {name!r} is not a CronJob name (lowercase letters, digits and "
            "'-', at most 52 characters); exported nothing"
        )
    labels = {
        "app.kubernetes.io/name": "pluggedin",
        "app.kubernetes.io/component": "maintenance",
        "pluggedin/task": task.name,
    }
    container = {
        "name": name,
        "image": options.image,
        "command": ["python", "manage.py", *command_args(task)],
        "envFrom": [
            {"secretRef": {"name": options.secret}},
            {"configMapRef": {"name": options.config_map}},
        ],
    }
    starting_deadline = max(MIN_STARTING_DEADLINE, int(task.every.total_seconds()) // 2)
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "schedule": task.schedule,
            "timeZone": "Etc/UTC",
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": starting_deadline,
            "successfulJobsHistoryLimit": HISTORY_LIMIT,
            "failedJobsHistoryLimit": HISTORY_LIMIT,
            "jobTemplate": {
                "spec": {
                    "backoffLimit": 0,
                    "activeDeadlineSeconds": max_runtime_seconds(task),
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {"restartPolicy": "Never", "containers": [container]},
                    },
                },
            },
        },
    }
