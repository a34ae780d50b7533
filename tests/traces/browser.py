"""Headless Chromium for the trace-page tests and benchmark: Debian's ``chromium`` driven by ``chromedriver``.

Found at ``$R2R_CHROMIUM`` / ``$R2R_CHROMEDRIVER`` or on PATH (``/usr/bin/chromium``, ``/usr/bin/chromedriver`` on
Debian). :func:`browser_missing` says why the browser tests cannot run (they skip with that reason).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _first(*candidates: str | None) -> str | None:
    return next((c for c in candidates if c), None)


CHROMIUM = _first(os.environ.get("R2R_CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser"),
                  shutil.which("google-chrome"))
CHROMEDRIVER = _first(os.environ.get("R2R_CHROMEDRIVER"), shutil.which("chromedriver"))


def browser_missing() -> str | None:
    """Why no browser test can run here, or ``None`` when selenium, chromium and chromedriver are all present."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    if CHROMIUM is None:
        return "no chromium browser found (apt-get install chromium chromium-driver; .ci/run does)"
    if CHROMEDRIVER is None:
        return "no chromedriver found (apt-get install chromium-driver; .ci/run does)"
    return None


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium with its own throwaway profile, logging the console and the network (performance log)."""
    from selenium import webdriver

    profile = tempfile.mkdtemp(prefix="r2r-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,1000",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def open_page(driver: Any, page: Path, fragment: str = "", wait: float = 30.0) -> None:
    """Load ``page`` (a file) and wait until its script has rendered (``body[data-ready]``)."""
    driver.get_log("performance")  # forget earlier pages' requests
    driver.get(page.as_uri() + fragment)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if driver.execute_script("return document.body && document.body.getAttribute('data-ready')") == "1":
            return
        time.sleep(0.02)
    raise AssertionError(f"the page never finished rendering; browser log: {driver.get_log('browser')}")


def requests_made(driver: Any) -> list[str]:
    """The URLs the browser asked for since the last :func:`open_page` (from the DevTools network log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls
