"""`EMAIL_SEND_RATE`: one pace for every runner on every host, kept in the database.

Each message takes the next free send slot from one row (`email_send_rate`) in a single
atomic `UPDATE`: the slot is the later of the row's `next_slot` and the database clock, and
the row moves on by one spacing. A runner then waits, locally, until its slot comes. Slots
never bunch up (an idle row does not bank a burst), so any one-second window holds at
most the rate, as long as a message reaches the server within `GUARD` seconds of its slot;
the spacing is widened by that guard (the pace is 1 / (1 + GUARD) of the rate). The
database clock is the one clock all hosts share.

Slots are handed out one message at a time, so a runner never queues far ahead: the wait
for a slot is at most one spacing per runner sending. A slot further away than the caller
can wait (its claimed emails' lease, the run's time budget) is not taken.
"""

from __future__ import annotations

import time

from django.db import connection

from emails.models import SendRate

GUARD = 0.05
TABLE = SendRate._meta.db_table
CREATE_ROW_SQL = f"INSERT INTO {TABLE} (id, next_slot) VALUES (1, 0) ON CONFLICT (id) DO NOTHING"  # noqa: S608
# Parameters: spacing, horizon, spacing. Returns the wait, in seconds, until the slot.
POSTGRESQL_SQL = f"""
WITH clock AS (SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8 AS now)
UPDATE {TABLE} AS rate SET next_slot = GREATEST(rate.next_slot, clock.now) + %s
FROM clock
WHERE rate.id = 1 AND GREATEST(rate.next_slot, clock.now) <= clock.now + %s
RETURNING rate.next_slot - %s - clock.now
"""  # noqa: S608 - the table name comes from model metadata, values are parameters
# SQLite lives on one host: the local clock is the shared one. Parameters: now, spacing,
# now, now, horizon, spacing, now.
SQLITE_SQL = f"""
UPDATE {TABLE} SET next_slot = MAX(next_slot, %s) + %s
WHERE id = 1 AND MAX(next_slot, %s) <= %s + %s
RETURNING next_slot - %s - %s
"""  # noqa: S608


class SendRateLimiter:
    """Hands out send slots at `rate` messages per second shared by all runners; with
    `rate` None every slot is now."""

    def __init__(self, rate: float | None) -> None:
        self.spacing = (1 + GUARD) / rate if rate else 0.0
        self._row_checked = False

    @property
    def limited(self) -> bool:
        return self.spacing > 0

    def reserve(self, horizon: float) -> float | None:
        """Take the next slot if it comes within `horizon` seconds: its `time.monotonic()`
        value, or None (nothing taken) when it is further away."""
        if not self.limited:
            return time.monotonic()
        if not self._row_checked:
            with connection.cursor() as cursor:
                cursor.execute(CREATE_ROW_SQL)
            self._row_checked = True
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(POSTGRESQL_SQL, [self.spacing, horizon, self.spacing])
            else:
                now = time.time()
                params = [now, self.spacing, now, now, horizon, self.spacing, now]
                cursor.execute(SQLITE_SQL, params)
            row = cursor.fetchone()
        if row is None:
            return None
        return time.monotonic() + max(row[0], 0.0)


def wait_until(moment: float) -> None:
    """Sleep until `time.monotonic()` reaches `moment`."""
    delay = moment - time.monotonic()
    if delay > 0:
        time.sleep(delay)
