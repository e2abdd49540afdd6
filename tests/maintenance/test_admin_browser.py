"""The admin in a real headless Chromium (Debian's chromium + chromium-driver packages) in
a 1280-pixel window: log in, run the PKCE cleanup action from the expired states; read
each task's state on the maintenance page, pause a task, run it, resume it.

The maintenance page's screenshot is written to BROWSER_SCREENSHOT_DIR (default: the
test's temporary folder) as `maintenance-admin-1280.png`, for a person to look at."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta

import pytest

from maintenance.models import TaskPause, TaskRun
from maintenance.runs.runner import run_task
from oauth.models import PKCEState
from oauth.pkce import create_state
from tests import tools
from tests.factories import fake_task

CHROMIUM = "chromium"
CHROMEDRIVER = "chromedriver"
SERVER = "0c7b6e3a-5b7e-4a57-9d3f-2f1a9a1f0b11"
WIDTH = 1280
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    f"--window-size={WIDTH},900",
]


def require_chromium(chromium: str = CHROMIUM) -> list[str]:
    """The paths of chromium and chromedriver, or skip (fail in CI)."""
    return tools.requires_tool(chromium, CHROMEDRIVER)


def test_a_missing_browser_fails_in_ci_and_is_skipped_elsewhere(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run this test"):
        require_chromium("/nonexistent/chromium")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="needs /nonexistent/chromium"):
        require_chromium("/nonexistent/chromium")


def submit(browser, button) -> None:
    """Click a form's button and wait for the page it posts to: reading the message list
    at once could find the previous page's message, which may share its class.

    While the old document unloads, chromedriver can answer the staleness probe with a
    generic "unknown error: Node with given id does not belong to the document" instead
    of "stale element"; that means the same thing, so the wait polls again."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    page = browser.find_element("tag name", "html")
    button.click()
    WebDriverWait(browser, 10, ignored_exceptions=[WebDriverException]).until(
        expected_conditions.staleness_of(page)
    )


@pytest.fixture
def browser() -> Iterator:
    chromium, chromedriver = require_chromium()
    os.environ.setdefault("SE_OFFLINE", "true")  # never let selenium fetch a browser
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    driver.implicitly_wait(10)
    try:
        yield driver
    finally:
        driver.quit()


def log_in(browser, live_server, django_user_model) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    django_user_model.objects.create_superuser("ops", "ops@example.com", "a-long-password-1")
    browser.get(f"{live_server.url}/admin/login/?next=/admin/")
    browser.find_element(By.NAME, "username").send_keys("ops")
    browser.find_element(By.NAME, "password").send_keys("a-long-password-1")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    # The login page has a header too: wait for what only a signed-in page shows, so the
    # next navigation cannot abort the login POST before its session cookie is set.
    WebDriverWait(browser, 10).until(lambda b: b.find_elements(By.ID, "user-tools"))


