"""`EMAIL_SEND_RATE`: one pace for all runners, measured where it counts, at the server."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest
from django.db import connections

from emails.outbox import process_scheduled_emails
from tests.factories import make_due, statuses
from tests.processes import StartLine
from tests.smtp_server import Recorder, serve


class Clocked(Recorder):
    """Notes when each message's data arrived, on the server's clock."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[float] = []

    async def handle_DATA(self, server, session, envelope):
        self.arrivals.append(time.monotonic())
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def clocked_server(settings):
    yield from serve(settings, recorder=Clocked())


def busiest_second(arrivals: list[float]) -> int:
    """The most messages that arrived within any one second (a window of 1.0 s, both ends
    included)."""
    times = sorted(arrivals)
    return max(sum(1 for t in times[i:] if t - start <= 1.0) for i, start in enumerate(times))


def achieved_rate(arrivals: list[float]) -> float:
    times = sorted(arrivals)
    return (len(times) - 1) / (times[-1] - times[0])


SERVICE = (
    "import json; from emails.outbox import process_scheduled_emails; "
    "print(json.dumps(process_scheduled_emails()))"
)


@pytest.mark.postgres
@pytest.mark.slow
def test_four_concurrent_runners_together_keep_to_the_rate(
    transactional_db, clocked_server, tmp_path
):
    """Four processes each call the sending service directly (no run claim in front, as
    if sending ran in parallel), connected and released at one instant: together they
    stay within the rate and use it."""
    rate = 20
    make_due(160)
    env = {"EMAIL_URL": clocked_server.url, "EMAIL_SEND_RATE": str(rate), "LOG_LEVEL": "ERROR"}
    # one lane each, so the first runner does not claim everything before the others start
    # (lanes sharing the rate: tests/emails/test_lanes.py)
    env["SCHEDULED_EMAILS_CONNECTIONS"] = "1"

    start = StartLine(tmp_path)
    runners = [start.manage("shell", "-c", SERVICE, **env) for _ in range(4)]
    start.release()
    results = []
    for runner in runners:
        stdout, stderr = runner.communicate(timeout=120)
        assert runner.returncode == 0, stderr
        results.append(json.loads(stdout.strip().splitlines()[-1]))

    assert sum(result["sent"] for result in results) == 160
    assert sum(1 for result in results if result["sent"]) >= 2  # they really shared it
    assert set(clocked_server.received().values()) == {1}
    arrivals = clocked_server.recorder.arrivals
    assert busiest_second(arrivals) <= rate
    assert achieved_rate(arrivals) >= 0.9 * rate


def test_one_runner_keeps_to_the_rate_and_reaches_it(db, clocked_server, settings):
    settings.EMAIL_SEND_RATE = 5
    make_due(15)

    assert process_scheduled_emails()["sent"] == 15

    arrivals = clocked_server.recorder.arrivals
    assert busiest_second(arrivals) <= 5
    assert achieved_rate(arrivals) >= 4.5


def test_unset_means_unlimited(db, clocked_server):
    make_due(30)
    assert process_scheduled_emails()["sent"] == 30
    assert busiest_second(clocked_server.recorder.arrivals) > 20


@pytest.mark.postgres
@pytest.mark.slow
def test_a_runner_waiting_for_its_turn_does_not_outlive_its_lease(
    transactional_db, clocked_server, settings
):
    """12 emails at 2 a second take 6 s; the lease is 4 s. A runner holding all twelve
    would still be sending them when a second runner, starting at 4.5 s, finds their
    lease lapsed and sends them again. Instead the first holds no more than it can send
    within its lease and hands back what it could not."""
    settings.EMAIL_SEND_RATE = 2
    settings.SCHEDULED_EMAILS_LEASE_SECONDS = 4
    settings.SCHEDULED_EMAILS_BATCH_SIZE = 100
    make_due(12)
    results: list = []

    def runner(delay: float) -> None:
        try:
            time.sleep(delay)
            results.append(process_scheduled_emails())
        finally:
            connections.close_all()

    threads = [threading.Thread(target=runner, args=(delay,)) for delay in (0, 4.5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert Counter(clocked_server.received().values()) == {1: 12}
    assert statuses() == {"sent": 12}
    assert sum(result["sent"] for result in results) == 12
