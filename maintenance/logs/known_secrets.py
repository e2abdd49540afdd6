"""The secret values this deployment holds, each with the variable an operator set it by.

One list for two guards: the log filter removes every value from every line, and
`manage.py crontab add` refuses a `CRONTAB_COMMAND_PREFIX` that would write one into the
crontab (naming the variable, never the value). Besides the settings declared `secret`,
it takes any setting, anymail entry or environment variable whose name ends in `_SECRET`,
`_KEY`, `_TOKEN` or `_PASSWORD` (boto3 reads `AWS_SECRET_ACCESS_KEY` straight from the
environment), the keys rotated into `SECRET_KEY_FALLBACKS`, the password halves of
`ANYMAIL_WEBHOOK_SECRET` and of the database and email URLs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from typing import Any

from django.conf import settings

from maintenance.conf import declared_settings

# A log line loses a secret of this length or longer wherever it appears. Shorter values
# (one or two characters) would blank out ordinary letters and digits in every line, so
# redaction leaves them; the system checks flag a short secret. A six-character one is
# redacted.
MIN_REDACTED_LENGTH = 3
# A value found only by its variable's name ending (`*_KEY`, `*_TOKEN`) counts from this
# length: a shorter one (`SOME_KEY=true`) is too likely an ordinary word.
MIN_GUESSED_LENGTH = 8
SECRET_NAME = re.compile(r"[A-Z0-9_]*_(?:SECRET|KEY|TOKEN|PASSWORD)")
# anymail's own names for these ESPs carry no ANYMAIL_ prefix (pluggedin/settings.py).
UNPREFIXED_ESPS = ("POSTMARK_", "AMAZON_SES_", "RESEND_", "MAILGUN_")
# Settings whose variable is another one: the operator set the URL, not the password.
VARIABLE_OF = {"EMAIL_HOST_PASSWORD": "EMAIL_URL"}
WEBHOOK_SECRET = "ANYMAIL_WEBHOOK_SECRET"  # noqa: S105 - a variable name


def named_secrets() -> list[tuple[str, str]]:
    """(variable, value) for every secret value, longest value first, so a value is removed
    before a part of it. A setting declared `secret` (and a URL's password) counts
    whatever its length: a short CRON_SECRET is still a secret the crontab must not hold.
    A value found only by its name's ending counts from MIN_GUESSED_LENGTH."""
    declared = _declared_secrets()
    explicit = declared | {"DATABASE_URL", *VARIABLE_OF.values()}
    found = {
        (variable, value)
        for variable, value in _candidates(declared)
        if isinstance(value, str)
        and value
        and (variable in explicit or len(value) >= MIN_GUESSED_LENGTH)
    }
    return sorted(found, key=lambda pair: (-len(pair[1]), pair[0]))


def secret_values() -> list[str]:
    """Every secret value long enough to redact, longest first (what the log filter
    removes)."""
    values = (value for _, value in named_secrets() if len(value) >= MIN_REDACTED_LENGTH)
    return list(dict.fromkeys(values))


def _declared_secrets() -> set[str]:
    return {name for name, setting in declared_settings().items() if setting.secret}


def _candidates(declared: set[str]) -> Iterator[tuple[str, Any]]:
    for name in dir(settings):
        if name in declared or SECRET_NAME.fullmatch(name):
            yield VARIABLE_OF.get(name, name), getattr(settings, name, None)
    for key, value in _mapping(getattr(settings, "ANYMAIL", None)).items():
        variable = key if key.startswith(UNPREFIXED_ESPS) else f"ANYMAIL_{key}"
        if variable in declared or SECRET_NAME.fullmatch(variable):
            yield variable, value
    for name, value in os.environ.items():
        if SECRET_NAME.fullmatch(name):
            yield name, value
    for key in getattr(settings, "SECRET_KEY_FALLBACKS", None) or []:
        yield "SECRET_KEY_FALLBACKS", key
    yield from _webhook_passwords()
    yield "DATABASE_URL", _mapping(settings.DATABASES.get("default")).get("PASSWORD")


def _webhook_passwords() -> Iterator[tuple[str, str]]:
    """The password half of `user:password`: a webhook request's basic auth carries it
    alone (base64 aside), and a log line may too."""
    anymail = _mapping(getattr(settings, "ANYMAIL", None))
    for value in (getattr(settings, WEBHOOK_SECRET, None), anymail.get("WEBHOOK_SECRET")):
        if isinstance(value, str) and ":" in value:
            yield WEBHOOK_SECRET, value.partition(":")[2]


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
