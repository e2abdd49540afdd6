"""The run log opens with each task's tick strip, in headless Chromium at 1280 px.

The screenshot is written as `tick-strip-1280.png` to BROWSER_SCREENSHOT_DIR (default: the
test's temporary folder), for a person to look at."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from maintenance import registry
from maintenance.models import RunStatus, TaskRun
from tests.factories import fake_task
from tests.maintenance.test_admin_browser import WIDTH, browser, log_in, screenshot  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_strip_shows_each_recorded_tick_and_fits_1280_px(
    browser,  # noqa: F811
    live_server,
    django_user_model,
    tmp_path,
    isolated_registry,
):
    from selenium.webdriver.common.by import By

    isolated_registry.register(fake_task("demo"))
    schedule = registry.get("demo").cron_schedule
    current = schedule.latest_tick(timezone.now())
    recorded = {}
    for back, status in enumerate(
        [RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.MISSED, RunStatus.SKIPPED] * 8
    ):
        tick = current - timedelta(minutes=5 * (back + 1))
        late = 90_000 if back == 4 else 400
        TaskRun.objects.create(
            task="demo",
            trigger="scheduler",
            status=status,
            tick=tick,
            started_at=tick + timedelta(milliseconds=late),
            late_ms=late,
        )
        shown_as = {RunStatus.SUCCEEDED: "served"}.get(status, str(status))
        recorded[tick.strftime("%Y-%m-%dT%H:%M:%SZ")] = "late" if back == 4 else shown_as
    log_in(browser, live_server, django_user_model)
    browser.get(f"{live_server.url}/admin/maintenance/taskrun/")

    cells = browser.find_elements(By.CSS_SELECTOR, ".tick-strips .tick")
    assert len(cells) == 48
    shown = {c.get_attribute("data-tick"): c.get_attribute("data-status") for c in cells}
    assert {tick: shown[tick] for tick in recorded} == recorded
    assert cells[-1].get_attribute("data-status") == "pending"
    served = next(c for c in cells if c.get_attribute("data-status") == "served")
    assert served.get_attribute("title").endswith("served by scheduler, 0.4 s late")
    assert browser.execute_script("return document.documentElement.scrollWidth") <= WIDTH
    screenshot(browser, tmp_path, "tick-strip-1280.png")
