"""SMTP outages: nothing marked sent, attempts counted, backoff applied, `failed` at the end,
and a run that could not reach its server is a failed run, never a green one."""

import socket
import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from emails.models import ScheduledEmail
from emails.outbox import process_scheduled_emails
from maintenance.models import TaskRun
from maintenance.outcome import TaskFailed
from maintenance.runs.runner import run_task
from tests.factories import make_due, statuses
from tests.processes import run_manage

pytestmark = pytest.mark.django_db


@pytest.fixture
def retries(settings):
    settings.SCHEDULED_EMAILS_BACKOFF_SECONDS = 60
    settings.SCHEDULED_EMAILS_MAX_ATTEMPTS = 3


def rows() -> list[ScheduledEmail]:
    return list(ScheduledEmail.objects.order_by("user__username"))


def run_during_outage(**options) -> dict:
    """One run against the unreachable server: it fails, carrying its counts."""
    with pytest.raises(TaskFailed, match="SMTP unavailable") as failure:
        process_scheduled_emails(**options)
    return failure.value.result


def test_server_down_marks_nothing_sent_and_backs_off(smtp_down, retries):
    make_due(4)
    now = timezone.now()

    result = run_during_outage(now=now)

    assert result["sent"] == 0 and result["failed"] == 4
    for row in rows():
        assert row.status == "pending" and row.sent_at is None
        assert row.attempts == 1
        assert row.scheduled_for == now + timedelta(seconds=60)
        assert "SMTP unavailable" in row.last_error and "Connection" in row.last_error


def test_backoff_doubles_and_a_retry_before_it_touches_nothing(smtp_down, retries):
    make_due(2)
    now = timezone.now()
    run_during_outage(now=now)

    assert process_scheduled_emails(now=now + timedelta(seconds=30))["failed"] == 0
    assert {row.attempts for row in rows()} == {1}

    later = now + timedelta(seconds=61)
    run_during_outage(now=later)
    for row in rows():
        assert row.attempts == 2
        assert row.scheduled_for == later + timedelta(seconds=120)


def test_when_the_server_comes_back_the_next_run_sends_them_all(smtp_down, retries):
    make_due(5)
    now = timezone.now()
    run_during_outage(now=now)
    assert smtp_down.messages == []

    smtp_down.start()
    result = process_scheduled_emails(now=now + timedelta(minutes=2))

    assert result == {"sent": 5, "failed": 0, "cancelled": 0, "remaining": 0}
    assert smtp_down.received() == {f"user{i}@example.test": 1 for i in range(5)}
    assert {(row.status, row.attempts, row.last_error) for row in rows()} == {("sent", 2, "")}


def test_after_the_last_attempt_the_email_is_failed_with_its_error(smtp_down, retries):
    make_due(2)
    now = timezone.now()
    for day in range(3):
        run_during_outage(now=now + timedelta(days=day))

    for row in rows():
        assert row.status == "failed" and row.attempts == 3
        assert "SMTP unavailable" in row.last_error
    smtp_down.start()
    assert process_scheduled_emails(now=now + timedelta(days=4))["sent"] == 0
    assert smtp_down.messages == []


def test_an_outage_is_a_failed_run_that_still_records_its_counts(smtp_down, retries, settings):
    settings.CLOUD_DEPLOY = True
    make_due(3)

    outcome = run_task("scheduled_emails", "command")

    assert outcome.failed and outcome.http_status == 500
    body = outcome.body()
    assert body["success"] is False and "SMTP unavailable" in body["error"]
    assert (body["sent"], body["failed"], body["cancelled"]) == (0, 3, 0)
    assert body["remaining"] == 0  # backed off: not due again yet
    run = TaskRun.objects.get(pk=outcome.run_id)
    assert run.status == "failed" and "Connection" in run.error
    assert run.result == {"sent": 0, "failed": 3, "cancelled": 0, "remaining": 0}


def test_a_server_lost_mid_run_fails_the_run_with_what_went_out(smtp_server, retries, settings):
    settings.CLOUD_DEPLOY = True
    settings.SCHEDULED_EMAILS_BATCH_SIZE = 2
    make_due(5)

    def stop_at_the_second_message(count: int) -> None:
        if count == 2:
            threading.Thread(target=smtp_server.stop).start()
            time.sleep(0.2)  # the server goes down while its answer is on the way

    smtp_server.recorder.before_reply = stop_at_the_second_message
    outcome = run_task("scheduled_emails", "command")

    assert outcome.failed and outcome.http_status == 500
    body = outcome.body()
    assert body["sent"] in (1, 2)  # the second answer may or may not have made it
    assert body["sent"] + body["failed"] == 4  # two batches tried; the run stopped there
    assert body["remaining"] == 1  # the fifth, never claimed, still due
    assert TaskRun.objects.get(pk=outcome.run_id).result["sent"] == body["sent"]
    assert statuses() == {"sent": body["sent"], "pending": 5 - body["sent"]}


@pytest.fixture
def silent_smtp(settings):
    """A server that takes the connection and never says a word (a hung MTA): the kernel
    completes the handshake, nobody answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", listener.getsockname()[1]
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 1
    yield listener
    listener.close()


def test_a_server_that_never_answers_is_an_outage_after_email_timeout(silent_smtp, retries):
    make_due(2)
    started = time.monotonic()

    result = run_during_outage()

    assert time.monotonic() - started < 10
    assert result["sent"] == 0 and result["failed"] == 2
    for row in rows():
        assert row.status == "pending" and row.attempts == 1
        assert "SMTP unavailable" in row.last_error and "timed out" in row.last_error


def test_email_timeout_is_bounded_by_default():
    """Django's own default (None) would wait for a silent server forever."""
    shown = run_manage(
        "shell", "-c", "from django.conf import settings; print(settings.EMAIL_TIMEOUT)"
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip().splitlines()[-1] == "20.0"
