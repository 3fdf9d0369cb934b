"""The HTML report rendered in a real headless Chromium: every chart drawn, no console errors, no network.

Needs Debian's ``chromium`` and ``chromium-driver`` (``/usr/bin/chromium``, ``/usr/bin/chromedriver``;
skipped with the reason when absent). selenium is pointed at both explicitly, so selenium-manager never
downloads a driver. A full-page screenshot is saved under ``$RLTRADE_TEST_ARTIFACTS`` (else the test's
tmp folder) and its path printed.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from rltrade.report.html import write_report
from tests.support.report_runs import make_report_run

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHARTS = ("chart-price", "chart-equity", "chart-training")
"""The chart divs of a run with eval files and TensorBoard logs."""


def _browser_paths() -> tuple[Path, Path]:
    chromium = Path(shutil.which("chromium") or CHROMIUM)
    driver = Path(shutil.which("chromedriver") or CHROMEDRIVER)
    if not (chromium.exists() and driver.exists()):
        pytest.skip(f"needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)")
    return chromium, driver


def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    chromium, driver_path = _browser_paths()
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    report = write_report(make_report_run(tmp_path / "run", tables=True))
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(chromium)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(executable_path=str(driver_path)))
    try:
        t0 = time.perf_counter()
        driver.get(report.as_uri())
        WebDriverWait(driver, 45).until(
            lambda d: (
                d.execute_script(
                    "return Array.from(document.querySelectorAll('.js-plotly-plot'))"
                    ".filter(p => p.querySelector('svg.main-svg')).length"
                )
                == len(CHARTS)
            )
        )
        render_s = time.perf_counter() - t0
        plots = driver.execute_script("return Array.from(document.querySelectorAll('.js-plotly-plot')).map(p => p.id)")
        assert sorted(plots) == sorted(CHARTS)
        # every chart drew its traces: candles, lines, markers and the regime heatmap
        drawn = driver.execute_script(
            "return Object.fromEntries(Array.from(document.querySelectorAll('.js-plotly-plot')).map(p => "
            "[p.id, p.querySelectorAll('g.trace, g.hm, image').length]))"
        )
        assert all(n > 0 for n in drawn.values()), drawn
        # nothing fetched from anywhere but the file itself
        resources = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert all(r.startswith(("file:", "data:", "blob:")) for r in resources), resources
        severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not severe, severe
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1400, height)
        artifacts = Path(os.environ.get("RLTRADE_TEST_ARTIFACTS", tmp_path / "artifacts"))
        artifacts.mkdir(parents=True, exist_ok=True)
        shot = artifacts / "report_screenshot.png"
        assert driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 50_000
        print(f"report {report} ({report.stat().st_size / 1e6:.1f} MB) rendered in {render_s:.1f} s; screenshot {shot}")
    finally:
        driver.quit()
