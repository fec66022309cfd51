"""What an SSE stream gets from the session it shares with the WebSocket, on real servers.

The periodic re-check and revocation, ``reconnect`` before a planned close
(SIGTERM, the maximum connection age) and fresh snapshots when numbering
restarts: each over a real daphne (and, for the new epoch, a real Redis and
runticker), read by a real HTTP client.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import redis

from tests.redis.cluster import cluster_env, running_cluster
from tests.servers import Server, manage
from tests.sse.client import Event, events
from tests.timeouts import timeout

pytestmark = pytest.mark.live


@asynccontextmanager
async def stream(url: str, token: str, query: str = "symbols=AAPL") -> AsyncIterator[list[Event]]:
    """Open ``/sse/quotes/``; the list fills with its events until the response ends."""
    received: list[Event] = []
    async with httpx.AsyncClient(timeout=timeout(30)) as client:
        async with client.stream(
            "GET", f"{url}/sse/quotes/?{query}", headers={"Authorization": f"Token {token}"}
        ) as response:
            assert response.status_code == 200
            reader = asyncio.create_task(_read(response, received))
            try:
                yield received
            finally:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)


async def _read(response: httpx.Response, into: list[Event]) -> None:
    async for event in events(response):
        into.append(event)
    into.append(Event(event="end"))  # the server ended the response


# A stream is live once it carries AAPL: its snapshot if AAPL had a quote when the
# stream subscribed, else its first quote (a server just started may not have published).
LIVE = ("snapshot", "quote")


async def until(
    received: list[Event], kind: str | tuple[str, ...], *, after: int = 0, within: float = 20
) -> int:
    """The index of the first event of ``kind`` (or of any of ``kind``) at or after ``after``."""
    kinds = (kind,) if isinstance(kind, str) else kind
    deadline = asyncio.get_running_loop().time() + timeout(within)
    while True:
        for i in range(after, len(received)):
            if received[i].event in kinds:
                return i
        assert asyncio.get_running_loop().time() < deadline, [e.event for e in received]
        await asyncio.sleep(0.02)


def user_token(env: dict[str, str], name: str) -> str:
    return manage(env, "feeduser", name).strip().splitlines()[-1]


async def test_a_stream_past_its_maximum_age_gets_reconnect_then_ends(feed_server):
    feed = feed_server(env_extra={"FEED_MAX_CONNECTION_AGE_S": "1", "FEED_RECONNECT_GRACE_S": "1"})
    async with stream(feed.server.url, feed.token) as received:
        at = await until(received, "reconnect")
        assert received[at].message == {"type": "reconnect", "within_s": 1, "reason": "max_age"}
        end = await until(received, "end", after=at)
        assert all(e.event in ("quote", "heartbeat") for e in received[at + 1 : end])


async def test_sigterm_asks_sse_streams_to_reconnect_then_ends_them(feed_server):
    feed = feed_server(env_extra={"FEED_RECONNECT_GRACE_S": "2"})
    async with stream(feed.server.url, feed.token) as received:
        await until(received, LIVE)
        assert feed.server.proc is not None
        feed.server.proc.send_signal(signal.SIGTERM)
        at = await until(received, "reconnect")
        assert received[at].message == {"type": "reconnect", "within_s": 2, "reason": "shutdown"}
        await until(received, "end", after=at)
    assert await asyncio.to_thread(feed.server.proc.wait, timeout(20)) == 0


async def test_the_periodic_recheck_ends_a_stream_whose_user_was_disabled_silently(feed_server):
    feed = feed_server(env_extra={"FEED_AUTH_RECHECK_S": "1"})
    token = user_token(feed.env, "quiet-carol")
    async with stream(feed.server.url, token) as received:
        await until(received, LIVE)
        # update() sends no signal: no broadcast, no relay; only the re-check can see it.
        manage(
            feed.env, "shell", "-c",
            "from django.contrib.auth.models import User; "
            "User.objects.filter(username='quiet-carol').update(is_active=False)",
        )
        at = await until(received, "error")
        assert received[at].message["code"] == "unauthorized"
        await until(received, "end", after=at)


async def test_a_user_disabled_elsewhere_ends_the_stream_with_unauthorized(feed_server):
    feed = feed_server(env_extra={"FEED_AUTH_RECHECK_S": "3600"})
    token = user_token(feed.env, "loud-dave")
    async with stream(feed.server.url, token) as received:
        await until(received, LIVE)
        manage(
            feed.env, "shell", "-c",
            "from django.contrib.auth.models import User; "
            "u = User.objects.get(username='loud-dave'); u.is_active = False; u.save()",
        )
        at = await until(received, "error", within=5)
        assert received[at].message == {
            "type": "error", "code": "unauthorized", "message": "credentials revoked",
        }
        await until(received, "end", after=at)


@pytest.mark.redis
async def test_when_numbering_restarts_the_stream_gets_fresh_snapshots_first(
    private_redis, tmp_path
):
    env = cluster_env(private_redis.url, tmp_path, FEED_LEASE_S="1.0")
    with running_cluster(env, servers=1) as (token, ticker, (server,)):
        async with stream(server.url, token, "symbols=AAPL,MSFT") as received:
            first = await until(received, "snapshot")
            old_epoch = received[first].message["epoch"]
            await until(received, "quote", after=first)
            # Store and ticker both lost: the next ticker numbers from 1 in a new epoch.
            ticker.proc.kill()
            ticker.proc.wait(timeout(10))
            lost = len(received)
            redis.Redis.from_url(private_redis.url).flushall()
            successor = Server(
                env, 0, ready="leader:", command=[sys.executable, "manage.py", "runticker"]
            )
            successor.start()
            try:
                fresh: dict[str, int] = {}
                at = lost
                while len(fresh) < 2:
                    at = await until(received, "snapshot", after=at) + 1
                    snapshot = received[at - 1].message
                    assert snapshot["epoch"] != old_epoch
                    fresh.setdefault(snapshot["symbol"], at - 1)
                for symbol, index in fresh.items():
                    # No quote of the new numbering went out before the symbol's snapshot.
                    early = [e for e in received[lost:index] if e.event == "quote"]
                    assert not [e for e in early if e.message["symbol"] == symbol]
                later = await until(received, "quote", after=at)
                quote = received[later].message
                assert quote["seq"] > received[fresh[quote["symbol"]]].message["seq"]
            finally:
                successor.stop()
