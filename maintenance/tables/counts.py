"""Backlog counts that cost the same at a thousand rows or ten million.

`/metrics`, the status endpoint and `maintenance_status` count waiting work on every call.
An exact `count(*)` walks every matching index entry, so it grows with the backlog; a
bounded count stops after MAINTENANCE_BACKLOG_EXACT_LIMIT rows. Up to the limit the figure
is exact. Past it, PostgreSQL reports its planner's estimate for the same query (from the
table statistics, kept fresh by autovacuum; never below the limit), which follows a
backlog's growth without reading it; other databases report the limit itself. An
estimate is an order of magnitude, not a count: where the filter combines correlated
columns (due emails: status and due date) the planner, which takes them as independent,
can be off by a factor of two or more.
"""

from __future__ import annotations

import json

from django.db import connections
from django.db.models import QuerySet

from maintenance.conf import maintenance_settings


def bounded_count(queryset: QuerySet, limit: int | None = None) -> int:
    """Rows of `queryset`: exact up to `limit`, an estimate (at least `limit`) beyond."""
    limit = limit or maintenance_settings.MAINTENANCE_BACKLOG_EXACT_LIMIT
    queryset = queryset.order_by().values("pk")
    counted = queryset[: limit + 1].count()
    if counted <= limit:
        return counted
    return max(limit, planner_estimate(queryset) or 0)


def planner_estimate(queryset: QuerySet) -> int | None:
    """PostgreSQL's estimate of the rows `queryset` returns; None elsewhere."""
    if connections[queryset.db].vendor != "postgresql":
        return None
    plan = queryset.explain(format="json")
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return int(plan[0]["Plan"]["Plan Rows"])
