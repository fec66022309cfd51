"""WebSocket tickets: ``POST /api/ws-ticket/``, then ``?ticket=`` admits one handshake, once.

So that no long-lived token has to go into a URL (PROTOCOL.md "Tickets").
In-process through the real ASGI application, then once against a live daphne
over HTTP and a real WebSocket, and with the Python client.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request

import pytest
import websockets
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from rest_framework.test import APIClient

from feeds.core.protocol import CloseCode
from tests.timeouts import timeout

TICKET_URL = "/api/ws-ticket/"


@pytest.fixture
def take_ticket(user):
    """``await take_ticket()``: a ticket of alice's, fetched as a client would, with her token."""

    def fetch() -> str:
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Token {user.token}")
        response = api.post(TICKET_URL)
        assert response.status_code == 200, response.content
        return response.json()["ticket"]

    return sync_to_async(fetch)


async def test_a_ticket_admits_one_websocket_and_never_another(connect, take_ticket):
    ticket = await take_ticket()
    client = await connect(f"/ws/quotes/?ticket={ticket}")
    welcome = await client.recv()
    assert welcome["type"] == "welcome"
    assert welcome["user"] == "alice"
    await connect(f"/ws/quotes/?ticket={ticket}", expect_accept=False)


async def test_an_expired_ticket_is_refused(connect, take_ticket, settings):
    settings.FEED_WS_TICKET_TTL_S = 0.2
    ticket = await take_ticket()
    await asyncio.sleep(0.25)  # the ticket's life (a setting, small here) passes
    await connect(f"/ws/quotes/?ticket={ticket}", expect_accept=False)


async def test_a_ticket_used_within_its_life_works(connect, take_ticket, settings):
    settings.FEED_WS_TICKET_TTL_S = 30
    client = await connect(f"/ws/quotes/?ticket={await take_ticket()}")
    assert (await client.recv())["type"] == "welcome"


async def test_two_handshakes_with_one_ticket_at_once_admit_exactly_one(user, take_ticket):
    from channels.testing import WebsocketCommunicator

    from marketfeed.asgi import application

    ticket = await take_ticket()
    pair = [WebsocketCommunicator(application, f"/ws/quotes/?ticket={ticket}") for _ in range(2)]
    try:
        results = await asyncio.gather(*(ws.connect(timeout(5)) for ws in pair))
        assert sorted(accepted for accepted, _ in results) == [False, True]
    finally:
        for ws in pair:
            await ws.disconnect()


async def test_a_ticket_is_not_a_token_nor_a_token_a_ticket(connect, user, take_ticket):
    ticket = await take_ticket()
    await connect(f"/ws/quotes/?token={ticket}", expect_accept=False)
    await connect(f"/ws/quotes/?ticket={user.token}", expect_accept=False)
    # The ticket was not spent by being shown as a token.
    assert (await (await connect(f"/ws/quotes/?ticket={ticket}")).recv())["type"] == "welcome"


async def test_a_ticket_connection_closes_when_its_user_is_disabled(connect, user, take_ticket):
    from django.contrib.auth.models import User

    client = await connect(f"/ws/quotes/?ticket={await take_ticket()}")
    assert (await client.recv())["type"] == "welcome"

    def disable() -> None:
        alice = User.objects.get(pk=user.pk)
        alice.is_active = False
        alice.save()

    await database_sync_to_async(disable)()
    msg, _ = await client.recv_until(lambda m: m["type"] == "error")
    assert msg["code"] == "unauthorized"
    assert await client.expect_close() == CloseCode.UNAUTHORIZED


async def test_a_ticket_of_a_user_disabled_since_is_refused(connect, user, take_ticket):
    from django.contrib.auth.models import User

    ticket = await take_ticket()
    await database_sync_to_async(lambda: User.objects.filter(pk=user.pk).update(is_active=False))()
    await connect(f"/ws/quotes/?ticket={ticket}", expect_accept=False)


# --- live: HTTP for the ticket, a real WebSocket, the Python client -----------------------


def _http_ticket(server, token: str) -> dict:
    request = urllib.request.Request(
        f"{server.url}{TICKET_URL}", data=b"", method="POST",
        headers={"Authorization": f"Token {token}"},
    )
    with urllib.request.urlopen(request, timeout=timeout(10)) as response:
        return json.load(response)


@pytest.mark.live
async def test_a_live_server_admits_a_ticket_once(server, token):
    body = await asyncio.to_thread(_http_ticket, server, token)
    assert body["expires_in"] == 30
    async with websockets.connect(f"{server.ws_url}?ticket={body['ticket']}") as ws:
        welcome = json.loads(await asyncio.wait_for(ws.recv(), timeout(10)))
        first = welcome[0] if isinstance(welcome, list) else welcome
        assert first["type"] == "welcome"
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(f"{server.ws_url}?ticket={body['ticket']}")
    assert refused.value.response.status_code == 403


@pytest.mark.live
async def test_the_python_client_connects_with_a_ticket_never_the_token_in_the_url(server, token):
    from marketfeed_client import FeedClient

    urls: list[str] = []

    async def connect(url, **kwargs):
        urls.append(url)
        return await websockets.connect(url, **kwargs)

    async with FeedClient(server.ws_url, ["AAPL"], token=token, auth="ticket",
                          connect=connect) as feed:
        quote = await asyncio.wait_for(anext(aiter(feed.quotes())), timeout(15))
        assert quote.symbol == "AAPL"
    assert urls
    assert all("ticket=" in url and token not in url for url in urls)
