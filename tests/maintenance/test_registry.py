"""The task registry: what every front door looks tasks up in."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client

from maintenance import registry
from maintenance.observe.status import maintenance_status
from maintenance.triggers.scheduler import Scheduler
from tests.factories import fake_task


def test_the_project_registers_its_tasks():
    assert "pkce_cleanup" in registry.names()
    task = registry.get("pkce_cleanup")
    assert task.schedule == "*/10 * * * *"
    assert task.every == timedelta(minutes=10)
    assert task.run_at_startup


def test_duplicate_names_raise(isolated_registry):
    registry.register(fake_task())

    with pytest.raises(registry.DuplicateTask):
        registry.register(fake_task())


def test_unknown_names_list_the_known_ones(isolated_registry):
    registry.register(fake_task("alpha"))

    with pytest.raises(registry.UnknownTask) as error:
        registry.get("beta")

    assert "alpha" in str(error.value)


def test_reset_restores_the_previous_tasks():
    before = registry.names()
    previous = registry.reset()
    assert registry.names() == []
    registry.reset(previous)
    assert registry.names() == before


def test_schedule_and_its_gap_follow_settings(isolated_registry, settings):
    task = registry.register(fake_task())
    settings.DEMO_CRON = "* * * * *"

    assert task.schedule == "* * * * *"
    assert task.every == timedelta(seconds=60), "the gap between two ticks"


def test_message_tolerates_missing_counts():
    assert fake_task().describe({}) == "Did ? things"


def test_one_declaration_reaches_every_front_door(mounted_registry, settings, db):
    """Adding a task is one `Task(...)` and its function: the crontab entries, the
    scheduler, the run order, the status body and an HTTP endpoint find it, nothing else."""
    task = mounted_registry.mount(
        fake_task("vacuum_widgets", cron="17 4 * * *", path="/api/widgets/vacuum", order=5)
    )
    settings.CRON_SECRET = "s" * 40

    assert list(settings.CRONJOBS) == [
        ("17 4 * * *", "maintenance.cron.run_task_from_cron", ["vacuum_widgets"])
    ]
    assert Scheduler().tasks == [task]
    assert registry.names() == ["vacuum_widgets"]
    assert maintenance_status()["tasks"]["vacuum_widgets"]["schedule"] == "17 4 * * *"
    response = Client().post("/api/widgets/vacuum", HTTP_AUTHORIZATION=f"Bearer {'s' * 40}")
    assert response.status_code == 200
    assert response.json()["message"] == "Did 1 things"
