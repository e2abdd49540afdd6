"""An email run over a slow SMTP server, triggered over HTTP against a real gunicorn (sync
worker) and PostgreSQL. Within `MAINTENANCE_HTTP_BUDGET_SECONDS` the request answers 200
long before gunicorn's worker timeout, and the next trigger continues. With a `--timeout`
shorter than the run, gunicorn ends the worker mid-run: the run is closed `failed` with
that reason and its emails are handed back at once, not after their 15-minute lease; so
they are when SIGTERM stops the command a cron job or a service manager runs."""

from __future__ import annotations

import http.client
import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from emails.models import ScheduledEmail
from maintenance.models import RunStatus, TaskRun
from maintenance.runs.interruptions import GUNICORN_TIMEOUT
from tests.conftest import SECRET
from tests.factories import make_due, statuses
from tests.maintenance.test_scheduler import start
from tests.processes import PYTHON, free_port, manage, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

EMAILS = 20
TRIGGER = "/api/emails/process-scheduled"


@dataclass
class Server:
    url: str
    output: str = ""


@contextmanager
def gunicorn(*options: str, **env: str) -> Iterator[Server]:
    """One sync worker serving the project on the test database (the app preloaded in the
    master, so a short --timeout does not catch the worker still importing Django)."""
    port = free_port()
    args = [PYTHON, "-m", "gunicorn", "--no-control-socket", "--preload", "--workers", "1"]
    args += ["--bind", f"127.0.0.1:{port}", *options, "pluggedin.wsgi:application"]
    env = {"IN_PROCESS_SCHEDULER": "false", "CRON_SECRET": SECRET, "CLOUD_DEPLOY": "true", **env}
    process = start(args, **env)
    server = Server(f"http://127.0.0.1:{port}")
    try:
        started = wait_for(lambda: answers(f"{server.url}/healthz"), timeout=60)
        assert started, "gunicorn did not start"
        yield server
    finally:
        process.terminate()
        server.output, _ = process.communicate(timeout=30)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
            return response.status == 200
    except (OSError, http.client.HTTPException):
        return False


def trigger(server: Server, query: str = "") -> tuple[int | None, dict, float]:
    """POST the email task; its status (None: the connection dropped), body and seconds."""
    request = urllib.request.Request(  # noqa: S310 - loopback
        f"{server.url}{TRIGGER}{query}",
        data=b"",
        method="POST",
        headers={"Authorization": f"Bearer {SECRET}"},
    )
    began = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            status, body = response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        status, body = error.code, {"html": error.read().decode(errors="replace")[:500]}
    except (OSError, http.client.HTTPException):
        status, body = None, {}
    return status, body, time.monotonic() - began


def nothing_held_or_repeated(smtp) -> int:
    """No email left `sending`, none sent twice, each one recorded `sent` really received,
    unsent ones with no attempt spent; the number sent."""
    counts = statuses()
    assert "sending" not in counts, counts
    sent = counts.get("sent", 0)
    received = smtp.received()
    assert max(received.values(), default=1) == 1, "an email went out twice"
    sent_to = ScheduledEmail.objects.filter(status="sent").values_list("user__email", flat=True)
    assert set(sent_to) <= set(received)
    assert {row.attempts for row in ScheduledEmail.objects.exclude(status="sent")} <= {0}
    return sent


def test_a_run_behind_gunicorn_answers_200_within_its_budget_and_the_next_continues(
    slow_smtp_server,
):
    slow_smtp_server.recorder.delay = 0.3  # 20 emails: 6 s at the server
    make_due(EMAILS)
    with gunicorn(EMAIL_URL=slow_smtp_server.url, MAINTENANCE_HTTP_BUDGET_SECONDS="1.5") as server:
        status, body, took = trigger(server)
        assert status == 200, (body, server.output)
        assert body["success"] is True and body["budgetExhausted"] is True
        assert 0 < body["sent"] < EMAILS and body["remaining"] == EMAILS - body["sent"]
        assert took < 1.5 + 0.3 + 2.5  # the budget, the message in flight, a loaded machine
        assert TaskRun.objects.get(pk=body["runId"]).status == RunStatus.SUCCEEDED
        first = nothing_held_or_repeated(slow_smtp_server)
        assert first == body["sent"]

        status, again, _ = trigger(server, "?force=1")
        assert status == 200 and again["sent"] > 0, again
        assert nothing_held_or_repeated(slow_smtp_server) == first + again["sent"]


def test_gunicorn_ending_the_worker_mid_run_closes_the_run_and_hands_the_emails_back(
    slow_smtp_server,
):
    slow_smtp_server.recorder.delay = 0.5  # 20 emails: 10 s, far past the 2 s timeout
    make_due(EMAILS)
    with gunicorn("--timeout", "2", EMAIL_URL=slow_smtp_server.url) as server:
        status, body, _ = trigger(server)
        # gunicorn answers its own 500 page as the worker exits, or the connection drops
        assert status in (500, None) and "runId" not in body, body
        run = wait_for(
            lambda: (
                TaskRun.objects.filter(task="scheduled_emails").exclude(status="running").first()
            ),
            timeout=10,
        )
        assert run is not None and run.status == RunStatus.FAILED, server.output
        assert run.error == GUNICORN_TIMEOUT
        assert not TaskRun.objects.filter(
            task="scheduled_emails", status=RunStatus.RUNNING
        ).exists()
        sent = nothing_held_or_repeated(slow_smtp_server)  # at once: the lease is 15 minutes
        assert 0 < sent < EMAILS
        assert statuses() == {"sent": sent, "pending": EMAILS - sent}
    assert "WORKER TIMEOUT" in server.output


def test_sigterm_to_the_command_mid_run_closes_the_run_and_hands_the_emails_back(
    slow_smtp_server,
):
    slow_smtp_server.recorder.delay = 0.5
    make_due(EMAILS)
    command = manage(
        "process_scheduled_emails", CLOUD_DEPLOY="true", EMAIL_URL=slow_smtp_server.url
    )
    assert wait_for(lambda: len(slow_smtp_server.messages) >= 2, timeout=60, interval=0.05)
    os.kill(command.pid, signal.SIGTERM)
    _, stderr = command.communicate(timeout=30)

    assert command.returncode == 128 + signal.SIGTERM, stderr
    run = TaskRun.objects.get(task="scheduled_emails")
    assert (run.status, run.error) == (RunStatus.FAILED, "Interrupted: SIGTERM")
    assert not TaskRun.objects.filter(task="scheduled_emails", status=RunStatus.RUNNING).exists()
    sent = nothing_held_or_repeated(slow_smtp_server)
    assert statuses() == {"sent": sent, "pending": EMAILS - sent}
