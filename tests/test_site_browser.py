"""The static site in a real browser (headless Chromium through Selenium): the table shows the
right rows, a click on a column's header sorts by it, a filter hides the other rows, a row's link
leads to its run page, and the browser's console stays free of errors.

Skipped, with the reason, only where Chromium and its driver are not installed
(``apt-get install chromium chromium-driver``; ``.ci/run`` installs them).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from unlearnbench.report.leaderboard import summarize
from unlearnbench.report.site import build_site

from test_site import RUNS, make_runs, save

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1500,1000")

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
if not (Path(CHROMIUM).is_file() and Path(DRIVER).is_file()):
    pytest.skip(f"no headless browser: {CHROMIUM} or {DRIVER} is missing "
                f"(apt-get install chromium chromium-driver)", allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(DRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture
def site(make_record, tmp_path: Path):
    records = make_runs(make_record)
    save(records, tmp_path / "board" / "grid" / "records")
    build_site(tmp_path / "board", tmp_path / "site", log=lambda _: None)
    return tmp_path / "site", summarize(records)


def _column(driver, name: str) -> int:
    headers = driver.find_elements(By.CSS_SELECTOR, "table.board thead th")
    return [h.get_attribute("data-column") for h in headers].index(name)


def _visible(driver, column: str) -> list[str]:
    index = _column(driver, column)
    return [row.find_elements(By.TAG_NAME, "td")[index].text
            for row in driver.find_elements(By.CSS_SELECTOR, "table.board tbody tr") if row.is_displayed()]


def _sort_values(driver, column: str) -> list[float]:
    index = _column(driver, column)
    return [float(row.find_elements(By.TAG_NAME, "td")[index].get_attribute("data-sort"))
            for row in driver.find_elements(By.CSS_SELECTOR, "table.board tbody tr") if row.is_displayed()]


def _console_errors(driver) -> list[dict]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def test_the_site_works_in_a_real_browser(browser, site, tmp_path: Path) -> None:
    root, summary = site
    browser.get((root / "index.html").as_uri())
    assert browser.find_element(By.TAG_NAME, "h1").text == "unlearnbench leaderboard"
    browser.find_element(By.LINK_TEXT, "grid").click()
    assert browser.current_url.endswith("/grid/index.html")

    # the right rows, in the summary's order
    assert _visible(browser, "method") == list(summary["method"])
    assert _visible(browser, "pruning") == list(summary["pruning"])
    assert len(_visible(browser, "method")) == 7

    # a click on UA's header sorts by UA's mean, ascending; a second click, descending
    ua = browser.find_element(By.CSS_SELECTOR, 'th[data-column="UA"] button')
    ua.click()
    assert _sort_values(browser, "UA") == sorted(summary["UA_mean"])
    assert browser.find_element(By.CSS_SELECTOR, 'th[data-column="UA"]').get_attribute("aria-sort") == "ascending"
    assert _visible(browser, "method")[0] == "ft" and _visible(browser, "UA")[0] == "5.00 (3.00)"
    ua.click()
    assert _sort_values(browser, "UA") == sorted(summary["UA_mean"], reverse=True)
    browser.find_element(By.CSS_SELECTOR, 'th[data-column="method"] button').click()
    assert _visible(browser, "method") == sorted(summary["method"])

    # filters: method ft, then pruning dense as well
    Select(browser.find_element(By.CSS_SELECTOR, 'select[data-filter="method"]')).select_by_visible_text("ft")
    assert _visible(browser, "method") == ["ft"] * 3
    Select(browser.find_element(By.CSS_SELECTOR, 'select[data-filter="pruning"]')).select_by_visible_text("dense")
    assert _visible(browser, "pruning") == ["dense", "dense"]
    assert browser.find_element(By.CSS_SELECTOR, "form.filters output").text == "2 of 7 rows shown"
    Select(browser.find_element(By.CSS_SELECTOR, 'select[data-filter="scenario"]')).select_by_visible_text("random")
    assert _visible(browser, "forget") == ["random:0.1"]
    shot = tmp_path / "board.png"
    browser.save_screenshot(str(shot))

    # the row's link leads to its run page, which holds the run's numbers
    row = next(r for r in browser.find_elements(By.CSS_SELECTOR, "table.board tbody tr") if r.is_displayed())
    row.find_element(By.CSS_SELECTOR, "td.runs a").click()
    assert browser.current_url.endswith("/grid/runs/synthetic-tiny_cnn-random_0.1-ft-dense-seed0.html")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Run synthetic-tiny_cnn-random_0.1-ft-dense-seed0"
    metrics = browser.find_element(By.CSS_SELECTOR, "section table").text
    ua, mia = RUNS[("ft", None, 0, "random:0.1")][:2]
    assert f"UA {ua:.4f}" in metrics and f"MIA-Efficacy {mia:.4f}" in metrics
    browser.find_element(By.LINK_TEXT, "back to the table").click()
    assert browser.current_url.endswith("/grid/index.html")

    assert _console_errors(browser) == []
    with Image.open(shot) as image:  # a real picture of the table, not a blank page
        assert image.size[0] >= 1000 and max(hi - lo for lo, hi in ImageStat.Stat(image.convert("L")).extrema) > 100


def test_the_table_reads_without_javascript(browser, site) -> None:
    root, summary = site
    browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
    try:
        browser.get((root / "grid" / "index.html").as_uri())
        assert _visible(browser, "method") == list(summary["method"])
        assert not browser.find_element(By.CSS_SELECTOR, "form.filters").is_displayed()
        assert browser.find_elements(By.CSS_SELECTOR, "th button") == []
    finally:
        browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": False})
    assert _console_errors(browser) == []
