"""A run sends over several connections at once (`SCHEDULED_EMAILS_CONNECTIONS`), against a
real SMTP server on loopback (and a loopback Postmark API for anymail) and real
PostgreSQL: every email exactly once, the counts of all lanes, an outage, a refusal, the
send rate, the deadline and a crash, lane by lane; and each message's user checked as it
leaves, also after a wait for its send slot."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections import Counter
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest
from django.db import connections
from django.utils import timezone

from emails.models import ScheduledEmail
from emails.outbox import process_scheduled_emails
from emails.outbox.suppression import is_suppressed
from maintenance.outcome import TaskFailed
from maintenance.runs.runner import run_task
from tests.emails.test_send_rate import Clocked, achieved_rate, busiest_second
from tests.factories import make_due, statuses
from tests.processes import manage, wait_for
from tests.smtp_server import Recorder, serve

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

LANES = 4


class Overlapping(Recorder):
    """Counts the messages the server is digesting at once, and the connections used."""

    def __init__(self, delay: float) -> None:
        super().__init__(delay=delay)
        self.busy = self.most_busy = 0
        self.peers: set = set()

    async def handle_DATA(self, server, session, envelope):
        self.peers.add(session.peer)
        self.busy += 1
        self.most_busy = max(self.most_busy, self.busy)
        try:
            return await super().handle_DATA(server, session, envelope)
        finally:
            self.busy -= 1


@pytest.fixture
def lanes(settings):
    settings.SCHEDULED_EMAILS_CONNECTIONS = LANES
    settings.SCHEDULED_EMAILS_BACKOFF_SECONDS = 60
    return LANES


@pytest.fixture
def server(settings):
    yield from serve(settings, recorder=Overlapping(delay=0.05))


def exactly_once(server, count: int) -> None:
    received = server.received()
    assert len(received) == count and set(received.values()) == {1}


@pytest.mark.postgres
def test_lanes_send_side_by_side_and_each_email_exactly_once(lanes, server):
    make_due(120)

    result = process_scheduled_emails()

    assert result == {"sent": 120, "failed": 0, "cancelled": 0, "remaining": 0}
    exactly_once(server, 120)
    assert statuses() == {"sent": 120}
    assert server.recorder.most_busy == LANES  # four messages at the server at once
    assert len(server.recorder.peers) == LANES  # each lane kept its one connection


@pytest.mark.postgres
def test_one_connection_sends_one_message_at_a_time(server, settings):
    settings.SCHEDULED_EMAILS_CONNECTIONS = 1
    make_due(20)

    assert process_scheduled_emails()["sent"] == 20
    assert server.recorder.most_busy == 1 and len(server.recorder.peers) == 1


@pytest.mark.postgres
def test_a_refused_message_costs_only_itself_on_its_lane(lanes, server):
    make_due(60)
    refused = {f"user{i}@example.test" for i in range(0, 60, 6)}
    server.recorder.reject = refused

    result = process_scheduled_emails()

    assert result == {"sent": 50, "failed": 10, "cancelled": 0, "remaining": 0}
    assert set(server.received()) == {f"user{i}@example.test" for i in range(60)} - refused
    exactly_once(server, 50)
    assert statuses() == {"sent": 50, "failed": 10}
    assert all(is_suppressed(address) for address in refused)
    assert len(server.recorder.peers) == LANES  # a refusal resets, never reconnects


@pytest.mark.postgres
def test_a_lane_whose_server_is_gone_backs_off_and_the_run_fails_with_all_counts(
    lanes, server, settings
):
    make_due(120)
    now = timezone.now()

    def outage(count: int) -> None:
        if count == 30:  # the server goes away with messages in flight on every lane
            threading.Thread(target=server.stop).start()

    server.recorder.before_reply = outage
    with pytest.raises(TaskFailed) as failure:
        process_scheduled_emails(now=now)

    assert "SMTP unavailable" in str(failure.value)
    counts = failure.value.result
    sent = counts["sent"]
    assert 0 < sent < 120
    assert statuses().get("sent") == sent
    assert sent <= len(server.received()) <= sent + LANES  # data in, answer cut off
    backed_off = ScheduledEmail.objects.filter(status="pending", attempts=1)
    assert counts["failed"] == backed_off.count() > 0  # the lanes' batches, attempt counted
    assert all(row.scheduled_for > now for row in backed_off)
    assert ScheduledEmail.objects.filter(status="sending").count() == 0  # nothing left held

    server.recorder.before_reply = None
    server.start()
    later = process_scheduled_emails(now=now + timedelta(minutes=2))
    assert later["sent"] == 120 - sent
    assert statuses() == {"sent": 120}
    assert max(server.received().values()) <= 2  # at most the messages in flight at the cut
    assert sum(n - 1 for n in server.received().values()) <= LANES


@pytest.fixture
def clocked(settings):
    yield from serve(settings, recorder=Clocked())


@pytest.mark.postgres
def test_the_send_rate_holds_across_lanes(lanes, clocked, settings):
    settings.EMAIL_SEND_RATE = 20
    make_due(50)

    assert process_scheduled_emails()["sent"] == 50

    exactly_once(clocked, 50)
    arrivals = clocked.recorder.arrivals
    assert busiest_second(arrivals) <= 20
    assert achieved_rate(arrivals) >= 0.85 * 20


@pytest.mark.postgres
def test_a_deadline_mid_run_stops_every_lane_between_messages(lanes, server, settings):
    settings.CLOUD_DEPLOY = True
    settings.SCHEDULED_EMAILS_MAX_RUNTIME_SECONDS = "1"
    server.recorder.delay = 0.25  # 80 emails over four lanes take 5 s at the server
    make_due(80)

    outcome = run_task("scheduled_emails", "command")

    assert outcome.status == "failed" and outcome.error == "Timed out after 1 s"
    sent = outcome.result["sent"]
    assert LANES <= sent < 80
    assert outcome.result["remaining"] == 80 - sent
    assert statuses() == {"sent": sent, "pending": 80 - sent}
    assert {row.attempts for row in ScheduledEmail.objects.exclude(status="sent")} == {0}

    server.recorder.delay = 0
    assert run_task("scheduled_emails", "command").result["sent"] == 80 - sent
    exactly_once(server, 80)


def running_in_a_process(server, **env: str):
    """The sending service in a process of its own, on LANES lanes, sending to `server`."""
    return manage(
        "shell",
        "-c",
        "from emails.outbox import process_scheduled_emails; process_scheduled_emails()",
        EMAIL_URL=server.url,
        SCHEDULED_EMAILS_CONNECTIONS=str(LANES),
        **env,
    )


@pytest.mark.postgres
def test_a_run_killed_mid_send_repeats_at_most_one_message_per_lane(server, settings):
    lease = 3
    make_due(200)
    runner = running_in_a_process(server, SCHEDULED_EMAILS_LEASE_SECONDS=str(lease))
    assert wait_for(lambda: len(server.messages) >= 40, timeout=60, interval=0.02)
    os.kill(runner.pid, signal.SIGKILL)
    runner.communicate(timeout=30)
    held = ScheduledEmail.objects.filter(status="sending")
    assert held.exists(), "the kill should land mid-run"

    until = max(row.claimed_until for row in held)
    assert wait_for(lambda: timezone.now() > until, lease + 30, 0.05)
    server.recorder.delay = 0
    assert process_scheduled_emails()["failed"] == 0

    assert statuses() == {"sent": 200}
    received = server.received()
    assert len(received) == 200
    assert sum(count - 1 for count in received.values()) <= LANES


# --- Each message is checked as it leaves -------------------------------------------------


def switch_off(emails: list[ScheduledEmail]) -> None:
    """Opt one user out, deactivate another, suppress a third (as a webhook would)."""
    from django.contrib.auth import get_user_model

    from emails.models import EmailPreference
    from emails.outbox.suppression import suppress

    opted_out, deactivated, bounced = emails
    try:
        EmailPreference.objects.opt_out(opted_out.user_id)
        get_user_model().objects.filter(pk=deactivated.user_id).update(is_active=False)
        suppress(bounced.user.email, reason="hard bounce", event="bounced", esp="postmark")
    finally:
        connections.close_all()


@pytest.mark.parametrize("rate", [2, None], ids=["paced", "unpaced"])
def test_users_switched_off_while_the_run_goes_get_nothing(rate, server, settings):
    """While the first message is at the server (and, paced, the others wait for their
    send slots), one user opts out, one is deactivated, one address is suppressed."""
    settings.EMAIL_SEND_RATE = rate
    settings.SCHEDULED_EMAILS_CONNECTIONS = 1
    emails = sorted(make_due(6), key=lambda email: email.user.username)
    for order, email in enumerate(emails):  # sent in this order
        email.scheduled_for -= timedelta(seconds=len(emails) - order)
        email.save(update_fields=["scheduled_for"])
    late = emails[3:]

    def on_first(count: int) -> None:
        if count == 1:  # from a thread of its own: the server's loop is async
            worker = threading.Thread(target=switch_off, args=(late,))
            worker.start()
            worker.join()

    server.recorder.before_reply = on_first
    result = process_scheduled_emails()

    assert result == {"sent": 3, "failed": 0, "cancelled": 3, "remaining": 0}
    assert set(server.received()) == {email.user.email for email in emails[:3]}
    reasons = dict(
        ScheduledEmail.objects.filter(status="cancelled").values_list("pk", "last_error")
    )
    assert reasons == {
        late[0].pk: "unsubscribed",
        late[1].pk: "user deactivated",
        late[2].pk: "address suppressed",
    }


# --- ESP API sessions ----------------------------------------------------------------------


class PostmarkApi(BaseHTTPRequestHandler):
    """Postmark's send API on loopback: each message answered after 50 ms, counted per
    recipient, with the client connections (ports) seen and the most served at once."""

    protocol_version = "HTTP/1.1"
    received: Counter
    peers: set
    busy = most_busy = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.lock:
            type(self).busy += 1
            type(self).most_busy = max(self.most_busy, self.busy)
            self.peers.add(self.client_address)
        time.sleep(0.05)
        with self.lock:
            type(self).busy -= 1
            self.received[body["To"]] += 1
        reply = json.dumps(
            {
                "To": body["To"],
                "SubmittedAt": "2026-01-01T00:00:00Z",
                "ErrorCode": 0,
                "MessageID": str(uuid.uuid4()),
                "Message": "OK",
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def postmark(settings):
    api = type("Api", (PostmarkApi,), {"received": Counter(), "peers": set()})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), api)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    settings.ANYMAIL = {
        "POSTMARK_SERVER_TOKEN": "test-token",
        "POSTMARK_API_URL": f"http://127.0.0.1:{httpd.server_address[1]}/",
    }
    yield api
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.postgres
def test_an_esp_backend_gets_one_api_session_per_lane(lanes, postmark):
    make_due(60)

    assert process_scheduled_emails() == {"sent": 60, "failed": 0, "cancelled": 0, "remaining": 0}

    assert len(postmark.received) == 60 and set(postmark.received.values()) == {1}
    assert postmark.most_busy == LANES
    assert len(postmark.peers) == LANES  # each lane kept its one keep-alive connection


@pytest.mark.postgres
def test_a_lane_waiting_for_the_database_lets_the_other_lanes_work():
    """A "sent" record held up in the database (here by a row lock another session holds
    for half a second) must not freeze the process: the other lanes' threads go on."""
    from emails.outbox import claims
    from emails.outbox.sent_status_writer import SentStatusWriter
    from tests.processes import test_database_url

    make_due(1)
    (email,) = claims.claim(1, timezone.now())
    spins = [0]
    stop = threading.Event()

    def other_lane() -> None:
        while not stop.is_set():
            spins[0] += 1

    spinner = threading.Thread(target=other_lane)
    spinner.start()
    try:
        start = spins[0]
        time.sleep(0.5)
        while_sleeping = spins[0] - start
        with psycopg.connect(test_database_url()) as locker:
            locker.execute("SELECT 1 FROM scheduled_emails WHERE id = %s FOR UPDATE", [email.pk])
            locker.pgconn.send_query(b"SELECT pg_sleep(0.5); COMMIT")  # the server lets go
            writer = SentStatusWriter()
            writer.write(email, timezone.now())  # waits for the lock in the database
            start = spins[0]
            writer.confirm()
            while_waiting = spins[0] - start
            while locker.pgconn.get_result() is not None:
                pass
    finally:
        stop.set()
        spinner.join()

    assert statuses() == {"sent": 1}
    assert while_waiting > 0.3 * while_sleeping


@pytest.mark.postgres
def test_a_run_its_process_stops_hands_back_every_lanes_emails_at_once(server):
    """Ctrl-C (as SIGTERM, gunicorn's timeout: the process is ending) mid-run: every lane
    settles or hands back its batch; nothing is left held for the 15-minute lease."""
    server.recorder.delay = 0.25
    make_due(80)
    runner = running_in_a_process(server)
    assert wait_for(lambda: len(server.messages) >= 2 * LANES, timeout=60, interval=0.02)
    os.kill(runner.pid, signal.SIGINT)
    _, stderr = runner.communicate(timeout=30)

    assert "KeyboardInterrupt" in stderr
    counts = statuses()
    sent = counts.get("sent", 0)
    assert 0 < sent < 80 and counts == {"sent": sent, "pending": 80 - sent}, counts
    assert {row.attempts for row in ScheduledEmail.objects.exclude(status="sent")} == {0}
    received = server.received()
    assert max(received.values()) == 1
    sent_to = set(
        ScheduledEmail.objects.filter(status="sent").values_list("user__email", flat=True)
    )
    assert sent_to <= set(received)
    assert len(received) - len(sent_to) <= LANES  # the messages in flight, handed back


@pytest.mark.postgres
def test_a_cancelled_run_stops_every_lane_between_messages(lanes, server):
    """The run's deadline cancelled mid-run (it lost its hold on its task, its scheduler is
    stopping): every lane stops at its next message and hands its batch back."""
    from maintenance.runs.deadlines import deadline_of

    server.recorder.delay = 0.25  # 80 emails over four lanes take 5 s at the server
    make_due(80)
    with deadline_of(60) as deadline:
        server.recorder.before_reply = lambda count: count == 8 and deadline.cancel("lost it")
        with pytest.raises(TaskFailed) as failure:
            process_scheduled_emails()

    assert str(failure.value) == "lost it"
    sent = failure.value.result["sent"]
    assert LANES <= sent < 80
    assert statuses() == {"sent": sent, "pending": 80 - sent}
    assert {row.attempts for row in ScheduledEmail.objects.exclude(status="sent")} == {0}
    exactly_once(server, sent)
