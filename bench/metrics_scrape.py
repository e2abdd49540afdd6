"""Benchmark: the cost of a `/metrics` scrape, of the status endpoint and of
`maintenance_status` as the tables grow, on PostgreSQL.

Usage (from the project root; PostgreSQL must be running):

    .venv/bin/python bench/metrics_scrape.py [--sizes 2000000,10000000] [--emails 1000000]
        [--runs 1000000] [--scrapes 50] [--url postgres://postgres@127.0.0.1:5432/pluggedin_bench_metrics]

It creates the database named in --url (dropping a leftover one), migrates it with Django,
and drops it at the end. For each size it fills BOTH cleanup tables (`oauth_pkce_states`,
`mcp_oauth_sessions`) to that many rows each, half of them expired (the backlog a stalled
cleanup leaves, the worst case for counting), with `--emails` scheduled emails (70 % sent,
15 % pending in the future, 8 % due, 4 % failed, 3 % cancelled) and a run log of about
`--runs` rows over the 30 days of retention: every tick of each task's schedule taken by
one run and skipped by about 170 redundant triggers (a fleet's pods all firing), counted
into the tallies (what the hourly prune does). After VACUUM ANALYZE (what autovacuum
keeps up in production) it times, through Django's full request stack, `--scrapes` calls
each of `GET /metrics`, `GET /api/maintenance/status` and the
`maintenance_status` command, and reports p50 / p95 and the queries per call. For scale it
also times the exact `count(*)` of each backlog, which the bounded counts avoid.

Bar (issues 12 and 20): p95 of each under 50 ms at the largest size.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-metrics-token-0123456789abcdef0123"  # noqa: S105 - a throwaway database
BAR_MS = 50.0

CLEANUP_SQL = {
    "oauth_pkce_states": """
        INSERT INTO oauth_pkce_states (state, server_uuid, user_id, code_verifier, redirect_uri,
                                       integrity_hash, created_at, expires_at)
        SELECT 's' || lpad(i::text, 12, '0') || md5(i::text), md5((i %% 50)::text)::uuid,
               NULL, md5((i * 7)::text) || md5((i * 11)::text),
               'https://app.example.com/oauth/callback', md5((i * 13)::text) || md5((i * 17)::text),
               e - interval '10 minutes', e
        FROM (SELECT i, now() + (i - %(middle)s) * interval '1 ms' AS e
              FROM generate_series(%(first)s::int, %(last)s::int) AS i) AS g
    """,
    "mcp_oauth_sessions": """
        INSERT INTO mcp_oauth_sessions (state, server_uuid, profile_uuid, callback_url, provider,
                                        created_at, expires_at)
        SELECT 's' || lpad(i::text, 12, '0') || md5(i::text), md5((i %% 50)::text)::uuid,
               md5((i %% 500)::text)::uuid, 'https://app.example.com/mcp/callback', 'github',
               e - interval '15 minutes', e
        FROM (SELECT i, now() + (i - %(middle)s) * interval '1 ms' AS e
              FROM generate_series(%(first)s::int, %(last)s::int) AS i) AS g
    """,
}

USERS_SQL = """
INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email,
                       is_staff, is_active, date_joined)
SELECT '!', false, 'bench' || i, '', '', 'bench' || i || '@example.test', false, true, now()
FROM generate_series(1, %(users)s::int) AS i
"""

# Three emails per user; the status follows the row number: 70 % sent, 15 % pending in the
# future, 8 % due, 4 % failed, 3 % cancelled.
EMAILS_SQL = """
INSERT INTO scheduled_emails (id, user_id, email_type, scheduled_for, status, attempts,
                              last_error, sent_at, metadata, created_at)
SELECT md5(u.id::text || t.kind)::uuid, u.id, t.kind,
       CASE WHEN b.bucket BETWEEN 70 AND 84 THEN now() + interval '2 days'
            ELSE now() - interval '1 hour' END,
       CASE WHEN b.bucket < 70 THEN 'sent' WHEN b.bucket < 85 THEN 'pending'
            WHEN b.bucket < 93 THEN 'pending' WHEN b.bucket < 97 THEN 'failed'
            ELSE 'cancelled' END,
       0, '', NULL, '{}'::jsonb, now()
