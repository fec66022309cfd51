"""Watchlists kept on the server, on the ticker page (PROTOCOL.md "Watchlists").

A list this browser kept in localStorage moves to the server once; two
browsers of one user see each other's changes through the feed; lists are
created, picked, renamed and deleted in the bar above the add box.
"""

from __future__ import annotations

import json
import urllib.request

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import USERNAME, log_in
from tests.browser.test_ticker_page import (
    ARTIFACTS,
    DEFAULT_SYMBOLS,
    row,
    shown_symbols,
    wait_for_tick,
)
from tests.timeouts import timeout

pytestmark = [pytest.mark.browser, pytest.mark.live]

STORAGE_KEY = f"marketfeed:watchlist:v1:{USERNAME}"
# The change reaches the other browser within a second; the wait allows for a loaded machine.
SYNC_MS = timeout(10) * 1000


def server_lists(server, token) -> list[dict]:
    request = urllib.request.Request(
        f"{server.url}/api/watchlists/", headers={"Authorization": f"Token {token}"}
    )
    with urllib.request.urlopen(request, timeout=timeout(10)) as response:
        return json.loads(response.read())


def test_a_list_kept_in_the_browser_moves_to_the_server_once(page, server, token):
    assert server_lists(server, token) == []
    page.evaluate(
        "([key, value]) => localStorage.setItem(key, value)",
        [STORAGE_KEY, '["msft", "ETH-USD", "GONE1"]'],
    )
    page.reload()
    expect(page.locator("#notice")).to_contain_text("GONE1")
    wait_for_tick(page, "ETH-USD")
    assert shown_symbols(page) == ["MSFT", "ETH-USD"]
    expect(page.locator("#list-picker option:checked")).to_have_text("My watchlist")
    assert [(w["name"], w["symbols"]) for w in server_lists(server, token)] == [
        ("My watchlist", ["MSFT", "ETH-USD"])
    ]
    assert json.loads(page.evaluate("key => localStorage.getItem(key)", STORAGE_KEY)) == {
        "migrated": True
    }
    # Moved once: the server's list is the page's from now on, whatever the browser kept.
    page.get_by_role("button", name="Remove MSFT").click()
    expect(row(page, "MSFT")).to_have_count(0)
    page.reload()
    wait_for_tick(page, "ETH-USD")
    # The removal may reach the server just after the reloaded page asked: then the feed brings it.
    expect(page.locator("#rows tr")).to_have_count(1)
    assert shown_symbols(page) == ["ETH-USD"]
    assert [w["symbols"] for w in server_lists(server, token)] == [["ETH-USD"]]


def test_two_browsers_of_one_user_see_each_others_changes(chromium, server, token):
    first, second = (chromium.new_context(viewport={"width": 1280, "height": 760}) for _ in "ab")
    try:
        for ctx in (first, second):
            ctx.set_default_timeout(timeout(15) * 1000)
        a, b = first.new_page(), second.new_page()
        log_in(a, server.url)
        log_in(b, server.url, keep_lists=True)
        assert shown_symbols(b) == DEFAULT_SYMBOLS

        a.fill("#add-symbol", "sol-usd")
        a.press("#add-symbol", "Enter")
        wait_for_tick(a, "SOL-USD")
        expect(row(b, "SOL-USD")).to_have_count(1, timeout=SYNC_MS)
        wait_for_tick(b, "SOL-USD")  # subscribed there too, not just drawn
        assert shown_symbols(b) == [*DEFAULT_SYMBOLS, "SOL-USD"]

        b.get_by_role("button", name="Remove TSLA").click()
        expect(row(a, "TSLA")).to_have_count(0, timeout=SYNC_MS)
        assert shown_symbols(a) == [s for s in DEFAULT_SYMBOLS if s != "TSLA"] + ["SOL-USD"]
        assert server_lists(server, token)[0]["symbols"] == shown_symbols(a)
    finally:
        first.close()
        second.close()


def test_lists_are_created_picked_renamed_and_deleted(page, server, token):
    page.on("dialog", lambda dialog: dialog.accept())
    wait_for_tick(page, "AAPL")
    expect(page.locator("#list-picker option:checked")).to_have_text("Watchlist (not saved yet)")
    expect(page.locator("#list-name")).to_be_hidden()
    page.get_by_role("button", name="New list").click()
    expect(page.get_by_role("button", name="Rename")).to_be_hidden()
    page.fill("#list-name", "Crypto")
    page.get_by_role("button", name="Create").click()
    expect(page.locator("#list-picker option:checked")).to_have_text("Crypto")
    expect(page.locator("#rows tr")).to_have_count(0)
    page.fill("#add-symbol", "btc-usd")
    page.press("#add-symbol", "Enter")
    wait_for_tick(page, "BTC-USD")
    page.fill("#add-symbol", "eth-usd")
    page.press("#add-symbol", "Enter")
    wait_for_tick(page, "ETH-USD")
    assert shown_symbols(page) == ["BTC-USD", "ETH-USD"]
    expect(page.locator('[data-stat="symbols"]')).to_have_text("2")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "watchlists.png"))

    # The default shown before was kept as a list of its own.
    page.select_option("#list-picker", label="My watchlist")
    wait_for_tick(page, "AAPL")
    assert shown_symbols(page) == DEFAULT_SYMBOLS
    page.select_option("#list-picker", label="Crypto")
    wait_for_tick(page, "BTC-USD")
    assert shown_symbols(page) == ["BTC-USD", "ETH-USD"]

    page.get_by_role("button", name="Rename").click()
    page.fill("#list-name", "Coins")
    page.locator("#list-name").press("Enter")
    expect(page.locator("#list-picker option:checked")).to_have_text("Coins")
    assert [(w["name"], w["symbols"]) for w in server_lists(server, token)] == [
        ("My watchlist", DEFAULT_SYMBOLS),
        ("Coins", ["BTC-USD", "ETH-USD"]),
    ]

    page.get_by_role("button", name="Delete").click()
    expect(page.locator("#list-picker option:checked")).to_have_text("My watchlist")
    expect(page.locator("#list-picker option")).to_have_count(1)
    wait_for_tick(page, "AAPL")
    assert shown_symbols(page) == DEFAULT_SYMBOLS
    assert [w["name"] for w in server_lists(server, token)] == ["My watchlist"]
    # The page reopens on the list it showed last.
    page.reload()
    expect(page.locator("#list-picker option:checked")).to_have_text("My watchlist")


def test_a_refused_name_says_why(page):
    page.get_by_role("button", name="New list").click()
    page.fill("#list-name", "One")
    page.get_by_role("button", name="Create").click()
    expect(page.locator("#list-picker option:checked")).to_have_text("One")
    page.get_by_role("button", name="New list").click()
    page.fill("#list-name", "one")
    page.get_by_role("button", name="Create").click()
    expect(page.locator(".lists .error")).to_contain_text("already have a watchlist named")
    expect(page.locator("#list-picker option:checked")).to_have_text("One")
