"""The ticker page in headless Chromium, against a live daphne: what a user sees."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PASSWORD, USERNAME, log_in
from tests.servers import Server, manage
from tests.timeouts import timeout

pytestmark = [pytest.mark.browser, pytest.mark.live]
# Screenshots a person may look at after a run; git-ignored. docs/ticker.png is
# refreshed by `python -m docs.pictures` only, never by a test.
ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "artifacts"
DEFAULT_SYMBOLS = [
    "AAPL", "MSFT", "NVDA", "TSLA", "AMZN", "BTC-USD", "ETH-USD", "GBP/USD", "USD/JPY"
]
STORAGE_KEY = f"marketfeed:watchlist:v1:{USERNAME}"


def row(page, symbol: str):
    return page.locator(f'tr[data-symbol="{symbol}"]')


def cell(page, symbol: str, field: str):
    return row(page, symbol).locator(f'[data-field="{field}"]')


def wait_for_tick(page, symbol: str) -> None:
    """Wait until the row shows a quote, then until it shows a newer one."""
    expect(row(page, symbol)).to_have_attribute("data-seq", re.compile(r"\d"))
    before = row(page, symbol).get_attribute("data-seq")
    expect(row(page, symbol)).not_to_have_attribute("data-seq", before)


def shown_symbols(page) -> list[str]:
    return page.locator("#rows tr").evaluate_all("rows => rows.map(r => r.dataset.symbol)")


def set_instrument_active(env: dict[str, str], symbol: str, *, active: bool) -> None:
    """What the admin's halt / resume actions do, through the same service."""
    service = "instrument_resume" if active else "instrument_halt"
    manage(
        env, "shell", "-c",
        f"from feeds.models import Instrument as I; from feeds.services import {service} as s; "
        f"s(instruments=I.objects.filter(symbol={symbol!r}))",
    )


