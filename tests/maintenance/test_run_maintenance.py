"""`run_maintenance [TASK ...]`: every task, or the named ones, one line each."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from maintenance import registry
from maintenance.models import RunStatus, TaskRun, Trigger
from maintenance.registry import Task

pytestmark = pytest.mark.django_db


def test_runs_every_real_task_with_one_line_each_end_to_end(capsys):
    call_command("run_maintenance")
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == registry.names()
    assert "oauth_session_cleanup: Deleted 0 expired OAuth sessions (run " in lines[-1]
    runs = TaskRun.objects.filter(trigger=Trigger.COMMAND)
    assert sorted(runs.values_list("task", flat=True)) == sorted(registry.names())


def test_runs_only_the_named_tasks(demo, other, capsys):
    call_command("run_maintenance", "other")
    assert capsys.readouterr().out.startswith("other: Did 1 things (run ")
    assert list(TaskRun.objects.values_list("task", flat=True)) == ["other"]
    assert (demo, other) == ([], [{}])


def test_unknown_task_is_a_clear_error_and_nothing_runs(demo, other):
    with pytest.raises(CommandError, match=r"^Unknown task nope \(known: demo, other\)"):
        call_command("run_maintenance", "demo", "nope")
    assert not TaskRun.objects.exists()
    assert demo == []


def test_json_lists_each_tasks_http_body(demo, other, capsys):
    call_command("run_maintenance", "--json", "other", "demo")
    body = json.loads(capsys.readouterr().out)
    assert body["success"] is True
    assert [task["task"] for task in body["tasks"]] == ["other", "demo"]
    assert all(task["count"] == 1 and task["runId"] for task in body["tasks"])


def test_a_failing_task_fails_the_command_but_the_others_still_run(isolated_registry, capsys):
    def boom() -> dict:
        raise RuntimeError("disk on fire")

    for name, func in [("boom", boom), ("fine", lambda: {"n": 1})]:
        isolated_registry.register(
            Task(name, func, "Fake.", "did {n}", "* * * * *", timedelta(minutes=1))
        )
    with pytest.raises(CommandError, match=r"^1 of 2 tasks failed: boom$"):
        call_command("run_maintenance")
    captured = capsys.readouterr()
    assert captured.err.startswith("boom: FAILED RuntimeError: disk on fire (run ")
    assert captured.out.startswith("fine: did 1 (run ")
    statuses = dict(TaskRun.objects.values_list("task", "status"))
    assert statuses == {"boom": RunStatus.FAILED, "fine": RunStatus.SUCCEEDED}
