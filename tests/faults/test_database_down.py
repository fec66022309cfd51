"""PostgreSQL away: the stream goes on from memory; what needs the database gets a clear 503.

The embedded default on a real PostgreSQL database of the test's own. The
database is made unavailable the way an outage looks to the server: new
connections refused (``ALLOW_CONNECTIONS false``) and the open ones cut
(``pg_terminate_backend``). Then it comes back.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import pytest
import websockets

from tests.live.test_live_feed import session_cookie
from tests.schema import decode_frame
from tests.timeouts import stop, timeout

pytestmark = [pytest.mark.live, pytest.mark.postgres]


async def read_until_closed(ws) -> None:
    """Read and drop messages until the connection closes (ConnectionClosed)."""
    while True:
        await asyncio.wait_for(ws.recv(), timeout(15))


def get(url: str, headers: dict[str, str]) -> tuple[int, str, str]:
    """(status, content type, body) of a GET, errors included."""
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout(10)) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


class Database:
    """The test's PostgreSQL database, switched off and on from the server's point of view."""

    def __init__(self, url: str) -> None:
        self.name = url.rsplit("/", 1)[1]
        self.admin_url = url.rsplit("/", 1)[0] + "/postgres"

    def _run(self, *statements: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as admin:
            for statement in statements:
                admin.execute(sql.SQL(statement).format(name=sql.Identifier(self.name)), )

    def down(self) -> None:
        import psycopg

        self._run("ALTER DATABASE {name} ALLOW_CONNECTIONS false")
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (self.name,),
            )

    def up(self) -> None:
        self._run("ALTER DATABASE {name} ALLOW_CONNECTIONS true")


class Stream:
    def __init__(self, url: str) -> None:
        self.url = url
        self.quotes = 0
        self.arrived = asyncio.Event()

    async def run(self) -> None:
        async with websockets.connect(self.url) as ws:
            await ws.send(json.dumps({"op": "subscribe", "symbols": ["AAPL", "EUR/USD"], "id": 1}))
            async for frame in ws:
                self.quotes += sum(1 for m in decode_frame(frame) if m["type"] == "quote")
                self.arrived.set()

    async def more(self, n: int) -> None:
        target = self.quotes + n
        while self.quotes < target:
            self.arrived.clear()
            await self.arrived.wait()


async def until_status(url: str, headers: dict[str, str], status: int) -> tuple[int, str, str]:
    deadline = asyncio.get_running_loop().time() + timeout(20)
    while True:
        answer = await asyncio.to_thread(get, url, headers)
        if answer[0] == status or asyncio.get_running_loop().time() > deadline:
            return answer
        await asyncio.sleep(0.2)


async def test_database_away_stream_goes_on_and_requests_get_503(feed_server, postgres_url):
    feed = feed_server(env_extra={"DATABASE_URL": postgres_url})
    server = feed.server
    server.env = feed.env
    # session_cookie logs in as the live tests' user; make ours that one's twin.
    from tests.servers import manage

    manage(feed.env, "feeduser", "livetester", "--password", "live-pass-123")
    cookie = await asyncio.to_thread(session_cookie, server)
    token = {"Authorization": f"Token {feed.token}"}
    api = server.url + "/api/instruments/"
    assert (await asyncio.to_thread(get, api, token))[0] == 200

    stream = Stream(server.ws_url + f"?token={feed.token}")
    streaming = asyncio.create_task(stream.run())
    database = Database(postgres_url)
    other = None
    try:
        await asyncio.wait_for(stream.more(5), timeout(15))
        other = await websockets.connect(server.ws_url + f"?token={feed.token}")
        await other.recv()  # welcome: this one is in before the database goes
        await asyncio.to_thread(database.down)
        try:
            status, kind, body = await until_status(api, token, 503)
            assert (status, kind) == (503, "application/json"), body
            assert json.loads(body)["detail"].startswith("The database is unavailable")
            quotes = server.url + "/api/quotes/?symbols=AAPL"
            status, kind, body = await asyncio.to_thread(get, quotes, token)
            assert (status, kind) == (503, "application/json"), body
            status, kind, body = await asyncio.to_thread(get, server.url + "/", {"Cookie": cookie})
            assert status == 503, body
            assert kind.startswith("text/html"), body
            assert "Service unavailable" in body
            assert "Traceback" not in body
            health = await asyncio.to_thread(get, server.url + "/healthz", {})
            assert health[0] == 503
            assert json.loads(health[2])["database"] == "unavailable"
            # A request that needs the database closes only its own connection,
            # with 1001 (reconnect), and no traceback.
            await other.send(json.dumps({"op": "subscribe", "symbols": ["MSFT"], "id": 7}))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await read_until_closed(other)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1001
            # Meanwhile the stream runs on from memory.
            await asyncio.wait_for(stream.more(20), timeout(15))
            assert not streaming.done()
        finally:
            await asyncio.to_thread(database.up)
        status, _, body = await until_status(api, token, 200)
        assert status == 200, body
        await asyncio.wait_for(stream.more(5), timeout(15))
    finally:
        await stop(streaming)
        if other is not None:
            await other.close()
    log = feed.log()
    assert "Traceback" not in log, log
    assert log.count("the database unreachable") == 1, log
