"""The deadline a run carries: time left, the statement timeout, the timed-out failure."""

import pytest

from maintenance.checks.settings import task_setting_errors
from maintenance.outcome import TaskFailed
from maintenance.runs import deadlines


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_deadline_counts_down_and_fails_with_partial_counts():
    clock = FakeClock()
    assert deadlines.current() is None
    with deadlines.deadline_of(2, clock=clock) as deadline:
        assert deadlines.current() is deadline
        assert deadline.statement_timeout_ms() == 2000
        clock.now += 1.5
        deadline.check({"deleted": 1})
        assert deadline.statement_timeout_ms() == 500
        clock.now += 1
        assert deadline.passed()
        assert deadline.statement_timeout_ms() == 1
        with pytest.raises(TaskFailed, match="Timed out after 2 s") as failed:
            deadline.check({"deleted": 3})
        assert failed.value.result == {"deleted": 3}
    assert deadlines.current() is None


def test_a_max_runtime_that_cannot_work_is_refused(settings, demo):
    prefix = "DEMO"
    setattr(settings, f"{prefix}_MAX_RUNTIME_SECONDS", "0")
    errors = [e for e in task_setting_errors() if "MAX_RUNTIME_SECONDS" in e.msg]
    assert [e.id for e in errors] == ["maintenance.E002"]
    setattr(settings, f"{prefix}_MAX_RUNTIME_SECONDS", "90")
    assert not [e for e in task_setting_errors() if "MAX_RUNTIME_SECONDS" in e.msg]


@pytest.mark.django_db(transaction=True)
def test_a_run_carries_the_deadline_in_force(settings, isolated_registry):
    from maintenance.runs.runner import run_task
    from tests.factories import fake_task

    def report(**options):
        return {"seconds": deadlines.current().seconds}

    isolated_registry.register(fake_task(func=report, message="{seconds}"))
    assert run_task("demo", "command").result == {"seconds": 1800}
    settings.DEMO_MAX_RUNTIME_SECONDS = "45"
    assert run_task("demo", "command").result == {"seconds": 45}


@pytest.mark.django_db(transaction=True)
def test_the_lease_is_not_renewed_past_the_deadline_and_its_grace(settings, monkeypatch):
    import time
    from datetime import timedelta

    from maintenance.models import TaskLock
    from maintenance.runs import locks

    settings.MAINTENANCE_LOCK_LEASE_SECONDS = 0.3
    monkeypatch.setattr(locks, "DEADLINE_GRACE", timedelta(seconds=0.1))
    with locks.task_lock("demo", deadline_seconds=0.1) as claim:
        time.sleep(0.6)  # several renewals
        lock = TaskLock.objects.get(task="demo")
    assert lock.expires_at == claim.since + timedelta(seconds=0.2)
