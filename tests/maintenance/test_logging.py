"""Log events: stable names with key=value fields, `LOG_FORMAT=json`, and no secrets."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from maintenance.logs.log_events import log_event, render
from maintenance.logs.log_format import JsonFormatter
from maintenance.logs.redaction import RedactSecretsFilter
from maintenance.runs.runner import run_task
from tests.factories import fake_task
from tests.processes import run_manage

pytestmark = pytest.mark.django_db

SECRET = "cron-secret-value-that-must-never-be-logged-123"


def events(caplog) -> list[tuple[str, dict]]:
    return [(r.event, r.event_fields) for r in caplog.records if getattr(r, "event", None)]


def test_a_successful_run_logs_started_then_finished_with_counts(demo, caplog):
    caplog.set_level(logging.INFO, logger="maintenance")

    outcome = run_task("demo", "cron")

    assert events(caplog) == [
        (
            "maintenance.task.started",
            {"task": "demo", "trigger": "cron", "run": outcome.run_id},
        ),
        (
            "maintenance.task.finished",
            {
                "task": "demo",
                "trigger": "cron",
                "run": outcome.run_id,
                "duration_ms": outcome.duration_ms,
                "counts": {"count": 1},
            },
        ),
    ]
    assert caplog.records[-1].getMessage() == (
        f"maintenance.task.finished task=demo trigger=cron run={outcome.run_id}"
        f" duration_ms={outcome.duration_ms} count=1"
    )


def test_a_failure_logs_one_failed_event_with_the_error(caplog, isolated_registry):
    def broken(**options):
        raise ValueError("bad row 42")

    isolated_registry.register(fake_task(func=broken))
    caplog.set_level(logging.INFO, logger="maintenance")

    run_task("demo", "http")

    name, fields = events(caplog)[-1]
    assert name == "maintenance.task.failed"
    assert fields["error"] == "ValueError: bad row 42"
    assert caplog.records[-1].levelno == logging.ERROR
    assert 'error="ValueError: bad row 42"' in caplog.records[-1].getMessage()


def test_a_gated_task_logs_skipped_with_a_quoted_reason(caplog, isolated_registry):
    isolated_registry.register(fake_task(gate=lambda: "Set CLOUD_DEPLOY=true"))
    caplog.set_level(logging.INFO, logger="maintenance")

    run_task("demo", "scheduler")

    assert [name for name, _ in events(caplog)] == ["maintenance.task.skipped"]
    assert 'reason="Set CLOUD_DEPLOY=true"' in caplog.records[-1].getMessage()


def test_values_stay_one_token_for_grep_and_awk():
    line = render("e", {"a": None, "b": "two words", "c": 3, "d": {"x": 1}, "e": ""})

    assert line == 'e a=- b="two words" c=3 x=1 e=""'


@contextmanager
def json_lines(logger_name: str) -> Iterator[list[str]]:
    """Lines as the project's console handler writes them with LOG_FORMAT=json."""
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(self.format(record))

    handler = Keep()
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactSecretsFilter())
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def test_json_lines_carry_event_task_trigger_run_and_counts_as_fields():
    with json_lines("maintenance.t") as lines:
        log_event(
            logging.getLogger("maintenance.t"),
            logging.WARNING,
            "maintenance.task.finished",
            task="demo",
            trigger="cron",
            run=7,
            duration_ms=3,
            counts={"count": 2},
        )
    data = json.loads(lines[-1])

    assert data["event"] == "maintenance.task.finished"
    assert data["task"] == "demo" and data["trigger"] == "cron" and data["run"] == 7
    assert data["counts"] == {"count": 2}
    assert data["level"] == "WARNING" and data["timestamp"].endswith("Z")


@pytest.mark.django_db(transaction=True)
def test_log_format_json_prints_one_json_object_per_line():
    result = run_manage("cleanup_pkce", "-v", "2", LOG_FORMAT="json", CRON_SECRET=SECRET)

    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    assert [line["event"] for line in lines] == [
        "maintenance.task.started",
        "maintenance.task.finished",
    ]
    assert lines[1]["counts"] == {"deletedCount": 0}
    assert lines[1]["task"] == "pkce_cleanup" and lines[1]["trigger"] == "command"


def test_an_unknown_log_format_is_refused_with_a_clear_message():
    result = run_manage("check", LOG_FORMAT="xml")

    assert result.returncode == 1
    assert "LOG_FORMAT must be 'plain' or 'json'" in result.stderr


@pytest.fixture
def secrets(settings):
    settings.CRON_SECRET = SECRET
    settings.EMAIL_HOST_PASSWORD = "smtp-password-hunter2"
    return [SECRET, "smtp-password-hunter2", settings.SECRET_KEY]


