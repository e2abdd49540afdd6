"""Two hosts (two processes named apart by PLUGGEDIN_HOSTNAME) fire at one tick, released
at one instant once both are connected: one run."""

from __future__ import annotations

import json

import pytest

from maintenance.models import RunStatus, TaskRun
from tests.processes import StartLine

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

CRON = "0 0 1 1 *"  # one tick a year: both hosts aim at the same one


def test_two_hosts_triggering_one_tick_together_give_one_success(tmp_path):
    hosts = ["host-a", "host-b"]
    start = StartLine(tmp_path)
    processes = [
        start.manage(
            "cleanup_pkce", "--trigger", "cron", "--json",
            PKCE_CLEANUP_CRON=CRON, PLUGGEDIN_HOSTNAME=host,
        )
        for host in hosts
    ]  # fmt: skip
    start.release()
    answers = [p.communicate(timeout=120) for p in processes]
    bodies = [json.loads(out) for out, _err in answers]

    assert all(body["success"] for body in bodies), answers
    assert sum(not body.get("skipped") for body in bodies) == 1, bodies
    served = TaskRun.objects.get(status=RunStatus.SUCCEEDED)
    assert served.host in hosts
    assert set(TaskRun.objects.values_list("host", flat=True)) <= set(hosts)
    assert TaskRun.objects.filter(status=RunStatus.SKIPPED).count() == 1
