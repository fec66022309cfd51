"""The ticker page moves to a new connection when the server asks (``reconnect``), without a gap."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import log_in
from tests.servers import Server, free_port
from tests.timeouts import timeout

pytestmark = [pytest.mark.browser, pytest.mark.live]

# Counts the sockets the page opens, and records every badge state other than "live".
COUNT_SOCKETS_JS = """
window.__sockets = 0;
window.WebSocket = class extends WebSocket {
  constructor(...args) { super(...args); window.__sockets += 1; }
};
"""
WATCH_STATES_JS = """() => {
  window.__notLive = [];
  const badge = document.getElementById("conn-state");
  new MutationObserver(() => {
    if (badge.dataset.state !== "live") window.__notLive.push(badge.dataset.state);
  }).observe(badge, { attributes: true, attributeFilter: ["data-state"] });
}"""


@pytest.fixture
def aging_server(live_env, token):
    """A daphne whose connections are asked to move after about 2 s."""
    env = dict(live_env, FEED_MAX_CONNECTION_AGE_S="2", FEED_RECONNECT_GRACE_S="10")
    srv = Server(env, free_port())
    srv.start()
    yield srv
    srv.stop()


def test_the_page_moves_on_max_age_reconnect_with_no_gap_and_stays_live(context, aging_server):
    context.add_init_script(COUNT_SOCKETS_JS)
    page = context.new_page()
    sockets = []
    page.on("websocket", lambda ws: sockets.append(ws))
    log_in(page, aging_server.url)
    page.evaluate(WATCH_STATES_JS)
    # Two moves at least: a third socket, opened by the page on the server's `reconnect`.
    page.wait_for_function("() => window.__sockets >= 3", timeout=timeout(30) * 1000)
    aapl = page.locator('tr[data-symbol="AAPL"]')
    before = aapl.get_attribute("data-seq")
    expect(aapl).not_to_have_attribute("data-seq", before or "")  # still ticking after the moves
    assert sockets[0].is_closed()  # the page closed the first once the second had taken over
    assert page.evaluate("window.__notLive") == []  # never "connecting" or "reconnecting"
    expect(page.locator('[data-stat="symbols"]')).not_to_have_text("0")
    # No seq was skipped across the moves.
    expect(page.locator('[data-stat="gaps"]')).to_have_text("0")
