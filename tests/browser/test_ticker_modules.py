"""The page's pure modules (feeds/static/feeds/), run in the browser that runs the page."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.live]


@pytest.fixture(scope="module")
def modules(chromium, server):
    """A blank page of the server's origin, so the static modules import as the page does."""
    context = chromium.new_context()
    page = context.new_page()
    page.goto(f"{server.url}/static/feeds/format.js")  # any same-origin document will do
    yield page
    context.close()


def call(page, module: str, expression: str, *args):
    return page.evaluate(
        f"async (args) => {{ const m = await import('/static/feeds/{module}');"
        f" return {expression}; }}",
        list(args),
    )


@pytest.mark.parametrize(
    ("value", "places"),
    [("0.00001", 5), ("278.50", 2), ("100", 0), (1e-7, 7), ("0.5", 1), ("garbage", 0)],
)
def test_decimals_of_a_tick_size(modules, value, places):
    assert call(modules, "format.js", "m.decimalsOf(args[0])", value) == places


@pytest.mark.parametrize(
    ("delta", "places", "text"),
    [(0.25, 2, "+0.25"), (-1.1, 2, "\u22121.10"), (0.0001, 2, "0.00"), (-0.0001, 2, "0.00"),
     (None, 2, "—"), (3, 0, "+3")],
)
def test_changes_are_signed_on_the_price_grid(modules, delta, places, text):
    expression = "m.formatChange(args[0] ?? NaN, args[1])"
    assert call(modules, "format.js", expression, delta, places) == text


def test_percent_and_missing_values(modules):
    assert call(modules, "format.js", "m.formatPercent(0.00123)") == "+0.12%"
    assert call(modules, "format.js", "m.formatPercent(0 / 0)") == "—"
    assert call(modules, "format.js", "m.formatPrice(undefined, 2)") == "—"


@pytest.mark.parametrize(
    ("raw", "symbol"),
    [(" eur/usd ", "EUR/USD"), ("brk.b", "BRK.B"), ("bad symbol", ""), ("<b>", ""), ("X" * 21, ""),
     (None, ""), (42, "42")],
)
def test_symbols_are_normalised_or_refused(modules, raw, symbol):
    assert call(modules, "frames.js", "m.normalizeSymbol(args[0])", raw) == symbol


def test_a_frame_is_an_object_or_an_array_of_them(modules):
    one = call(modules, "frames.js", "m.parseFrame('{\"type\":\"heartbeat\"}')")
    assert one == [{"type": "heartbeat"}]
    several = call(modules, "frames.js", "m.parseFrame('[{\"a\":1},null,2,{\"b\":2}]')")
    assert several == [{"a": 1}, {"b": 2}]


@pytest.mark.parametrize(
    ("attempt", "low", "high"), [(0, 0.5, 1), (1, 1, 2), (3, 4, 8), (10, 15, 30)]
)
def test_backoff_doubles_to_a_cap_with_jitter(modules, attempt, low, high):
    lowest = call(modules, "connection.js", "m.backoffSeconds(args[0], () => 0)", attempt)
    highest = call(modules, "connection.js", "m.backoffSeconds(args[0], () => 0.999999)", attempt)
    assert lowest == low
    assert highest == pytest.approx(high, rel=1e-4)


def test_history_keeps_one_point_per_bucket_and_a_bounded_length(modules):
    result = call(
        modules, "history.js",
        "(() => { const h = new m.PriceHistory();"
        " for (let i = 0; i < 2000; i++) h.push(100 + i, i * 100);"  # 10 per second
        " h.push(NaN, 999999); return [h.prices.length, h.recent(2), m.CAPACITY]; })()",
    )
    length, recent, capacity = result
    assert length == capacity
    # The newest bucket holds the newest price seen in it.
    assert recent == [2097, 2099]


def test_a_corrupt_saved_watchlist_gives_the_default(modules):
    result = call(
        modules, "watchlist.js",
        "['{not json', '\"AAPL\"', '[\"aapl\", \"aapl\", 7, \"ok\", \"bad one\"]', null]"
        ".map((raw) => {"
        " const store = new Map(raw === null ? [] : [['k', raw]]);"
        " const storage = { getItem: (k) => store.get(k) ?? null,"
        " setItem: (k, v) => store.set(k, v) };"
        " return new m.Watchlist('k', storage).symbols; })",
    )
    default = call(modules, "watchlist.js", "[...m.DEFAULT_SYMBOLS]")
    assert result == [default, default, ["AAPL", "OK"], default]


