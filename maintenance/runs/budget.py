"""The time budget of an HTTP-triggered run (`MAINTENANCE_HTTP_BUDGET_SECONDS`).

A web server gives a request a fixed time and then ends the worker (gunicorn's worker
timeout, 30 s by default); a run ended that way answers nothing useful. So a run triggered
over HTTP gets a budget below that time, applied through the run's deadline
(`deadlines.py`): a cleanup stops between batches, the email run stops starting messages.
Unlike the deadline, reaching the budget is no failure: the run succeeds with what it did,
its result says `budgetExhausted`, and the next trigger continues.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from maintenance.conf import maintenance_settings
from maintenance.models import Trigger
from maintenance.runs.deadlines import BudgetSpent

BUDGET_EXHAUSTED = "budgetExhausted"


def http_budget(trigger: str, started: float) -> float | None:
    """Seconds left of the budget for a run of `trigger` begun at `started` (monotonic),
    the request's time already spent on it counted; None: not an HTTP run, no budget."""
    if trigger != Trigger.HTTP:
        return None
    spent = time.monotonic() - started
    return max(0.0, maintenance_settings.MAINTENANCE_HTTP_BUDGET_SECONDS - spent)


def run_within_budget(
    func: Callable[..., Mapping[str, Any]], options: Mapping[str, Any]
) -> dict[str, Any]:
    """Call the task function; a run its budget stopped returns what it did, marked."""
    try:
        return dict(func(**options))
    except BudgetSpent as stop:
        return {**stop.result, BUDGET_EXHAUSTED: True}


def budget_note(result: Mapping[str, Any]) -> str:
    """What the run's message adds when the budget stopped it."""
    if not result.get(BUDGET_EXHAUSTED):
        return ""
    budget = maintenance_settings.MAINTENANCE_HTTP_BUDGET_SECONDS
    return f"; stopped after the {budget:g} s HTTP budget, the next trigger continues"
