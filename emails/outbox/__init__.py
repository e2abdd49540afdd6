"""The outbox: how due onboarding emails leave, once, over several connections at a time.

`process_scheduled_emails` (`run.py`) is the one entry point; the `scheduled_emails` task
(`emails/tasks.py`) declares it. A run first cancels what must never go out (opted-out,
deactivated, address-less or suppressed users; emails overdue past the allowed lateness),
then sends over `SCHEDULED_EMAILS_CONNECTIONS` lanes at once (`lanes.py`), each a thread
with its own mail server connection and database connection. Each lane, batch after
batch, until the run's limit, its time budget or the queue runs out:

1. claim        `claims.claim`: due rows flip to `sending` with a lease, attempt counted;
                lanes and concurrent runners take disjoint batches (SKIP LOCKED on
                PostgreSQL).
2. filter       `reachability.undeliverable_reason`: an address no retry can deliver to
                fails its email for good.
3. compose      `compose.compose`: subject, text, HTML, unsubscribe headers, a stable
                Message-ID; `SmtpPipeline.prepare` serialises it for the SMTP wire.
4. pace         `rate.SendRateLimiter`: one send slot per message from a shared row
                (`EMAIL_SEND_RATE`), never beyond the lease or the time budget; what
                cannot get a slot is handed back unsent (`claims.release`).
5. check        `reachability`: just before the message starts (after the wait for its
                slot), the database says whether its user may still receive it (opted
                out, deactivated, deleted, no address, address on the `suppression`
                list: the email is cancelled); asked in the same round trip as the
                previous message's "sent" record.
6. send         `smtp_pipeline.SmtpPipeline` over the lane's connection
                (`batch.BatchSender`): envelope, then the previous message's status
                confirmed and this one's verdict read, then the data; the server's answer
                is read while the next message is composed.
7. record       accepted: `sent_status_writer.SentStatusWriter` (pipelined on PostgreSQL);
                refused or lost: `claims.mark_failed` (retry with backoff) or
                `claims.fail_for_good`, and a dead mailbox is suppressed.

Steps 3-7 repeat per message (`BatchSender._send_one`). Two rules hold on every lane: no
message's data leaves before the previous one's "sent" record is confirmed, so a crash
repeats at most the message in flight on each lane; and no other query runs on the lane's
database connection while a pipelined write is unanswered
(`SentStatusWriter.confirming_queries` enforces it for the whole batch). An SMTP server
that cannot be reached backs the lane's batch off, stops the other lanes between messages
and ends the run (`TaskFailed`); a refusal of one message is that message's failure only.
"""

from __future__ import annotations

from emails.outbox.run import process_scheduled_emails

__all__ = ["process_scheduled_emails"]