def test_the_book_counts_seq_gaps_and_ignores_old_quotes(modules):
    result = call(
        modules, "book.js",
        "(() => { const b = new m.QuoteBook();"
        " const q = (type, seq, last) => ({type, symbol: 'X', seq, last, epoch: 'e1'});"
        " const applied = [b.apply(q('snapshot', 10, 5), 0), b.apply(q('quote', 11, 6), 1),"
        "   b.apply(q('quote', 14, 7), 2), b.apply(q('quote', 13, 8), 3),"
        " b.apply(q('quote', 14, 9), 4),"
        "   b.apply(q('snapshot', 2, 4), 5)];"  # a new epoch numbers from low again
        " const e = b.entries.get('X');"
        " return [applied, b.gaps, e.gap.missed, e.quote.seq, e.open]; })()",
    )
    applied, gaps, missed, seq, session_open = result
    assert applied == [True, True, True, False, False, True]
    assert (gaps, missed, seq) == (2, 2, 2)
    assert session_open == 5  # the first quote seen, without instrument details


def test_the_session_open_is_the_servers_reference_price_when_known(modules):
    session_open = call(
        modules, "book.js",
        "(() => { const b = new m.QuoteBook();"
        " b.apply({type: 'snapshot', symbol: 'X', seq: 1, last: 101}, 0);"
        " b.setInstrument('X', {name: 'X Corp', tick_size: '0.01', reference_price: '100.00'});"
        " return [b.entries.get('X').open, b.decimals('X')]; })()",
    )
    assert session_open == [100, 2]


# A table of one row in the blank page, with the page's stylesheet, fed quotes
# by hand: which DOM writes each repaint makes, and what a move looks like.
TABLE_JS = """
(async () => {
  const { WatchlistTable, FLASH_MS } = await import('/static/feeds/table.js');
  const { QuoteBook } = await import('/static/feeds/book.js');
  const link = Object.assign(document.createElement('link'), {
    rel: 'stylesheet', href: '/static/feeds/ticker.css',
  });
  await new Promise((done) => { link.onload = done; document.head.append(link); });
  const table = Object.assign(document.createElement('table'), { className: 'quotes' });
  const tbody = table.appendChild(document.createElement('tbody'));
  document.body.replaceChildren(table);
  const book = new QuoteBook();
  const view = new WatchlistTable({ tbody, emptyNote: document.createElement('p'), book,
                                    onRemove() {}, onSelect() {}, onShown() {} });
  view.sync(['X']);
  const base = {
    symbol: 'X', bid: 10.25, ask: 11.75, last: 10.5, bid_size: 100, ask_size: 200, ts: 1.7e15,
  };
  const writes = new MutationObserver(() => {});
  writes.observe(tbody, { subtree: true, childList: true, attributes: true, characterData: true });
  // What one repaint after `quote` wrote: [field or 'row', what changed].
  const repaint = (quote) => {
    book.apply({ ...base, ...quote }, 0);
    view.paint('X');
    return writes.takeRecords().map((r) => {
      const node = r.type === 'characterData' ? r.target.parentNode : r.target;
      return [node.dataset.field ?? 'row', r.type === 'attributes' ? r.attributeName : r.type];
    });
  };
  const cell = (field) => tbody.querySelector(`[data-field="${field}"]`);
  const background = (field) => getComputedStyle(cell(field)).backgroundColor;
  const result = { first: repaint({ type: 'snapshot', seq: 1 }) };
  result.moved = repaint({ type: 'quote', seq: 2, bid: 10.26, last: 10.49 });
  result.flash = ['bid', 'ask', 'last'].map((f) => cell(f).dataset.flash ?? '');
  result.tinted = [background('bid'), background('ask'), background('last')];
  result.same = repaint({ type: 'quote', seq: 3, bid: 10.26, last: 10.49 });
  result.stillTinted = view.fade(performance.now() + FLASH_MS / 2);
  result.fadedAll = !view.fade(performance.now() + FLASH_MS + 1);
  result.after = [cell('bid').dataset.flash ?? '', background('bid'), background('ask')];
  return result;
})()
"""


def test_a_repaint_writes_only_what_changed_and_a_move_tints_its_cell(modules):
    r = modules.evaluate(TABLE_JS)
    # The first quote fills every cell.
    written = {field for field, kind in r["first"] if kind == "characterData"}
    assert written == {"bid", "ask", "last", "change", "change_pct", "bid_size", "ask_size", "ts"}
    # A move of bid (up) and last (down): those cells, the change (now down from flat),
    # the tints and the seq; nothing else.
    assert sorted(r["moved"]) == sorted([
        ["bid", "characterData"], ["last", "characterData"],
        ["change", "characterData"], ["change_pct", "characterData"],
        ["bid", "data-flash"], ["last", "data-flash"], ["row", "data-seq"], ["row", "data-trend"],
    ])
    assert r["flash"] == ["up", "", "down"]
    transparent = "rgba(0, 0, 0, 0)"
    bid_tint, ask_tint, last_tint = r["tinted"]
    # green up, red down
    assert transparent not in (bid_tint, last_tint)
    assert bid_tint != last_tint
    assert ask_tint == transparent
    # A quote that changes nothing on screen writes only its seq (the tints stay as they are).
    assert r["same"] == [["row", "data-seq"]]
    # The tint lasts FLASH_MS, then goes.
    assert r["stillTinted"] is True
    assert r["fadedAll"] is True
    assert r["after"] == ["", transparent, transparent]
