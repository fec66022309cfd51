"""The instrument admin for operations in headless Chromium, against a live daphne.

An operator (the session's superuser) signs in to the admin and sees the
changelist's prices move without a reload, a halt made elsewhere show up in
the status column, an imported instrument start to tick, every column on a
1440 px screen without scrolling sideways, and every form field labelled.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PASSWORD, USERNAME
from tests.timeouts import timeout

pytestmark = [pytest.mark.browser, pytest.mark.live]
# Screenshots a person may look at after a run; git-ignored.
ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "artifacts"
CHANGELIST = "/admin/feeds/instrument/"
WIDE = {"width": 1440, "height": 900}
PRICE_2DP = re.compile(r"^\d+\.\d{2}$")


@pytest.fixture
def operator(chromium, server, token):
    """The changelist at 1440x900, signed in through the admin's own login form."""
    context = chromium.new_context(viewport=WIDE, color_scheme="light")
    context.set_default_timeout(timeout(15) * 1000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # Chromium reports each thing the CSP refused (an inline script, handler or style) here.
    page.on("console", lambda msg: errors.append(msg.text) if "Content Security" in msg.text else 0)
    page.goto(f"{server.url}/admin/login/?next={CHANGELIST}")
    page.fill("#id_username", USERNAME)
    page.fill("#id_password", PASSWORD)
    page.click('input[type="submit"]')
    page.wait_for_url(f"**{CHANGELIST}")
    expect(page.locator("#live-state")).to_have_attribute("data-state", "live")
    yield page
    context.close()
    assert not errors, f"uncaught errors or CSP violations in the page: {errors}"


def row(page, symbol: str):
    return page.locator("#result_list tbody tr").filter(
        has=page.locator("th.field-symbol", has_text=re.compile(f"^{re.escape(symbol)}$"))
    )


def live(page, symbol: str, field: str):
    return row(page, symbol).locator(f'[data-live="{field}"]')


def run_action(page, symbols: list[str], action: str) -> None:
    for symbol in symbols:
        row(page, symbol).locator("input.action-select").check()
    page.select_option('select[name="action"]', action)
    page.get_by_role("button", name="Go").click()


def test_prices_move_in_the_changelist_without_a_reload(operator):
    page = operator
    page.evaluate("window.sameDocument = true")
    last = live(page, "AAPL", "last")
    expect(last).to_have_text(PRICE_2DP)  # read from the store when the page was made
    before = last.inner_text()
    expect(last).not_to_have_text(before)  # and then again, live
    expect(last).to_have_text(PRICE_2DP)
    expect(live(page, "AAPL", "change")).to_have_text(re.compile(r"^([+\u2212]\d+\.\d{2}|0\.00)$"))
    expect(live(page, "AAPL", "change_pct")).to_have_text(re.compile(r"^[+\u2212]?\d+\.\d{2}%$"))
    expect(live(page, "GBP/USD", "last")).to_have_text(re.compile(r"^\d+\.\d{5}$"))
    assert page.evaluate("window.sameDocument") is True  # no reload happened


def test_a_halt_made_elsewhere_shows_in_the_status_column(operator):
    page = operator
    other = page.context.new_page()
    other.goto(f"{page.url}?q=KO")
    status = live(page, "KO", "status")
    expect(status).to_have_text("Trading")
    try:
        run_action(other, ["KO"], "halt_selected")
        expect(other.locator(".messagelist")).to_contain_text("1 instrument halted.")
        expect(status).to_have_text("Halted")  # on the first page, not reloaded
        expect(status).to_have_attribute("data-status", "halted")
    finally:
        other.goto(f"{page.url}?q=KO")
        run_action(other, ["KO"], "resume_selected")
        expect(other.locator(".messagelist")).to_contain_text("1 instrument resumed.")
    expect(status).to_have_text("Trading")


def test_the_changelist_fits_a_1440_px_screen(operator):
    page = operator
    expect(row(page, "AAPL")).to_be_visible()
    widths = page.evaluate(
        """() => {
            const table = document.getElementById("result_list");
            // Boxes that would scroll sideways (Django wraps the table in one).
            const scrolling = [...document.querySelectorAll("#changelist, #changelist *")]
                .filter((el) => ["auto", "scroll"].includes(getComputedStyle(el).overflowX))
                .filter((el) => el.scrollWidth > el.clientWidth)
                .map((el) => `${el.className}: ${el.scrollWidth} > ${el.clientWidth}`);
            return {
                table: table.scrollWidth,
                tableRight: table.getBoundingClientRect().right,
                page: document.documentElement.scrollWidth,
                viewport: window.innerWidth,
                scrolling,
            };
        }"""
    )
    assert widths["viewport"] == WIDE["width"]
    assert widths["table"] <= widths["viewport"], widths
    assert widths["tableRight"] <= widths["viewport"], widths
    assert widths["page"] <= widths["viewport"], widths  # the page does not scroll sideways
    assert widths["scrolling"] == [], widths  # nor does the table in its box
    expect(page.locator("#result_list th.column-status")).to_be_in_viewport(ratio=1)
    filters = page.locator("#changelist-filter").bounding_box()
    assert filters is not None
    assert filters["x"] + filters["width"] <= WIDE["width"]  # the filters are in view too
    expect(live(page, "AAPL", "last")).to_have_text(PRICE_2DP)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "admin-changelist.png"))


