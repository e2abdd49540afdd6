"""Many scheduled triggers of one tick in real processes, released at one instant once all
are connected: the database lets one run."""

from __future__ import annotations

import json

import pytest

from maintenance.models import RunStatus, TaskRun
from tests.processes import StartLine, manage

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

CRON = "0 0 1 1 *"  # one tick a year: every process of the test aims at the same one


def test_many_cron_triggers_of_one_tick_together_give_exactly_one_run(tmp_path):
    env = {"PKCE_CLEANUP_CRON": CRON}
    start = StartLine(tmp_path)
    processes = [
        start.manage("cleanup_pkce", "--trigger", "cron", "--json", **env) for _ in range(6)
    ]
    start.release()
    answers = [p.communicate(timeout=120) for p in processes]
    bodies = [json.loads(out) for out, _err in answers]

    served = [b for b in bodies if not b.get("skipped")]
    assert len(served) == 1, answers
    assert all(b["success"] for b in bodies), answers
    assert all(b["tick"].endswith("-01-01T00:00:00Z") for b in bodies if b.get("skipped"))
    assert TaskRun.objects.filter(status=RunStatus.SUCCEEDED, tick__isnull=False).count() == 1
    assert TaskRun.objects.filter(status=RunStatus.SKIPPED).count() == 5

    manual = json.loads(manage("cleanup_pkce", "--json", **env).communicate(timeout=120)[0])
    assert manual["success"] and "skipped" not in manual
