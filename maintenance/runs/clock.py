"""The runner's clock: the one place run code asks for the time, so tests can move it.

Tests patch `maintenance.runs.clock.now`; production code always reads the wall clock."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone


def now() -> datetime:
    """The current time, aware, in UTC."""
    return timezone.now()
