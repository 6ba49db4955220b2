"""The console in a real browser (Debian's headless chromium through its chromedriver, which
`scripts/bootstrap.sh --test` installs): sign in, see an upload in usage, quarantine it with
the button and see its download become 404, watch a task's progress bar reach 100 %, and a
hostile filename shown as text. Screenshots of each page go to `.test-artifacts/console/`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import (
    NoAlertPresentException,
    NoSuchElementException,
    StaleElementReferenceException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.conftest import TEST_SECRET
from tests.services.admin.conftest import Callers, Deployment
from tests.services.admin.console_client import CONSOLE
from tests.services.admin.helpers import png

ARTIFACTS = Path(__file__).resolve().parents[3] / ".test-artifacts" / "console"
HOSTILE_NAME = "<img src=x onerror=alert(1)>"


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll `check` until it is truthy; an element replaced mid-check (the page navigated or
    refreshed itself between find and read), or one not there yet (the next page is still
    loading), counts as not yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except (StaleElementReferenceException, NoSuchElementException):
            value = None
        if value or time.monotonic() > deadline:
            assert value, "timed out"
            return value
        time.sleep(0.2)


def shoot(driver: WebDriver, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def no_alert(driver: WebDriver) -> bool:
    try:
        _ = driver.switch_to.alert
    except NoAlertPresentException:
        return True
    return False


async def test_an_operator_signs_in_quarantines_an_upload_and_watches_a_task(
    deploy: Any, callers: Callers, browser: WebDriver,
) -> None:
    deployment: Deployment = deploy("embedded")
    base = deployment.admin_url.replace("127.0.0.1", "localhost") + CONSOLE
    server, media_id = await deployment.upload(callers.alice.access_token, png(7, 256), "image/png",
                                               HOSTILE_NAME)
    mxc = f"mxc://{server}/{media_id}"

    browser.get(base + "/")
    shoot(browser, "1-signin")
    browser.find_element(By.ID, "token").send_keys(TEST_SECRET)
    browser.find_element(By.CSS_SELECTOR, ".signin button").click()
    try:
        wait_for(lambda: browser.current_url.endswith("/cluster"))
    finally:
        shoot(browser, "1b-after-signin")
        (ARTIFACTS / "after-signin.html").write_text(browser.current_url + "\n" + browser.page_source)
    assert "embedded" in browser.find_element(By.TAG_NAME, "table").text
    shoot(browser, "2-cluster")

    browser.get(base + "/usage")
    top_users = browser.find_elements(By.CSS_SELECTOR, ".columns table")[0].text
    assert callers.alice.user_id in top_users  # the upload is counted under its uploader
    wait_for(lambda: all(browser.execute_script("return arguments[0].complete && "
                                                "arguments[0].naturalWidth > 0", img)
                         for img in browser.find_elements(By.CSS_SELECTOR, ".charts img")))
    shoot(browser, "3-usage")

    browser.get(base + "/media")
    browser.find_element(By.ID, "q").send_keys(mxc)
    browser.find_element(By.CSS_SELECTOR, ".lookup button").click()
    filename = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "dd.filename"))[0]
    assert filename.text == HOSTILE_NAME and no_alert(browser)
    assert not browser.find_elements(By.CSS_SELECTOR, "main img")  # text, not an element
    shoot(browser, "4-media")

    browser.find_element(By.LINK_TEXT, "Quarantine…").click()
    shoot(browser, "5-confirm")
    browser.find_element(By.CSS_SELECTOR, "main form button").click()
    wait_for(lambda: "Done: quarantine" in browser.page_source)
    states = [dd.text for dd in browser.find_elements(By.CSS_SELECTOR, "dd.state")]
    assert states == ["yes", "no"]  # quarantined, not pinned
    async with deployment.client(TEST_SECRET, media=True) as http:
        download = await http.get(f"/_matrix/client/v1/media/download/{server}/{media_id}")
    assert download.status_code == 404

    browser.get(base + "/tasks")
    browser.execute_script("document.getElementById('purge-before').value = '2030-01-01'")
    browser.find_element(By.CSS_SELECTOR, "form[action$='purge-remote'] button").click()
    wait_for(lambda: "Purge remote media" in browser.find_element(By.TAG_NAME, "h1").text)
    browser.find_element(By.CSS_SELECTOR, "main form button").click()
    wait_for(lambda: "started" in browser.current_url)
    task_id = browser.current_url.rsplit("=", 1)[1]
    # The page refreshes itself (console.js): the bar reaches 100 % without a reload.
    bar = f"tr[data-task='{task_id}'] progress"
    wait_for(lambda: browser.find_element(By.CSS_SELECTOR, bar).get_attribute("value") == "100")
    shoot(browser, "6-tasks")
    assert no_alert(browser)
