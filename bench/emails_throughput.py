"""Benchmark: onboarding email throughput against bare loops over the same prepared
messages, side by side in one run.

    .venv/bin/python bench/emails_throughput.py            # every scenario, PostgreSQL
    .venv/bin/python bench/emails_throughput.py --sqlite   # embedded SQLite file instead
    .venv/bin/python bench/emails_throughput.py --scenarios smtp50,postmark50 --rounds 3

Scenarios (`--scenarios`, comma-separated):
- `instant`: 5,000 due welcome emails (`--emails`) to a local aiosmtpd server that answers
  at once; ours (`process_scheduled_emails()`, default settings) against a bare loop
  sending the same messages, composed beforehand, over one Django SMTP connection, no
  database at all (bar: >= 0.7x).
- `smtp50`: 360 due emails (`--latency-emails`) to an aiosmtpd server that answers each
  message after 50 ms, as relays do: one bare connection, N bare connections in parallel
  (N = SCHEDULED_EMAILS_CONNECTIONS, 8 by default), and ours with default settings
  (bar: >= 0.6x the N-connection floor).
- `postmark50`: the same through anymail's Postmark backend, pointed (POSTMARK_API_URL) at
  a loopback HTTP server that answers Postmark's JSON after 50 ms (bar: >= 0.6x).
- `post_office`: a peer, no bar: django-post-office's `send_queued_mail` (its defaults:
  one process of 5 threads) on the `smtp50` workload (`bench/post_office_peer.py`). The
  benchmark installs django-post-office from PyPI into a temporary virtualenv that also
  sees this one's packages; when that fails (no network) it says so and skips it.
  PostgreSQL only.

The servers run in their own processes, as real ones would (they do not compete with the
code under test for this interpreter's GIL), and count what each recipient received:
every phase of every round must deliver each email exactly once, and the duplicates and
the missing are printed. Each round runs the phases back to back and takes the ratio; the
median ratio over the rounds is the figure (`--rounds`). Pairing them in each round keeps
the comparison fair on a shared machine, where load comes and goes between rounds. Exits
1 when a bar is missed or an email is duplicated or lost.

On PostgreSQL it creates and finally drops its own database `pluggedin_bench_emails` at
127.0.0.1:5432 as user postgres (override with BENCH_POSTGRES_URL, pointing at a database
name it may create and drop). With --sqlite it uses a temporary file (one lane: SQLite
has no SKIP LOCKED).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/pluggedin_bench_emails"
SCENARIOS = ("instant", "smtp50", "postmark50", "post_office")
LATENCY = 0.05  # seconds a slow server takes per message
INSTANT_BAR = 0.7  # ours / one bare connection, server answering at once
LATENCY_BAR = 0.6  # ours / N bare connections, server taking LATENCY per message
POSTMARK_BACKEND = "anymail.backends.postmark.EmailBackend"
POST_OFFICE = "django-post-office==3.12.0"
MEDIANS: dict[str, float] = {}  # msg/s of ours per scenario, for the peer's comparison


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--emails", type=int, default=5000, help="due emails, instant server")
    parser.add_argument("--latency-emails", type=int, default=360, help="due emails, 50 ms servers")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the median ratio counts")
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated, of {', '.join(SCENARIOS)}",
    )
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


# A mail server in its own process: `smtp` (aiosmtpd) or `postmark` (Postmark's send API
# over HTTP/1.1 keep-alive), answering each message after a delay. Each line on its stdin
# asks for the count of messages per recipient since the last ask, as one JSON line.
SERVER = """
import asyncio, json, sys, threading, time, uuid
from collections import Counter

kind, port, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
counts, lock = Counter(), threading.Lock()

if kind == "smtp":
    from aiosmtpd.controller import Controller

    class Sink:
        async def handle_DATA(self, server, session, envelope):
            if delay:
                await asyncio.sleep(delay)
            with lock:
                counts.update(envelope.rcpt_tos)
            return "250 OK"

    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    stop = controller.stop
else:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Postmark(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body leave at once, no delayed ACK

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            time.sleep(delay)
            with lock:
                counts[body["To"]] += 1
            reply = json.dumps({"To": body["To"], "SubmittedAt": "2026-01-01T00:00:00Z",
                                "MessageID": str(uuid.uuid4()), "ErrorCode": 0,
                                "Message": "OK"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args):
            pass

    ThreadingHTTPServer.request_queue_size = 128
    httpd = ThreadingHTTPServer(("127.0.0.1", port), Postmark)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    stop = httpd.shutdown

print("ready", flush=True)
for _ in sys.stdin:
    with lock:
        print(json.dumps(counts), flush=True)
        counts.clear()
stop()
"""


class Server:
    """A mail server process on a free loopback port; `tally()` counts what it received."""

    def __init__(self, kind: str, delay: float) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVER, kind, str(self.port), str(delay)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        if self.process.stdout.readline().strip() != "ready":
            raise SystemExit(f"the {kind} server did not start")

    def tally(self) -> Counter:
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        return Counter(json.loads(self.process.stdout.readline()))

    def close(self) -> None:
        self.process.communicate("")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def point_at_smtp(port: int) -> None:
    from django.conf import settings

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False


def point_at_postmark(port: int) -> None:
    from django.conf import settings

    settings.EMAIL_BACKEND = POSTMARK_BACKEND
    settings.ANYMAIL = {
        "POSTMARK_SERVER_TOKEN": "bench-token",
        "POSTMARK_API_URL": f"http://127.0.0.1:{port}/",
    }


def seed(count: int) -> None:
    from django.contrib.auth import get_user_model

    User = get_user_model()
    User.objects.bulk_create(
        User(username=f"bench{i}", email=f"bench{i}@example.test", first_name=f"B{i}")
        for i in range(count)
    )


def fresh_rows(count: int) -> None:
    """A new due welcome for each of the first `count` users, as sign-ups leave them: rows
    inserted once and sent once. (Resetting sent rows in place instead piles dead row
    versions under the claim's index round after round, and the benchmark would measure
    bloat, not sending.)"""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from emails.models import ScheduledEmail

    ScheduledEmail.objects.all().delete()
    due = timezone.now()
    users = get_user_model().objects.order_by("pk")[:count]
    ScheduledEmail.objects.bulk_create(
        (ScheduledEmail(user=user, email_type="welcome", scheduled_for=due) for user in users),
        batch_size=1000,
    )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM ANALYZE {ScheduledEmail._meta.db_table}")
            cursor.execute("CHECKPOINT")  # the reload's writes are not billed to the run


def prepared_messages(count: int) -> list:
    from emails.models import ScheduledEmail
    from emails.outbox.compose import compose

    fresh_rows(count)
    rows = ScheduledEmail.objects.select_related("user").order_by("scheduled_for")
    return [compose(row) for row in rows]


def bare_connections(messages: list, connections: int) -> float:
    """Seconds to send `messages`, split evenly, over `connections` connections at once,
    each a Django email backend sending one message after the other."""
    from django.core.mail import get_connection

    def send(share: list) -> None:
        backend = get_connection(fail_silently=False)
        backend.open()
        for message in share:
            backend.send_messages([message])
        backend.close()

    shares = [messages[lane::connections] for lane in range(connections)]
    threads = [threading.Thread(target=send, args=(share,)) for share in shares]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def ours(count: int) -> float:
    from emails.outbox import process_scheduled_emails

    fresh_rows(count)
    started = time.perf_counter()
    result = process_scheduled_emails()
    elapsed = time.perf_counter() - started
    if result["sent"] != count:
        raise SystemExit(f"expected {count} sent, got {result}")
    return elapsed


class Deliveries:
    """Whether each phase delivered every email exactly once, across rounds."""

    def __init__(self, server: Server, expected: set[str]) -> None:
        self.server = server
        self.expected = expected
        self.duplicates: Counter = Counter()
        self.missing: Counter = Counter()

    def check(self, phase: str) -> None:
        received = self.server.tally()
        self.duplicates[phase] += sum(count - 1 for count in received.values() if count > 1)
        self.missing[phase] += len(self.expected - set(received))

    @property
    def exact(self) -> bool:
        return not +self.duplicates and not +self.missing

    def report(self) -> str:
        phases = sorted(set(self.duplicates) | set(self.missing))
        figures = ", ".join(
            f"{phase} {self.duplicates[phase]}/{self.missing[phase]}" for phase in phases
        )
        return f"duplicates/missing over all rounds: {figures}"


def timed_phase(deliveries: Deliveries, phase: str, count: int, run) -> float:
    rate = count / run()
    deliveries.check(phase)
    return rate


def instant(args: argparse.Namespace) -> bool:
    """Ours against one bare connection, the server answering at once."""
    server = Server("smtp", 0.0)
    point_at_smtp(server.port)
    try:
        messages = prepared_messages(args.emails)
        deliveries = Deliveries(server, {message.to[0] for message in messages})
        bare_rates, our_rates, ratios = [], [], []
        for round_no in range(1, args.rounds + 1):
            bare = timed_phase(
                deliveries, "bare", args.emails, lambda: bare_connections(messages, 1)
            )
            mine = timed_phase(deliveries, "ours", args.emails, lambda: ours(args.emails))
            bare_rates.append(bare)
            our_rates.append(mine)
            ratios.append(mine / bare)
            print(
                f"  round {round_no}: bare {bare:6.0f} msg/s  ours {mine:6.0f} msg/s  "
                f"{mine / bare:.2f}x"
            )
    finally:
        server.close()
    ratio = statistics.median(ratios)
    passed = ratio >= INSTANT_BAR and deliveries.exact
    print(f"instant SMTP, {args.emails} emails:")
    print(f"  one bare connection: {statistics.median(bare_rates):6.0f} msg/s (median)")
    print(f"  ours, defaults:      {statistics.median(our_rates):6.0f} msg/s (median)")
    print(f"  {deliveries.report()}")
    print(f"  ratio ours/bare: {ratio:.2f}x (bar >= {INSTANT_BAR:.2f}x): {verdict(passed)}")
    return passed


def with_latency(args: argparse.Namespace, kind: str) -> bool:
    """Ours against one and N bare connections, the server taking LATENCY per message."""
    from emails.conf import email_settings

    lanes = email_settings.SCHEDULED_EMAILS_CONNECTIONS
    count = args.latency_emails
    server = Server(kind, LATENCY)
    (point_at_smtp if kind == "smtp" else point_at_postmark)(server.port)
    rates: dict[str, list[float]] = {"one": [], "floor": [], "ours": []}
    ratios = []
    try:
        messages = prepared_messages(count)
        deliveries = Deliveries(server, {message.to[0] for message in messages})
        for round_no in range(1, args.rounds + 1):
            one = timed_phase(deliveries, "one", count, lambda: bare_connections(messages, 1))
            floor = timed_phase(
                deliveries, f"{lanes} bare", count, lambda: bare_connections(messages, lanes)
            )
            mine = timed_phase(deliveries, "ours", count, lambda: ours(count))
            for name, rate in (("one", one), ("floor", floor), ("ours", mine)):
                rates[name].append(rate)
            ratios.append(mine / floor)
            print(
                f"  round {round_no}: one {one:5.1f}  {lanes} bare {floor:6.1f}  "
                f"ours {mine:6.1f} msg/s  {mine / floor:.2f}x"
            )
    finally:
        server.close()
    ratio = statistics.median(ratios)
    MEDIANS[kind] = statistics.median(rates["ours"])
    passed = ratio >= LATENCY_BAR and deliveries.exact
    label = "SMTP" if kind == "smtp" else "anymail Postmark backend over HTTP"
    print(f"{label}, {LATENCY * 1000:.0f} ms per message, {count} emails:")
    print(f"  one bare connection:      {statistics.median(rates['one']):6.1f} msg/s (median)")
    print(f"  {lanes} bare connections:      {statistics.median(rates['floor']):6.1f} msg/s")
    print(f"  ours, defaults ({lanes} lanes): {statistics.median(rates['ours']):6.1f} msg/s")
    print(f"  {deliveries.report()}")
    print(f"  ratio ours/{lanes} bare: {ratio:.2f}x (bar >= {LATENCY_BAR:.2f}x): {verdict(passed)}")
    return passed


def post_office(args: argparse.Namespace) -> bool:
    """django-post-office's `send_queued_mail` on the `smtp50` workload: figures, no bar."""
    from django.db import connection

    if connection.vendor != "postgresql":
        print("post_office: skipped (the peer runs on PostgreSQL only)")
        return True
    count = args.latency_emails
    with tempfile.TemporaryDirectory() as folder:
        python = peer_python(Path(folder))
        if python is None:
            return True
        url = os.environ.get("BENCH_POSTGRES_URL", DEFAULT_PG) + "_post_office"
        postgres_admin(url, 'DROP DATABASE IF EXISTS "{name}"')
        postgres_admin(url, 'CREATE DATABASE "{name}"')
        try:
            seconds, deliveries = run_peer(python, url, Path(folder) / "messages.json", args)
        finally:
            postgres_admin(url, 'DROP DATABASE IF EXISTS "{name}"')
    rate = count / statistics.median(seconds)
    print(f"django-post-office 3.12 send_queued_mail (5 threads), SMTP at 50 ms, {count} emails:")
    print(f"  {rate:6.1f} msg/s (median of {len(seconds)} rounds)")
    if "smtp" in MEDIANS:
        print(f"  ours (smtp50) / post_office: {MEDIANS['smtp'] / rate:.2f}x")
    print(f"  {deliveries.report()}")
    return deliveries.exact


def peer_python(folder: Path) -> Path | None:
    """A virtualenv in `folder` that sees this interpreter's packages (Django, psycopg) and
    adds django-post-office from PyPI; None, with the reason printed, when it cannot."""
    import site

    subprocess.run([sys.executable, "-m", "venv", str(folder / "venv")], check=True)
    python = folder / "venv" / "bin" / "python"
    paths = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    purelib = subprocess.check_output([python, "-c", paths], text=True).strip()
    Path(purelib, "benchmarked_project.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    install = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    done = subprocess.run([*install, POST_OFFICE], capture_output=True, text=True)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["pip failed"])[-1]
        print(f"post_office: skipped (could not install {POST_OFFICE}: {reason})")
        return None
    return python


def run_peer(python: Path, url: str, messages_file: Path, args: argparse.Namespace):
    """Round by round: the peer sends, then the server's tally is checked."""
    server = Server("smtp", LATENCY)
    try:
        messages = prepared_messages(args.latency_emails)
        messages_file.write_text(json.dumps([as_plain(message) for message in messages]))
        deliveries = Deliveries(server, {message.to[0] for message in messages})
        peer = subprocess.Popen(
            [
                python,
                ROOT / "bench" / "post_office_peer.py",
                url,
                str(server.port),
                str(messages_file),
                str(args.rounds),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        seconds = []
        for round_no in range(1, args.rounds + 1):
            line = peer.stdout.readline()
            if not line:
                raise SystemExit("the post_office peer stopped; see its output above")
            seconds.append(json.loads(line)["seconds"])
            deliveries.check("post_office")
            print(f"  round {round_no}: post_office {args.latency_emails / seconds[-1]:6.1f} msg/s")
            peer.stdin.write("\n")
            peer.stdin.flush()
        peer.communicate(timeout=60)
    finally:
        server.close()
    return seconds, deliveries


def as_plain(message) -> dict:
    """What post_office needs to queue the same message."""
    return {
        "to": message.to[0],
        "from": message.from_email,
        "subject": message.subject,
        "text": message.body,
        "html": message.alternatives[0][0],
        "headers": {k: v for k, v in message.extra_headers.items() if k != "Message-ID"},
    }


def verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def run(args: argparse.Namespace) -> bool:
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    seed(max(args.emails, args.latency_emails))
    print(f"database: {connection.vendor}; servers on loopback, each in its own process")
    chosen = args.scenarios.split(",")
    results = []
    for scenario in chosen:
        if scenario == "instant":
            results.append(instant(args))
        elif scenario in ("smtp50", "postmark50"):
            results.append(with_latency(args, scenario.removesuffix("50")))
        elif scenario == "post_office":
            results.append(post_office(args))
        else:
            raise SystemExit(f"unknown scenario {scenario!r}: choose from {SCENARIOS}")
    return all(results)


def main() -> None:
    args = parse()
    if args.sqlite:
        folder = tempfile.TemporaryDirectory()
        url = f"sqlite:///{folder.name}/bench_emails.sqlite3"
    else:
        url = os.environ.get("BENCH_POSTGRES_URL", DEFAULT_PG)
        postgres_admin(url, 'DROP DATABASE IF EXISTS "{name}"')
        postgres_admin(url, 'CREATE DATABASE "{name}"')
    configure(url)
    try:
        passed = run(args)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.sqlite:
            postgres_admin(url, 'DROP DATABASE IF EXISTS "{name}"')
    if not passed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