FROM auth_user u
CROSS JOIN (VALUES ('welcome'), ('day3'), ('day7')) AS t(kind)
CROSS JOIN LATERAL (SELECT (u.id * 3 + length(t.kind)) %% 100 AS bucket) AS b
WHERE u.username LIKE 'bench%%'
"""

# The run log of a fleet whose every pod fires each tick (scheduler, crontab, HTTP poller):
# per tick of each task's schedule over the 30 days of retention, one run that took it
# (succeeded; one tick in 50 failed) and %(per_tick)s - 1 redundant triggers that skipped it.
RUNS_SQL = """
INSERT INTO maintenance_task_runs (task, trigger, status, started_at, finished_at,
                                   duration_ms, result, error, host, pid, tick, late_ms,
                                   counted)
SELECT t.task, (ARRAY['scheduler', 'cron', 'http'])[1 + k %% 3],
       CASE WHEN k > 0 THEN 'skipped' WHEN n %% 50 = 7 THEN 'failed' ELSE 'succeeded' END,
       tk.tick + k * interval '2 ms', tk.tick + k * interval '2 ms' + interval '40 ms', 40,
       CASE WHEN k > 0 THEN '{"reason": "Skipped: tick already served"}'::jsonb
            ELSE '{"deletedCount": 3}'::jsonb END,
       '', 'host-' || (k %% 100), 1000 + k, tk.tick, 2 * k, false
FROM (VALUES ('pkce_cleanup', 600), ('oauth_session_cleanup', 3600),
             ('scheduled_emails', 3600)) AS t(task, gap)
