"""The admin in a real headless Chromium (Debian's chromium + chromium-driver packages):
log in, open the expired PKCE states, run the cleanup action, see the result."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import timedelta

import pytest

from maintenance.models import TaskRun
from oauth.models import PKCEState
from oauth.pkce import create_state

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SERVER = "0c7b6e3a-5b7e-4a57-9d3f-2f1a9a1f0b11"
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,900",
]


def require_chromium() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    if not missing:
        return
    message = f"needs {' and '.join(missing)} (Debian packages chromium, chromium-driver)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the browser test: {message}; .ci/run installs them")
    pytest.skip(message)


@pytest.fixture
def browser() -> Iterator:
    require_chromium()
    os.environ.setdefault("SE_OFFLINE", "true")  # never let selenium fetch a browser
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(10)
    try:
        yield driver
    finally:
        driver.quit()


def test_admin_runs_pkce_cleanup_from_the_expired_states_list(
    browser, live_server, django_user_model
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.select import Select

    django_user_model.objects.create_superuser("ops", "ops@example.com", "a-long-password-1")
    for _ in range(2):
        create_state(SERVER, "https://client.example/cb", ttl=timedelta(seconds=-60))
    active = create_state(SERVER, "https://client.example/cb")

    browser.get(f"{live_server.url}/admin/login/?next=/admin/")
    browser.find_element(By.NAME, "username").send_keys("ops")
    browser.find_element(By.NAME, "password").send_keys("a-long-password-1")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    browser.find_element(By.ID, "site-name")

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