@pytest.fixture
def console_output():
    """What the project's configured console handler (settings.LOGGING) writes."""
    (console,) = [h for h in logging.getLogger().handlers if h.name == "console"]
    stream = io.StringIO()
    previous = console.setStream(stream)
    yield stream
    console.setStream(previous)


def test_secrets_never_reach_the_configured_console_handler(secrets, console_output):
    logger = logging.getLogger("maintenance.test")
    logger.error("settings: %s %s %s", *secrets)
    logger.error("request headers {'Authorization': 'Bearer %s'}", "some-other-token-xyz")
    logger.error("HTTP_AUTHORIZATION=Basic dXNlcjpwYXNz")
    logging.getLogger("django.request").error("smtp://mailer:p4ssw0rd@smtp.example.com:587")

    err = console_output.getvalue()
    for secret in [*secrets, "some-other-token-xyz", "dXNlcjpwYXNz", "p4ssw0rd"]:
        assert secret not in err
    assert err.count("[redacted]") >= 6


def test_a_short_secret_is_redacted_too(settings, console_output):
    settings.CRON_SECRET = "abc123"  # W002 warns of it; until it is replaced, logs hide it

    logging.getLogger("maintenance.test").error("curl -H 'X-Cron-Secret: abc123'")

    assert "abc123" not in console_output.getvalue()
    assert "[redacted]" in console_output.getvalue()


def test_secrets_in_a_failing_task_error_and_traceback_are_redacted(secrets, isolated_registry):
    def leaky(**options):
        raise RuntimeError(f"login failed with {SECRET}")

    isolated_registry.register(fake_task(func=leaky))
    with json_lines("maintenance") as records:
        run_task("demo", "command")
        try:
            raise RuntimeError(f"again {SECRET}")
        except RuntimeError:
            logging.getLogger("maintenance.test").exception("oops")

    text = "\n".join(records)
    assert SECRET not in text
    failed = json.loads(records[-2])
    assert failed["event"] == "maintenance.task.failed"
    assert failed["error"] == "RuntimeError: login failed with [redacted]"
    assert "again [redacted]" in json.loads(records[-1])["exception"]


def test_a_secret_in_an_exception_never_reaches_the_run_log_or_the_body(secrets, isolated_registry):
    from maintenance.models import TaskRun

    def leaky(**options):
        raise RuntimeError(f"connect failed: password={SECRET}")

    isolated_registry.register(fake_task(func=leaky))

    outcome = run_task("demo", "http")

    assert SECRET not in TaskRun.objects.get(pk=outcome.run_id).error
    assert SECRET not in json.dumps(outcome.body(debug=True))
    assert outcome.body()["error"] == "RuntimeError: connect failed: password=[redacted]"


AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # AWS's documented example key
WEBHOOK_PASSWORD = "w3bh00k-passw0rd-hunter2"
LEAKY_EVENT = """
import logging
from maintenance.logs.log_events import log_event
log_event(
    logging.getLogger("maintenance.test"), logging.ERROR, "maintenance.test.leak",
    hosts=["ok", ("{cron}", ["nested {aws}"])],
    attempts=[dict(auth="basic {password}")],
)
logging.getLogger("maintenance.test").error("boto said aws_secret_access_key = {other}")
"""


def test_json_log_lines_hold_no_secret_in_lists_nor_aws_or_webhook_passwords():
    """A real process with LOG_FORMAT=json: secrets inside (nested) list and tuple
    fields, the AWS secret key from the environment, a key of that shape labelled in a
    message, and the password half of ANYMAIL_WEBHOOK_SECRET are all redacted."""
    other_key = "AKIAOTHERKEYb/+0123456789abcdefghijklmno"
    code = LEAKY_EVENT.format(
        cron=SECRET, aws=AWS_SECRET, password=WEBHOOK_PASSWORD, other=other_key
    )

    result = run_manage(
        "shell",
        "-c",
        code,
        LOG_FORMAT="json",
        CRON_SECRET=SECRET,
        AWS_SECRET_ACCESS_KEY=AWS_SECRET,
        ANYMAIL_WEBHOOK_SECRET=f"hooks:{WEBHOOK_PASSWORD}",
    )

    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    event, message = lines
    assert event["hosts"] == ["ok", ["[redacted]", ["nested [redacted]"]]]
    assert event["attempts"] == [{"auth": "basic [redacted]"}]
    assert message["message"] == "boto said aws_secret_access_key = [redacted]"
    for secret in [SECRET, AWS_SECRET, WEBHOOK_PASSWORD, other_key]:
        assert secret not in result.stderr
