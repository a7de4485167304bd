"""The Dagster UI as an operator sees it: the real webserver on 127.0.0.1 over a test instance,
and Debian's Chromium driven by Playwright for Python (never a browser Playwright downloads).
Used by tests/test_operator_view.py and tests/test_review_browser.py, and by tests/screenshots.py
and tests/review_screenshots.py (the README's pictures)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

CHROMIUM = os.environ.get("DATMAN_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
START_SECONDS = 120.0


def browser_missing() -> str:
    """Why the browser test cannot run here ('' when it can)."""
    if not Path(CHROMIUM).exists():
        return (f"no Chromium at {CHROMIUM}: install Debian's package (`make system-packages` as root, or "
                f"apt-get install chromium) or set DATMAN_TEST_CHROMIUM")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed: `pip install -e '.[dev]'`"
    return ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def dagster_webserver(dagster_home: Path, env: dict[str, str]) -> Iterator[str]:
    """dagster-webserver for the project's Definitions over `dagster_home`; yields its URL."""
    port = free_port()
    exe = shutil.which("dagster-webserver") or str(Path(sys.executable).with_name("dagster-webserver"))
    log = open(dagster_home / "webserver.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([exe, "-m", "datman_flow.definitions", "-h", "127.0.0.1", "-p", str(port)],
                            env={**os.environ, **env, "DAGSTER_HOME": str(dagster_home)}, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                if requests.get(f"{url}/server_info", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dagster-webserver did not start: {(dagster_home / 'webserver.log').read_text()}")
            time.sleep(0.5)
        # Dagster asks a new instance's first visitor to join its community, in a dialog that can
        # appear late and cover the page: say it was seen, as the dialog's Skip button does
        requests.post(f"{url}/graphql", json={"query": "mutation { setNuxSeen }"}, timeout=10).raise_for_status()
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@contextmanager
def chromium_page(width: int = 1500, height: int = 1000):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": width, "height": height}).new_page()
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()


def open_page(page, url: str) -> None:
    """Go to `url` and wait until Dagster has drawn it."""
    page.goto(url)
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(500)


def open_check_partition(page, base: str, asset: str, check: str, partition: str) -> None:
    """A check's Partitions tab with one session's latest result."""
    open_page(page, f"{base}/assets/{asset}?view=checks&checkDetail={check}")
    tabs = page.get_by_role("tab", name="Partitions")
    tabs.nth(1).wait_for()  # the check's own tab (the asset's comes first): drawn after the page settles
    tabs.last.click()
    page.get_by_placeholder("Filter by partition").fill(partition)  # the list truncates long labels
    page.wait_for_timeout(500)
    page.get_by_text(partition[:8]).filter(visible=True).last.click()
    page.get_by_text(f"{partition}: ").first.wait_for()


def open_markdown(page, key: str) -> None:
    """Open a markdown metadata entry (the UI shows it as [Show Markdown] in the table)."""
    row = page.locator("tr").filter(has=page.get_by_text(key, exact=True))
    row.get_by_text("Show Markdown").first.click()
    page.get_by_role("dialog").first.wait_for()
    page.wait_for_timeout(800)  # the dialog fades in