def test_every_field_of_the_changelist_has_a_label(operator):
    page = operator
    fields = page.locator(
        "#content-main :is(input:not([type=hidden]), select, textarea, button):visible"
    )
    assert fields.count() > 10  # search, action select, Go, a checkbox per row
    for i in range(fields.count()):
        expect(fields.nth(i)).to_have_accessible_name(re.compile(r"\S"))
    expect(page.locator("#searchbar")).to_have_accessible_name("Search")
    expect(page.locator('select[name="action"]')).to_have_accessible_name(re.compile("^Action"))
    expect(page.locator("#live-state")).to_have_attribute("role", "status")
    # The compact headings still say what they are.
    expect(page.locator("th.column-reference abbr")).to_have_attribute("title", "Reference price")


def test_an_imported_instrument_ticks_in_the_running_feed(operator):
    page = operator
    changelist = page.url
    csv = (
        "symbol,name,exchange,asset_class,currency,tick_size,lot_size,reference_price,"
        "volatility,quote_rate,active\n"
        "OPSTEST,Operations Test Corp.,XNAS,equity,USD,0.05,100,42.50,0.4,20,1\n"
    )
    page.get_by_role("link", name="Import").click()
    page.set_input_files(
        "#id_import_file",
        {"name": "new.csv", "mimeType": "text/csv", "buffer": csv.encode()},
    )
    page.get_by_role("button", name="Submit").click()
    expect(page.locator("#content")).to_contain_text("Below is a preview")
    expect(page.locator("table.import-preview")).to_contain_text("OPSTEST")
    page.get_by_role("button", name="Confirm import").click()
    expect(page.locator(".messagelist")).to_contain_text("1 new")
    try:
        page.goto(f"{changelist}?q=OPSTEST")
        expect(row(page, "OPSTEST").locator("td.field-reference")).to_have_text("42.50")
        # Quoted by the running ticker: a price on its 0.05 grid, no reload needed.
        expect(live(page, "OPSTEST", "last")).to_have_text(re.compile(r"^\d+\.\d[05]$"))
        # And out again: the export of the filtered list, prices to the tick.
        page.get_by_role("link", name="Export").click()
        with page.expect_download() as download:
            page.get_by_role("button", name="Submit").click()
        exported = Path(download.value.path()).read_text()
        assert "OPSTEST,Operations Test Corp.,XNAS,equity,USD,0.05,100,42.50," in exported
    finally:
        page.goto(f"{changelist}?q=OPSTEST")
        run_action(page, ["OPSTEST"], "delete_selected")
        page.get_by_role("button", name=re.compile("Yes")).click()
        expect(page.locator(".messagelist")).to_contain_text("Successfully deleted 1")
