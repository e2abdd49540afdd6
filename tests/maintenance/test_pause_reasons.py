"""Pause reasons and terminal control characters: stripped when a reason comes in (command,
admin), escaped wherever a stored one goes out (status, skip messages, the admin), since
rows written by older versions may still hold them."""

from __future__ import annotations

import io
import json
import re

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from maintenance.models import TaskPause, TaskRun
from maintenance.runs.runner import run_task
from tests.factories import counting_task
from tests.processes import run_manage

pytestmark = pytest.mark.django_db

RETITLE = "\x1b]0;pwned\x07deploy"  # sets the terminal's title to "pwned", then "deploy"
HOSTILE = "ESP outage\x1b[2J \u202egnirts\x07 INC-7"
# Every C0/C1 control but the line breaks the output is made of, and the Cf characters.
CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


@pytest.fixture
def demo(mounted_registry) -> None:
    task, _ = counting_task(path="/test/demo", run_at_startup=True)
    mounted_registry.mount(task)


def stored_by_an_older_version(reason: str = HOSTILE) -> TaskPause:
    """A pause row as a version that kept control characters wrote it."""
    return TaskPause.objects.create(
        task="demo", reason=reason, paused_by="cli:ann", paused_at=timezone.now()
    )


def command(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


# --- in: stripped ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_command_strips_control_characters_from_the_reason_end_to_end():
    paused = run_manage("maintenance_pause", "pkce_cleanup", "--reason", RETITLE)

    assert paused.returncode == 0, paused.stderr
    assert TaskPause.objects.get().reason == "]0;pwneddeploy"
    assert not CONTROL.search(paused.stdout)
    assert paused.stdout.rstrip().endswith(
        ": ]0;pwneddeploy. Every trigger now records a skipped run instead."
    )


@pytest.mark.django_db(transaction=True)
def test_who_paused_loses_them_too_end_to_end():
    """`cli:<os user>` comes from LOGNAME when it is set, which anyone can set."""
    paused = run_manage("maintenance_pause", "pkce_cleanup", "--reason", "x", LOGNAME=RETITLE)

    assert paused.returncode == 0, paused.stderr
    assert TaskPause.objects.get().paused_by == "cli:]0;pwneddeploy"


def test_spaces_stay_and_line_breaks_become_spaces(demo):
    command("maintenance_pause", "demo", "--reason", "db\tmigration\nINC-9\u200b, see #ops")

    assert TaskPause.objects.get().reason == "db migration INC-9, see #ops"


@pytest.mark.parametrize("reason", ["\x1b\x07", "\u202e\u200b", " \x1b\u200b\t "])
def test_a_reason_of_control_characters_only_is_refused_like_an_empty_one(demo, reason):
    with pytest.raises(CommandError, match="a reason is required"):
        command("maintenance_pause", "demo", "--reason", reason)

    assert not TaskPause.objects.exists()


def test_the_admin_form_strips_them_too(demo, admin_client):
    admin_client.post("/admin/maintenance/taskrun/pause/demo/", {"reason": RETITLE})

    assert TaskPause.objects.get().reason == "]0;pwneddeploy"


def test_the_admin_form_refuses_a_reason_of_control_characters_only(demo, admin_client):
    response = admin_client.post(
        "/admin/maintenance/taskrun/pause/demo/", {"reason": "\x1b\x07"}, follow=True
    )

    (message,) = [str(m) for m in response.context["messages"]]
    assert message.startswith("demo was not paused: a reason is required")
    assert not TaskPause.objects.exists()


# --- out: escaped ----------------------------------------------------------------------------


def test_status_text_escapes_a_stored_reason_and_json_stays_valid(demo):
    stored_by_an_older_version()

    text = command("maintenance_status")  # demo paused: healthy, exit 0
    body = json.loads(command("maintenance_status", "--json"))

    assert not CONTROL.search(text)
    assert r"(ESP outage\x1b[2J \u202egnirts\x07 INC-7)" in text
    assert body["tasks"]["demo"]["pausedReason"] == HOSTILE


def test_the_skip_message_and_run_log_name_the_pause_escaped(demo):
    stored_by_an_older_version()

    outcome = run_task("demo", "command")

    run = TaskRun.objects.get(pk=outcome.run_id)
    assert outcome.skipped and not CONTROL.search(outcome.message)
    assert outcome.message.endswith(r": ESP outage\x1b[2J \u202egnirts\x07 INC-7")
    assert run.result["reason"] == outcome.message


def test_the_admin_shows_a_stored_reason_escaped(demo, admin_client):
    stored_by_an_older_version()
    skipped = run_task("demo", "admin")
    TaskRun.objects.filter(pk=skipped.run_id).update(error=f"Skipped: {HOSTILE}")

    pages = [
        admin_client.get(url).content.decode()
        for url in (
            "/admin/maintenance/",
            "/admin/maintenance/taskpause/",
            "/admin/maintenance/taskpause/demo/change/",
            "/admin/maintenance/taskrun/",
            f"/admin/maintenance/taskrun/{skipped.run_id}/change/",
        )
    ]

    for page in pages:
        assert not CONTROL.search(page.replace("\t", "").replace("\r", ""))
        assert r"ESP outage\x1b[2J \u202egnirts\x07 INC-7" in page
