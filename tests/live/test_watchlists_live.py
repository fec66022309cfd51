"""Watchlists follow their user on a live server: a REST change reaches the user's WebSocket.

PROTOCOL.md "Watchlists" promises a connection that follows its user's
lists the new ones within a second of the commit, on every server process:
the one that served the write (its own layer), another process of the
embedded default (the database relay, feeds/relay.py) and another server of
the Redis layout (the channel layer's control group:
tests/redis/test_watchlists_cluster.py). The assertions allow
the test timeout factor on top of the second, and print the figure (-s).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
import websockets

from tests.schema import decode_frame
from tests.servers import manage
from tests.timeouts import timeout

pytestmark = pytest.mark.live

DEADLINE_S = 1.0


def rest(base: str, token: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One API call with the token; (status, decoded JSON body or None)."""
    request = urllib.request.Request(
        base + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout(10)) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


async def follow(ws) -> list[dict]:
    """Ask for the lists and follow them; the lists the reply holds."""
    await ws.send(json.dumps({"op": "watchlists", "id": "w"}))
    while True:
        for msg in decode_frame(await asyncio.wait_for(ws.recv(), timeout(10))):
            if msg["type"] == "watchlists" and msg.get("id") == "w":
                return msg["lists"]


async def pushed(ws) -> tuple[list[dict], float]:
    """The next unsolicited ``watchlists`` message's lists, and when it came."""
    while True:
        for msg in decode_frame(await asyncio.wait_for(ws.recv(), timeout(10))):
            if msg["type"] == "watchlists" and "id" not in msg:
                return msg["lists"], time.time()


def delete_all(base: str, token: str) -> None:
    _, lists = rest(base, token, "GET", "/api/watchlists/")
    for row in lists:
        rest(base, token, "DELETE", f"/api/watchlists/{row['id']}/")


@pytest.fixture
def clean_lists(server, token):
    """The session server's user starts and ends without lists (the browser tests share it)."""
    delete_all(server.url, token)
    yield
    delete_all(server.url, token)


async def welcomed(url: str, token: str):
    ws = await websockets.connect(f"{url}?token={token}")
    assert decode_frame(await asyncio.wait_for(ws.recv(), timeout(10)))[0]["type"] == "welcome"
    return ws


@pytest.mark.usefixtures("clean_lists")
async def test_a_list_made_over_rest_reaches_the_users_followers_within_a_second(server, token):
    follower = await welcomed(server.ws_url, token)
    plain = await welcomed(server.ws_url, token)
    try:
        assert await follow(follower) == []
        sent = time.time()  # the commit is later: this overstates the delay
        status, made = await asyncio.to_thread(
            rest, server.url, token, "POST", "/api/watchlists/",
            {"name": "Live", "symbols": ["msft", "eur/usd"]},
        )
        assert status == 201, made
        lists, arrived = await pushed(follower)
        print(f"\nREST create to watchlists: {(arrived - sent) * 1000:.0f} ms")
        assert lists == [made]
        assert arrived - sent < timeout(DEADLINE_S)

        status, _ = await asyncio.to_thread(
            rest, server.url, token, "PUT", f"/api/watchlists/{made['id']}/",
            {"symbols": ["EUR/USD", "MSFT", "AAPL"]},
        )
        assert status == 200
        lists, _ = await pushed(follower)
        assert lists[0]["symbols"] == ["EUR/USD", "MSFT", "AAPL"]

        # A connection that never asked got nothing of it.
        await plain.send(json.dumps({"op": "ping", "id": "p"}))
        seen: list[dict] = []
        while not any(m.get("id") == "p" for m in seen):
            seen += decode_frame(await asyncio.wait_for(plain.recv(), timeout(10)))
        assert not [m for m in seen if m["type"] == "watchlists"]
    finally:
        await follower.close()
        await plain.close()


@pytest.mark.usefixtures("clean_lists")
async def test_a_change_from_another_process_is_relayed_within_a_second(server, token, live_env):
    """The embedded default: another process's write comes through the database relay."""
    follower = await welcomed(server.ws_url, token)
    try:
        await follow(follower)
        watching = asyncio.create_task(pushed(follower))  # the shell exits after its commit
        out = await asyncio.to_thread(
            manage, live_env, "shell", "--no-imports", "-c",
            "import time; from django.contrib.auth.models import User; "
            "from feeds import watchlists; "
            "watchlists.create(User.objects.get(username='livetester'), name='Shell', "
            "symbols=['AAPL']); print(time.time())",
        )
        committed = float(out.split()[-1])
        lists, arrived = await watching
        print(f"\nother process to watchlists: {(arrived - committed) * 1000:.0f} ms")
        assert [(w["name"], w["symbols"]) for w in lists] == [("Shell", ["AAPL"])]
        assert arrived - committed < timeout(DEADLINE_S)
    finally:
        await follower.close()
