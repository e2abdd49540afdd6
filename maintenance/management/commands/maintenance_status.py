from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from maintenance.logs.control_chars import escape_controls
from maintenance.management.base import json_dumps
from maintenance.observe.status import maintenance_status


class Command(BaseCommand):
    help = (
        "Show each maintenance task's schedule, last run, last success, next due time and "
        "health, plus the backlog. Exits 0 when every task is healthy and 1 when any is not "
        "(or the database is unreachable), so it can gate a deploy or feed a monitor."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--json",
            action="store_true",
            dest="as_json",
            help="Print exactly the body of GET /api/maintenance/status.",
        )

    def handle(self, *args: Any, as_json: bool, **options: Any) -> None:
        try:
            status = maintenance_status()
        except DatabaseError as exc:
            raise CommandError(f"database unavailable: {exc}".strip()) from exc
        if as_json:
            self.stdout.write(json_dumps(status))
        else:
            self.stdout.write(self.render(status))
        if not status["healthy"]:
            stale = [name for name, task in status["tasks"].items() if not task["healthy"]]
            raise CommandError(f"unhealthy: {', '.join(stale)}")

    def render(self, status: dict[str, Any]) -> str:
        lines = [f"Maintenance is {'healthy' if status['healthy'] else 'UNHEALTHY'}"]
        for name, task in status["tasks"].items():
            last = task["lastSuccess"]
            if task["paused"]:
                until = task["pausedUntil"] or "resumed"
                state = f"PAUSED by {task['pausedBy']} until {until} ({task['pausedReason']})"
            elif not task["enabled"]:
                state = f"disabled ({task['disabledReason']})"
            elif task["healthy"]:
                state = "ok"
            else:
                state = f"STALE: {task['problem']}"
            lines.append(
                f"  {name:<24} {state}; schedule '{task['schedule']}', every "
                f"{task['intervalSeconds']} s; last success "
                f"{last['finishedAt'] if last else 'never'}; next due {task['nextDue'] or '-'}"
            )
            lines.append(
                f"  {'':<24} last tick {task['lastTick']} {task['lastTickStatus']}; "
                f"next tick {task['nextTick']}; missed in 24 h {task['missedTicks24h']}"
            )
            if task["warning"]:
                lines.append(f"  {'':<24} WARNING: {task['warning']}")
        backlog = ", ".join(f"{k}={v}" for k, v in status["backlog"].items()) or "none"
        lines.append(f"Backlog: {backlog}")
        lines.append(self.render_scheduler(status["scheduler"]))
        # Stored text (a pause reason from an older version) may hold control characters.
        return "\n".join(escape_controls(line) for line in lines)

    def render_scheduler(self, scheduler: dict[str, Any]) -> str:
        """This process's scheduler thread. A command has none: each web worker runs its
        own, and its status endpoint reports that one."""
        if not scheduler["running"] and scheduler["lastError"] is None:
            return "Scheduler thread: none running in this process"
        state = "running" if scheduler["running"] else "NOT running"
        line = f"Scheduler thread: {state} (pid {scheduler['pid']})"
        if scheduler["lastError"]:
            line += (
                f"; restarted {scheduler['restarts']} times, last crash at "
                f"{scheduler['lastErrorAt']}: {scheduler['lastError']}"
            )
        return line
