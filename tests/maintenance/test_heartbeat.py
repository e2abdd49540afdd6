"""Heartbeat pings to a real HTTP server on loopback, healthchecks.io style."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from maintenance.models import TaskRun
from maintenance.runs.runner import run_task
from tests.factories import fake_task

pytestmark = pytest.mark.django_db


class Monitor(ThreadingHTTPServer):
    def __init__(self, status: int = 200) -> None:
        super().__init__(("127.0.0.1", 0), PingHandler)
        self.status = status
        self.paths: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/ping/abc-123"


class PingHandler(BaseHTTPRequestHandler):
    server: Monitor

    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        self.send_response(self.server.status)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def monitor() -> Iterator[Monitor]:
    yield from serve(Monitor())


@pytest.fixture
def broken_monitor() -> Iterator[Monitor]:
    yield from serve(Monitor(status=500))


def serve(server: Monitor) -> Iterator[Monitor]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_pkce_cleanup_run_pings_its_spec_heartbeat_url_start_then_success(monitor, settings):
    settings.PKCE_CLEANUP_HEARTBEAT_URL = monitor.url

    outcome = run_task("pkce_cleanup", "cron")

    assert outcome.success
    assert monitor.paths == ["/ping/abc-123/start", "/ping/abc-123"]


def test_a_failed_run_pings_start_then_fail(monitor, settings, isolated_registry):
    def broken(**options):
        raise RuntimeError("boom")

    isolated_registry.register(fake_task(func=broken))
    settings.MAINTENANCE_HEARTBEAT_URLS = {"demo": monitor.url + "/"}

    run_task("demo", "cron")

    assert monitor.paths == ["/ping/abc-123/start", "/ping/abc-123/fail"]


def test_a_gated_run_sends_no_ping(monitor, settings, isolated_registry):
    isolated_registry.register(fake_task(gate=lambda: "off here"))
    settings.MAINTENANCE_HEARTBEAT_URLS = {"demo": monitor.url}

    run_task("demo", "cron")

    assert monitor.paths == []


def test_a_monitor_answering_500_never_fails_the_task(demo, broken_monitor, settings, caplog):
    settings.MAINTENANCE_HEARTBEAT_URLS = {"demo": broken_monitor.url}
    caplog.set_level(logging.WARNING, logger="maintenance")

    outcome = run_task("demo", "cron")

    assert outcome.success
    assert TaskRun.objects.get(pk=outcome.run_id).status == "succeeded"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.event_fields["ping"] for r in warnings] == ["start", "success"]
    assert all("abc-123" not in r.getMessage() for r in warnings)  # the URL is not logged


def test_an_unreachable_monitor_never_fails_the_task(demo, settings, caplog):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    settings.MAINTENANCE_HEARTBEAT_URLS = {"demo": f"http://127.0.0.1:{closed_port}/ping"}
    caplog.set_level(logging.WARNING, logger="maintenance")

    outcome = run_task("demo", "cron")

    assert outcome.success
    events = [getattr(r, "event", None) for r in caplog.records]
    assert events.count("maintenance.heartbeat.failed") == 2


def test_no_url_means_no_ping(demo, monitor, settings):
    settings.MAINTENANCE_HEARTBEAT_URLS = {"other": monitor.url}

    run_task("demo", "cron")

    assert demo == [{}]
    assert monitor.paths == []
