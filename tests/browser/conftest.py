"""Headless Chromium (Debian's) driven by Playwright, one fresh context per test."""

from __future__ import annotations

import json
import shutil
import urllib.request

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


def log_in(page, base_url: str, *, keep_lists: bool = False) -> None:
    """Sign in as the test user, live. Its watchlists kept on the server are deleted first
    (unless ``keep_lists``): like a fresh browser profile, every test starts from none."""
    if not keep_lists:
        delete_watchlists(base_url)
    page.goto(f"{base_url}/")
    page.wait_for_url("**/accounts/login/**")
    page.fill('input[name="username"]', USERNAME)
    page.fill('input[name="password"]', PASSWORD)
    page.click('button[type="submit"]')
    page.wait_for_selector('#conn-state[data-state="live"]')


def user_watchlists(
    base_url: str, username: str = USERNAME, password: str = PASSWORD, *, delete: bool = False
) -> list[dict]:
    """A user's watchlists kept on the server, read (and with ``delete`` deleted) through the
    REST API with a token of its own, revoked afterwards."""
    def call(method: str, path: str, body: dict | None = None, token: str = "") -> object:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Token {token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(base_url + path, data, headers, method=method)
        with urllib.request.urlopen(request, timeout=timeout(10)) as response:
            raw = response.read()
            return json.loads(raw) if raw else None

    token = call("POST", "/api/token/", {"username": username, "password": password})["token"]
    lists = call("GET", "/api/watchlists/", token=token)
    for listed in lists if delete else ():
        call("DELETE", f"/api/watchlists/{listed['id']}/", token=token)
    call("POST", "/api/token/revoke/", {}, token=token)
    return lists


def delete_watchlists(base_url: str, username: str = USERNAME, password: str = PASSWORD) -> None:
    """Delete every watchlist of the user: like a fresh browser profile, a test starts from none."""
    user_watchlists(base_url, username, password, delete=True)


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

