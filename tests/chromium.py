"""A real headless Chromium driven by selenium, for the tests that look at pages as a person does.

Needs Debian's `chromium` and `chromium-driver` (`scripts/install_browser.sh`). Without
them a test is skipped, except under CI (the `CI` environment variable), where a
missing browser is a failure: CI must run the browser tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

# Flags that keep Chromium from reaching outside hosts (component updates, field trials,
# first-run pages) and let it run as root in a container without a GPU.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-dev-shm-usage",
    "--window-size=1000,800",
)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the browser tests (run scripts/install_browser.sh)")
    pytest.skip(f"{reason} (install with scripts/install_browser.sh)")


def _find(*names: str) -> str | None:
    return next((path for name in names if (path := shutil.which(name))), None)


@contextmanager
def chromium(profile_dir: Path, page_load_timeout: float = 15) -> Iterator[Any]:
    """A selenium driver of a fresh headless Chromium (skipped, or failed under CI, without one)."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("the selenium package is not installed")
    browser = _find("chromium", "chromium-browser")
    chromedriver = _find("chromedriver")
    if browser is None or chromedriver is None:
        missing = " and ".join(n for n, p in (("chromium", browser), ("chromedriver", chromedriver)) if p is None)
        _unavailable(f"{missing} not found on PATH")

    options = webdriver.ChromeOptions()
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    # A fresh profile per run: no state, extensions or sign-in from anyone's real profile.
    options.add_argument(f"--user-data-dir={profile_dir}")
    # Both paths given explicitly, so Selenium Manager never tries to download a browser or driver.
    options.binary_location = browser
    service = Service(executable_path=chromedriver, log_output=subprocess.DEVNULL)
    web = webdriver.Chrome(options=options, service=service)
    web.set_page_load_timeout(page_load_timeout)
    try:
        yield web
    finally:
        web.quit()
