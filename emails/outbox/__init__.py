"""The outbox: how due onboarding emails leave, once, over one SMTP connection per batch.

`process_scheduled_emails` (`run.py`) is the one entry point; the `scheduled_emails` task
(`emails/tasks.py`) declares it. A run first cancels what must never go out (opted-out,
deactivated, address-less or suppressed users; emails overdue past the allowed lateness),
then, batch after batch, until the limit, the time budget or the queue runs out:

1. claim        `claims.claim`: due rows flip to `sending` with a lease, attempt counted;
                concurrent runners take disjoint batches (SKIP LOCKED on PostgreSQL).
2. filter       `reachability`: an unreachable user (opted out, deactivated, no address,
                address on the `suppression` list) cancels the email; an address no retry
                can deliver to fails it for good.
3. compose      `compose.compose`: subject, text, HTML, unsubscribe headers, a stable
                Message-ID; `smtp_pipeline.prepare` serialises it for the wire.
4. pace         `rate.SendRateLimiter`: one send slot per message from a shared row
                (`EMAIL_SEND_RATE`), never beyond the lease or the time budget; what
                cannot get a slot is handed back unsent (`claims.release`).
5. send         `smtp_pipeline.SmtpPipeline`, one connection per batch (`batch.BatchSender`):
                envelope, then the previous message's status confirmed, then the data;
                the verdict is read while the next message is composed.
6. record       accepted: `sent_status_writer.SentStatusWriter` (pipelined on PostgreSQL);
                refused or lost: `claims.mark_failed` (retry with backoff) or
                `claims.fail_for_good`, and a dead mailbox is suppressed.

Steps 3-6 repeat per message (`BatchSender._send_one`). Two rules hold throughout: no
message's data leaves before the previous one's "sent" record is confirmed, so a crash
repeats at most the message in flight; and no other query runs on the connection while a
pipelined write is unanswered (`SentStatusWriter.confirming_queries` enforces it for the
whole batch). An SMTP server that cannot be reached backs the batch off and ends the run
(`TaskFailed`); a refusal of one message is that message's failure only.
"""

from __future__ import annotations

from emails.outbox.run import process_scheduled_emails

__all__ = ["process_scheduled_emails"]
