"""The task registry: what every front door looks tasks up in."""

from __future__ import annotations

from datetime import timedelta

import pytest

from maintenance import registry


def fake_task(name: str = "demo", **overrides) -> registry.Task:
    fields = {
        "name": name,
        "func": lambda **options: {"count": 1},
        "description": "A task for tests.",
        "message": "Did {count} things",
        "cron": "*/5 * * * *",
        "interval": timedelta(minutes=5),
    }
    return registry.Task(**{**fields, **overrides})


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


def test_schedule_and_interval_follow_settings(isolated_registry, settings):
    task = registry.register(fake_task())
    settings.DEMO_CRON = "* * * * *"
    settings.DEMO_INTERVAL_SECONDS = 7

    assert task.schedule == "* * * * *"
    assert task.every == timedelta(seconds=7)


def test_message_tolerates_missing_counts():
    assert fake_task().describe({}) == "Did ? things"
