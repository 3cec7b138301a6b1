"""Browser tests of the admin console in a real headless Chromium (Debian's /usr/bin/chromium,
driven by Playwright with executable_path; no browser download). The app under test is
served by a werkzeug server on a free local port in a thread of the test process.

Locally, without Chromium, these tests skip; under CI=true a missing browser fails them.
Screenshots of every page visited go to var/test-artifacts/.
"""
from __future__ import annotations

import os
import re
import tempfile
import threading
from pathlib import Path

import pytest

from tests import services

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def chromium():
    if not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} is missing (make test installs Debian's chromium when run as root)"
        if services.CI:
            pytest.fail("CI=true: " + message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright
    with tempfile.TemporaryDirectory(prefix="custos-chromium-") as profile, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900})
        context.set_default_timeout(15_000)
        yield context
        context.close()


@pytest.fixture
def browser(chromium):
    """A clean page (no cookies from an earlier test)."""
    chromium.clear_cookies()
    page = chromium.new_page()
    yield page
    page.close()


class Console:
    """A console served on a real port for one app, plus helpers to drive it."""

    def __init__(self, app, settings, test_name: str):
        from werkzeug.serving import make_server
        self.app, self.settings = app, settings
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://localhost:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.test_name = re.sub(r"[^a-z0-9_]+", "_", test_name.lower())
        self.shots = 0

    def stop(self):
        self.server.shutdown()

    def shot(self, page, label: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.shots += 1
        path = ARTIFACTS / f"{self.test_name}-{self.shots:02d}-{label}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    def login(self, page, staff_id: str, secret: str, label: str | None = None):
        from tests.browser.kit import PASSWORD, fresh_code
        page.goto(self.url + "/admin/login")
        page.fill("#username", staff_id)
        page.fill("#password", PASSWORD)
        page.click("#login")
        page.wait_for_url(re.compile(r".*/admin/totp.*"))
        page.fill("#code", fresh_code(self.settings, staff_id, secret))
        page.click("#verify")
        page.wait_for_url(re.compile(r".*/admin/$"))
        if label:
            self.shot(page, label)

    def logout(self, page):
        page.click("form.logout button")
        page.wait_for_url(re.compile(r".*/admin/login$"))

    def confirm(self, page, label: str, *, totp: tuple[str, str] | None = None, **fields):
        """On a confirmation page: fill the fields (and a fresh TOTP code), screenshot, confirm."""
        from tests.browser.kit import fresh_code
        assert page.locator("#what").inner_text()          # it says what will happen
        for name, value in fields.items():
            page.fill(f"#f-{name}", value)
        if totp:
            page.fill("#totp", fresh_code(self.settings, *totp))
        self.shot(page, f"confirm-{label}")
        page.click("#confirm")
        page.wait_for_load_state()


@pytest.fixture
def console_factory(request):
    consoles = []

    def factory(app, settings):
        c = Console(app, settings, request.node.name)
        consoles.append(c)
        return c
    yield factory
    for c in consoles:
        c.stop()
