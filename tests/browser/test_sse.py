"""A real EventSource in headless Chromium.

A logged-in page streams quotes and survives a restart.
"""

from __future__ import annotations

import pytest

from tests.browser.conftest import log_in
from tests.timeouts import timeout

pytestmark = [pytest.mark.browser, pytest.mark.live]

OPEN_STREAM = """() => {
    window.sseQuotes = [];
    window.sseErrors = 0;
    const source = new EventSource('/sse/quotes/?symbols=AAPL');
    const keep = (e) => window.sseQuotes.push({id: e.lastEventId, msg: JSON.parse(e.data)});
    source.addEventListener('quote', keep);
    source.addEventListener('snapshot', keep);
    source.onerror = () => { window.sseErrors += 1; };
    window.sseSource = source;
}"""



def test_event_source_streams_quotes_and_reconnects_after_a_server_restart(context, own_server):
    page = context.new_page()
    log_in(page, own_server.url)
    page.evaluate(OPEN_STREAM)
    wait = timeout(20) * 1000
    page.wait_for_function(
        "() => window.sseQuotes.filter(q => q.msg.type === 'quote').length >= 2", timeout=wait
    )
    first = page.evaluate("window.sseQuotes[window.sseQuotes.length - 1]")
    assert first["id"] == f"AAPL:{first['msg']['seq']}"

    own_server.stop()
    # Functions, not expressions: the page's CSP forbids evaluating strings.
    page.wait_for_function("() => window.sseErrors >= 1", timeout=wait)  # the browser saw it go
    count = page.evaluate("window.sseQuotes.length")
    own_server.start()  # same port, same database: the session cookie still holds
    page.wait_for_function(f"() => window.sseQuotes.length >= {count + 2}", timeout=wait)
    assert page.evaluate("window.sseSource.readyState") == 1  # OPEN again, by itself
    after = page.evaluate(f"window.sseQuotes.slice({count})")
    assert all(q["msg"]["symbol"] == "AAPL" and q["id"] == f"AAPL:{q['msg']['seq']}" for q in after)
    page.close()
