"""The emails app's settings, with their defaults (see `maintenance/conf.py`)."""

from __future__ import annotations

from maintenance.conf import (
    AppSettings,
    Setting,
    one_of,
    positive_number,
    unset_or,
    web_url,
    whole_number,
)

# Each connection is also a database connection held for the run (PostgreSQL allows 100 by
# default, shared with the web workers).
MAX_CONNECTIONS = 32

email_settings = AppSettings(
    {
        "CLOUD_DEPLOY": Setting(
            False,
            "Onboarding emails are scheduled and sent only when true.",
            one_of(True, False),
            env=bool,
            cron=True,
        ),
        "ENABLE_WELCOME_EMAILS": Setting(
            True,
            "False schedules no onboarding emails at all.",
            one_of(True, False),
            env=bool,
            cron=True,
        ),
        "APP_URL": Setting(
            "http://localhost:8000",
            "Absolute base of the links in emails.",
            web_url,
            env=str,
            cron=True,
        ),
        "SCHEDULED_EMAILS_MAX_ATTEMPTS": Setting(
            5,
            "Attempts before an email is marked failed.",
            whole_number(1),
            env=int,
        ),
        "SCHEDULED_EMAILS_BACKOFF_SECONDS": Setting(
            300,
            "Delay before the first retry; doubles per attempt.",
            whole_number(0),
            env=int,
        ),
        "SCHEDULED_EMAILS_MAX_LATENESS_HOURS": Setting(
            48,
            "Emails overdue by more than this are cancelled.",
            whole_number(1),
            env=int,
        ),
        "SCHEDULED_EMAILS_LEASE_SECONDS": Setting(
            900,
            "How long a runner holds the emails it claimed.",
            whole_number(1),
            env=int,
        ),
        "SCHEDULED_EMAILS_BATCH_SIZE": Setting(
            100,
            "Emails claimed and sent per SMTP connection.",
            whole_number(1),
            env=int,
        ),
        "SCHEDULED_EMAILS_CONNECTIONS": Setting(
            8,
            "Parallel connections (SMTP, or ESP API sessions) one run sends over, each with"
            " its own database connection; 1 sends one message at a time.",
            whole_number(1, MAX_CONNECTIONS),
            env=int,
        ),
        "SCHEDULED_EMAILS_LIMIT": Setting(
            10_000, "Default --limit of a run.", whole_number(1), env=int
        ),
        "SCHEDULED_EMAILS_MAX_SECONDS": Setting(
            600.0,
            "Default --max-seconds of a run.",
            positive_number,
            env=float,
        ),
        "EMAIL_TIMEOUT": Setting(
            20.0,
            "Seconds an SMTP connection waits for the server at each step; the run's"
            " deadline is checked between messages, so a message in flight is bounded by this.",
            positive_number,
            env=float,
        ),
        "EMAIL_SEND_RATE": Setting(
            None,
            "Messages per second across all runners and hosts; None: unlimited.",
            unset_or(positive_number),
            env=float,
        ),
    }
)
