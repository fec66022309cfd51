"""Credentials across server processes (Redis): one lockout, tickets redeemed anywhere once.

Failed logins counted by one daphne lock the username on the other; a ticket
taken from one is good on the other, once; and Redis holds neither the
ticket nor any token in clear.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import pytest
import websockets

from tests.redis.cluster import cluster_env, running_cluster
from tests.schema import decode_frame
from tests.timeouts import timeout

pytestmark = [pytest.mark.redis, pytest.mark.live]


def post(url: str, body: bytes = b"", **headers: str) -> tuple[int, dict, dict]:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout(10)) as response:
            return response.status, dict(response.headers), json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read() or b"{}")


def login(server, username: str, password: str) -> tuple[int, dict, dict]:
    body = json.dumps({"username": username, "password": password}).encode()
    return post(f"{server.url}/api/token/", body, **{"Content-Type": "application/json"})


async def test_lockouts_and_tickets_hold_across_servers(redis_url, tmp_path):
    import redis

    env = cluster_env(redis_url, tmp_path, FEED_LOGIN_FAILURES_PER_USER="4")
    with running_cluster(env) as (token, _ticker, (one, two)):
        # Failures alternate between the servers; together they reach the limit.
        statuses = [
            (await asyncio.to_thread(login, (one, two)[n % 2], "victim", f"guess-{n}"))[0]
            for n in range(4)
        ]
        assert statuses == [400, 400, 400, 429]
        for server in (one, two):
            status, headers, _ = await asyncio.to_thread(login, server, "victim", "another")
            assert status == 429
            assert int(headers["Retry-After"]) > 0

        # A ticket from one server admits a WebSocket on the other, once.
        status, _, body = await asyncio.to_thread(
            post, f"{one.url}/api/ws-ticket/", Authorization=f"Token {token}"
        )
        assert status == 200
        ticket = body["ticket"]
        store = redis.Redis.from_url(redis_url)
        keys = list(store.scan_iter(count=1000))
        dump = b"".join(key + b"=" + (store.dump(key) or b"") for key in keys)
        assert any(b"ws-ticket" in key for key in keys)  # the ticket is in Redis, as a hash
        assert ticket.encode() not in dump
        assert token.encode() not in dump

        async with websockets.connect(f"{two.ws_url}?ticket={ticket}") as ws:
            welcome = decode_frame(await asyncio.wait_for(ws.recv(), timeout(10)))[0]
            assert welcome["type"] == "welcome"
        for server in (one, two):
            with pytest.raises(websockets.InvalidStatus) as refused:
                await websockets.connect(f"{server.ws_url}?ticket={ticket}")
            assert refused.value.response.status_code == 403
