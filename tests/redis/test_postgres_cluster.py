"""The scale-out deployment for real: runticker and two daphne on Redis and PostgreSQL.

Any server answers anything (REST quotes, snapshots) from the shared store, and
an instrument change made in PostgreSQL through one process reaches the ticker
and every subscriber on every server.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request

import pytest
import websockets

from tests.redis.cluster import cluster_env, running_cluster
from tests.schema import decode_frame
from tests.servers import manage
from tests.timeouts import timeout

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.live]


@pytest.fixture
def cluster(redis_url, postgres_url, tmp_path):
    env = cluster_env(redis_url, tmp_path, DATABASE_URL=postgres_url)
    with running_cluster(env) as (token, _ticker, servers):
        yield env, token, servers


def get_json(url: str, token: str):
    request = urllib.request.Request(url, headers={"Authorization": f"Token {token}"})
    with urllib.request.urlopen(request, timeout=timeout(10)) as response:
        return json.loads(response.read())


async def next_message(ws, kind: str) -> dict:
    while True:
        for msg in decode_frame(await asyncio.wait_for(ws.recv(), timeout(10))):
            if msg["type"] == kind:
                return msg


async def test_the_database_is_postgres_and_every_server_answers_from_the_shared_store(cluster):
    env, token, servers = cluster
    engine = manage(
        env, "shell", "-c", "from django.db import connection; print(connection.vendor)"
    )
    assert engine.strip().splitlines()[-1] == "postgresql"
    async with websockets.connect(f"{servers[0].ws_url}?token={token}") as ws:
        await ws.send(json.dumps({"op": "subscribe", "symbols": ["AAPL"], "id": 1}))
        quote = await next_message(ws, "quote")
    # The other server never had a client for AAPL; it reads the same store.
    body = await asyncio.to_thread(get_json, f"{servers[1].url}/api/quotes/?symbols=AAPL", token)
    (rest,) = body["quotes"] if isinstance(body, dict) else body
    assert rest["symbol"] == "AAPL"
    assert rest["seq"] >= quote["seq"]
    async with websockets.connect(f"{servers[1].ws_url}?token={token}") as ws:
        await ws.send(json.dumps({"op": "subscribe", "symbols": ["AAPL"], "id": 1}))
        snapshot = await next_message(ws, "snapshot")
    assert snapshot["seq"] >= rest["seq"]


async def test_a_change_saved_in_postgres_reaches_subscribers_on_both_servers(cluster):
    env, token, servers = cluster
    sockets = [await websockets.connect(f"{s.ws_url}?token={token}") for s in servers]
    try:
        for ws in sockets:
            await ws.send(json.dumps({"op": "subscribe", "symbols": ["EUR/USD"], "id": 1}))
            await next_message(ws, "quote")
        halt = (
            "from feeds.models import Instrument as I; "
            "from feeds.services import instrument_halt as h; "
            "h(instruments=I.objects.filter(symbol='EUR/USD'))"
        )
        await asyncio.to_thread(manage, env, "shell", "-c", halt)
        statuses = await asyncio.gather(*(next_message(ws, "status") for ws in sockets))
        assert [s["state"] for s in statuses] == ["halted", "halted"]
        resume = halt.replace("instrument_halt", "instrument_resume")
        await asyncio.to_thread(manage, env, "shell", "-c", resume)
        statuses = await asyncio.gather(*(next_message(ws, "status") for ws in sockets))
        assert [s["state"] for s in statuses] == ["trading", "trading"]
        await asyncio.gather(*(next_message(ws, "quote") for ws in sockets))
    finally:
        for ws in sockets:
            await ws.close()
