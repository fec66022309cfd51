"""The selected row's candle chart in headless Chromium: history from the API, then live candles.

A server of this module's own with two-second bars (``FEED_BARS_PERIOD_S``, a
test knob), so history builds up and new candles appear within seconds.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request

import pytest

from tests.browser.conftest import PASSWORD, USERNAME, VIEWPORT, log_in
from tests.servers import Server, free_port, manage
from tests.timeouts import timeout

pytestmark = [pytest.mark.browser, pytest.mark.live]
PERIOD_S = 2
HISTORY_BARS = 8
CANDLES = "document.querySelector('#chart canvas').dataset.candles"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """This module's daphne (embedded ticker, SQLite of its own) and its user's token."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("REDIS_URL", "DATABASE_URL", "FEED_TICKER")
    }
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


def stored_bars(server, symbol: str = "AAPL") -> list[dict]:
    request = urllib.request.Request(
        f"{server.url}/api/bars/{symbol}/", headers={"Authorization": f"Token {server.token}"}
    )
    with urllib.request.urlopen(request, timeout=timeout(10)) as response:
        return json.loads(response.read())["bars"]


def wait_for_history(server) -> None:
    deadline = time.monotonic() + timeout(60)
    while len(stored_bars(server)) < HISTORY_BARS:
        assert time.monotonic() < deadline, "the server stored no bars"
        time.sleep(0.5)


def candles(page) -> int:
    return int(page.evaluate(f"() => Number({CANDLES} ?? 0)"))


def test_the_chart_draws_the_history_then_a_new_candle_appears_live(page, server):
    wait_for_history(server)
    page.reload()
    page.wait_for_selector('#conn-state[data-state="live"]')
    # History, not only live candles: the candles span more time than the page has been open.
    page.wait_for_function(
        "() => Number(/last (\\d+) s/.exec("
        "document.querySelector('[data-chart=range]').textContent)?.[1])"
        f" >= performance.now() / 1000 + {HISTORY_BARS * PERIOD_S - 4}"
    )
    assert candles(page) >= HISTORY_BARS - 1
    before = candles(page)
    page.wait_for_function(f"() => Number({CANDLES}) > {before}")
    assert page.locator("[data-chart=range]").inner_text().startswith("2-s candles")


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
        page.wait_for_function(f"() => Number({CANDLES}) >= {HISTORY_BARS}")
        counts = page.evaluate(
            """([up, down]) => {
                const canvas = document.querySelector('#chart canvas');
                const pixels = canvas.getContext('2d')
                  .getImageData(0, 0, canvas.width, canvas.height).data;
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
