"""One retry of a bookkeeping write on a new connection.

A run that broke its connection (a terminated backend, a restarted pooler) must still
record its outcome and release its lease. Django never reconnects an open connection by
itself, but once it is closed the next query opens a new one. Inside a transaction a new
connection would silently drop the transaction's earlier work, so there the error stands.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from django.db import DatabaseError, connection

T = TypeVar("T")


def on_a_working_connection(write: Callable[[], T]) -> T:
    """Call `write`; after a database error, once more on a new connection."""
    try:
        return write()
    except DatabaseError:
        if connection.in_atomic_block:
            raise
        connection.close()
        return write()
