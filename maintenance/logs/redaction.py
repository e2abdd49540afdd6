"""A logging filter that keeps secrets out of every log line, whoever logs them.

Attached to the handlers in `LOGGING`, so it sees records from every logger (Django's own
included). It removes the values of the secret settings wherever they appear, Bearer
tokens and Authorization headers, and passwords in URLs, from the message, the event
fields and the formatted traceback.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

from django.conf import settings

from maintenance.conf import declared_settings

REDACTED = "[redacted]"
# Shorter values are too likely to be ordinary words; the system checks flag short secrets.
MIN_SECRET_LENGTH = 8
PATTERNS = [
    (re.compile(r"(?i)\b(bearer)\s+[^\s\"',;]+"), rf"\1 {REDACTED}"),
    (
        re.compile(
            r"(?i)\b((?:http_)?authorization['\"]?\s*[:=]\s*['\"]?)"
            r"(?!bearer\b)(?:[a-z]+\s+)?[^\s\"',;]+"
        ),
        rf"\1{REDACTED}",
    ),
    (re.compile(r"(://[^/\s:@]+:)[^@\s/]+@"), rf"\1{REDACTED}@"),
]


def secret_values() -> list[str]:
    """The values of every setting declared `secret` (maintenance/conf.py and each app's
    table), as a Django setting or as an entry of ANYMAIL (ANYMAIL_<NAME> is ANYMAIL["<NAME>"],
    an ESP's own names are themselves), and the database password."""
    names = [name for name, setting in declared_settings().items() if setting.secret]
    anymail = getattr(settings, "ANYMAIL", None) or {}
    values = [getattr(settings, name, None) for name in names]
    values.extend(anymail.get(name.removeprefix("ANYMAIL_")) for name in names)
    database = settings.DATABASES.get("default", {})
    values.append(database.get("PASSWORD"))
    found = {v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET_LENGTH}
    return sorted(found, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    for secret in secret_values() if secrets is None else secrets:
        text = text.replace(secret, REDACTED)
    for pattern, replacement in PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_value(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {k: _redact_value(v, secrets) for k, v in value.items()}
    return value


class RedactSecretsFilter(logging.Filter):
    """Rewrites the record in place and lets it through."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = secret_values()
        try:
            message = record.getMessage()
        except Exception:  # a malformed %-format: keep the raw text, still redacted
            message = f"{record.msg} {record.args}"
        record.msg, record.args = redact(message, secrets), ()
        fields = getattr(record, "event_fields", None)
        if fields:
            record.event_fields = _redact_value(dict(fields), secrets)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, secrets)
        return True
