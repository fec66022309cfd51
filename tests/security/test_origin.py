"""Cross-site WebSocket hijacking: a page on another site cannot ride a visitor's session.

A browser sends the session cookie with any page's WebSocket handshake, so
for a cookie-authenticated connection the ``Origin`` header is the only thing
telling the feed's own page from a hostile one. PROTOCOL.md: a foreign Origin
is refused (403) whatever the credentials; no Origin at all is a non-browser
client (a browser always sends one on a WebSocket handshake), allowed.
"""

from __future__ import annotations

import asyncio

import pytest
import websockets
from asgiref.sync import sync_to_async

from tests.live.test_live_feed import Feed, session_cookie

pytestmark = pytest.mark.django_db(transaction=True)

FOREIGN = [
    b"http://evil.example",
    b"https://evil.example:8000",
    b"null",  # sandboxed frames and file: pages
    b"http://localhost.evil.example",
    b"http://localhost@evil.example",
    b"http://evil.example#@localhost",
    b"file://localhost",
    b"http://127.0.0.1.evil.example",
    b"",
]


async def cookie_of(user) -> bytes:
    from django.test import Client as DjangoClient

    http = DjangoClient()
    await sync_to_async(http.force_login)(user)
    return f"sessionid={http.cookies['sessionid'].value}".encode()


@pytest.mark.parametrize("origin", FOREIGN)
async def test_a_foreign_origin_with_a_valid_session_cookie_is_refused(connect, user, origin):
    cookie = await cookie_of(user)
    await connect(
        "/ws/quotes/", headers=[(b"cookie", cookie), (b"origin", origin)], expect_accept=False
    )


@pytest.mark.parametrize("origin", [b"http://localhost:8000", b"https://LOCALHOST", b"http://127.0.0.1:8000"])
async def test_the_feeds_own_origin_with_the_cookie_is_welcomed(connect, user, origin):
    cookie = await cookie_of(user)
    client = await connect("/ws/quotes/", headers=[(b"cookie", cookie), (b"origin", origin)])
    assert (await client.recv())["user"] == "alice"


async def test_no_origin_with_the_cookie_is_a_non_browser_client_and_is_welcomed(connect, user):
    client = await connect("/ws/quotes/", headers=[(b"cookie", await cookie_of(user))])
    assert (await client.recv())["user"] == "alice"


@pytest.mark.live
async def test_live_a_foreign_page_cannot_open_the_stream_with_the_visitors_cookie(server):
    cookie = await asyncio.to_thread(session_cookie, server)
    with pytest.raises(websockets.InvalidStatus) as info:
        async with websockets.connect(
            server.ws_url, additional_headers={"Cookie": cookie}, origin="http://evil.example"
        ):
            pass
    assert info.value.response.status_code == 403
    # The same cookie from the feed's own page works, and so it does with no Origin.
    for origin in (server.url, None):
        async with websockets.connect(
            server.ws_url, additional_headers={"Cookie": cookie}, origin=origin
        ) as ws:
            assert (await Feed(ws).recv())["type"] == "welcome"
