"""Lanes: one run's parallel senders, each over its own connection to the mail server (SMTP,
or an ESP API session) and its own database connection.

A mail server that takes 50 ms per message caps one connection at 20 messages a second,
however fast everything else is; `SCHEDULED_EMAILS_CONNECTIONS` lanes send side by side.
Each lane claims its own batches (the claim's SKIP LOCKED keeps them disjoint) and sends
them one message at a time with a `BatchSender`, keeping the exactly-once rule on its own
connection: a crash repeats at most one message per lane. The lanes share the run's limit
(`Quota`), its deadline, the send rate (a database row, as for separate runners) and a
stop signal (`halt`): a lane that finds the mail server gone, or fails otherwise, stops the
others between messages, and they hand back what they have not started.

Lane 0 runs on the calling thread, so it sees what the caller sees, and an interruption
there (a signal handler's `SystemExit`, Ctrl-C) stops the others and hands every lane's
batch back before it goes on up. The other lanes are
threads (the work waits on sockets); each closes its database connection when done. A
database without SKIP LOCKED (SQLite, one host's file) gets one lane.
"""

from __future__ import annotations

import contextvars
import math
import threading
import time
from datetime import datetime

from django.db import connection, connections

from emails.conf import email_settings
from emails.models import ScheduledEmail
from emails.outbox import claims
from emails.outbox.batch import BatchSender, SendCounts
from maintenance.runs.clock import database_now
from maintenance.runs.deadlines import Deadline

LANE_MINIMUM = 10  # emails a lane is opened for, at least
INTERRUPTION_GRACE = 0.2  # seconds the other lanes get to settle when the process stops


class Quota:
    """The run's limit, shared by its lanes: each claim takes its size from it first."""

    def __init__(self, limit: int) -> None:
        self._left = limit
        self._lock = threading.Lock()

    def take(self, most: int) -> int:
        with self._lock:
            taken = min(most, self._left)
            self._left -= taken
            return taken

    def give_back(self, count: int) -> None:
        with self._lock:
            self._left += count


class Lanes:
    """The lanes of one run: `send()` runs them to the end and returns the counts of all;
    `failures` holds what stopped any lane (lane 0's first)."""

    def __init__(
        self,
        *,
        limit: int,
        deadline: float,
        now: datetime | None,
        run_deadline: Deadline | None = None,
    ) -> None:
        backlog = ScheduledEmail.objects.claimable(now or database_now())[:limit].count()
        self.count = lane_count(backlog)
        self.share = max(1, math.ceil(backlog / self.count))  # the first batches spread evenly
        self.quota = Quota(limit)
        self.halt = threading.Event()
        self.failures: list[BaseException] = []
        self.senders = [
            BatchSender(
                deadline=deadline,
                now=now,
                run_deadline=run_deadline,
                halt=self.halt,
                lanes=self.count,
            )
            for _ in range(self.count)
        ]

    def send(self) -> SendCounts:
        threads = [
            threading.Thread(
                target=contextvars.copy_context().run,
                args=(self._in_thread, sender),
                name=f"emails-lane-{number}",
                daemon=True,
            )
            for number, sender in enumerate(self.senders[1:], start=1)
        ]
        for thread in threads:
            thread.start()
        try:
            self._drive(self.senders[0])
        except BaseException as exc:
            self._stop_all(exc)
        finally:
            self._join(threads)
        return sum((sender.counts for sender in self.senders), SendCounts())

    def _join(self, threads: list[threading.Thread]) -> None:
        """Wait for the other lanes to end. When the process is being stopped (a signal's
        `SystemExit`, Ctrl-C; in lane 0 or during this wait) they get
        `INTERRUPTION_GRACE` to settle their message in flight and hand back the rest of
        their batch; whatever is still held then is handed back from here, so a run its
        process ends releases its emails at once, not when their lease runs out."""
        try:
            if not self._interrupted():
                for thread in threads:
                    thread.join()
                return
        except BaseException as exc:
            self._stop_all(exc)
        until = time.monotonic() + INTERRUPTION_GRACE
        for thread in threads:
            thread.join(max(0.0, until - time.monotonic()))
        held = [email for sender in self.senders for email in sender.holding]
        if held:
            claims.hand_back(held)

    def _interrupted(self) -> bool:
        return any(not isinstance(failure, Exception) for failure in self.failures)

    def _stop_all(self, failure: BaseException) -> None:
        """Lane 0's failure (or the caller's interruption) comes first."""
        self.failures.insert(0, failure)
        self.halt.set()

    def _in_thread(self, sender: BatchSender) -> None:
        try:
            self._drive(sender)
        except BaseException as exc:
            self.failures.append(exc)
            self.halt.set()
        finally:
            connections["default"].close()

    def _drive(self, sender: BatchSender) -> None:
        """One lane: claim a batch, send it, until the limit, the time or the queue ends."""
        try:
            while not sender.stopped and not sender.out_of_time():
                size = self.quota.take(sender.batch_size(self.share))
                if not size:
                    return
                claimed_at = time.monotonic()
                batch = claims.claim(size, sender.now())
                self.quota.give_back(size - len(batch))
                if not batch:
                    return
                sender.send(batch, claimed_at=claimed_at)
        finally:
            sender.close()


def lane_count(backlog: int) -> int:
    """`SCHEDULED_EMAILS_CONNECTIONS`, but a lane for every `LANE_MINIMUM` emails at most
    (a connection, its TLS handshake and a thread are not worth fewer), and one lane where
    claims cannot skip each other's rows."""
    if not connection.features.has_select_for_update_skip_locked:
        return 1
    wanted = math.ceil(backlog / LANE_MINIMUM)
    return max(1, min(email_settings.SCHEDULED_EMAILS_CONNECTIONS, wanted))
