"""The selected row's candle chart in headless Chromium: backfilled history, intervals, live.

A server of this module's own with two-second bars (``FEED_BARS_PERIOD_S``, a
test knob: "1m" is 2 s, "1h" 120 s), so live candles start and grow within
seconds. A new database: the ticker backfills its history at start, the
default three days of periods (two would be only 48 hourly candles, and the
chart asks for at least 60 of each interval).
"""

from __future__ import annotations

import json
import os
import time
import urllib.request

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PASSWORD, USERNAME, VIEWPORT, log_in
from tests.servers import Server, free_port, manage
from tests.timeouts import timeout

pytestmark = [pytest.mark.browser, pytest.mark.live]
PERIOD_S = 2
PERIODS = {"1m": 1, "5m": 5, "15m": 15, "1h": 60}  # test periods per candle
MIN_CANDLES = 60
CANVAS = "#chart canvas"
CANDLES = f"document.querySelector('{CANVAS}').dataset.candles"
LAST_START = f"Number(document.querySelector('{CANVAS}').dataset.last.split(' ')[0])"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """This module's daphne (embedded ticker, SQLite of its own) and its user's token."""
    unset = ("REDIS_URL", "DATABASE_URL", "FEED_TICKER")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(
        MARKETFEED_VAR_DIR=str(tmp_path_factory.mktemp("candles-var")), PYTHONUNBUFFERED="1",
        FEED_SEED="5", FEED_BARS_PERIOD_S=str(PERIOD_S), FEED_BARS_FLUSH_S="0.5",
    )
    manage(env, "migrate", "--noinput")
    key = manage(env, "feeduser", USERNAME, "--password", PASSWORD).strip().splitlines()[-1]
    srv = Server(env, free_port())
    srv.start()
    srv.token = key
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def token(server) -> str:
    """The signed-in user's token (the browser conftest's ``page`` asks for one)."""
    return server.token


def stored_bars(server, interval: str = "1m", symbol: str = "AAPL") -> list[dict]:
    request = urllib.request.Request(
        f"{server.url}/api/bars/{symbol}/?interval={interval}&limit=1000",
        headers={"Authorization": f"Token {server.token}"},
    )
    with urllib.request.urlopen(request, timeout=timeout(10)) as response:
        return json.loads(response.read())["bars"]


def wait_for_history(server) -> None:
    """Until the backfill is in: it runs beside the live ticker, for seconds after the start."""
    deadline = time.monotonic() + timeout(120)
    while len(stored_bars(server, "1h")) < MIN_CANDLES:
        assert time.monotonic() < deadline, "the server backfilled no history"
        time.sleep(0.5)


def candles(page) -> int:
    return int(page.evaluate(f"() => Number({CANDLES} ?? 0)"))


# True once the last candle, still in the current candle's period of the interval, grew:
# a live trade added to it (checked between two animation frames).
LAST_CANDLE_GREW = """(spanMs) => {
  const last = document.querySelector('#chart canvas').dataset.last || '';
  const [t, v] = last.split(' ').map(Number);
  const seen = window.lastCandleSeen;
  window.lastCandleSeen = { t, v };
  return Boolean(seen) && seen.t === t && v > seen.v
    && t % spanMs === 0 && Date.now() - t < spanMs + 1000;
}"""


@pytest.mark.parametrize("interval", list(PERIODS))
def test_each_interval_shows_its_history_at_once_and_live_quotes_extend_its_last_candle(
    page, server, interval
):
    wait_for_history(server)
    page.reload()
    canvas = page.locator(CANVAS)
    expect(canvas).to_have_attribute("data-interval", "1m")  # the default, loaded with the page
    assert candles(page) >= MIN_CANDLES
    button = page.locator(f'#chart .intervals button[data-interval="{interval}"]')
    button.click()
    expect(button).to_have_attribute("aria-pressed", "true")
    expect(page.locator('#chart .intervals [aria-pressed="true"]')).to_have_count(1)
    expect(canvas).to_have_attribute("data-interval", interval)
    assert candles(page) >= MIN_CANDLES
    span_ms = PERIODS[interval] * PERIOD_S * 1000
    label = f"{span_ms // 60_000}-min" if span_ms >= 60_000 else f"{span_ms // 1000}-s"
    expect(page.locator("[data-chart=range]")).to_contain_text(f"{label} candles")
    page.evaluate("() => { window.lastCandleSeen = undefined; }")
    page.wait_for_function(LAST_CANDLE_GREW, arg=span_ms)
    assert candles(page) >= MIN_CANDLES


def test_the_chosen_interval_stays_when_another_row_is_charted(page, server):
    wait_for_history(server)
    page.reload()
    canvas = page.locator(CANVAS)
    expect(canvas).to_have_attribute("data-interval", "1m")
    page.locator('#chart .intervals button[data-interval="15m"]').click()
    expect(canvas).to_have_attribute("data-interval", "15m")
    page.locator('#rows tr[data-symbol="BTC-USD"] button.pick').click()
    expect(page.locator("#chart [data-chart=symbol]")).to_have_text("BTC-USD")
    expect(canvas).to_have_attribute("data-interval", "15m")
    assert candles(page) >= MIN_CANDLES
    expect(page.locator("[data-chart=range]")).to_contain_text("30-s candles")


def test_a_new_live_candle_follows_the_history(page, server):
    wait_for_history(server)
    page.reload()
    expect(page.locator(CANVAS)).to_have_attribute("data-interval", "1m")
    first = page.evaluate(f"() => {LAST_START}")
    page.wait_for_function(f"(t) => {LAST_START} > t", arg=first)
    assert candles(page) >= MIN_CANDLES


@pytest.mark.parametrize(
    ("scheme", "up", "down"), [("light", "#1a7f37", "#cf222e"), ("dark", "#3fb950", "#ff6b6b")]
)
def test_candles_are_drawn_in_the_schemes_up_and_down_colours(chromium, server, scheme, up, down):
    context = chromium.new_context(viewport=VIEWPORT, color_scheme=scheme)
    context.set_default_timeout(timeout(15) * 1000)
    try:
        wait_for_history(server)
        page = context.new_page()
        log_in(page, server.url)
        page.wait_for_function(f"() => Number({CANDLES}) >= {MIN_CANDLES}")
        counts = page.evaluate(
            """([up, down]) => {
                const canvas = document.querySelector('#chart canvas');
                const { width, height } = canvas;
                const pixels = canvas.getContext('2d').getImageData(0, 0, width, height).data;
                const rgb = (hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
                const [u, d] = [rgb(up), rgb(down)];
                let ups = 0, downs = 0;
                for (let i = 0; i < pixels.length; i += 4) {
                  if (pixels[i + 3] !== 255) continue;
                  const p = [pixels[i], pixels[i + 1], pixels[i + 2]];
                  if (p.every((v, k) => v === u[k])) ups += 1;
                  else if (p.every((v, k) => v === d[k])) downs += 1;
                }
                return { ups, downs };
            }""",
            [up, down],
        )
        assert counts["ups"] > 20, counts
        assert counts["downs"] > 20, counts
    finally:
        context.close()
