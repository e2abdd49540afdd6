"""django-post-office's `send_queued_mail` on the email benchmark's workload, as a peer.

`bench/emails_throughput.py --scenarios post_office` installs django-post-office into a
temporary virtualenv (never into the project's own) and runs this file there:

    python bench/post_office_peer.py DATABASE_URL SMTP_PORT MESSAGES_JSON ROUNDS

A bare Django project of its own (post_office's tables in a database the caller created):
each round queues the same messages (`post_office.mail.send`, priority `medium`: queued; not
timed), then times `send_queued_mail` with its defaults (one process of 5 threads,
batches of 100) sending them to the caller's SMTP server, prints `{"seconds": ...}` and
waits for a line on stdin (the caller counts the deliveries meanwhile).
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit


def configure(database_url: str, smtp_port: int) -> None:
    import django
    from django.conf import settings

    url = urlsplit(database_url)
    settings.configure(
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "post_office"],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": url.path.lstrip("/"),
                "USER": url.username or "postgres",
                "HOST": url.hostname or "127.0.0.1",
                "PORT": url.port or 5432,
            }
        },
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=smtp_port,
        EMAIL_TIMEOUT=20,
        POST_OFFICE={"DEFAULT_PRIORITY": "medium"},
        TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates"}],
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    )
    django.setup()


def queue(messages: list[dict]) -> None:
    from post_office import mail
    from post_office.models import Email

    Email.objects.all().delete()
    for message in messages:
        mail.send(
            recipients=[message["to"]],
            sender=message["from"],
            subject=message["subject"],
            message=message["text"],
            html_message=message["html"],
            headers=message["headers"],
            priority="medium",  # queued, sent by send_queued_mail
        )


def main() -> None:
    database_url, port, messages_file, rounds = sys.argv[1:5]
    configure(database_url, int(port))
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    logging.getLogger("post_office").setLevel(logging.WARNING)  # no line per batch
    messages = json.loads(Path(messages_file).read_text())
    lockfile = str(Path(tempfile.mkdtemp()) / "post_office")
    for _ in range(int(rounds)):
        queue(messages)
        started = time.perf_counter()
        call_command("send_queued_mail", lockfile=lockfile, log_level=1)
        print(json.dumps({"seconds": time.perf_counter() - started}), flush=True)
        sys.stdin.readline()


if __name__ == "__main__":
    main()
