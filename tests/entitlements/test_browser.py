"""The ticker page with entitlements on: what the user may see, refusals, and revocations."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import delete_watchlists, user_watchlists
from tests.browser.test_ticker_page import row, shown_symbols, wait_for_tick
from tests.entitlements.test_live import admin_delete
from tests.servers import Server, free_port, manage

pytestmark = [pytest.mark.browser, pytest.mark.live]

USERNAME, PASSWORD = "entitled-bea", "bea-pass-123"
STORAGE_KEY = f"marketfeed:watchlist:v1:{USERNAME}"
# The default watchlist's venues and classes (XNAS equities, crypto, FX), not XNYS.
# Prints the XNAS row's id, for the tests that revoke it.
GRANTS = "; ".join(
    f"Entitlement.objects.create(user=u, asset_class='{c}')" for c in ("crypto", "fx")
) + "; print(Entitlement.objects.create(user=u, exchange='XNAS').pk)"
XNAS_DEFAULTS = ["AAPL", "MSFT", "NVDA", "TSLA", "AMZN"]
OTHER_DEFAULTS = ["BTC-USD", "ETH-USD", "GBP/USD", "USD/JPY"]


@pytest.fixture
def entitled_server(live_env, token):
    """A daphne with entitlements on, and the id of bea's XNAS row (for the admin to delete).

    The periodic re-check is an hour away: only the revocation broadcast can act in a test's time.
    """
    env = {**live_env, "FEED_ENTITLEMENTS": "1", "FEED_AUTH_RECHECK_S": "3600"}
    manage(env, "feeduser", USERNAME, "--password", PASSWORD)
    script = (
        "from django.contrib.auth.models import User; from feeds.models import Entitlement; "
        f"u = User.objects.get(username='{USERNAME}'); u.entitlements.all().delete(); {GRANTS}"
    )
    out = manage(env, "shell", "--no-imports", "-c", script)
    srv = Server(env, free_port())
    srv.start()
    yield srv, int(out.split()[-1])
    srv.stop()


@pytest.fixture
def entitled_page(entitled_server, context):
    srv, _ = entitled_server
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    delete_watchlists(srv.url, USERNAME, PASSWORD)  # each test starts from the default list
    try:
        page.goto(f"{srv.url}/")
        page.wait_for_url("**/accounts/login/**")
        page.fill('input[name="username"]', USERNAME)
        page.fill('input[name="password"]', PASSWORD)
        page.click('button[type="submit"]')
        page.wait_for_selector('#conn-state[data-state="live"]')
        yield page
    finally:
        page.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def test_the_search_box_suggests_only_entitled_instruments(entitled_page):
    page = entitled_page
    page.locator("#add-symbol").fill("corporation")
    options = page.locator('#suggestions [role="option"]')
    # NVIDIA and Microsoft (XNAS) are Corporations; so is Exxon Mobil (XNYS), not entitled.
    expect(page.locator('#suggestions [data-symbol="NVDA"]')).to_be_visible()
    suggested = {options.nth(i).get_attribute("data-symbol") for i in range(options.count())}
    assert {"NVDA", "MSFT"} <= suggested
    assert "XOM" not in suggested


def saved_watchlist(srv) -> list[str] | None:
    """The user's watchlist kept on the server; None until the page first saves one."""
    lists = user_watchlists(srv.url, USERNAME, PASSWORD)
    return lists[0]["symbols"] if lists else None


def test_a_saved_watchlist_with_unlicensed_symbols_streams_the_rest(entitled_page, entitled_server):
    """A list kept in the browser moves to the server once, without what the user may not see."""
    page = entitled_page
    srv, _ = entitled_server
    page.evaluate(
        "([key, value]) => localStorage.setItem(key, value)",
        [STORAGE_KEY, '["AAPL", "JPM", "GONE1", "EUR/USD", "XOM"]'],
    )
    page.reload()
    # Refused twice (unknown first, then not entitled); each reason is named.
    notice = page.locator("#notice")
    expect(notice).to_contain_text("not licensed to you: JPM, XOM")
    expect(notice).to_contain_text("no longer listed: GONE1")
    wait_for_tick(page, "AAPL")
    wait_for_tick(page, "EUR/USD")
    assert shown_symbols(page) == ["AAPL", "EUR/USD"]
    assert saved_watchlist(srv) == ["AAPL", "EUR/USD"]
    saved = page.evaluate("key => JSON.parse(localStorage.getItem(key))", STORAGE_KEY)
    assert saved == {"migrated": True}
    expect(page.locator('[data-stat="symbols"]')).to_have_text("2")


def test_adding_an_unlicensed_symbol_shows_the_servers_refusal(entitled_page, entitled_server):
    page = entitled_page
    srv, _ = entitled_server
    before = shown_symbols(page)
    page.fill("#add-symbol", "JPM")  # typed: the search box never suggests it
    page.press("#add-symbol", "Enter")
    expect(page.locator("#add-error")).to_have_text("not entitled to: JPM")
    expect(row(page, "JPM")).to_have_count(0)
    assert shown_symbols(page) == before
    assert "JPM" not in (saved_watchlist(srv) or [])
    wait_for_tick(page, "AAPL")  # the stream goes on


def test_a_revoked_entitlement_takes_its_rows_off_with_a_notice(entitled_page, entitled_server):
    page = entitled_page
    srv, xnas_row = entitled_server
    wait_for_tick(page, "AAPL")
    row(page, "MSFT").locator('[data-field="symbol"]').click()  # charted, then revoked
    expect(page.locator("#chart [data-chart=symbol]")).to_have_text("MSFT")
    admin_delete(srv.url, xnas_row)
    expect(page.locator("#notice")).to_contain_text(
        "no longer licensed to you: " + ", ".join(XNAS_DEFAULTS)
    )
    expect(page.locator("#rows tr")).to_have_count(len(OTHER_DEFAULTS))
    assert shown_symbols(page) == OTHER_DEFAULTS
    assert saved_watchlist(srv) == OTHER_DEFAULTS
    expect(page.locator("#chart [data-chart=symbol]")).to_have_text(OTHER_DEFAULTS[0])
    expect(page.locator('[data-stat="symbols"]')).to_have_text(str(len(OTHER_DEFAULTS)))
    wait_for_tick(page, "BTC-USD")  # the rest stream on
    page.reload()  # and the saved watchlist subscribes without a refusal
    wait_for_tick(page, "ETH-USD")
    assert shown_symbols(page) == OTHER_DEFAULTS
    expect(page.locator("#notice")).to_be_hidden()
