"""A logging filter that keeps secrets out of every log line, whoever logs them.

Attached to the handlers in `LOGGING`, so it sees records from every logger (Django's own
included). It removes the secret values (`known_secrets`) wherever they appear, Bearer
tokens and Authorization headers, passwords in URLs and labelled AWS secret access keys,
from the message, the event fields (inside dicts, lists and tuples, however nested) and
the formatted traceback.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

from maintenance.logs.known_secrets import secret_values

REDACTED = "[redacted]"
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
    # aws_secret_access_key = ..., AWS_SECRET_ACCESS_KEY=..., "SecretAccessKey": "..."
    (
        re.compile(
            r"(?i)\b((?:aws_?)?secret_?access_?key['\"]?\s*[:=]\s*['\"]?)[A-Za-z0-9/+=]{16,}"
        ),
        rf"\1{REDACTED}",
    ),
]


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
    if isinstance(value, list | tuple):  # a namedtuple comes back as a plain tuple
        items = [_redact_value(item, secrets) for item in value]
        return items if isinstance(value, list) else tuple(items)
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
