"""The console in a real headless Chromium (Selenium + the system chromium-driver).

Logs in with a token, checks the overview's count against ``host status --json``,
opens every page with no JavaScript error in the browser's log, and sees a wrong
token refused. With ``VOLACT_SCREENSHOTS=DIR`` it saves a screenshot of each page
there (``docs/images/`` holds the ones ``docs/console.md`` shows).

Chromium missing: skipped with an install hint, or failed under ``CI=true``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from console_support import HOSTILE, ConsoleHost, start
from volact.host.console import FLEET_FILE

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
PAGES = [("overview", "/"), ("activity", "/activity"), ("licensing", "/licensing"),
         ("alerts", "/alerts"), ("events", "/events"), ("fleet", "/fleet")]  # fmt: skip


def _need_browser() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install -e '.[dev]')")
    if not missing:
        return
    hint = "apt-get install chromium chromium-driver (or `make deps` as root)"
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"missing {', '.join(missing)} (CI=true): {hint}")
    pytest.skip(f"missing {', '.join(missing)}: {hint}")


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleHost]:
    _need_browser()
    c = start(tmp_path_factory.mktemp("console"))
    with socket.socket() as s:  # a port nobody listens on: a peer that is down
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    fleet = c.home / FLEET_FILE
    fleet.write_text(json.dumps({"format": "volact-console-fleet", "hosts": [
        {"name": "kms-1 (this console again)", "url": c.url, "token": c.token},
        {"name": "kms-2 (stopped)", "url": f"http://127.0.0.1:{dead}", "token": "vat_x"},
    ]}))  # fmt: skip
    fleet.chmod(0o600)
    try:
        yield c
    finally:
        assert c.host.stop() == 0


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    _need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--window-size=1280,900",
                 f"--user-data-dir={tmp_path / 'profile'}"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _submit(driver: Any, button_id: str) -> None:
    """Click a button that loads a new page, and wait for that page: reading right after
    the click can find the old page's elements, which then go stale (seen in CI)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    old = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.ID, button_id).click()
    wait = WebDriverWait(driver, 30)
    wait.until(expected_conditions.staleness_of(old))
    wait.until(lambda d: d.execute_script("return document.readyState") == "complete")


def _log_in(driver: Any, console: ConsoleHost, token: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(console.url + "/login")
    driver.find_element(By.ID, "token").send_keys(token)
    _submit(driver, "login")


def _errors(driver: Any) -> list[dict[str, Any]]:
    return [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


def test_log_in_and_read_every_page(console: ConsoleHost, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    shots = os.environ.get("VOLACT_SCREENSHOTS")
    _log_in(browser, console, console.token)
    assert browser.current_url.rstrip("/") == console.url
    status = console.cli_json("status")
    assert browser.find_element(By.ID, "count").text == str(status["count"]) == "30"
    assert browser.find_element(By.ID, "activated").text == "yes"
    for name, path in PAGES:
        browser.get(console.url + path)
        assert browser.find_element(By.TAG_NAME, "h1").text.lower() == name
        assert "Log in" not in browser.page_source
        assert _errors(browser) == [], name
        if shots:
            Path(shots).mkdir(parents=True, exist_ok=True)
            browser.save_screenshot(str(Path(shots) / f"console-{name}.png"))
    fleet_rows = browser.find_elements(By.CSS_SELECTOR, "#fleet tr")
    assert "no answer" in fleet_rows[3].text and "answering" in fleet_rows[2].text
    lic = console.cli_json("report", "licensing")["summary"]
    browser.get(console.url + "/licensing")
    assert browser.find_element(By.ID, "lic-licensed").text == str(lic["licensed"])
    # Refusals per result on the Activity page equal the CLI's daily totals.
    act = console.cli_json("report", "activity")
    too_low = sum(r["refused"].get("count_too_low", 0) for r in act["rows"])
    browser.get(console.url + "/activity")
    cells = [[td.text for td in r.find_elements(By.TAG_NAME, "td")]
             for r in browser.find_elements(By.CSS_SELECTOR, "#refused tr")[1:]]  # fmt: skip
    refused = dict(cells)
    assert too_low > 0 and refused.get("count_too_low") == str(too_low)
    # The hostile workstation name is shown as text, never run (no alert opened).
    browser.get(console.url + "/events?workstation=script")
    rows = browser.find_elements(By.CSS_SELECTOR, "#events tr")
    assert any(HOSTILE in r.text for r in rows)
    assert _errors(browser) == []
    # Search by result, then page back.
    browser.get(console.url + "/events?limit=5")
    browser.find_element(By.ID, "f-result").send_keys("ok")
    _submit(browser, "search")
    results = {r.find_elements(By.TAG_NAME, "td")[5].text
               for r in browser.find_elements(By.CSS_SELECTOR, "#events tr")[1:]}  # fmt: skip
    assert results == {"ok"}
    browser.get(console.url + "/events?limit=5")
    _submit(browser, "older")
    assert "before=" in browser.current_url
    assert len(browser.find_elements(By.CSS_SELECTOR, "#events tr")) == 6
    assert _errors(browser) == []


def test_a_wrong_token_is_refused(console: ConsoleHost, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    _log_in(browser, console, "vat_" + "A" * 43)
    assert browser.find_element(By.ID, "message").text == "That token is not valid."
    browser.get(console.url + "/")
    assert browser.find_elements(By.ID, "count") == []
    assert browser.find_elements(By.ID, "token")
