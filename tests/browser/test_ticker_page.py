"""The ticker page in headless Chromium (Debian's), against a live daphne."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.timeouts import timeout

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DOCS = Path(__file__).resolve().parents[2] / "docs"
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={"width": 1100, "height": 560},
        )
        yield context
        context.close()


@pytest.fixture
def page(browser, server, token):
    page = browser.new_page()
    page.set_default_timeout(timeout(15) * 1000)
    page.goto(f"{server.url}/")
    if "/accounts/login/" in page.url:
        page.fill('input[name="username"]', "livetester")
        page.fill('input[name="password"]', "live-pass-123")
        page.click('button[type="submit"]')
    page.wait_for_selector('#conn-state[data-state="live"]')
    yield page
    page.close()


def cell(page, symbol: str, field: str):
    return page.locator(f'tr[data-symbol="{symbol}"] td[data-field="{field}"]')


def wait_for_change(page, symbol: str, field: str = "ts") -> None:
    locator = cell(page, symbol, field)
    locator.filter(has_text=".").first.wait_for()
    before = locator.inner_text()
    page.wait_for_function(
        "([sel, before]) => document.querySelector(sel)?.textContent !== before",
        arg=[f'tr[data-symbol="{symbol}"] td[data-field="{field}"]', before],
    )


def test_default_watchlist_shows_prices_that_change(page):
    for symbol in ("AAPL", "BTC-USD", "EUR/USD"):
        assert page.locator(f'tr[data-symbol="{symbol}"]').count() == 1
    wait_for_change(page, "AAPL")
    bid = float(cell(page, "AAPL", "bid").inner_text())
    ask = float(cell(page, "AAPL", "ask").inner_text())
    assert 0 < bid < ask
    page.screenshot(path=str(DOCS / "ticker.png"))


def test_add_remove_and_reload_keep_the_watchlist(page):
    page.fill("#add-symbol", "sol-usd")
    page.press("#add-symbol", "Enter")
    page.wait_for_selector('tr[data-symbol="SOL-USD"]')
    wait_for_change(page, "SOL-USD")
    page.fill("#add-symbol", "NOPE")
    page.click("#add-button")
    page.locator("#add-error").filter(has_text="NOPE").wait_for()
    page.click('tr[data-symbol="MSFT"] .remove')
    page.wait_for_selector('tr[data-symbol="MSFT"]', state="detached")
    page.reload()
    page.wait_for_selector('#conn-state[data-state="live"]')
    wait_for_change(page, "SOL-USD")
    assert page.locator('tr[data-symbol="MSFT"]').count() == 0
