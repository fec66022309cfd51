"""The feed as a user meets it: daphne on a port, the websockets client, real time."""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import re
import urllib.parse
import urllib.request

import pytest
import websockets

from tests.conftest import timeout
from tests.schema import decode_frame
from tests.servers import manage

pytestmark = pytest.mark.live


class Feed:
    def __init__(self, ws) -> None:
        self.ws = ws
        self.pending: list[dict] = []

    async def recv(self) -> dict:
        while not self.pending:
            self.pending.extend(decode_frame(await asyncio.wait_for(self.ws.recv(), timeout(10))))
        return self.pending.pop(0)

    async def until(self, pred) -> tuple[dict, list[dict]]:
        before = []
        while True:
            msg = await self.recv()
            if pred(msg):
                return msg, before
            before.append(msg)

    async def request(self, obj: dict) -> dict:
        await self.ws.send(json.dumps(obj))
        msg, _ = await self.until(lambda m: m.get("id") == obj["id"])
        return msg


def session_cookie(server) -> str:
    """Log in through Django's login page, as a browser would."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"{server.url}/accounts/login/", timeout=timeout(10)).read().decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    body = urllib.parse.urlencode(
        {"username": "livetester", "password": "live-pass-123", "csrfmiddlewaretoken": csrf}
    ).encode()
    login = f"{server.url}/accounts/login/"
    req = urllib.request.Request(login, data=body, headers={"Referer": login})
    opener.open(req, timeout=timeout(10))
    cookies = {c.name: c.value for c in jar}
    assert "sessionid" in cookies, "login failed"
    return f"sessionid={cookies['sessionid']}"


@pytest.mark.parametrize("way", ["header", "query", "session", "message"])
async def test_each_way_to_authenticate_gets_a_welcome_then_live_quotes(server, token, way):
    url, headers = server.ws_url, {}
    if way == "header":
        headers = {"Authorization": f"Token {token}"}
    elif way == "query":
        url += f"?token={token}"
    elif way == "session":
        headers = {"Cookie": session_cookie(server), "Origin": server.url}
    async with websockets.connect(url, additional_headers=headers) as ws:
        feed = Feed(ws)
        if way == "message":
            welcome = await feed.request({"op": "auth", "token": token, "id": "hello"})
        else:
            welcome = await feed.recv()
        assert welcome["type"] == "welcome"
        assert welcome["user"] == "livetester"
        reply = await feed.request({"op": "subscribe", "symbols": ["AAPL", "eur/usd"], "id": 1})
        assert reply["symbols"] == ["AAPL", "EUR/USD"]
        snap, _ = await feed.until(lambda m: m["type"] == "snapshot")
        quote, _ = await feed.until(
            lambda m: m["type"] == "quote" and m["symbol"] == snap["symbol"]
        )
        assert quote["seq"] > snap["seq"]


async def test_bad_token_is_refused_with_403(server):
    with pytest.raises(websockets.InvalidStatus) as info:
        async with websockets.connect(server.ws_url + "?token=nope"):
            pass
    assert info.value.response.status_code == 403


async def test_foreign_origin_is_refused_with_403(server, token):
    with pytest.raises(websockets.InvalidStatus) as info:
        async with websockets.connect(server.ws_url + f"?token={token}", origin="http://evil.example"):
            pass
    assert info.value.response.status_code == 403


async def test_no_quote_follows_the_unsubscribed_reply(server, token):
    async with websockets.connect(server.ws_url + f"?token={token}") as ws:
        feed = Feed(ws)
        await feed.recv()
        await feed.request({"op": "subscribe", "symbols": ["AAPL", "MSFT"], "id": 1})
        await feed.until(lambda m: m["type"] == "quote" and m["symbol"] == "AAPL")
        await feed.request({"op": "unsubscribe", "symbols": ["AAPL"], "id": 2})
        for _ in range(5):
            _, before = await feed.until(
                lambda m: m.get("symbol") == "MSFT" and m["type"] == "quote"
            )
            assert all(m.get("symbol") != "AAPL" for m in before)


async def test_frame_over_64_kib_closes_with_1009(server, token):
    async with websockets.connect(server.ws_url + f"?token={token}", max_size=None) as ws:
        feed = Feed(ws)
        await feed.recv()
        await ws.send('{"op":"ping","pad":"' + "x" * 70_000 + '"}')
        assert (await feed.recv())["code"] == "message_too_large"
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), timeout(10))
        assert ws.close_code == 1009


async def test_halt_through_the_orm_reaches_the_live_subscriber(server, token):
    async with websockets.connect(server.ws_url + f"?token={token}") as ws:
        feed = Feed(ws)
        await feed.recv()
        await feed.request({"op": "subscribe", "symbols": ["MSFT"], "id": 1})
        await feed.until(lambda m: m["type"] == "quote")
        halt = (
            "from feeds.models import Instrument as I; "
            "from feeds.services import instrument_halt as h; "
            "h(instruments=I.objects.filter(symbol='MSFT'))"
        )
        await asyncio.to_thread(manage, server.env, "shell", "-c", halt)
        status, _ = await feed.until(lambda m: m["type"] == "status")
        assert status == {"type": "status", "symbol": "MSFT", "state": "halted"}
        resume = halt.replace("instrument_halt", "instrument_resume")
        await asyncio.to_thread(manage, server.env, "shell", "-c", resume)
        status, _ = await feed.until(lambda m: m["type"] == "status")
        assert status["state"] == "trading"
        await feed.until(lambda m: m["type"] == "quote" and m["symbol"] == "MSFT")


def test_rest_quotes_and_healthz_answer(server, token):
    req = urllib.request.Request(
        f"{server.url}/api/quotes/?symbols=EUR/USD,aapl",
        headers={"Authorization": f"Token {token}"},
    )
    quotes = json.loads(urllib.request.urlopen(req, timeout=timeout(10)).read())
    assert [q["symbol"] for q in quotes] == ["EUR/USD", "AAPL"]
    assert all("type" not in q and q["bid"] < q["ask"] for q in quotes)
    health = json.loads(urllib.request.urlopen(f"{server.url}/healthz", timeout=timeout(10)).read())
    assert health["status"] == "ok"