CROSS JOIN LATERAL generate_series(0, 30 * 86400 / t.gap - 1) AS n
CROSS JOIN LATERAL (
    SELECT to_timestamp(floor(extract(epoch FROM now()) / t.gap) * t.gap)
           - n * t.gap * interval '1 second' AS tick
) AS tk
CROSS JOIN generate_series(0, %(per_tick)s::int - 1) AS k
"""
TICKS_IN_RETENTION = 30 * 86400 // 600 + 2 * 30 * 86400 // 3600

EXACT_COUNTS = {
    "expired_pkce_states": "SELECT count(*) FROM oauth_pkce_states WHERE expires_at < now()",
    "expired_oauth_sessions": "SELECT count(*) FROM mcp_oauth_sessions WHERE expires_at < now()",
    "due_emails": "SELECT count(*) FROM scheduled_emails"
    " WHERE status = 'pending' AND scheduled_for <= now()",
    "failed_emails": "SELECT count(*) FROM scheduled_emails WHERE status = 'failed'",
}


def main() -> int:
    args = parse_args()
    os.environ.update(BENCH_ENVIRON)
    results = []
    with bench_database(args.url):
        load_fixed(args)
        loaded = 0
        for size in args.sizes:
            grow_cleanup_tables(loaded, size)
            loaded = size
            settle()
            results.append(measure(size, args))
    print_summary(results)
    return 0 if all(r["ok"] for r in results[-1:]) else 1


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default="2000000,10000000",
        type=lambda text: sorted(int(n) for n in text.split(",")),
        help="Comma-separated rows per cleanup table, each measured in turn.",
    )
    parser.add_argument("--emails", type=int, default=1_000_000, help="Scheduled emails.")
    parser.add_argument(
        "--runs", type=int, default=1_000_000, help="Run-log rows (30 days of ticks)."
    )
    parser.add_argument("--scrapes", type=int, default=50, help="Timed calls per front door.")
    parser.add_argument(
        "--url",
        default="postgres://postgres@127.0.0.1:5432/pluggedin_bench_metrics",
        help="PostgreSQL URL; the database is created and dropped by the benchmark.",
    )
    return parser.parse_args()


# --- database lifecycle: the PKCE benchmark's helpers --------------------------------------

from pkce_cleanup import bench_database, sql  # noqa: E402 - bench/ is this script's import path

# A token and a host the test client may use; the email task counts as enabled (its
# backlog is counted either way).
BENCH_ENVIRON = {"ALLOWED_HOSTS": "testserver", "CRON_SECRET": TOKEN, "CLOUD_DEPLOY": "true"}


# --- data ---------------------------------------------------------------------------------


def load_fixed(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    sql("SET session_replication_role = replica")  # skip FK triggers on load
    sql(USERS_SQL, {"users": -(-args.emails // 3)})
    sql(EMAILS_SQL, {})
    sql(
        f"DELETE FROM scheduled_emails WHERE ctid IN (SELECT ctid FROM scheduled_emails"
        f" OFFSET {args.emails})"
    )
    sql(RUNS_SQL, {"per_tick": max(1, args.runs // TICKS_IN_RETENTION)})
    sql("SET session_replication_role = DEFAULT")
    print(
        f"loaded {args.emails:,} emails and {args.runs:,} runs"
        f" in {time.perf_counter() - started:.0f} s",
        flush=True,
    )


def grow_cleanup_tables(loaded: int, size: int) -> None:
    """Rows `loaded + 1 .. size` of each cleanup table; row i expires at now + (i - size/2)
    ms, so the first half of every size is expired, in insert order."""
    started = time.perf_counter()
    for table, statement in CLEANUP_SQL.items():
        sql(statement, {"first": loaded + 1, "last": size, "middle": size // 2})
        print(f"  {table}: {size:,} rows", flush=True)
    print(
        f"grew the cleanup tables to {size:,} rows each in {time.perf_counter() - started:.0f} s",
        flush=True,
    )


def settle() -> None:
    """Statistics fresh and the run log counted into the tallies, as autovacuum and the
    hourly prune keep them in production."""
    from maintenance.runs.retention import fold_run_counts

    fold_run_counts()
    for table in (
        "oauth_pkce_states",
        "mcp_oauth_sessions",
        "scheduled_emails",
        "maintenance_task_runs",
        "maintenance_run_tallies",
    ):
        sql(f"VACUUM ANALYZE {table}")
    sql("CHECKPOINT")


# --- measurement --------------------------------------------------------------------------


def measure(size: int, args: argparse.Namespace) -> dict:
    from django.core.management import call_command
    from django.core.management.base import CommandError
    from django.db import connection
    from django.test import Client

    from maintenance.observe.status import backlog

    client = Client(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    def scrape() -> None:
        response = client.get("/metrics")
        assert response.status_code == 200, response.status_code

    def status_endpoint() -> None:
        assert client.get("/api/maintenance/status").status_code in (200, 503)

    def status_command() -> None:
        # Unhealthy is exit 1 (CommandError), as designed; the cost is what is measured.
        with contextlib.suppress(CommandError):
            call_command("maintenance_status", "--json", stdout=io.StringIO())

    print(f"\n{size:,} rows per cleanup table, {args.emails:,} emails, {args.runs:,} runs")
    print("  load average before timing: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    print(f"  backlog as reported: {backlog()}")
    for kind, statement in EXACT_COUNTS.items():
        started = time.perf_counter()
        ((exact,),) = sql(statement)
        print(
            f"  exact count(*) of {kind}: {exact:,} in "
            f"{(time.perf_counter() - started) * 1000:.0f} ms (not done by a scrape)"
        )
    figures, ok = {}, True
    doors = {
        "GET /metrics": scrape,
        "GET /api/maintenance/status": status_endpoint,
        "maintenance_status": status_command,
    }
    for label, call in doors.items():
        for _ in range(5):
            call()  # warm the connection and the caches
        statements: list[str] = []
        with connection.execute_wrapper(counting(statements)):
            call()
        times = []
        for _ in range(args.scrapes):
            started = time.perf_counter()
            call()
            times.append((time.perf_counter() - started) * 1000)
        p50 = statistics.median(times)
        p95 = statistics.quantiles(times, n=20)[-1]
        ok &= p95 < BAR_MS
        figures[label] = (p50, p95, len(statements))
        print(
            f"  {label:<28} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  {len(statements)} queries",
            flush=True,
        )
    return {"size": size, "figures": figures, "ok": ok, "load": os.getloadavg()[0]}


def counting(statements: list[str]):
    """An execute wrapper that records each statement a call makes."""

    def wrapper(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    return wrapper


def print_summary(results: list[dict]) -> None:
    print(f"\nSummary (bar: p95 < {BAR_MS:.0f} ms at the largest size)")
    for result in results:
        for label, (p50, p95, queries) in result["figures"].items():
            print(
                f"  {result['size']:>11,}  {label:<28} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms"
                f"  {queries} queries"
            )
        print(f"  {'':>11}  (1-minute load average after timing: {result['load']:.1f})")
    if results:
        print("  result:", "PASS" if results[-1]["ok"] else "FAIL")


if __name__ == "__main__":
    sys.exit(main())
