"""The usual Django commands do what a Django developer expects of them.

``manage.py runserver`` is daphne's: the whole feed, embedded ticker and
WebSockets included. ``collectstatic`` with ``STATIC_MANIFEST=1`` (the deploy
setting) makes the page load its CSS and JS under content-hashed names, cached
for a year, with the module imports between them hashed too.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys

import httpx
import pytest
import websockets

from marketfeed.storage import ManifestStaticFilesStorage
from tests.servers import NO_HISTORY, Server, free_port, manage
from tests.timeouts import timeout

HASHED = r"\.[0-9a-f]{12}\."
A_YEAR = 365 * 24 * 3600


async def snapshot_then_quote(ws_url: str, token: str, symbol: str) -> tuple[dict, dict]:
    """Subscribe to ``symbol``; return the snapshot a subscribe brings and the quote after it.

    A subscribe before the ticker's first quote of the symbol has no snapshot
    to send, so once a quote has been seen the test subscribes again: a
    repeated subscribe sends a fresh snapshot (PROTOCOL.md).
    """
    headers = {"Authorization": f"Token {token}"}

    async with websockets.connect(ws_url, additional_headers=headers) as ws:

        async def next_of(*types: str) -> dict:
            while True:
                frame = json.loads(await ws.recv())
                for message in frame if isinstance(frame, list) else [frame]:
                    if message["type"] in types and message.get("symbol") == symbol:
                        return message

        await ws.send(json.dumps({"op": "subscribe", "symbols": [symbol], "id": 1}))
        await next_of("snapshot", "quote")
        await ws.send(json.dumps({"op": "subscribe", "symbols": [symbol], "id": 2}))
        snapshot = await next_of("snapshot")
        return snapshot, await next_of("quote")


@pytest.mark.live
async def test_manage_py_runserver_serves_the_whole_feed(live_env, token):
    port = free_port()
    server = Server(  # ready when the embedded ticker says it started, inside runserver
        live_env, port,
        command=[sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
    )
    server.start()
    try:
        async with asyncio.timeout(timeout(30)):
            snapshot, quote = await snapshot_then_quote(server.ws_url, token, "AAPL")
        assert (snapshot["symbol"], quote["symbol"]) == ("AAPL", "AAPL")
        assert quote["seq"] > snapshot["seq"]
        assert snapshot["bid"] < snapshot["ask"]
        async with httpx.AsyncClient(base_url=server.url, timeout=timeout(10)) as http:
            assert (await http.get("/accounts/login/")).status_code == 200
            assert (await http.get("/static/feeds/ticker.css")).status_code == 200
    finally:
        server.stop()
    log = "".join(server.log)
    assert "Starting ASGI/Daphne" in log
    assert "Traceback" not in log


@pytest.mark.live
def test_collectstatic_then_the_page_loads_hashed_css_and_js(tmp_path):
    unset = ("REDIS_URL", "DATABASE_URL", "FEED_TICKER")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(MARKETFEED_VAR_DIR=str(tmp_path / "var"), PYTHONUNBUFFERED="1", STATIC_MANIFEST="1")
    env.update(NO_HISTORY)
    manage(env, "migrate", "--noinput")
    collected = manage(env, "collectstatic", "--noinput")
    assert "post-processed" in collected
    assert list((tmp_path / "var" / "static" / "feeds").glob("ticker.*.js"))
    manage(env, "feeduser", "pagereader", "--password", "page-pass-1234")
    server = Server(env, free_port())
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=timeout(10)) as http:
            login = http.get("/accounts/login/")
            css = re.search(rf'href="(/static/feeds/ticker{HASHED}css)"', login.text)
            assert css, login.text
            signed_in = http.post(
                "/accounts/login/", follow_redirects=True,
                data={"username": "pagereader", "password": "page-pass-1234",
                      "csrfmiddlewaretoken": http.cookies["csrftoken"], "next": "/"},
            )
            assert signed_in.status_code == 200
            js = re.search(rf'src="(/static/feeds/ticker{HASHED}js)"', signed_in.text)
            assert js, signed_in.text
            module = assert_cached_for_a_year(http, js.group(1))
            imported = re.findall(r'from "\./([\w.]+)"', module.text)
            assert imported, module.text
            for name in imported:  # the modules it imports: hashed names too
                assert re.fullmatch(rf"\w+{HASHED}js", name), name
                assert_cached_for_a_year(http, f"/static/feeds/{name}")
            assert_cached_for_a_year(http, css.group(1))
    finally:
        server.stop()


def assert_cached_for_a_year(http: httpx.Client, url: str) -> httpx.Response:
    response = http.get(url, headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200, url
    cache = response.headers["cache-control"]
    assert "immutable" in cache, (url, cache)
    assert int(re.search(r"max-age=(\d+)", cache).group(1)) >= A_YEAR, (url, cache)
    assert response.headers.get("content-encoding") == "gzip", url
    return response


def test_the_manifest_storage_says_to_collectstatic_when_nothing_was_collected(tmp_path):
    storage = ManifestStaticFilesStorage(location=tmp_path)
    with pytest.raises(ValueError, match=re.escape("run `python manage.py collectstatic")):
        storage.url("feeds/ticker.css")
