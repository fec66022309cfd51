"""The ticker page on a phone (390x844) and a tablet (768x1024), by touch: what a user sees.

The page fits the screen (no sideways scrolling, no element wider than it);
symbol, last and change stay in the row, with the flash of a move, and the
other columns wait in the chart panel's details, which a tap on a row opens;
the chart's buttons and the symbol search work by touch. A desktop window
(1280 px) keeps every column.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import log_in
from tests.timeouts import timeout

pytestmark = [pytest.mark.browser, pytest.mark.live]

# Screen sizes, and the column headings each shows (the remove column's is visually hidden).
SCREENS = {
    "phone": ({"width": 390, "height": 844}, ["Symbol", "Last", "Chg", "Remove"]),
    "tablet": (
        {"width": 768, "height": 1024},
        ["Symbol", "Bid", "Ask", "Last", "Chg", "Chg %", "Remove"],
    ),
}
DESKTOP_COLUMNS = [
    "Symbol", "Name", "Bid", "Ask", "Last", "Chg", "Chg %", "Bid size", "Ask size", "Time",
    "Trend", "Remove",
]
# Every element of the page that sticks out of the viewport, sideways, and the widths.
OVERFLOW_JS = """() => {
    const width = window.innerWidth;
    const out = [...document.querySelectorAll("body *")].filter((el) => {
        const box = el.getBoundingClientRect();
        return box.width > 0 && (box.right > width + 0.5 || box.left < -0.5);
    }).map((el) => `${el.tagName.toLowerCase()}#${el.id}.${el.className}`);
    return { scroll: document.documentElement.scrollWidth, inner: width, out };
}"""


@pytest.fixture(params=list(SCREENS))
def touch(request, chromium, server, token):
    """(the ticker page on a touch screen of that size, signed in and live, its columns)."""
    viewport, columns = SCREENS[request.param]
    context = chromium.new_context(
        viewport=viewport, color_scheme="light", has_touch=True, is_mobile=True,
        device_scale_factor=2,
    )
    context.set_default_timeout(timeout(15) * 1000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    log_in(page, server.url)
    expect(page.locator("#rows tr").first).to_have_attribute("data-seq", re.compile(r"\d"))
    yield page, viewport, columns
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def row(page, symbol: str):
    return page.locator(f'#rows tr[data-symbol="{symbol}"]')


def shown_headings(page) -> list[str]:
    return page.locator(".quotes thead th").evaluate_all(
        "ths => ths.filter((th) => th.getClientRects().length).map((th) => th.textContent.trim())"
    )


def assert_fits(page, viewport) -> None:
    widths = page.evaluate(OVERFLOW_JS)
    # A phone browser zooms out to show a page wider than the screen: the viewport
    # would widen to the page's width, so the width itself is checked too.
    assert widths["inner"] == viewport["width"], widths
    assert widths["scroll"] <= widths["inner"], widths
    assert widths["out"] == [], widths


def test_the_page_fits_the_screen_without_sideways_scrolling(touch):
    page, viewport, _ = touch
    assert_fits(page, viewport)
    page.tap("#add-symbol")
    page.keyboard.type("euro")  # the suggestions open over the page, within the screen too
    expect(page.locator("#suggestions [role=option]").first).to_be_visible()
    assert_fits(page, viewport)


def test_symbol_last_and_change_stay_in_view_with_the_flash(touch):
    page, _, columns = touch
    assert shown_headings(page) == columns
    first = page.locator("#rows tr").first
    for field in ("symbol", "last", "change"):
        expect(first.locator(f'[data-field="{field}"]')).to_be_in_viewport(ratio=1)
    expect(first.locator('[data-field="last"]')).to_have_text(re.compile(r"^\d+\.\d+$"))
    expect(first.locator('[data-field="change"]')).to_have_text(re.compile(r"^([+\u2212])?\d"))
    expect(first.locator('[data-field="ts"]')).to_be_hidden()  # in the details instead
    # A move tints the last price, on screen.
    flash = page.locator('#rows td[data-field="last"]:is([data-flash="up"], [data-flash="down"])')
    expect(flash.first).to_be_visible()


def test_tapping_a_row_shows_its_chart_and_details(touch):
    page, _, _ = touch
    last_row = page.locator("#rows tr").last
    symbol = last_row.get_attribute("data-symbol")
    last_row.locator('[data-field="last"]').tap()  # anywhere on the row, not only the symbol
    expect(row(page, symbol)).to_have_class(re.compile(r"\bselected\b"))
    chart = page.locator("#chart")
    expect(chart.locator("[data-chart=symbol]")).to_have_text(symbol)
    expect(chart.locator("figcaption")).to_be_in_viewport()
    details = chart.locator(".details")
    expect(details).to_be_visible()
    for field in ("bid", "ask"):
        expect(details.locator(f'[data-detail="{field}"]')).to_have_text(re.compile(r"^\d+\.\d+$"))
    for field in ("bid_size", "ask_size"):
        expect(details.locator(f'[data-detail="{field}"]')).to_have_text(re.compile(r"^[\d,]+$"))
    expect(details.locator('[data-detail="ts"]')).to_have_text(
        re.compile(r"^\d\d:\d\d:\d\d\.\d{3}$")
    )
    expect(chart.locator("canvas")).to_have_attribute("data-candles", re.compile(r"^[1-9]"))
    # The chart's interval buttons answer a tap.
    five = chart.get_by_role("button", name="5m", exact=True)
    five.tap()
    expect(five).to_have_attribute("aria-pressed", "true")
    expect(chart.locator("canvas")).to_have_attribute("data-interval", "5m")
    # Remove is its own target: a tap on it takes the row away, it does not select it.
    first = page.locator("#rows tr").first
    gone = first.get_attribute("data-symbol")
    first.locator(".remove").tap()
    expect(row(page, gone)).to_have_count(0)
    expect(chart.locator("[data-chart=symbol]")).to_have_text(symbol)


def test_the_search_adds_a_symbol_by_touch_and_its_row_streams(touch):
    page, viewport, _ = touch
    expect(row(page, "EUR/USD")).to_have_count(0)
    page.tap("#add-symbol")
    page.keyboard.type("euro / us")
    option = page.locator('#suggestions [role="option"][data-symbol="EUR/USD"]')
    option.tap()
    added = row(page, "EUR/USD")
    expect(added).to_have_attribute("data-seq", re.compile(r"\d"))
    expect(page.locator("#add-symbol")).to_have_value("")
    expect(page.locator("#chart [data-chart=symbol]")).to_have_text("EUR/USD")
    # The new row is last, maybe below the fold, where rows wait to be repainted:
    # scrolled to, it shows newer and newer quotes.
    last = added.locator('[data-field="last"]')
    last.scroll_into_view_if_needed()
    expect(last).to_be_in_viewport()
    before = added.get_attribute("data-seq")
    expect(added).not_to_have_attribute("data-seq", before)
    expect(last).to_have_text(re.compile(r"^\d+\.\d{5}$"))
    assert_fits(page, viewport)


def test_a_desktop_window_keeps_every_column(page):
    assert shown_headings(page) == DESKTOP_COLUMNS
    expect(page.locator("#chart .details")).to_be_hidden()
    widths = page.evaluate(OVERFLOW_JS)
    assert widths["scroll"] <= widths["inner"], widths
