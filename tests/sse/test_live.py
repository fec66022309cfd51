"""GET /sse/quotes/ over a real daphne, read by a real HTTP client (httpx)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from tests.metrics.test_metrics import sample, scrape
from tests.servers import manage
from tests.sse.client import Event, Reader
from tests.sse.conftest import LIMIT, QUIET
from tests.timeouts import timeout

pytestmark = [pytest.mark.django_db(transaction=False), pytest.mark.live]

HALT = (
    "from feeds.models import Instrument as I; from feeds.services import instrument_halt as h; "
    "h(instruments=I.objects.filter(symbol='{symbol}'))"
)


@asynccontextmanager
async def stream(feed, query: str, headers: dict[str, str] | None = None) -> AsyncIterator[Reader]:
    async with httpx.AsyncClient(timeout=timeout(10)) as client:
        async with client.stream(
            "GET", f"{feed.server.url}/sse/quotes/?{query}",
            headers={"Authorization": f"Token {feed.token}", **(headers or {})},
        ) as response:
            reader = Reader(response)
            try:
                yield reader
            finally:
                await reader.aclose()


async def take(
    reader: Reader, count: int, kinds: tuple[str, ...] = ("quote", "snapshot")
) -> list[Event]:
    """The next ``count`` events of ``kinds`` (others skipped), within a generous timeout."""
    return await reader.take(count, kinds, timeout(20))


async def test_a_stream_is_a_snapshot_then_quotes_with_rising_seqs_and_symbol_seq_ids(sse_feed):
    async with stream(sse_feed, "symbols=aapl,MSFT") as response:
        assert response.response.status_code == 200
        assert response.response.headers["content-type"].startswith("text/event-stream")
        assert response.response.headers["cache-control"] == "no-cache"
        assert response.response.headers["x-accel-buffering"] == "no"
        head = await take(response, 3, kinds=("retry", "welcome", "subscribed"))
        assert 1000 <= head[0].retry <= 3000
        assert head[1].message["user"] == "ssestaff"
        assert head[2].message["symbols"] == ["AAPL", "MSFT"]
        seen = await take(response, 12)
    last: dict[str, int] = {}
    for ev in seen:
        msg = ev.message
        assert ev.event == msg["type"]
        assert ev.id == f"{msg['symbol']}:{msg['seq']}"
        if msg["symbol"] not in last:
            assert msg["type"] == "snapshot"
        else:
            assert msg["type"] == "quote"
            assert msg["seq"] == last[msg["symbol"]] + 1
        last[msg["symbol"]] = msg["seq"]
    assert set(last) == {"AAPL", "MSFT"}


async def test_a_quiet_symbol_gets_heartbeats(sse_feed):
    async with stream(sse_feed, f"symbols={QUIET}") as response:
        beats = await take(response, 2, kinds=("heartbeat",))
    assert all(isinstance(ev.message["ts"], int) for ev in beats)


@pytest.mark.parametrize(
    ("query", "headers", "status", "code"),
    [
        ("symbols=AAPL", {"Authorization": ""}, 401, "unauthorized"),
        ("symbols=AAPL", {"Authorization": "Token not-a-token"}, 401, "unauthorized"),
        ("symbols=AAPL,NOPE,ZZZ", {}, 400, "unknown_symbol"),
        ("symbols=", {}, 400, "bad_request"),
        ("symbols=AAPL&throttle_ms=-5", {}, 400, "bad_request"),
        ("symbols=AAPL", {"Origin": "https://evil.example"}, 403, None),
    ],
)
async def test_bad_requests_are_refused_with_a_json_detail_before_streaming(
    sse_feed, query, headers, status, code
):
    async with httpx.AsyncClient(timeout=timeout(10)) as client:
        sent = {"Authorization": f"Token {sse_feed.token}", **headers}
        if not sent["Authorization"]:
            del sent["Authorization"]
        response = await client.get(f"{sse_feed.server.url}/sse/quotes/?{query}", headers=sent)
    assert response.status_code == status
    body = response.json()
    assert body["detail"]
    assert body.get("code") == code
    if code == "unknown_symbol":
        assert body["symbols"] == ["NOPE", "ZZZ"]


async def test_a_query_token_authenticates_too(sse_feed):
    async with httpx.AsyncClient(timeout=timeout(10)) as client:
        url = f"{sse_feed.server.url}/sse/quotes/?symbols=AAPL&token={sse_feed.token}"
        async with client.stream("GET", url) as r:
            assert r.status_code == 200
            reader = Reader(r)
            try:
                assert (await take(reader, 1))[0].message["type"] == "snapshot"
            finally:
                await reader.aclose()


async def test_streams_count_against_the_user_limit_and_a_closed_one_is_released(sse_feed):
    baseline = (await asyncio.to_thread(sse_feed.stats))["connections"]
    async with httpx.AsyncClient(timeout=timeout(10)) as client:
        url = f"{sse_feed.server.url}/sse/quotes/?symbols=AAPL"
        auth = {"Authorization": f"Token {sse_feed.token}"}
        opened = []
        try:
            for _ in range(LIMIT):
                request = client.build_request("GET", url, headers=auth)
                opened.append(r := await client.send(request, stream=True))
                assert r.status_code == 200
            over = await client.get(url, headers=auth)
            assert over.status_code == 429
            assert over.json()["code"] == "too_many_connections"
        finally:
            for r in opened:
                await r.aclose()
    # Each disconnect gives its count back: the limit admits again, and nothing is left registered.
    await wait_for_stats(sse_feed, lambda s: s["connections"] == baseline)
    async with stream(sse_feed, "symbols=AAPL") as response:
        assert response.response.status_code == 200


async def wait_for_stats(feed, condition) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout(20)
    while True:
        stats = await asyncio.to_thread(feed.stats)
        if condition(stats):
            return stats
        assert asyncio.get_running_loop().time() < deadline, stats
        await asyncio.sleep(0.1)  # polling the server's own figures, not waiting for time to pass


async def test_a_halt_shows_as_a_status_event(sse_feed):
    async with stream(sse_feed, "symbols=NVDA") as response:
        await take(response, 1)
        await asyncio.to_thread(manage, sse_feed.env, "shell", "-c", HALT.format(symbol="NVDA"))
        status = (await take(response, 1, kinds=("status",)))[0]
        resume = HALT.format(symbol="NVDA").replace("instrument_halt", "instrument_resume")
        await asyncio.to_thread(manage, sse_feed.env, "shell", "-c", resume)
    assert status.message == {"type": "status", "symbol": "NVDA", "state": "halted"}
    assert status.id is None


async def test_last_event_id_resumes_every_symbol_without_a_gap(sse_feed):
    async with stream(sse_feed, "symbols=AAPL,MSFT") as response:
        first = await take(response, 6)
    had: dict[str, int] = {}
    for ev in first:
        had[ev.message["symbol"]] = ev.message["seq"]
    last_id = first[-1].id
    async with stream(sse_feed, "symbols=AAPL,MSFT", {"Last-Event-ID": last_id}) as response:
        subscribed = (await take(response, 1, kinds=("subscribed",)))[0].message
        after = await take(response, 10)
    assert subscribed["recovered"] == {"AAPL": True, "MSFT": True}
    named = last_id.split(":")[0]
    firsts: dict[str, int] = {}
    for ev in after:
        msg = ev.message
        assert msg["type"] == "quote"  # resumed: no snapshot
        firsts.setdefault(msg["symbol"], msg["seq"])
    assert firsts[named] == had[named] + 1  # exactly after the named event
    for symbol, seq in firsts.items():
        assert seq <= had.get(symbol, seq) + 1  # the others: at most a duplicate, never a gap


async def test_a_last_event_id_the_ring_cannot_serve_gets_a_snapshot(sse_feed):
    async with stream(sse_feed, "symbols=AAPL", {"Last-Event-ID": "AAPL:999999999"}) as response:
        subscribed = (await take(response, 1, kinds=("subscribed",)))[0].message
        first = (await take(response, 1))[0]
    assert subscribed["recovered"] == {"AAPL": False}
    assert first.event == "snapshot"


def counts_conflation(feed) -> bool:
    """Whether the server has counted a replaced quote (GET /metrics)."""
    return bool(sample(scrape(feed.server.url, feed.token), "marketfeed_quotes_conflated_total"))


async def test_a_reader_that_stalls_is_conflated_not_buffered(feed_server):
    feed = feed_server(
        env_extra={"FEED_WRITE_BUFFER_BYTES": "1024", "FEED_SOCKET_BUFFER_BYTES": "4096"},
        rates={s: 50.0 for s in ("AAPL", "MSFT", "EUR/USD", "BTC-USD")},
    )
    # A small receive buffer set before the handshake (the window is agreed then), and a
    # small stream limit: asyncio reads ahead up to twice it before it stops reading.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", feed.port))
    except BaseException:
        sock.close()
        raise
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    try:
        writer.write(
            f"GET /sse/quotes/?symbols=*&token={feed.token} HTTP/1.1\r\n"
            "Host: 127.0.0.1\r\n\r\n".encode()
        )
        await writer.drain()
        # Not reading: the server holds the newest quote per symbol once Twisted's buffer is full.
        # Conflation has begun once the server counts a replaced quote (GET /metrics).
        async with asyncio.timeout(timeout(30)):
            # Polling the server's own figures: another process, no event to await.
            while not await asyncio.to_thread(counts_conflation, feed):  # noqa: ASYNC110 (another process)
                await asyncio.sleep(0.1)
        stats = await asyncio.to_thread(feed.stats)
        assert 0 < stats["outbox_pending_max"] <= 200  # bounded by the symbols, not by time
        data = b""
        while b'"prev_seq"' not in data:
            data += await asyncio.wait_for(reader.read(65536), timeout(20))
    finally:
        writer.close()
        await writer.wait_closed()
    assert b"event: quote" in data
