"""Sentry Crons check-ins, sent by the real sentry-sdk client to a local HTTP server that
plays Sentry's envelope ingest endpoint and decodes what it receives."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sentry_sdk

from maintenance.runs.runner import run_task
from tests.factories import fake_task, held_by
from tests.processes import free_port, run_manage, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


class SentryIngest(ThreadingHTTPServer):
    """`POST /api/<project>/envelope/`: keeps every check-in item, in arrival order."""

    daemon_threads = True

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__(("127.0.0.1", 0), EnvelopeHandler)
        self.delay = delay
        self.check_ins: list[dict] = []
        self.paths: list[str] = []

    @property
    def dsn(self) -> str:
        return f"http://key@127.0.0.1:{self.server_address[1]}/1"


class EnvelopeHandler(BaseHTTPRequestHandler):
    server: SentryIngest

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        time.sleep(self.server.delay)
        self.server.paths.append(self.path)
        self.server.check_ins.extend(
            payload for kind, payload in envelope_items(body) if kind == "check_in"
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args) -> None:
        pass


def envelope_items(body: bytes) -> Iterator[tuple[str, dict]]:
    """(type, payload) of each item: a header line, then per item a header line and a
    payload of `length` bytes (or up to the next newline)."""
    _, _, rest = body.partition(b"\n")
    while rest.strip():
        raw_header, _, rest = rest.partition(b"\n")
        header = json.loads(raw_header)
        if "length" in header:
            payload, rest = rest[: header["length"]], rest[header["length"] + 1 :]
        else:
            payload, _, rest = rest.partition(b"\n")
        yield header["type"], json.loads(payload)


def serve(server: SentryIngest) -> Iterator[SentryIngest]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def ingest() -> Iterator[SentryIngest]:
    yield from serve(SentryIngest())


@pytest.fixture
def slow_ingest() -> Iterator[SentryIngest]:
    yield from serve(SentryIngest(delay=3.0))


def sentry_on(dsn: str) -> Iterator[None]:
    """The SDK initialised in this process as with SENTRY_DSN (integrations aside, which
    would outlive the test), and switched off again afterwards."""
    sentry_sdk.init(dsn=dsn, default_integrations=False, auto_enabling_integrations=False)
    yield
    sentry_sdk.get_client().close(timeout=1)
    sentry_sdk.get_global_scope().set_client(None)


@pytest.fixture
def sentry(ingest) -> Iterator[SentryIngest]:
    yield from (ingest for _ in sentry_on(ingest.dsn))


def received(ingest: SentryIngest, count: int) -> list[dict]:
    sentry_sdk.flush(timeout=5)
    return wait_for(lambda: len(ingest.check_ins) >= count and ingest.check_ins, 10) or []


def test_a_pkce_cleanup_run_checks_in_in_progress_then_ok_with_its_spec_schedule(sentry):
    outcome = run_task("pkce_cleanup", "cron")

    started, finished = received(sentry, 2)

    assert sentry.paths[0] == "/api/1/envelope/"
    assert started["monitor_slug"] == finished["monitor_slug"] == "pkce_cleanup"
    assert started["status"] == "in_progress"
    assert finished["status"] == "ok"
    assert started["check_in_id"] == finished["check_in_id"]
    assert len(started["check_in_id"]) == 32
    assert started["monitor_config"] == {
        "schedule": {"type": "crontab", "value": "*/10 * * * *"},
        "checkin_margin": 10,
        "max_runtime": 30,
        "timezone": "UTC",
    }
    assert "monitor_config" not in finished
    assert finished["duration"] == pytest.approx(outcome.duration_ms / 1000)


def test_a_failed_run_checks_in_error(sentry, isolated_registry):
    def broken(**options):
        raise RuntimeError("boom")

    isolated_registry.register(fake_task("broken", func=broken))

    run_task("broken", "http")

    started, finished = received(sentry, 2)
    assert (started["status"], finished["status"]) == ("in_progress", "error")
    assert started["check_in_id"] == finished["check_in_id"]
    assert finished["monitor_slug"] == "broken"


def test_each_run_gets_its_own_check_in_id(demo, sentry):
    run_task("demo", "cron")
    run_task("demo", "command")  # manual: a scheduled one would find the tick served

    check_ins = received(sentry, 4)

    assert len({c["check_in_id"] for c in check_ins}) == 2


def test_the_monitor_follows_the_settings_in_force(sentry, settings, isolated_registry):
    from datetime import timedelta

    settings.DEMO_CRON = "7 */2 * * *"
    settings.SENTRY_CHECKIN_MARGIN_MINUTES = 4
    isolated_registry.register(fake_task(max_runtime=timedelta(seconds=90)))

    run_task("demo", "cron")

    started, _ = received(sentry, 2)
    assert started["monitor_config"] == {
        "schedule": {"type": "crontab", "value": "7 */2 * * *"},
        "checkin_margin": 4,
        "max_runtime": 2,
        "timezone": "UTC",
    }


def test_a_run_skipped_for_another_runner_sends_nothing(demo, sentry):
    held_by("demo", "web-2", 4242, lease=timedelta(minutes=1))

    outcome = run_task("demo", "scheduler")

    assert outcome.skipped and demo == []
    sentry_sdk.flush(timeout=5)
    time.sleep(0.5)
    assert sentry.check_ins == []


def test_gated_runs_send_nothing(sentry, isolated_registry):
    isolated_registry.register(fake_task("gated", gate=lambda: "CLOUD_DEPLOY is not true"))

    outcome = run_task("gated", "cron")

    assert outcome.gated
    sentry_sdk.flush(timeout=5)
    assert sentry.check_ins == []


def test_a_slow_sentry_does_not_slow_the_task(demo, slow_ingest):
    for _ in sentry_on(slow_ingest.dsn):
        started = time.monotonic()
        outcome = run_task("demo", "cron")
        elapsed = time.monotonic() - started

        assert outcome.success
        assert elapsed < 2.0  # each check-in takes the server 3 s to answer


def test_an_unreachable_sentry_does_not_fail_the_task(
    demo,
):
    dsn = f"http://key@127.0.0.1:{free_port()}/1"  # nothing listens there
    for _ in sentry_on(dsn):
        started = time.monotonic()
        outcome = run_task("demo", "cron")

        assert outcome.success
        assert time.monotonic() - started < 2.0


def test_without_sentry_dsn_nothing_is_sent(demo, ingest):
    outcome = run_task("demo", "cron")

    assert outcome.success
    time.sleep(0.5)
    assert ingest.check_ins == []


def test_sentry_dsn_in_the_environment_makes_a_command_check_in(ingest):
    result = run_manage("cleanup_pkce", SENTRY_DSN=ingest.dsn)

    assert result.returncode == 0, result.stderr
    check_ins = wait_for(lambda: len(ingest.check_ins) >= 2 and ingest.check_ins, 10)
    assert [c["status"] for c in check_ins] == ["in_progress", "ok"]
    assert check_ins[0]["monitor_slug"] == "pkce_cleanup"
    assert check_ins[0]["monitor_config"]["schedule"] == {
        "type": "crontab",
        "value": "*/10 * * * *",
    }


def test_the_monitor_max_runtime_is_the_deadline_in_force(sentry, settings, demo):
    settings.DEMO_MAX_RUNTIME_SECONDS = "121"

    run_task("demo", "cron")

    started, _ = received(sentry, 2)
    assert started["monitor_config"]["max_runtime"] == 3