def test_admin_runs_pkce_cleanup_from_the_expired_states_list(
    browser, live_server, django_user_model
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.select import Select

    for _ in range(2):
        create_state(SERVER, "https://client.example/cb", ttl=timedelta(seconds=-60))
    active = create_state(SERVER, "https://client.example/cb")
    log_in(browser, live_server, django_user_model)

    browser.get(f"{live_server.url}/admin/oauth/pkcestate/?expiry=expired")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")) == 2
    browser.find_element(By.ID, "action-toggle").click()
    Select(browser.find_element(By.NAME, "action")).select_by_value("run_pkce_cleanup")
    browser.find_element(By.NAME, "index").click()

    message = browser.find_element(By.CSS_SELECTOR, "ul.messagelist li.success").text
    run = TaskRun.objects.get(task="pkce_cleanup")
    assert message == f"Deleted 2 expired PKCE states (run {run.pk})"
    assert run.trigger == "admin" and run.status == "succeeded"
    browser.implicitly_wait(0)  # the page is loaded; an empty list must not wait 10 s
    assert browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr") == []
    assert "0 PKCE states" in browser.find_element(By.ID, "changelist").text
    assert list(PKCEState.objects.values_list("state", flat=True)) == [active.state]


@pytest.fixture
def four_states(isolated_registry) -> None:
    """One task in each state the page tells apart: healthy, failing, paused, switched off."""

    def broken(**options):
        raise RuntimeError("SMTP relay refused the connection")

    isolated_registry.register(fake_task("expired_widget_cleanup"))
    isolated_registry.register(fake_task("widget_digest_emails", func=broken))
    isolated_registry.register(fake_task("stale_upload_cleanup"))
    isolated_registry.register(
        fake_task("partner_sync", gate=lambda: "Skipped: PARTNER_API_URL is not set here.")
    )
    for name in isolated_registry.names():
        run_task(name, "cron")
    TaskPause.objects.create(
        task="stale_upload_cleanup", reason="Storage migration, INC-311", paused_by="cli:ann"
    )


def outside_the_window(browser, elements) -> list[str]:
    """The names of `elements` not wholly inside the window's width."""
    width = browser.execute_script("return window.innerWidth")
    return [
        element.get_attribute("name") or element.text
        for element in elements
        if element.rect["x"] < 0 or element.rect["x"] + element.rect["width"] > width
    ]


def screenshot(browser, tmp_path, name: str) -> None:
    folder = os.environ.get("BROWSER_SCREENSHOT_DIR") or str(tmp_path)
    os.makedirs(folder, exist_ok=True)
    assert browser.save_screenshot(os.path.join(folder, name))


@pytest.mark.usefixtures("four_states")
def test_the_maintenance_page_fits_1280_pixels_and_pauses_and_resumes_a_task(
    browser, live_server, django_user_model, tmp_path
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.select import Select

    log_in(browser, live_server, django_user_model)
    browser.get(f"{live_server.url}/admin/maintenance/")
    screenshot(browser, tmp_path, f"maintenance-admin-{WIDTH}.png")

    assert browser.execute_script("return window.innerWidth") == WIDTH
    assert browser.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth"
    ), "the page scrolls sideways"
    rows = browser.find_elements(By.CSS_SELECTOR, "#maintenance-tasks tr.task-row")
    states = {row.get_attribute("data-task"): row.get_attribute("data-state") for row in rows}
    assert states == {
        "expired_widget_cleanup": "healthy",
        "widget_digest_emails": "failing",
        "stale_upload_cleanup": "paused",
        "partner_sync": "switched off",
    }
    summary = browser.find_element(By.ID, "maintenance-tasks").text
    assert "PARTNER_API_URL is not set here." in summary
    assert "Skipped:" not in summary
    assert "by cli:ann until resumed: Storage migration, INC-311" in summary
    assert "has never succeeded; last run failed: RuntimeError: SMTP relay refused" in summary
    buttons = [
        button
        for button in browser.find_elements(
            By.CSS_SELECTOR, "#maintenance-tasks input[type=submit], #maintenance-tasks summary"
        )
        if button.is_displayed()
    ]
    assert len(buttons) == 8  # Run now for each task, Pause... or Resume for each
    assert outside_the_window(browser, buttons) == []

    row = '#maintenance-tasks tr[data-task="expired_widget_cleanup"]'
    browser.find_element(By.CSS_SELECTOR, f"{row} summary").click()
    browser.find_element(By.CSS_SELECTOR, f"{row} input[name=reason]").send_keys(
        "ESP outage, INC-312"
    )
    Select(browser.find_element(By.CSS_SELECTOR, f"{row} select[name=for]")).select_by_value("2h")
    pause_button = browser.find_element(By.NAME, "pause-expired_widget_cleanup")
    assert outside_the_window(browser, [pause_button]) == []
    screenshot(browser, tmp_path, f"maintenance-admin-{WIDTH}-pause-form.png")
    submit(browser, pause_button)

    message = browser.find_element(By.CSS_SELECTOR, "ul.messagelist li.success").text
    assert message.startswith("Paused expired_widget_cleanup on every host: paused by ops since")
    assert "ESP outage, INC-312. Every trigger now records a skipped run instead." in message
    assert browser.find_element(By.CSS_SELECTOR, row).get_attribute("data-state") == "paused"
    pause = TaskPause.objects.get(task="expired_widget_cleanup")
    assert (pause.paused_by, pause.reason) == ("ops", "ESP outage, INC-312")
    assert timedelta(minutes=119) < pause.paused_until - pause.paused_at <= timedelta(hours=2)

    submit(browser, browser.find_element(By.NAME, "run-expired_widget_cleanup"))
    message = browser.find_element(By.CSS_SELECTOR, "ul.messagelist li.warning").text
    assert message.startswith("Skipped: expired_widget_cleanup is paused by ops")
    run = TaskRun.objects.filter(task="expired_widget_cleanup").latest("id")
    assert (run.trigger, run.status) == ("admin", "skipped")

    submit(browser, browser.find_element(By.NAME, "resume-expired_widget_cleanup"))
    message = browser.find_element(By.CSS_SELECTOR, "ul.messagelist li.success").text
    assert message.startswith("Resumed expired_widget_cleanup")
    assert browser.find_element(By.CSS_SELECTOR, row).get_attribute("data-state") == "healthy"
    assert not TaskPause.objects.filter(task="expired_widget_cleanup").exists()
    submit(browser, browser.find_element(By.NAME, "run-expired_widget_cleanup"))
    message = browser.find_element(By.CSS_SELECTOR, "ul.messagelist li.success").text
    assert message.startswith("Did 1 things (run ")
