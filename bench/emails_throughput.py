"""Benchmark: onboarding email throughput vs a bare SMTP loop, side by side in one run.

    .venv/bin/python bench/emails_throughput.py            # PostgreSQL (default)
    .venv/bin/python bench/emails_throughput.py --sqlite   # embedded SQLite file instead
    .venv/bin/python bench/emails_throughput.py --emails 1000 --rounds 3   # a quick look

5,000 due welcome emails go to a local aiosmtpd server on loopback, two ways:
- baseline: the same messages, composed beforehand, sent in a bare loop over one Django
  SMTP connection (no database at all);
- ours: `process_scheduled_emails()`, which claims rows, composes each message from its
  templates, sends over one connection per batch and records every outcome in the database.
Each round runs both back to back and takes their ratio; the median ratio over the rounds
is the figure (bar: >= 0.7x). Pairing the two in each round keeps the comparison fair on
a shared machine, where load comes and goes between rounds.

On PostgreSQL it creates and finally drops its own database `pluggedin_bench_emails` at
127.0.0.1:5432 as user postgres (override with BENCH_POSTGRES_URL, pointing at a database
name it may create and drop). With --sqlite it uses a temporary file.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/pluggedin_bench_emails"


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--emails", type=int, default=5000, help="due emails per round")
    parser.add_argument("--rounds", type=int, default=11, help="rounds; the median ratio counts")
    parser.add_argument("--sqlite", action="store_true", help="use SQLite instead of PostgreSQL")
    return parser.parse_args()


def configure(database_url: str) -> None:
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "pluggedin.settings",
            "PLUGGEDIN_ENV_FILE": "",
            "SECRET_KEY": "bench-secret-key-not-for-production-0123456789",
            "DATABASE_URL": database_url,
            "IN_PROCESS_SCHEDULER": "false",
            "CLOUD_DEPLOY": "true",
            "LOG_LEVEL": "WARNING",
        }
    )
    import django

    django.setup()


def postgres_admin(url: str, sql: str) -> None:
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(sql.format(name=name))


SINK = """
import sys, time
from aiosmtpd.controller import Controller

class Sink:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"

controller = Controller(Sink(), hostname="127.0.0.1", port=int(sys.argv[1]))
controller.start()
print("ready", flush=True)
sys.stdin.read()
controller.stop()
"""


def start_sink(port: int) -> subprocess.Popen:
    """The SMTP server in its own process, as a real one would be: it does not compete
    with the code under test for this interpreter's GIL."""
    sink = subprocess.Popen(
        [sys.executable, "-c", SINK, str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    if sink.stdout.readline().strip() != "ready":
        raise SystemExit("the SMTP sink did not start")
    return sink


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def seed(count: int) -> None:
    from django.contrib.auth import get_user_model

    User = get_user_model()
    User.objects.bulk_create(
        User(username=f"bench{i}", email=f"bench{i}@example.test", first_name=f"B{i}")
        for i in range(count)
    )
    fresh_rows()


def fresh_rows() -> None:
    """A new due welcome per user, as sign-ups leave them: rows inserted once and sent once.
    (Resetting sent rows in place instead piles dead row versions under the claim's index
    round after round, and the benchmark would measure bloat, not sending.)"""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from emails.models import ScheduledEmail

    ScheduledEmail.objects.all().delete()
    due = timezone.now()
    ScheduledEmail.objects.bulk_create(
        (
            ScheduledEmail(user=user, email_type="welcome", scheduled_for=due)
            for user in get_user_model().objects.all()
        ),
        batch_size=1000,
    )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM ANALYZE {ScheduledEmail._meta.db_table}")
            cursor.execute("CHECKPOINT")  # the reload's writes are not billed to the run


def prepared_messages() -> list:
    from emails.models import ScheduledEmail
    from emails.outbox.compose import compose

    rows = ScheduledEmail.objects.select_related("user").order_by("scheduled_for")
    return [compose(row) for row in rows]


def bare_loop(messages: list) -> float:
    from django.core.mail import get_connection

    started = time.perf_counter()
    connection = get_connection(fail_silently=False)
    connection.open()
    for message in messages:
        connection.send_messages([message])
    connection.close()
    return time.perf_counter() - started


def ours(expected: int) -> float:
    from emails.outbox import process_scheduled_emails

    fresh_rows()
    started = time.perf_counter()
    result = process_scheduled_emails()
    elapsed = time.perf_counter() - started
    if result["sent"] != expected:
        raise SystemExit(f"expected {expected} sent, got {result}")
    return elapsed


def run(args: argparse.Namespace) -> bool:
    """Print the rounds and the verdict; True when the median ratio meets the bar."""
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    seed(args.emails)
    messages = prepared_messages()
    ratios, bare_rates, our_rates = [], [], []
    for round_no in range(1, args.rounds + 1):
        bare = args.emails / bare_loop(messages)
        mine = args.emails / ours(args.emails)
        bare_rates.append(bare)
        our_rates.append(mine)
        ratios.append(mine / bare)
        print(
            f"round {round_no}: bare {bare:6.0f} msg/s  ours {mine:6.0f} msg/s  {mine / bare:.2f}x"
        )
    ratio = statistics.median(ratios)
    print(f"database: {connection.vendor}; emails: {args.emails}; SMTP: aiosmtpd on loopback")
    print(f"bare SMTP loop (one connection): {statistics.median(bare_rates):6.0f} msg/s (median)")
    print(f"process_scheduled_emails:        {statistics.median(our_rates):6.0f} msg/s (median)")
    verdict = "PASS" if ratio >= 0.7 else "FAIL"
    print(f"ratio ours/bare, median of rounds: {ratio:.2f}x (bar >= 0.70x): {verdict}")
    return ratio >= 0.7


def main() -> int:
    """0 when the benchmark printed PASS, 1 when it printed FAIL."""
    args = parse()
    if args.sqlite:
        folder = tempfile.TemporaryDirectory()
        url = f"sqlite:///{folder.name}/bench_emails.sqlite3"
    else:
        url = os.environ.get("BENCH_POSTGRES_URL", DEFAULT_PG)
        postgres_admin(url, 'DROP DATABASE IF EXISTS "{name}"')
        postgres_admin(url, 'CREATE DATABASE "{name}"')
    configure(url)

    port = free_port()
    from django.conf import settings

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    sink = start_sink(port)
    try:
        ok = run(args)
    finally:
        sink.communicate("")
        from django.db import connections

        connections.close_all()
        if not args.sqlite:
            postgres_admin(url, 'DROP DATABASE IF EXISTS "{name}"')
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
