"""What a run comes to, at the bottom of the import graph: `RunOutcome`, which every front
door turns into its answer, and `TaskFailed`, which a task body raises to fail with counts.

Task bodies (`emails/`, `oauth/`), observers and front doors import these from here, never
from the runner, so nothing points back up at `runs/`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils import timezone

from maintenance.isotime import iso_utc
from maintenance.models import RunStatus


class TaskFailed(Exception):
    """Raised by a task function that did part of its work and then could not go on (an
    SMTP server that cannot be reached): the run is `failed` and still records `result`,
    the counts of what was done."""

    def __init__(self, error: str, result: Mapping[str, Any]) -> None:
        super().__init__(error)
        self.result = dict(result)


@dataclass
class RunOutcome:
    task: str
    trigger: str
    status: str
    message: str = ""
    result: Mapping[str, Any] = field(default_factory=dict)
    error: str = ""
    run_id: int | None = None
    finished_at: datetime = field(default_factory=timezone.now)
    duration_ms: int = 0
    exception: BaseException | None = None
    traceback: str = ""
    gated: bool = False
    pause: Mapping[str, Any] | None = None  # the pause fields when an operator paused the task
    tick: datetime | None = None  # the tick a scheduled skip found already served

    @property
    def paused(self) -> bool:
        return self.pause is not None

    @property
    def failed(self) -> bool:
        return self.status == RunStatus.FAILED

    @property
    def skipped(self) -> bool:
        return self.status == RunStatus.SKIPPED

    @property
    def success(self) -> bool:
        """Skipping because another runner holds the task, or because an operator paused it,
        is success (cron must not page for a deliberate pause); a closed gate is not."""
        return not self.failed and not self.gated

    @property
    def http_status(self) -> int:
        return 500 if self.failed else 200

    def body(self, *, debug: bool = False) -> dict[str, Any]:
        """The JSON body shared by the HTTP views and `--json` on the commands."""
        common = {
            "task": self.task,
            "timestamp": iso_utc(self.finished_at),
            "durationMs": self.duration_ms,
            "runId": self.run_id,
        }
        if self.failed:
            body = {"success": False, "error": self.error, **common, **self.result}
            if debug and self.traceback:
                body["traceback"] = self.traceback
            return body
        body = {"success": self.success, "message": self.message, **common, **self.result}
        if self.skipped:
            body["skipped"] = True
        if self.tick is not None:
            body["tick"] = iso_utc(self.tick)
        if self.pause is not None:
            body.update(self.pause)
        return body
