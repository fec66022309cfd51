"""Headless Chromium (Debian's) driven by Playwright, one fresh context per test."""

from __future__ import annotations

import shutil

import pytest

from tests.servers import Server, free_port
from tests.timeouts import timeout

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
USERNAME, PASSWORD = "livetester", "live-pass-123"  # tests/conftest.py's token fixture makes them
VIEWPORT = {"width": 1280, "height": 760}


@pytest.fixture(scope="module")
def chromium():
    """Per module, not per session: Playwright's sync API runs an event loop in
    this thread while it is open, and the asyncio tests that follow need it gone."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def context(chromium):
    """A browser profile of its own: no cookies, an empty localStorage."""
    ctx = chromium.new_context(viewport=VIEWPORT, color_scheme="light")
    ctx.set_default_timeout(timeout(15) * 1000)
    yield ctx
    ctx.close()


def log_in(page, base_url: str) -> None:
    page.goto(f"{base_url}/")
    page.wait_for_url("**/accounts/login/**")
    page.fill('input[name="username"]', USERNAME)
    page.fill('input[name="password"]', PASSWORD)
    page.click('button[type="submit"]')
    page.wait_for_selector('#conn-state[data-state="live"]')


@pytest.fixture
def page(context, server, token):
    """The ticker page of a freshly signed-in user, live."""
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    log_in(page, server.url)
    yield page
    page.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture
def own_server(live_env, token):
    """A daphne of this test's own, on the shared database and secret (so a session
    survives its restart), to stop and start again."""
    srv = Server(live_env, free_port())
    srv.start()
    yield srv
    srv.stop()

