"""The Debian tools some tests drive (promtool, chromium, pgbouncer, crontab, cron,
systemd-analyze, faketime): found on PATH or in the sbin folders, else the test is skipped with the
package to install, except in CI (`CI=true`), where a missing tool fails the test so a
green CI run has exercised every one of them. `.ci/run` installs them all."""

from __future__ import annotations

import os
import shutil

import pytest

PACKAGES = {
    "promtool": "prometheus",
    "chromium": "chromium",
    "chromedriver": "chromium-driver",
    "pgbouncer": "pgbouncer",
    "crontab": "cron",
    "cron": "cron",
    "systemd-analyze": "systemd",
    "useradd": "passwd",
    "unshare": "util-linux",
    "faketime": "faketime",
}
SBIN = "/usr/sbin:/sbin"


def in_ci() -> bool:
    """CI runs must exercise every tool; elsewhere a missing one is a skip."""
    return os.environ.get("CI") == "true"


def find_tool(name: str) -> str | None:
    """The tool's path on PATH, plus the sbin folders when PATH names none (a plain user's
    PATH lacks them; pgbouncer and cron live there)."""
    path = os.environ.get("PATH", "")
    if not any(os.path.basename(folder) == "sbin" for folder in path.split(os.pathsep)):
        path = os.pathsep.join([path, SBIN])
    return shutil.which(name, path=path)


def missing_tool_message(names: list[str]) -> str:
    packages = sorted({PACKAGES.get(os.path.basename(name), "?") for name in names})
    return f"needs {' and '.join(names)} (Debian: apt-get install {' '.join(packages)})"


def requires_tool(*names: str) -> list[str]:
    """The paths of `names`, or skip the calling test (fail it under CI=true)."""
    found = [find_tool(name) for name in names]
    missing = [name for name, path in zip(names, found, strict=True) if path is None]
    if missing:
        message = missing_tool_message(missing)
        if in_ci():
            pytest.fail(f"{message}: CI must run this test; .ci/run installs it")
        pytest.skip(message)
    return found  # type: ignore[return-value]
