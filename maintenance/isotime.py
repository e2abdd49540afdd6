"""The one spelling of an instant on the wire and in logs: ISO 8601, UTC, with a `Z`."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_utc(moment: datetime | None, timespec: str = "auto") -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def utc_minute(moment: datetime) -> str:
    """`2026-11-25 18:40 UTC`, how messages for people spell an instant."""
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
