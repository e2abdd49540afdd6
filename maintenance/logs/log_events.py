"""Log events: one stable name per outcome, with key=value fields operators can grep.

Every line reads `<event> key=value key=value ...`; the same fields travel on the record
(`event`, `event_fields`) so `LOG_FORMAT=json` emits them as JSON fields instead of text.
The event names are part of the operator contract (README "Log events"): rename none.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

TASK_STARTED = "maintenance.task.started"
TASK_FINISHED = "maintenance.task.finished"
TASK_SKIPPED = "maintenance.task.skipped"
TASK_FAILED = "maintenance.task.failed"
TASK_PAUSED = "maintenance.task.paused"
TASK_RESUMED = "maintenance.task.resumed"
RUN_RECORD_FAILED = "maintenance.run.record_failed"
LOCK_RENEWAL_FAILED = "maintenance.lock.renewal_failed"
RUNS_PRUNED = "maintenance.runs.pruned"
RUNS_PRUNE_FAILED = "maintenance.runs.prune_failed"
HEARTBEAT_FAILED = "maintenance.heartbeat.failed"
OBSERVER_FAILED = "maintenance.observer.failed"
SCHEDULER_STARTED = "maintenance.scheduler.started"
SCHEDULER_STOPPED = "maintenance.scheduler.stopped"
SCHEDULER_DISABLED = "maintenance.scheduler.disabled"
SCHEDULER_RAN = "maintenance.scheduler.ran"
SCHEDULER_SKIPPED = "maintenance.scheduler.skipped"
SCHEDULER_ERROR = "maintenance.scheduler.error"
SCHEDULER_CRASHED = "maintenance.scheduler.crashed"
EMAIL_SEND_FAILED = "emails.send.failed"
SMTP_CLOSE_FAILED = "emails.smtp.close_failed"
# Delivery feedback from the ESPs' webhooks (emails/tracking.py).
EMAIL_EVENT_SUPPRESSED = "emails.feedback.suppressed"
EMAIL_EVENT_OPTED_OUT = "emails.feedback.opted_out"
EMAIL_EVENT_DUPLICATE = "emails.feedback.duplicate"
EMAIL_WEBHOOK_UNREADABLE = "emails.feedback.unreadable"
UNSUBSCRIBE_FAILED = "emails.unsubscribe.failed"


def log_event(
    logger: logging.Logger, level: int, event: str, *, exc_info: bool = False, **fields: Any
) -> None:
    """Log `event` with `fields`; a mapping field (the task's counts) is flattened in text."""
    if not logger.isEnabledFor(level):
        return
    extra = {"event": event, "event_fields": fields}
    logger.log(level, "%s", render(event, fields), exc_info=exc_info, extra=extra)


def render(event: str, fields: Mapping[str, Any]) -> str:
    parts = [event]
    for key, value in fields.items():
        if isinstance(value, Mapping):
            parts.extend(f"{k}={_text(v)}" for k, v in value.items())
        else:
            parts.append(f"{key}={_text(value)}")
    return " ".join(parts)


def _text(value: Any) -> str:
    """A value that survives `grep` and `awk`: quoted when it has spaces, `-` when absent."""
    if value is None:
        return "-"
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if not text or any(c.isspace() or c in '"=' for c in text):
        return json.dumps(text)
    return text
