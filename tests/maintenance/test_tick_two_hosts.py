"""Two hosts (two processes named apart by PLUGGEDIN_HOSTNAME) fire at one tick: one run."""

from __future__ import annotations

import json

import pytest

from maintenance.models import RunStatus, TaskRun
from tests.processes import manage

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

CRON = "0 0 1 1 *"  # one tick a year: both hosts aim at the same one


def test_two_hosts_triggering_one_tick_give_one_success():
    hosts = ["host-a", "host-b"]
    processes = [
        manage(
            "cleanup_pkce", "--trigger", "cron", "--json",
            PKCE_CLEANUP_CRON=CRON, PLUGGEDIN_HOSTNAME=host,
        )
        for host in hosts
    ]  # fmt: skip
    bodies = [json.loads(p.communicate(timeout=120)[0]) for p in processes]

    assert all(body["success"] for body in bodies), bodies
    assert sum(not body.get("skipped") for body in bodies) == 1, bodies
    served = TaskRun.objects.get(status=RunStatus.SUCCEEDED)
    assert served.host in hosts
    assert set(TaskRun.objects.values_list("host", flat=True)) <= set(hosts)