def test_login_page_signs_in_and_log_out_signs_out(context, server, token):
    page = context.new_page()
    page.goto(f"{server.url}/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.fill('input[name="username"]', USERNAME)
    page.fill('input[name="password"]', "wrong")
    page.click('button[type="submit"]')
    expect(page.get_by_role("alert")).to_contain_text("did not match")
    page.fill('input[name="password"]', PASSWORD)
    page.click('button[type="submit"]')
    expect(page.locator("#conn-state")).to_have_text("live")
    expect(page.locator(".who")).to_have_text(USERNAME)
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.goto(f"{server.url}/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))


def test_default_watchlist_shows_prices_that_change(page):
    assert shown_symbols(page) == DEFAULT_SYMBOLS
    wait_for_tick(page, "AAPL")
    expect(cell(page, "AAPL", "name")).to_have_text("Apple Inc.")
    # Prices carry the tick size's decimals: 0.01 for AAPL, 0.00001 for GBP/USD.
    expect(cell(page, "AAPL", "bid")).to_have_text(re.compile(r"^\d+\.\d{2}$"))
    expect(cell(page, "GBP/USD", "ask")).to_have_text(re.compile(r"^\d+\.\d{5}$"))
    # Both cells read in one script: two reads could straddle the next quote.
    bid, ask = row(page, "AAPL").evaluate(
        "r => ['bid', 'ask'].map(f => Number(r.querySelector(`[data-field=${f}]`).textContent))"
    )
    assert 0 < bid < ask
    expect(cell(page, "AAPL", "change_pct")).to_have_text(re.compile(r"^([+\u2212])?\d+\.\d{2}%$"))
    expect(cell(page, "AAPL", "ts")).to_have_text(re.compile(r"^\d\d:\d\d:\d\d\.\d{3}$"))
    # The status bar: traffic, a measured round trip, every row subscribed.
    expect(page.locator('[data-stat="rate"]')).not_to_have_text("0")
    expect(page.locator('[data-stat="rtt"]')).to_have_text(re.compile(r"^\d+(\.\d)? ms$"))
    expect(page.locator('[data-stat="symbols"]')).to_have_text(str(len(DEFAULT_SYMBOLS)))
    # The first row is charted; give the chart some history before the screenshot.
    expect(page.locator("#chart [data-chart=symbol]")).to_have_text("AAPL")
    page.wait_for_function(
        "() => Number(/last (\\d+) s/.exec("
        "document.querySelector('[data-chart=range]').textContent)?.[1]) >= 6"
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ticker.png"))


def test_a_price_move_tints_its_cell_green_or_red(page):
    tinted = page.locator('#rows td[data-flash="up"], #rows td[data-flash="down"]').first
    expect(tinted).to_have_attribute("data-field", re.compile(r"^(bid|ask|last)$"))
    colour = tinted.evaluate("td => [td.dataset.flash, getComputedStyle(td).backgroundColor]")
    expected = page.evaluate(
        "dir => getComputedStyle(document.documentElement)"
        ".getPropertyValue(`--flash-${dir}`).trim()",
        colour[0],
    )
    assert colour[1].replace(" ", "") == expected.replace(" ", ""), colour


def test_search_box_suggests_by_name_and_adds_eur_usd_by_keyboard(page):
    box = page.locator("#add-symbol")
    box.fill("euro / us")
    option = page.locator('#suggestions [role="option"]').first
    expect(option).to_have_attribute("data-symbol", "EUR/USD")
    expect(option).to_contain_text("Euro / US Dollar")
    box.press("ArrowDown")
    expect(option).to_have_attribute("aria-selected", "true")
    box.press("Enter")
    wait_for_tick(page, "EUR/USD")
    assert shown_symbols(page)[-1] == "EUR/USD"
    expect(box).to_have_value("")
    expect(cell(page, "EUR/USD", "bid")).to_have_text(re.compile(r"^\d+\.\d{5}$"))
    expect(page.locator("#chart [data-chart=symbol]")).to_have_text("EUR/USD")


@pytest.mark.parametrize(
    ("typed", "error"),
    [
        ("NOPE", "No instrument NOPE"),
        ("%'\"<b>;--", "is not a symbol"),
        ("   ", "Type a symbol"),
        ("aapl", "already on the watchlist"),
    ],
)
def test_a_bad_entry_in_the_search_box_says_why_and_adds_nothing(page, typed, error):
    page.fill("#add-symbol", typed)
    page.click("#add-button")
    expect(page.locator("#add-error")).to_contain_text(error)
    assert shown_symbols(page) == DEFAULT_SYMBOLS
    expect(page.locator("#suggestions")).to_be_hidden()


def test_remove_takes_the_row_away_and_reload_keeps_the_watchlist(page):
    page.get_by_role("button", name="Remove MSFT").click()
    expect(row(page, "MSFT")).to_have_count(0)
    page.fill("#add-symbol", "sol-usd")
    page.press("#add-symbol", "Enter")
    wait_for_tick(page, "SOL-USD")
    page.reload()
    expect(page.locator("#conn-state")).to_have_text("live")
    wait_for_tick(page, "SOL-USD")
    assert shown_symbols(page) == [s for s in DEFAULT_SYMBOLS if s != "MSFT"] + ["SOL-USD"]


def test_a_saved_watchlist_with_unknown_symbols_keeps_the_known_ones(page):
    page.evaluate(
        "([key, value]) => localStorage.setItem(key, value)",
        [STORAGE_KEY, '["AAPL", "GONE1", 42, "bad symbol!", "eth-usd", "GONE2"]'],
    )
    page.reload()
    expect(page.locator("#notice")).to_contain_text("GONE1, GONE2")
    wait_for_tick(page, "ETH-USD")
    assert shown_symbols(page) == ["AAPL", "ETH-USD"]


def test_a_corrupt_saved_watchlist_falls_back_to_the_default(page):
    page.evaluate("key => localStorage.setItem(key, '{not json')", STORAGE_KEY)
    page.reload()
    wait_for_tick(page, "AAPL")
    assert shown_symbols(page) == DEFAULT_SYMBOLS


def test_halting_an_instrument_greys_its_row_with_a_badge(page, server):
    wait_for_tick(page, "TSLA")
    halted = row(page, "TSLA").locator(".badge.halted")
    expect(halted).to_be_hidden()
    try:
        set_instrument_active(server.env, "TSLA", active=False)
        expect(halted).to_be_visible()
        expect(row(page, "TSLA")).to_have_class(re.compile(r"\bhalted\b"))
        expect(row(page, "AAPL")).not_to_have_class(re.compile(r"\bhalted\b"))
    finally:
        set_instrument_active(server.env, "TSLA", active=True)
    expect(halted).to_be_hidden()
    wait_for_tick(page, "TSLA")



def test_the_page_reconnects_by_itself_after_a_server_restart(context, own_server):
    page = context.new_page()
    log_in(page, own_server.url)
    wait_for_tick(page, "AAPL")
    own_server.stop()
    state = page.locator("#conn-state")
    expect(state).to_have_text(re.compile(r"^reconnecting in \d+ s$"))
    expect(row(page, "AAPL").locator(".badge.stale")).to_be_visible()
    restarted = Server(own_server.env, own_server.port)
    restarted.start()
    try:
        expect(state).to_have_text("live", timeout=timeout(30) * 1000)
        wait_for_tick(page, "AAPL")
        expect(row(page, "AAPL").locator(".badge.stale")).to_be_hidden()
        expect(page.locator('[data-stat="symbols"]')).to_have_text(str(len(DEFAULT_SYMBOLS)))
    finally:
        restarted.stop()


def test_the_page_keeps_up_with_the_feed(context, server, token):
    """At the default feed's rate, frames keep coming and rows show the newest quote.

    The same in-page probe as ``python -m bench.page`` (docs/TICKER.md), at a
    moderate rate; the benchmark runs it at 1,000 updates/s.
    """
    from bench.page import PROBE_JS, summarise

    context.add_init_script(PROBE_JS)
    page = context.new_page()
    log_in(page, server.url)
    wait_for_tick(page, "AAPL")
    page.evaluate("window.__pageBench.start()")
    page.wait_for_function("() => window.__pageBench.samples() >= 30")  # 3 s of 100 ms samples
    figures = summarise(page.evaluate("window.__pageBench.stop()"))
    assert figures["quotes_per_s"] > 10, figures
    assert figures["frames_per_s"] >= 10 / timeout(1), figures
    assert figures["display_lag_ms"]["max"] < 500 * timeout(1), figures
