"""A real PgBouncer in transaction mode on a loopback port, in front of a PostgreSQL server.

Tests use `pgbouncer(host, port)` as a context manager; `make test-pgbouncer` uses the
command line, which runs a command with DATABASE_URL pointing at a fresh pooler and stops
the pooler afterwards:

    python -m tests.pgbouncer [--url postgres://postgres@127.0.0.1:5432/pluggedin] -- CMD ...

The pooler runs as the `postgres` OS user when started by root (PgBouncer refuses root),
accepts any user without a password (`auth_type = any`, every database reached as
`postgres`), and keeps its configuration, log and pid file in a temporary directory.
Without the `pgbouncer` binary: a skip, except in CI (`CI=true`), where it is a failure.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from tests import tools

# Set by the command line for the command it runs: the port of the pooler in front of the
# test session's database, so tests know they already go through it.
PORT_VARIABLE = "PLUGGEDIN_PGBOUNCER_PORT"
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/pluggedin"

CONFIG = """\
[databases]
* = host={host} port={port} user=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen_port}
unix_socket_dir =
auth_type = any
pool_mode = transaction
max_client_conn = 500
default_pool_size = 20
ignore_startup_parameters = extra_float_digits,options
admin_users = postgres
pidfile = {dir}/pgbouncer.pid
logfile = {dir}/pgbouncer.log
log_connections = 0
log_disconnections = 0
"""


class PgBouncerMissing(RuntimeError):
    pass


def session_is_pooled() -> bool:
    """True in `make test-pgbouncer`: the test session's database is behind the pooler."""
    return bool(os.environ.get(PORT_VARIABLE))


def binary() -> str:
    found = tools.find_tool("pgbouncer")
    if not found:
        raise PgBouncerMissing(tools.missing_tool_message(["pgbouncer"]))
    return found


def required() -> bool:
    """In CI a missing pooler fails the run; elsewhere its tests are skipped."""
    return tools.in_ci()


@contextmanager
def pgbouncer(host: str = "127.0.0.1", port: int = 5432) -> Iterator[int]:
    """Start PgBouncer in transaction mode in front of `host:port`; yield its port."""
    program = binary()
    listen_port = _free_port()
    workdir = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    config = workdir / "pgbouncer.ini"
    config.write_text(CONFIG.format(host=host, port=port, listen_port=listen_port, dir=workdir))
    as_postgres = _postgres_user() if os.geteuid() == 0 else None
    if as_postgres:
        for path in (workdir, config):
            os.chown(path, as_postgres.pw_uid, as_postgres.pw_gid)
    process = subprocess.Popen(
        [program, str(config)],
        # It also logs to stderr when not daemonised: nobody reads that, so no pipe that
        # could fill up and stall the pooler; the log file has every line.
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        user=as_postgres.pw_uid if as_postgres else None,
        group=as_postgres.pw_gid if as_postgres else None,
        extra_groups=[] if as_postgres else None,
    )
    try:
        _wait_listening(listen_port, process, workdir)
        yield listen_port
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


def through(url: str, listen_port: int) -> str:
    """`url` (a postgres:// URL) with its host and port replaced by the pooler's."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{listen_port}"))


def _postgres_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam("postgres")
    except KeyError as exc:
        raise RuntimeError("run as root: PgBouncer needs the `postgres` OS user") from exc


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_listening(port: int, process: subprocess.Popen, workdir: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = workdir / "pgbouncer.log"
            detail = log.read_text() if log.exists() else "no log written"
            raise RuntimeError(f"pgbouncer exited with {process.returncode}: {detail.strip()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"pgbouncer did not listen on 127.0.0.1:{port} within 30 s")


def main(argv: list[str]) -> int:
    url = os.environ.get("POSTGRES_TEST_URL") or DEFAULT_URL
    if argv[:1] == ["--url"]:
        url, argv = argv[1], argv[2:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("usage: python -m tests.pgbouncer [--url URL] -- COMMAND ...", file=sys.stderr)
        return 2
    parts = urlsplit(url)
    try:
        with pgbouncer(parts.hostname or "127.0.0.1", parts.port or 5432) as port:
            env = {**os.environ, "DATABASE_URL": through(url, port), PORT_VARIABLE: str(port)}
            print(f"pgbouncer: transaction pooling on 127.0.0.1:{port}", file=sys.stderr)
            return subprocess.run(argv, env=env).returncode
    except PgBouncerMissing as exc:
        if required():
            print(f"pgbouncer: {exc}", file=sys.stderr)
            return 1
        print(f"pgbouncer: {exc}; skipping the pooler pass", file=sys.stderr)
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
