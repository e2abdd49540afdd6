"""Validating the run bounds (`limit`, `max_seconds`) the command and the endpoint accept."""

from __future__ import annotations


class BadBound(ValueError):
    pass


def positive_number(raw: str, name: str, kind: type[int] | type[float]) -> int | float:
    """`raw` as a positive `kind`, or BadBound with a message naming the option."""
    noun = "integer" if kind is int else "number"
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise BadBound(f"{name} must be a positive {noun}, got {raw!r}") from None
    if not value > 0 or value == float("inf"):
        raise BadBound(f"{name} must be a positive {noun}, got {raw!r}")
    return value
