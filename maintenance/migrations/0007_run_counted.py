"""Each run carries its own `counted` flag instead of the log being counted up to a
moving time mark, which never counted rows landing behind it (issue 21).

Runs that started before the old mark are already in the tallies: they are flagged
counted here, so no run is counted twice; the mark itself goes."""

from django.db import migrations, models


def flag_runs_behind_the_mark(apps, schema_editor):
    mark_model = apps.get_model("maintenance", "RunTallyMark")
    task_run = apps.get_model("maintenance", "TaskRun")
    mark = mark_model.objects.order_by("pk").first()
    if mark is not None:
        task_run.objects.filter(started_at__lt=mark.counted_before).exclude(
            status="running"
        ).update(counted=True)


class Migration(migrations.Migration):
    dependencies = [
        ("maintenance", "0005_run_ticks"),
    ]

    operations = [
        migrations.AddField(
            model_name="taskrun",
            name="counted",
            field=models.BooleanField(default=False),
        ),
        migrations.RunPython(flag_runs_behind_the_mark, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="taskrun",
            index=models.Index(
                condition=models.Q(counted=False),
                fields=["status"],
                name="task_runs_uncounted_idx",
            ),
        ),
        migrations.DeleteModel(name="RunTallyMark"),
    ]
