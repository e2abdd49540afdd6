"""A real SMTP server on loopback (aiosmtpd) for the email tests, and its fixtures."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections import Counter
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Recorder:
    """An aiosmtpd handler that keeps every message; `delay` slows each DATA down and
    `reject` lists recipients answered with a permanent failure; `before_reply` lets a
    test break something while a message is in flight."""

    def __init__(self, delay: float = 0.0, reject: tuple[str, ...] = ()) -> None:
        self.delay = delay
        self.reject = set(reject)
        self.before_reply = None  # called with the message count before answering 250
        self.messages: list[EmailMessage] = []
        self._lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.reject:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        message = message_from_bytes(envelope.content, policy=policy.default)
        with self._lock:
            self.messages.append(message)
            count = len(self.messages)
        if self.before_reply is not None:
            self.before_reply(count)
        return "250 Message accepted"


class SmtpServer:
    def __init__(
        self, port: int | None = None, recorder: Recorder | None = None, **handler_options
    ) -> None:
        self.port = port or free_port()
        self.recorder = recorder or Recorder(**handler_options)
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def messages(self) -> list[EmailMessage]:
        return list(self.recorder.messages)

    def received(self) -> Counter:
        """How many messages each recipient got."""
        return Counter(str(message["To"]) for message in self.messages)

    def start(self) -> SmtpServer:
        self._controller = Controller(self.recorder, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def point(self, settings) -> None:
        """Send this test's mail (in this process) to this server."""
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST = "127.0.0.1"
        settings.EMAIL_PORT = self.port
        settings.EMAIL_HOST_USER = ""
        settings.EMAIL_HOST_PASSWORD = ""
        settings.EMAIL_USE_TLS = False
        settings.EMAIL_USE_SSL = False
        settings.EMAIL_TIMEOUT = 10


def serve(settings, **options):
    """For a fixture: `yield from serve(settings, ...)` runs a server for one test."""
    server = SmtpServer(**options).start()
    server.point(settings)
    yield server
    server.stop()


@pytest.fixture
def smtp_server(settings):
    yield from serve(settings)


@pytest.fixture
def slow_smtp_server(settings):
    yield from serve(settings, delay=0.05)


@pytest.fixture
def smtp_down(settings):
    """A port nothing listens on (yet): start() it to bring the server 'back'."""
    server = SmtpServer()
    server.point(settings)
    yield server
    server.stop()
