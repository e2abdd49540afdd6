"""`manage.py maintenance_schedule`: each export runs the tasks on the schedules in force.

Every format is checked the way its scheduler would read it: the Kubernetes CronJobs
against the Kubernetes schemas (kubernetes-validate, offline), the systemd timers by the
next 50 firing times `systemd-analyze calendar` computes against cronsim's for the cron
expression, the GitHub Actions workflow by parsing it and running its curl steps against
a live server, vercel.json by calling its paths as Vercel does, the crontab lines against
what `crontab add` installs, and each exported command by running it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from io import StringIO

import kubernetes_validate
import pytest
import yaml
from cronsim import CronSim
from django.core.management import CommandError, call_command

from maintenance import registry
from maintenance.models import TaskRun, Trigger
from tests import tools
from tests.factories import fake_task
from tests.processes import ROOT, project_env, run_manage

KUBERNETES_VERSION = kubernetes_validate.utils.latest_version()  # the newest schemas shipped
FIRINGS = 50
BASE_TIME = datetime(2028, 2, 27, 13, 37, 30, tzinfo=UTC)  # before a leap day


def schedule(*args: str, **options: str) -> str:
    out = StringIO()
    call_command("maintenance_schedule", *args, stdout=out, stderr=StringIO(), **options)
    return out.getvalue()


def systemd_files(**options: str) -> dict[str, str]:
    """The systemd export, by file name (stdout puts each under a `# NAME` line)."""
    text = schedule("--format", "systemd", **options)
    parts = re.split(r"^# (pluggedin-[\w.-]+)\n", text, flags=re.M)
    return {name: body for name, body in zip(parts[1::2], parts[2::2], strict=True)}


def run_in_project(argv: list[str]) -> subprocess.CompletedProcess:
    """A command as a scheduler starts it: bare environment, the project folder."""
    return subprocess.run(
        argv, cwd=ROOT, env=project_env(), capture_output=True, text=True, timeout=120
    )


# --- Kubernetes ---------------------------------------------------------------------


def test_kubernetes_is_one_valid_cronjob_per_task_and_nothing_else():
    docs = list(yaml.safe_load_all(schedule("--format", "kubernetes")))

    assert [doc["kind"] for doc in docs] == ["CronJob"] * len(registry.all_tasks())
    for doc, task in zip(docs, registry.all_tasks(), strict=True):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        assert doc["apiVersion"] == "batch/v1"
        assert doc["metadata"]["name"] == task.name.replace("_", "-")
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"])
        spec = doc["spec"]
        assert spec["schedule"] == task.schedule
        assert (spec["timeZone"], spec["concurrencyPolicy"]) == ("Etc/UTC", "Forbid")
        assert spec["startingDeadlineSeconds"] >= 10
        assert spec["successfulJobsHistoryLimit"] and spec["failedJobsHistoryLimit"]
        job = spec["jobTemplate"]["spec"]
        assert job["activeDeadlineSeconds"] == task.max_runtime.total_seconds()
        pod = job["template"]["spec"]
        assert pod["restartPolicy"] == "Never"
        (container,) = pod["containers"]
        assert container["command"] == ["python", "manage.py", task.command, "--trigger", "cron"]


def test_kubernetes_takes_image_secret_and_config_map_from_the_options():
    text = schedule(
        "--format",
        "kubernetes",
        "--image",
        "registry.example.com/pluggedin:2.1",
        "--secret",
        "prod-secrets",
        "--config-map",
        "prod-config",
    )

    for doc in yaml.safe_load_all(text):
        (container,) = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        assert container["image"] == "registry.example.com/pluggedin:2.1"
        assert container["envFrom"] == [
            {"secretRef": {"name": "prod-secrets"}},
            {"configMapRef": {"name": "prod-config"}},
        ]


def test_every_export_uses_the_cron_setting_in_force(settings):
    settings.PKCE_CLEANUP_CRON = "7 3 * * MON"

    (pkce, *_) = yaml.safe_load_all(schedule("--format", "kubernetes"))
    timer = systemd_files()["pluggedin-pkce-cleanup.timer"]
    vercel = json.loads(schedule("--format", "vercel"))
    workflow = yaml.safe_load(schedule("--format", "github-actions"))

    assert pkce["spec"]["schedule"] == "7 3 * * MON"
    assert "OnCalendar=Mon *-*-* 03:07:00 UTC" in timer.splitlines()
    # GitHub and Vercel take numbers only
    assert {"path": "/api/oauth/cleanup-pkce", "schedule": "7 3 * * 1"} in vercel["crons"]
    assert {"cron": "7 3 * * 1"} in workflow[True]["schedule"]


@pytest.mark.django_db(transaction=True)
def test_the_kubernetes_container_command_runs_the_task_as_cron():
    (doc, *_) = yaml.safe_load_all(schedule("--format", "kubernetes"))
    (container,) = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]

    result = run_in_project([sys.executable, *container["command"][1:]])

    assert result.returncode == 0, result.stderr
    run = TaskRun.objects.get()
    assert (run.task, run.trigger, run.status) == ("pkce_cleanup", Trigger.CRON, "succeeded")


def test_a_task_without_a_command_runs_through_run_maintenance(isolated_registry):
    registry.register(fake_task("demo", path="/api/demo"))

    (doc,) = yaml.safe_load_all(schedule("--format", "kubernetes"))

    (container,) = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    command = ["python", "manage.py", "run_maintenance", "demo", "--trigger", "cron"]
    assert container["command"] == command


# --- systemd ------------------------------------------------------------------------


def test_systemd_is_a_service_and_a_timer_per_task_no_templates():
    files = systemd_files()

    names = [f"pluggedin-{task.name.replace('_', '-')}" for task in registry.all_tasks()]
    assert sorted(files) == sorted(f"{n}.{kind}" for n in names for kind in ("service", "timer"))
    assert not any("@" in name for name in files)
    for name in names:
        assert "Type=oneshot" in files[f"{name}.service"].splitlines()
        assert "WantedBy=timers.target" in files[f"{name}.timer"].splitlines()


@pytest.mark.django_db(transaction=True)
def test_the_systemd_service_runs_the_task_as_cron_as_given_user_and_folder():
    files = systemd_files(app_dir=str(ROOT), python=sys.executable, user="pluggedin")
    service = files["pluggedin-pkce-cleanup.service"].splitlines()
    assert "User=pluggedin" in service
    assert f"WorkingDirectory={ROOT}" in service
    (exec_start,) = [line.split("=", 1)[1] for line in service if line.startswith("ExecStart=")]

    result = run_in_project(shlex.split(exec_start))

    assert result.returncode == 0, result.stderr
    run = TaskRun.objects.get()
    assert (run.task, run.trigger, run.status) == ("pkce_cleanup", Trigger.CRON, "succeeded")


def test_a_folder_with_a_space_and_a_percent_sign_is_quoted_for_systemd():
    files = systemd_files(app_dir="/srv/plugged in%", python="/srv/plugged in%/.venv/bin/python")

    service = files["pluggedin-pkce-cleanup.service"].splitlines()

    assert "WorkingDirectory=/srv/plugged in%%" in service
    assert (
        'ExecStart="/srv/plugged in%%/.venv/bin/python" "/srv/plugged in%%/manage.py" '
        "cleanup_pkce --trigger cron"
    ) in service


def systemd_analyze() -> str:
    return tools.requires_tool("systemd-analyze")[0]


def test_systemd_accepts_the_unit_files(tmp_path):
    schedule("--format", "systemd", "--output", str(tmp_path), "--python", sys.executable)
    units = sorted(path.name for path in tmp_path.iterdir())

    verified = subprocess.run(
        [systemd_analyze(), "verify", "--man=no", *(f"./{unit}" for unit in units)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )

    assert verified.returncode == 0, verified.stderr
    assert verified.stderr == ""


def systemd_firings(specs: list[str]) -> list[datetime]:
    listed = subprocess.run(
        [
            systemd_analyze(),
            "calendar",
            f"--iterations={FIRINGS}",
            f"--base-time={BASE_TIME:%Y-%m-%d %H:%M:%S} UTC",
            *specs,
        ],
        env={**os.environ, "TZ": "UTC"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = re.findall(r"(?:Next elapse|Iter\. #\d+): \w+ (\S+ \S+) UTC", listed)
    # a timer fires at the union of its OnCalendar= lines
    union = sorted({datetime.fromisoformat(stamp).replace(tzinfo=UTC) for stamp in found})
    return union[:FIRINGS]


def cron_firings(expression: str) -> list[datetime]:
    firings = CronSim(expression, BASE_TIME)
    return [next(firings) for _ in range(FIRINGS)]


@pytest.mark.parametrize(
    "expression",
    [
        "*/10 * * * *",
        "0 * * * *",
        "5 4 * * *",
        "*/15 9-17 * * 1-5",
        "30 2 */2 * *",
        "0 0 1 * 1",  # both day fields: cron fires on the 1st and on every Monday
        "0 0 1-7 * 1",  # not "the first Monday": days 1-7 and every Monday
        "0 0 1-31 * 1",  # every day
        "0 0 */2 * 1",  # a star first: odd days that are Mondays
        "0 12 * JAN,JUL SUN",
        "0,30 * * * 7",
        "5/20 1 * * *",
        "7 */5 1-10 * 0,6",
        "0 6 29,31 2,3 *",
        "15 10 28-31 * *",
        "0 0 * * 5-7",
    ],
)
def test_the_timer_fires_exactly_when_cron_would(settings, expression):
    settings.PKCE_CLEANUP_CRON = expression
    timer = systemd_files()["pluggedin-pkce-cleanup.timer"]
    specs = [line.split("=", 1)[1] for line in timer.splitlines() if line.startswith("OnCalendar=")]

    assert systemd_firings(specs) == cron_firings(expression)


@pytest.mark.parametrize(
    "expression",
    ["*/10 * * *", "61 * * * *", "0 0 31 2 *", "0 0 * * FUNDAY", "@hourly", "5-1 * * * *"],
)
def test_a_schedule_no_cron_would_run_is_refused_and_nothing_written(
    settings, tmp_path, expression
):
    settings.PKCE_CLEANUP_CRON = expression
    folder = tmp_path / "units"

    for format in ("kubernetes", "systemd", "github-actions", "vercel", "crontab"):
        with pytest.raises(CommandError, match=r"pkce_cleanup: .*PKCE_CLEANUP_CRON") as caught:
            schedule("--format", format, "--output", str(folder))
        assert "\n" not in str(caught.value)

    assert not folder.exists()


# --- GitHub Actions -----------------------------------------------------------------


def test_the_workflow_parses_as_yaml_with_one_schedule_per_cron_expression():
    workflow = yaml.safe_load(schedule("--format", "github-actions"))

    triggers = workflow[True]  # PyYAML reads the key `on` as true; GitHub reads "on"
    crons = [entry["cron"] for entry in triggers["schedule"]]
    assert crons == list(dict.fromkeys(task.schedule for task in registry.all_tasks()))
    assert "workflow_dispatch" in triggers
    assert sorted(workflow["jobs"]) == sorted(registry.names())
    for task in registry.all_tasks():
        job = workflow["jobs"][task.name]
        assert f"github.event.schedule == '{task.schedule}'" in job["if"]
        (step,) = job["steps"]
        assert step["env"] == {
            "APP_URL": "${{ secrets.APP_URL }}",
            "CRON_SECRET": "${{ secrets.CRON_SECRET }}",
        }
        assert "${{" not in step["run"]  # secrets reach the script as variables only


def workflow_steps() -> list[str]:
    workflow = yaml.safe_load(schedule("--format", "github-actions"))
    return [step["run"] for job in workflow["jobs"].values() for step in job["steps"]]


def run_step(script: str, app_url: str, secret: str) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "APP_URL": app_url, "CRON_SECRET": secret}
    return subprocess.run(
        ["bash", "-e", "-c", script], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.django_db(transaction=True)
def test_the_workflow_steps_run_each_task_over_http(live_server, cron_secret):
    for script in workflow_steps():
        result = run_step(script, live_server.url, cron_secret)
        assert result.returncode == 0, result.stderr
        assert "runId" in json.loads(result.stdout)

    runs = TaskRun.objects.filter(trigger=Trigger.HTTP)
    assert sorted(runs.values_list("task", flat=True)) == sorted(registry.names())


@pytest.mark.django_db(transaction=True)
def test_a_workflow_step_fails_the_job_on_a_refused_call(live_server, cron_secret):
    script = workflow_steps()[0]

    result = run_step(script, live_server.url, "not-the-secret-0123456789abcdef0123")

    assert result.returncode != 0
    assert "Unauthorized" in result.stdout  # the body says why
    assert not TaskRun.objects.exists()


# --- Vercel -------------------------------------------------------------------------


def test_vercel_json_lists_each_endpoint_on_its_schedule():
    crons = json.loads(schedule("--format", "vercel"))

    assert crons == {
        "crons": [{"path": task.path, "schedule": task.schedule} for task in registry.all_tasks()]
    }


@pytest.mark.django_db
def test_each_vercel_path_runs_its_task_on_vercels_get_with_the_bearer(client, auth_header):
    for entry in json.loads(schedule("--format", "vercel"))["crons"]:
        response = client.get(entry["path"], **auth_header)
        assert response.status_code == 200, response.content

    runs = TaskRun.objects.filter(trigger=Trigger.HTTP)
    assert sorted(runs.values_list("task", flat=True)) == sorted(registry.names())


def test_http_exports_leave_out_a_task_without_an_endpoint_and_say_so(isolated_registry):
    registry.register(fake_task("demo", path="/api/demo"))
    registry.register(fake_task("local_only"))
    err = StringIO()

    out = StringIO()
    call_command("maintenance_schedule", "--format", "vercel", stdout=out, stderr=err)

    assert json.loads(out.getvalue()) == {
        "crons": [{"path": "/api/demo", "schedule": "*/5 * * * *"}]
    }
    assert "local_only: left out, it has no HTTP endpoint" in err.getvalue()


# --- crontab ------------------------------------------------------------------------


def test_crontab_lines_are_what_crontab_add_installs(throwaway_crontab):
    exported = schedule("--format", "crontab").splitlines()

    call_command("crontab", "add", stdout=StringIO())
    listed = subprocess.run(
        ["crontab", "-u", throwaway_crontab, "-l"], capture_output=True, text=True, check=True
    ).stdout.splitlines()

    assert len(exported) == len(registry.all_tasks())
    assert sorted(exported) == sorted(line for line in listed if line.strip())


# --- the command --------------------------------------------------------------------


def test_output_writes_the_files_the_stdout_shows(tmp_path):
    folder = tmp_path / "deploy" / "systemd"
    shown = systemd_files()
    out = StringIO()

    call_command("maintenance_schedule", "--format", "systemd", "--output", str(folder), stdout=out)

    assert sorted(path.name for path in folder.iterdir()) == sorted(shown)
    for name, text in shown.items():
        assert (folder / name).read_text() == text.rstrip("\n") + "\n"
        assert f"Wrote {folder / name}" in out.getvalue()


@pytest.mark.parametrize(
    ("format", "name"),
    [
        ("kubernetes", "maintenance-cronjobs.yaml"),
        ("github-actions", "maintenance.yml"),
        ("vercel", "vercel.json"),
        ("crontab", "maintenance.crontab"),
    ],
)
def test_single_file_formats_write_one_file_equal_to_stdout(tmp_path, format, name):
    schedule("--format", format, "--output", str(tmp_path))

    assert [path.name for path in tmp_path.iterdir()] == [name]
    assert (tmp_path / name).read_text() == schedule("--format", format)


def test_an_unknown_format_exits_non_zero_with_one_line():
    result = run_manage("maintenance_schedule", "--format", "nomad")

    assert result.returncode != 0
    assert result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert "nomad" in line and "kubernetes, systemd, github-actions, vercel, crontab" in line


def test_an_output_path_that_is_a_file_is_a_one_line_error(tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("keep me")

    with pytest.raises(CommandError, match="Cannot write to"):
        schedule("--format", "vercel", "--output", str(taken))

    assert taken.read_text() == "keep me"
