"""The SSE app in-process: the real ASGI application under channels' ApplicationCommunicator."""

from __future__ import annotations

import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import ApplicationCommunicator

from feeds.core.groups import SERVERS_CONTROL_GROUP
from feeds.revocation import revoked_event
from tests.schema import check_message
from tests.timeouts import timeout


class SseClient:
    """One GET /sse/quotes/ to the app; ``next()`` is the next event as (event name, message)."""

    def __init__(self, query: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        from marketfeed.asgi import application

        scope = {
            "type": "http", "method": "GET", "path": "/sse/quotes/", "query_string": query.encode(),
            "headers": headers or [], "client": ("127.0.0.1", 1), "server": ("testserver", 80),
        }
        self.app = ApplicationCommunicator(application, scope)
        self.buffer = ""
        self.finished = False

    async def start(self) -> tuple[int, dict[bytes, bytes]]:
        await self.app.send_input({"type": "http.request", "body": b"", "more_body": False})
        head = await self.app.receive_output(timeout(5))
        return head["status"], dict(head["headers"])

    async def next(self) -> tuple[str, dict[str, Any] | None]:
        """The next event with data; ("end", None) when the response finishes."""
        while "\n\n" not in self.buffer:
            if self.finished:
                return "end", None
            body = await self.app.receive_output(timeout(5))
            self.buffer += body["body"].decode()
            self.finished = not body.get("more_body", False)
        block, self.buffer = self.buffer.split("\n\n", 1)
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        if "data" not in fields:
            return await self.next()  # retry:
        msg = json.loads(fields["data"])
        if msg["type"] != "subscribed":
            check_message(msg)
        return fields["event"], msg

    async def until(self, kind: str) -> dict[str, Any]:
        while True:
            name, msg = await self.next()
            assert name != "end", f"the stream ended before a {kind}"
            if name == kind:
                assert msg is not None
                return msg

    async def close(self) -> None:
        await self.app.send_input({"type": "http.disconnect"})
        await self.app.wait(timeout(5))


@pytest.fixture
async def sse():
    opened: list[SseClient] = []

    async def open_(query: str, headers=None) -> SseClient:
        client = SseClient(query, headers)
        opened.append(client)
        return client

    yield open_
    for client in opened:
        await client.close()


async def test_a_revoked_token_ends_the_stream_with_an_unauthorized_event(sse, user, ticker):
    client = await sse(f"symbols=AAPL&token={user.token}")
    assert (await client.start())[0] == 200
    await ticker.advance(1.0)
    assert (await client.until("snapshot"))["symbol"] == "AAPL"
    await get_channel_layer().group_send(SERVERS_CONTROL_GROUP, revoked_event(tokens=[user.token]))
    error = await client.until("error")
    assert error["code"] == "unauthorized"
    assert (await client.next())[0] == "end"


async def test_a_session_cookie_authenticates_and_a_token_wins_over_it(sse, user, ticker):
    from django.test import Client

    django_client = Client()
    await sync_to_async(django_client.force_login)(user)
    cookie = f"sessionid={django_client.cookies['sessionid'].value}".encode()
    client = await sse("symbols=MSFT", [(b"cookie", cookie)])
    assert (await client.start())[0] == 200
    assert (await client.until("welcome"))["user"] == "alice"
    bad = await sse("symbols=MSFT&token=nope", [(b"cookie", cookie)])
    assert (await bad.start())[0] == 401


async def test_a_wildcard_streams_every_instrument(sse, user, ticker):
    await ticker.advance(1.0)
    client = await sse(f"symbols=*,msft&token={user.token}")
    assert (await client.start())[0] == 200
    subscribed = await client.until("subscribed")
    assert subscribed["symbols"] == ["MSFT", "AAPL", "BTC-USD", "EUR/USD"]


async def test_a_halted_symbol_starts_with_a_halted_status(sse, user, ticker, instruments):
    from tests.consumer.conftest import deactivate

    await ticker.advance(1.0)
    await deactivate("BTC-USD", False)
    client = await sse(f"symbols=BTC-USD&token={user.token}")
    assert (await client.start())[0] == 200
    halted = {"type": "status", "symbol": "BTC-USD", "state": "halted"}
    assert await client.until("status") == halted


async def test_the_connection_limit_is_a_429_and_frees_on_disconnect(sse, user, ticker, settings):
    settings.FEED_MAX_CONNECTIONS_PER_USER = 1
    first = await sse(f"symbols=AAPL&token={user.token}")
    assert (await first.start())[0] == 200
    second = SseClient(f"symbols=AAPL&token={user.token}")
    assert (await second.start())[0] == 429
    await second.app.wait(timeout(5))
    await first.close()
    third = await sse(f"symbols=AAPL&token={user.token}")
    assert (await third.start())[0] == 200


async def test_entitlements_refuse_with_403_and_a_revocation_drops_the_symbol(
    sse, user, ticker, settings
):
    from feeds.models import Entitlement

    settings.FEED_ENTITLEMENTS = True
    refused = await sse(f"symbols=AAPL,BTC-USD&token={user.token}")
    assert (await refused.start())[0] == 403
    body = json.loads((await refused.app.receive_output(timeout(5)))["body"])
    assert body["code"] == "not_entitled"
    assert body["symbols"] == ["AAPL", "BTC-USD"]

    grant = await sync_to_async(Entitlement.objects.create)(user=user, asset_class="equity")
    await ticker.advance(1.0)
    client = await sse(f"symbols=AAPL,MSFT&token={user.token}")
    assert (await client.start())[0] == 200
    assert (await client.until("snapshot"))["symbol"] == "AAPL"
    await sync_to_async(grant.delete)()  # broadcast on commit
    assert await client.until("status") == {"type": "status", "symbol": "AAPL", "state": "revoked"}
    assert await client.until("status") == {"type": "status", "symbol": "MSFT", "state": "revoked"}
    # quotes of both were published
    assert await ticker.advance(1.0)
    assert await ticker.advance(1.0)
    await client.app.send_input({"type": "http.disconnect"})
    rest = []
    while (name := (await client.next())[0]) != "end":
        rest.append(name)
    assert "quote" not in rest  # no quote of a revoked symbol follows its status


async def test_unknown_symbols_are_named_before_the_symbol_limit_applies(
    sse, user, ticker, settings
):
    settings.FEED_MAX_SYMBOLS = 2
    unknown = await sse(f"symbols=AAPL,MSFT,NOPE&token={user.token}")
    assert (await unknown.start())[0] == 400
    body = json.loads((await unknown.app.receive_output(timeout(5)))["body"])
    assert body["code"] == "unknown_symbol"
    over = await sse(f"symbols=AAPL,MSFT,BTC-USD&token={user.token}")
    assert (await over.start())[0] == 400
    body = json.loads((await over.app.receive_output(timeout(5)))["body"])
    assert body["code"] == "too_many_symbols"


async def test_a_ticket_admits_one_stream_once(sse, user, ticker):
    from rest_framework.test import APIClient

    def fetch() -> str:
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Token {user.token}")
        return api.post("/api/ws-ticket/").json()["ticket"]

    ticket = await sync_to_async(fetch)()
    first = await sse(f"symbols=AAPL&ticket={ticket}")
    assert (await first.start())[0] == 200
    assert (await first.until("welcome"))["user"] == "alice"
    again = await sse(f"symbols=AAPL&ticket={ticket}")
    assert (await again.start())[0] == 401


async def test_an_ended_stream_counts_towards_the_collectors_next_reclaim(sse, user, ticker):
    from feeds.deliver import process

    client = await sse(f"symbols=AAPL&token={user.token}")
    assert (await client.start())[0] == 200
    collector = process.current().collector
    closed = collector.closed
    await client.close()
    assert collector.closed == closed + 1
