"""Benchmark: a burst of scheduled triggers at one tick, on PostgreSQL.

Usage (from the project root; PostgreSQL must be running):

    .venv/bin/python bench/tick_burst.py [--processes 4] [--threads 10] [--per-thread 5]
        [--task pkce_cleanup] [--url postgres://postgres@127.0.0.1:5432/NAME] [--pgbouncer]

It creates the database named in --url (dropping a leftover one), migrates it, and drops
it at the end (the helpers of `bench/pkce_cleanup.py`). Each round starts `--processes`
processes of `--threads` threads; every thread opens its database connection, then all
call `run_task(TASK, "cron")` at one wall-clock instant (the release), as every cron entry,
scheduler and poller of a fleet does at a tick. The run log is emptied before each round,
so each round's tick is unserved when the burst starts. Each thread fires `--per-thread`
triggers one after the other on its one connection (a poller, or a process hosting several
entry points), so 200 triggers (the default 4 x 10 x 5) need 40 connections: PostgreSQL's
default max_connections is 100.

Printed per round: whether exactly one run succeeded, the time from the release to the last
answer, the p50/p95 answer times, and the database statements per redundant trigger (the
ones that found the tick served or being served), with the load average. With
`--pgbouncer` the round runs once more through a PgBouncer in transaction mode
(`tests/pgbouncer.py`, 20 server connections). Direct, processes x threads must stay below
the server's max_connections.

Bar: every trigger answered, none failed, and within 1 s of the release; <= 3 statements
per redundant trigger; exactly one success. It prints PASS or FAIL per round and exits 1
when any round FAILs.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import multiprocessing
import os
import queue
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pkce_cleanup import bench_database  # noqa: E402 (the project root first)

CHECKOUT = hashlib.blake2b(str(ROOT).encode(), digest_size=4).hexdigest()
DEFAULT_URL = f"postgres://postgres@127.0.0.1:5432/pluggedin_bench_{CHECKOUT}_{os.getpid()}"
ANSWER_BAR_SECONDS = 1.0
STATEMENTS_BAR = 3
RELEASE_MARGIN_SECONDS = 2.0  # time for every process to start and connect


def main() -> int:
    args = parse_args()
    with bench_database(args.url):
        results = [burst("direct", args)]
        if args.pgbouncer:
            results.append(through_pgbouncer(args))
    for result in results:
        print_result(result)
        for reason, (n, statements) in sorted(result["reasons"].items()):
            print(f"    {n} x {reason} ({statements} statements max)")
    return 0 if all(r["ok"] for r in results) else 1


def expected_triggers(args: argparse.Namespace) -> int:
    return args.processes * args.threads * args.per_thread


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--threads", type=int, default=10, help="Threads per process.")
    parser.add_argument(
        "--per-thread", type=int, default=5, help="Triggers each thread fires in turn."
    )
    parser.add_argument("--task", default="pkce_cleanup", help="A registered task.")
    parser.add_argument("--url", default=DEFAULT_URL, help="Created and dropped by the run.")
    parser.add_argument("--pgbouncer", action="store_true", help="Also through PgBouncer.")
    return parser.parse_args()


def through_pgbouncer(args: argparse.Namespace) -> dict:
    from django.db import connection

    from tests.pgbouncer import pgbouncer

    db = connection.settings_dict
    with pgbouncer(db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)) as port:
        direct = db["HOST"], db["PORT"]
        connection.close()
        db["HOST"], db["PORT"] = "127.0.0.1", port
        try:
            return burst("via pgbouncer", args)
        finally:
            connection.close()
            db["HOST"], db["PORT"] = direct


def burst(label: str, args: argparse.Namespace) -> dict:
    """One round: empty the run log, fork the processes, release them, gather answers."""
    from django.db import connections

    from maintenance.models import RunStatus, TaskRun

    TaskRun.objects.all().delete()
    connections.close_all()  # forked children must not share this connection
    release = time.time() + RELEASE_MARGIN_SECONDS
    context = multiprocessing.get_context("fork")
    answers = context.Queue()
    workers = [
        context.Process(target=fire, args=(args, release, answers)) for _ in range(args.processes)
    ]
    for worker in workers:
        worker.start()
    rows: list[tuple] = []
    for _ in workers:
        try:
            rows.extend(answers.get(timeout=120))
        except queue.Empty:  # a process died: its triggers count as unanswered
            break
    for worker in workers:
        worker.join(30)
    load = os.getloadavg()
    succeeded = TaskRun.objects.filter(task=args.task, status=RunStatus.SUCCEEDED).count()
    return summarize(label, rows, succeeded, load, expected_triggers(args))


def fire(args: argparse.Namespace, release: float, answers) -> None:
    """A process of the burst: its threads each trigger the task at `release`, in turn."""
    rows: list[tuple] = []
    lock = threading.Lock()
    work = (args.task, args.per_thread, release, rows, lock)
    pool = [threading.Thread(target=trigger, args=work) for _ in range(args.threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    answers.put(rows)


def trigger(task: str, times: int, release: float, rows: list, lock: threading.Lock) -> None:
    from django.db import connection

    from maintenance.runs.runner import run_task

    statements = []

    def count(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    connection.ensure_connection()
    time.sleep(max(0.0, release - time.time()))
    for _ in range(times):
        statements.clear()
        try:
            with connection.execute_wrapper(count):
                outcome = run_task(task, "cron")
            row = (outcome.status, len(statements), outcome.message or outcome.error)
        except Exception as exc:  # run_task never raises; if it did, that is a failure
            row = ("failed", len(statements), f"raised {type(exc).__name__}: {exc}")
        status, n, message = row
        with lock:
            rows.append((status, time.time() - release, n, message))
    connection.close()


def summarize(label: str, rows: list[tuple], succeeded: int, load: tuple, expected: int) -> dict:
    """The round's figures; `ok` when every one of the `expected` triggers answered, none
    failed, exactly one run succeeded, and the time and statement bars hold."""
    times = sorted(answered for _, answered, _, _ in rows) or [float("inf")]
    redundant = [n for status, _, n, _ in rows if status == "skipped"]
    statuses = [status for status, *_ in rows]
    p95 = times[max(0, math.ceil(len(times) * 0.95) - 1)]  # nearest rank
    worst_statements = max(redundant, default=0)
    failed = statuses.count("failed")
    return {
        "label": label,
        "triggers": len(rows),
        "expected": expected,
        "failed": failed,
        "one_success": succeeded == 1 and statuses.count("succeeded") == 1,
        "last": times[-1],
        "p50": statistics.median(times),
        "p95": p95,
        "redundant": len(redundant),
        "statements_mean": statistics.mean(redundant) if redundant else 0.0,
        "statements_max": worst_statements,
        "other": len(rows) - len(redundant) - statuses.count("succeeded") - failed,
        "load": load,
        "reasons": reasons(rows),
        "ok": len(rows) == expected
        and failed == 0
        and succeeded == 1
        and times[-1] <= ANSWER_BAR_SECONDS
        and worst_statements <= STATEMENTS_BAR,
    }


def reasons(rows: list[tuple]) -> dict[str, tuple[int, int]]:
    """How many answers of each kind (run ids blanked), with their most statements."""
    kinds: dict[str, tuple[int, int]] = {}
    for status, _, statements, message in rows:
        kind = "".join("N" if c.isdigit() else c for c in (message or status))[:90]
        n, most = kinds.get(kind, (0, 0))
        kinds[kind] = (n + 1, max(most, statements))
    return kinds


def print_result(r: dict) -> None:
    load = " ".join(f"{x:.2f}" for x in r["load"])
    print(
        f"{r['label']}: {r['triggers']} of {r['expected']} triggers answered, {r['failed']}"
        f" failed; exactly one run succeeded: "
        f"{'yes' if r['one_success'] else 'no'}; release to last answer {r['last']:.3f} s; "
        f"p50 {r['p50']:.3f} s, p95 {r['p95']:.3f} s; statements per redundant trigger "
        f"mean {r['statements_mean']:.2f}, max {r['statements_max']} ({r['redundant']} "
        f"redundant, {r['other']} other answers); load average {load}; "
        f"{'PASS' if r['ok'] else 'FAIL'}"
    )


if __name__ == "__main__":
    sys.exit(main())
