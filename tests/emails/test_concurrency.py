"""Exactly once under concurrent runners, against real PostgreSQL and a real SMTP server."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable

import pytest
from django.db import connections
from django.test import Client

from emails.models import ScheduledEmail
from emails.outbox import claims, process_scheduled_emails
from maintenance.runs.runner import run_task
from tests.factories import make_due, statuses
from tests.processes import StartLine, first_query

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def in_thread(target, results: list, start: Callable[[], object]) -> threading.Thread:
    """Run `target` in a thread that connects, waits for `start` to return, then fires."""

    def body():
        try:
            first_query()
            start()
            results.append(target())
        finally:
            connections.close_all()

    thread = threading.Thread(target=body)
    thread.start()
    return thread


def test_four_runners_together_send_each_email_exactly_once(
    transactional_db, smtp_server, settings, auth_header, tmp_path
):
    """Two commands, an HTTP trigger and the scheduler, all connected, released at once."""
    settings.CLOUD_DEPLOY = True
    make_due(2000)
    env = {"CLOUD_DEPLOY": "true", "EMAIL_URL": smtp_server.url}
    start = StartLine(tmp_path)
    results: list = []

    commands = [start.manage("process_scheduled_emails", "--json", **env) for _ in range(2)]
    start.thread_party()
    http = in_thread(
        lambda: Client().post("/api/emails/process-scheduled", **auth_header).json(),
        results,
        start.wait,
    )
    start.thread_party()
    scheduler = in_thread(
        lambda: run_task("scheduled_emails", "scheduler").body(), results, start.wait
    )
    start.release()
    for command in commands:
        stdout, stderr = command.communicate(timeout=300)
        assert command.returncode == 0, stderr
        results.append(json.loads(stdout))
    http.join()
    scheduler.join()

    received = smtp_server.received()
    assert len(received) == 2000
    assert set(received.values()) == {1}
    assert statuses() == {"sent": 2000}
    assert all(body["success"] for body in results)
    assert sum(body.get("sent", 0) for body in results) == 2000


def test_the_claim_alone_keeps_runners_apart_without_the_task_lock(
    transactional_db, smtp_server, settings
):
    """The service called directly by several threads, no single-flight lock in front."""
    settings.SCHEDULED_EMAILS_BATCH_SIZE = 25
    make_due(600)
    start = threading.Barrier(6)
    results: list = []

    threads = [in_thread(process_scheduled_emails, results, start.wait) for _ in range(6)]
    for thread in threads:
        thread.join()

    assert sum(result["sent"] for result in results) == 600
    assert set(smtp_server.received().values()) == {1}
    assert len(smtp_server.received()) == 600
    assert statuses() == {"sent": 600}


def test_concurrent_claims_are_disjoint(transactional_db):
    make_due(400)
    from django.utils import timezone

    start = threading.Barrier(8)
    results: list = []

    def claim_all() -> list:
        taken = []
        while batch := claims.claim(10, timezone.now()):
            taken.extend(email.pk for email in batch)
        return taken

    threads = [in_thread(claim_all, results, start.wait) for _ in range(8)]
    for thread in threads:
        thread.join()

    taken = Counter(pk for result in results for pk in result)
    assert len(taken) == 400 and set(taken.values()) == {1}
    assert ScheduledEmail.objects.filter(status="sending", attempts=1).count() == 400
