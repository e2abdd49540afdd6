"""`GET /metrics`: what a Prometheus server scraping the project sees."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from maintenance.models import RunTally, TaskRun
from maintenance.runs import retention
from maintenance.runs.runner import run_task
from tests.conftest import SECRET
from tests.factories import fake_task, make_state
from tests.processes import run_manage

pytestmark = pytest.mark.django_db

URL = "/metrics"
METRICS_TOKEN = "metrics-only-token-for-tests-0123456789"


def scrape(client, token: str = SECRET) -> dict[str, dict[tuple, float]]:
    """{family name: {sorted label items: value}} of one authorised scrape."""
    response = client.get(URL, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return parse(response.content.decode())


def parse(text: str) -> dict[str, dict[tuple, float]]:
    families: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        samples = families.setdefault(family.name, {})
        for sample in family.samples:
            samples[tuple(sorted(sample.labels.items()))] = sample.value
    return families


def labels(**pairs: str) -> tuple:
    return tuple(sorted(pairs.items()))


def runs_total(figures, task: str, trigger: str, status: str) -> float:
    # The text parser names a counter family without its `_total` suffix.
    return figures["pluggedin_maintenance_runs"][labels(task=task, trigger=trigger, status=status)]


# --- who may scrape -----------------------------------------------------------------------


def test_without_any_secret_configured_metrics_are_closed(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get(URL, HTTP_AUTHORIZATION="Bearer anything")

    assert response.status_code == 503
    assert "METRICS_TOKEN" in response.json()["error"]
    assert "CRON_SECRET" in response.json()["error"]


def test_metrics_token_when_set_replaces_cron_secret(client, cron_secret, settings):
    settings.METRICS_TOKEN = METRICS_TOKEN

    assert client.get(URL, HTTP_AUTHORIZATION=f"Bearer {SECRET}").status_code == 401
    assert "pluggedin_maintenance_task_info" in scrape(client, METRICS_TOKEN)


def test_metrics_token_alone_opens_metrics_but_not_the_task_endpoints(client, settings):
    settings.METRICS_TOKEN = METRICS_TOKEN

    assert "pluggedin_maintenance_healthy" in scrape(client, METRICS_TOKEN)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {METRICS_TOKEN}"}
    assert client.post("/api/oauth/cleanup-pkce", **auth).status_code == 503


def test_only_get_and_head(client, auth_header):
    assert client.post(URL, **auth_header).status_code == 405
    assert client.head(URL, **auth_header).status_code == 200


# --- the families -------------------------------------------------------------------------


def test_declared_tasks_with_schedule_interval_health_pause_and_backlog(client, cron_secret):
    make_state("a", expired=True)
    make_state("b", expired=False)

    figures = scrape(client)

    info = figures["pluggedin_maintenance_task_info"]
    assert info[labels(task="pkce_cleanup", schedule="*/10 * * * *", interval_seconds="600")] == 1
    assert info[labels(task="scheduled_emails", schedule="0 * * * *", interval_seconds="3600")] == 1
    assert len(info) == 3
    healthy = figures["pluggedin_maintenance_healthy"]
    assert healthy[labels(task="pkce_cleanup")] == 0  # never succeeded
    assert healthy[labels(task="scheduled_emails")] == 1  # switched off here (CLOUD_DEPLOY)
    paused = figures["pluggedin_maintenance_paused"]
    assert set(paused.values()) == {0} and len(paused) == 3
    backlog = figures["pluggedin_maintenance_backlog"]
    assert backlog == {
        labels(task="pkce_cleanup", kind="expired_pkce_states"): 1,
        labels(task="oauth_session_cleanup", kind="expired_oauth_sessions"): 0,
        labels(task="scheduled_emails", kind="due_emails"): 0,
        labels(task="scheduled_emails", kind="failed_emails"): 0,
    }
    # No run yet: no timestamp or duration sample at all, and every counter starts at 0.
    assert not figures["pluggedin_maintenance_last_success_timestamp_seconds"]
    assert not figures["pluggedin_maintenance_last_failure_timestamp_seconds"]
    assert not figures["pluggedin_maintenance_last_run_duration_seconds"]
    assert runs_total(figures, "pkce_cleanup", "cron", "succeeded") == 0


def test_a_paused_task_reads_paused_and_healthy_until_resumed(demo, other, client, cron_secret):
    from maintenance.runs import pauses

    pauses.pause("demo", "incident INC-7", "cli:ann")
    figures = scrape(client)

    assert figures["pluggedin_maintenance_paused"][labels(task="demo")] == 1
    assert figures["pluggedin_maintenance_paused"][labels(task="other")] == 0
    assert figures["pluggedin_maintenance_healthy"][labels(task="demo")] == 1
    pauses.resume("demo", "cli:ann")
    figures = scrape(client)
    assert figures["pluggedin_maintenance_paused"][labels(task="demo")] == 0
    assert figures["pluggedin_maintenance_healthy"][labels(task="demo")] == 0


def test_schedule_label_follows_the_setting_in_force(client, cron_secret, settings):
    settings.PKCE_CLEANUP_CRON = "*/5 * * * *"
    settings.PKCE_CLEANUP_INTERVAL_SECONDS = "300"

    info = scrape(client)["pluggedin_maintenance_task_info"]

    assert info[labels(task="pkce_cleanup", schedule="*/5 * * * *", interval_seconds="300")] == 1


def test_success_failure_duration_and_runs_after_real_runs(
    client, cron_secret, isolated_registry, settings
):
    calls = []

    def flaky(**options):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("boom")
        return {"count": 1}

    isolated_registry.register(fake_task("flaky", func=flaky))
    isolated_registry.register(fake_task("gated", gate=lambda: "switched off here"))
    first = run_task("flaky", "cron")
    second = run_task("flaky", "http")
    run_task("gated", "scheduler")

    figures = scrape(client)

    first_run, second_run = (
        TaskRun.objects.get(pk=first.run_id),
        TaskRun.objects.get(pk=second.run_id),
    )
    success = figures["pluggedin_maintenance_last_success_timestamp_seconds"]
    failure = figures["pluggedin_maintenance_last_failure_timestamp_seconds"]
    assert success == {labels(task="flaky"): pytest.approx(first_run.finished_at.timestamp())}
    assert failure == {labels(task="flaky"): pytest.approx(second_run.finished_at.timestamp())}
    duration = figures["pluggedin_maintenance_last_run_duration_seconds"]
    assert duration[labels(task="flaky")] == pytest.approx(second_run.duration_ms / 1000)
    assert runs_total(figures, "flaky", "cron", "succeeded") == 1
    assert runs_total(figures, "flaky", "http", "failed") == 1
    assert runs_total(figures, "flaky", "http", "succeeded") == 0
    assert runs_total(figures, "gated", "scheduler", "skipped") == 1  # gated skips count
    assert figures["pluggedin_maintenance_healthy"][labels(task="flaky")] == 1


def test_a_run_still_in_progress_is_not_counted(demo, client, cron_secret):
    TaskRun.objects.create(task="demo", trigger="cron")  # status running

    figures = scrape(client)

    demo_runs = [
        v for k, v in figures["pluggedin_maintenance_runs"].items() if ("task", "demo") in k
    ]
    assert sum(demo_runs) == 0


def test_openmetrics_when_asked(client, auth_header):
    response = client.get(URL, HTTP_ACCEPT="application/openmetrics-text", **auth_header)

    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.decode().rstrip().endswith("# EOF")


# --- counters survive run-log retention -----------------------------------------------------


def old_runs(count: int, status: str = "succeeded") -> None:
    started = timezone.now() - timedelta(days=45)
    TaskRun.objects.bulk_create(
        TaskRun(
            task="demo",
            trigger="cron",
            status=status,
            started_at=started,
            finished_at=started + timedelta(seconds=1),
        )
        for _ in range(count)
    )


def test_runs_total_never_goes_backwards_when_the_run_log_is_pruned(
    demo, client, cron_secret, settings
):
    settings.MAINTENANCE_DELETE_BATCH_SIZE = 4
    old_runs(7)
    old_runs(2, status="failed")
    TaskRun.objects.create(
        task="demo", trigger="cron", started_at=timezone.now() - timedelta(days=45)
    )  # crashed long ago, never finished: never counted, pruned all the same
    before = scrape(client)

    assert retention.prune_run_log() == 10
    after = scrape(client)

    assert TaskRun.objects.count() == 0
    assert runs_total(after, "demo", "cron", "succeeded") == 7
    assert runs_total(after, "demo", "cron", "failed") == 2
    assert after["pluggedin_maintenance_runs"] == before["pluggedin_maintenance_runs"]
    run_task("demo", "cron")
    assert runs_total(scrape(client), "demo", "cron", "succeeded") == 8


def test_each_fold_adds_the_runs_it_passes_to_the_same_tallies(demo, client, cron_secret):
    now = timezone.now()
    for minutes in (150, 140, 130):
        started = now - timedelta(minutes=minutes)
        TaskRun.objects.create(task="demo", trigger="cron", status="succeeded", started_at=started)

    assert retention.fold_run_counts(now) == 3
    assert retention.fold_run_counts(now) == 0  # each run is counted once
    for minutes in (30, 20):
        started = now - timedelta(minutes=minutes)
        TaskRun.objects.create(task="demo", trigger="cron", status="succeeded", started_at=started)
    assert (
        scrape(client)["pluggedin_maintenance_runs"][
            labels(task="demo", trigger="cron", status="succeeded")
        ]
        == 5
    )
    assert retention.fold_run_counts(now) == 2

    tally = RunTally.objects.get(task="demo", trigger="cron", status="succeeded")
    assert tally.count == 5 and RunTally.objects.count() == 1
    assert runs_total(scrape(client), "demo", "cron", "succeeded") == 5


@pytest.mark.django_db(transaction=True)
def test_scrapes_while_the_log_is_counted_out_and_pruned_always_see_every_run(settings):
    from maintenance.observe.metrics import finished_run_counts

    settings.MAINTENANCE_DELETE_BATCH_SIZE = 50
    old_runs(400)
    old_runs(200, status="failed")
    seen: list[int] = []
    done = threading.Event()

    def scraper() -> None:
        while not done.is_set():
            seen.append(sum(finished_run_counts().values()))
        connection.close()

    thread = threading.Thread(target=scraper)
    thread.start()
    try:
        assert retention.prune_run_log() == 600
    finally:
        done.set()
        thread.join()

    assert TaskRun.objects.count() == 0
    assert seen and set(seen) == {600}


# --- the same figures everywhere, bounded ------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_another_process_reports_the_same_figures(client, cron_secret):
    run_task("pkce_cleanup", "cron")
    make_state("c", expired=True)
    here = client.get(URL, HTTP_AUTHORIZATION=f"Bearer {SECRET}").content.decode()

    result = run_manage(
        "shell",
        "--no-imports",
        "-c",
        "from maintenance.observe.metrics import exposition;"
        " print(exposition('')[0].decode(), end='')",
    )

    assert result.returncode == 0, result.stderr
    assert parse(result.stdout) == parse(here)


def test_backlog_counts_stop_at_the_exact_limit(client, cron_secret, settings):
    settings.MAINTENANCE_BACKLOG_EXACT_LIMIT = 3
    for name in "abcdefgh":
        make_state(name, expired=True)
    make_state("z", expired=False)

    reported = scrape(client)["pluggedin_maintenance_backlog"][
        labels(task="pkce_cleanup", kind="expired_pkce_states")
    ]
    status = client.get("/api/maintenance/status", HTTP_AUTHORIZATION=f"Bearer {SECRET}").json()

    if connection.vendor == "postgresql":
        assert reported >= 3  # the planner's estimate, never below the limit
    else:
        assert reported == 3
    assert status["backlog"]["expiredPkceStates"] == reported
    settings.MAINTENANCE_BACKLOG_EXACT_LIMIT = 100
    assert (
        client.get("/api/maintenance/status", HTTP_AUTHORIZATION=f"Bearer {SECRET}").json()[
            "backlog"
        ]["expiredPkceStates"]
        == 8
    )


@pytest.mark.postgres
def test_past_the_limit_postgresql_reports_its_estimate(client, cron_secret, settings):
    from tests.factories import state_row

    settings.MAINTENANCE_BACKLOG_EXACT_LIMIT = 100
    expired = timezone.now() - timedelta(hours=1)
    later = timezone.now() + timedelta(hours=1)
    rows = [state_row(f"{i:043d}", expired if i < 3000 else later) for i in range(4000)]
    from oauth.models import PKCEState

    PKCEState.objects.bulk_create(rows)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE oauth_pkce_states")

    reported = scrape(client)["pluggedin_maintenance_backlog"][
        labels(task="pkce_cleanup", kind="expired_pkce_states")
    ]

    assert 2000 <= reported <= 4000  # near the 3000 expired, read from statistics


# --- check --deploy -------------------------------------------------------------------------

urlpatterns: list = []  # a project that does not route /metrics (see the `urls` marker)


def deploy_warnings() -> set[str]:
    from django.core import checks

    return {m.id for m in checks.run_checks(include_deployment_checks=True)}


def test_check_deploy_warns_when_metrics_is_routed_without_any_token(settings):
    settings.CRON_SECRET = None

    assert "maintenance.W401" in deploy_warnings()
    settings.METRICS_TOKEN = METRICS_TOKEN
    assert "maintenance.W401" not in deploy_warnings()
    settings.METRICS_TOKEN, settings.CRON_SECRET = None, SECRET
    assert "maintenance.W401" not in deploy_warnings()


@pytest.mark.urls(__name__)
def test_no_warning_when_metrics_is_not_routed(settings):
    settings.CRON_SECRET = None

    assert "maintenance.W401" not in deploy_warnings()


def test_a_metrics_token_no_client_can_send_is_refused_without_showing_it(settings):
    from django.core import checks

    settings.METRICS_TOKEN = "two words"

    errors = [m for m in checks.run_checks() if m.id == "maintenance.E001"]

    assert any("METRICS_TOKEN" in m.msg for m in errors)
    assert not any("two words" in m.msg for m in errors)
