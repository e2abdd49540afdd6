"""The run row becomes the one coordination record: a lease on it, one `running` run per
task (a partial unique index), and the separate lock table goes."""

from django.db import migrations, models

RUNNER_STOPPED = "Runner stopped: closed when the run log took over from the task locks"


def close_all_but_the_newest_running_run(apps, schema_editor):
    """At most one `running` row per task may stay; it keeps its holder's lease."""
    TaskRun = apps.get_model("maintenance", "TaskRun")
    TaskLock = apps.get_model("maintenance", "TaskLock")
    leases = {(lock.task, lock.host, lock.pid): lock.expires_at for lock in TaskLock.objects.all()}
    kept = set()
    for run in TaskRun.objects.filter(status="running").order_by("-started_at", "-id"):
        if run.task in kept:
            run.status, run.finished_at, run.error = "failed", run.started_at, RUNNER_STOPPED
            run.save(update_fields=["status", "finished_at", "error"])
            continue
        kept.add(run.task)
        run.lease_expires_at = leases.get((run.task, run.host, run.pid))
        run.save(update_fields=["lease_expires_at"])


class Migration(migrations.Migration):

    dependencies = [
        ('maintenance', '0009_run_task_permission'),
    ]

    operations = [
        migrations.AddField(
            model_name='taskrun',
            name='lease_expires_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(close_all_but_the_newest_running_run, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name='taskrun',
            constraint=models.UniqueConstraint(condition=models.Q(('status', 'running')), fields=('task',), name='task_runs_one_running'),
        ),
        migrations.DeleteModel(
            name='TaskLock',
        ),
    ]
