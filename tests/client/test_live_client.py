"""The client against a real daphne: quotes, reconnects across a restart, resume,
make-before-break."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import websockets

from marketfeed_client import (
    AuthenticationError,
    Backoff,
    ConnectionState,
    FeedClient,
    Gap,
    Quote,
    StateChange,
)
from tests.client.relay import Relay
from tests.faults.conftest import daphne
from tests.timeouts import timeout

pytestmark = pytest.mark.live

FAST = {"AAPL": 20.0, "MSFT": 20.0}


def quick_backoff() -> Backoff:
    return Backoff(initial_s=0.2, maximum_s=2.0)


async def collect(
    feed: FeedClient, until: Callable[[list[object]], bool], seconds: float = 20
) -> list[object]:
    """Events of ``feed`` until ``until(events)`` holds."""
    events: list[object] = []

    async def run() -> None:
        async for event in feed.events():
            events.append(event)
            if until(events):
                return

    await asyncio.wait_for(run(), timeout(seconds))
    return events


def quotes_of(events: list[object]) -> list[Quote]:
    return [e for e in events if isinstance(e, Quote)]


def reconnections(events: list[object]) -> int:
    return sum(
        isinstance(e, StateChange) and e.state is ConnectionState.RECONNECTING for e in events
    )


def assert_contiguous(quotes: list[Quote]) -> None:
    """Per symbol: seq goes up by exactly one, one epoch, no duplicates."""
    by_symbol: dict[str, list[int]] = {}
    for q in quotes:
        by_symbol.setdefault(q.symbol, []).append(q.seq)
    for symbol, seqs in by_symbol.items():
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), (symbol, seqs)
    assert len({q.epoch for q in quotes}) == 1


class FrameKinds:
    """A real connection that notes whether its frames were text or binary."""

    def __init__(self, ws: websockets.ClientConnection, kinds: set[type]) -> None:
        self.ws, self.kinds = ws, kinds

    async def recv(self) -> str | bytes:
        data = await self.ws.recv()
        self.kinds.add(type(data))
        return data

    async def send(self, text: str) -> None:
        await self.ws.send(text)

    async def close(self) -> None:
        await self.ws.close()


@pytest.mark.parametrize(("wire_format", "frames"), [("json", str), ("msgpack", bytes)])
async def test_quotes_iterate_live_with_rising_seq(server, token, wire_format, frames):
    kinds: set[type] = set()

    async def connect(url: str, **kwargs) -> FrameKinds:
        return FrameKinds(await websockets.connect(url, **kwargs), kinds)

    async with FeedClient(
        server.ws_url, ["AAPL", "EUR/USD"], token=token, wire_format=wire_format, connect=connect
    ) as feed:
        got = []
        async for quote in feed.quotes():
            got.append(quote)
            if len(got) == 6:
                break
    assert kinds == {frames}
    assert {q.symbol for q in got} <= {"AAPL", "EUR/USD"}
    assert got[0].snapshot
    assert got[0].epoch
    assert all(q.bid < q.ask and q.volume >= 0 for q in got)
    for symbol in {q.symbol for q in got}:
        seqs = [q.seq for q in got if q.symbol == symbol]
        assert seqs == sorted(set(seqs))


@pytest.mark.parametrize("auth", ["header", "query", "message"])
async def test_a_bad_token_raises_authentication_error_whichever_way_it_is_sent(server, auth):
    async with FeedClient(server.ws_url, ["AAPL"], token="not-a-real-token", auth=auth) as feed:
        with pytest.raises(AuthenticationError):
            await asyncio.wait_for(anext(feed.quotes()), timeout(10))


async def test_the_client_reconnects_by_itself_when_the_server_is_killed_and_restarted(feed_server):
    feed = feed_server(rates=FAST)
    restarted = None
    try:
        async with FeedClient(
            feed.server.ws_url, ["AAPL"], token=feed.token, backoff=quick_backoff()
        ) as client:
            before = await collect(client, lambda ev: len(quotes_of(ev)) >= 3)
            feed.server.proc.kill()  # SIGKILL: no 1001, no goodbye
            await asyncio.to_thread(feed.server.proc.wait, timeout(10))
            restarted = daphne(feed.env, feed.port)
            await asyncio.to_thread(restarted.start)
            after = await collect(
                client, lambda ev: reconnections(ev) > 0 and len(quotes_of(ev)) >= 3, seconds=60
            )
    finally:
        if restarted is not None:
            restarted.stop()
    last, fresh = quotes_of(before)[-1], quotes_of(after)
    assert client.state is ConnectionState.CLOSED
    gaps = [e for e in after if isinstance(e, Gap)]
    if fresh[0].epoch == last.epoch and fresh[0].seq == last.seq + 1:
        assert gaps == []  # the restarted server replayed what was missed
    else:  # a fresh quote store: new numbering, said so before the first new quote
        assert gaps
        assert gaps[0].symbol == "AAPL"
        assert after.index(gaps[0]) < after.index(fresh[0])
    assert_contiguous(fresh[1:])


async def test_a_network_blip_is_resumed_without_a_gap(feed_server):
    feed = feed_server(rates=FAST)
    relay = Relay(feed.port)
    await relay.start()
    url = f"ws://127.0.0.1:{relay.port}/ws/quotes/"
    try:
        async with FeedClient(
            url, ["AAPL", "MSFT"], token=feed.token, backoff=quick_backoff()
        ) as client:
            events = await collect(client, lambda ev: len(quotes_of(ev)) >= 6)
            relay.cut()
            events += await collect(
                client, lambda ev: reconnections(ev) > 0 and len(quotes_of(ev)) >= 10
            )
    finally:
        await relay.stop()
    assert relay.connections == 2
    assert [e for e in events if isinstance(e, Gap)] == []
    assert_contiguous(quotes_of(events))


async def test_make_before_break_moves_connections_without_duplicates_or_gaps(feed_server):
    feed = feed_server(
        rates=FAST, env_extra={"FEED_MAX_CONNECTION_AGE_S": "2", "FEED_RECONNECT_GRACE_S": "5"}
    )
    async with FeedClient(feed.server.ws_url, ["AAPL", "MSFT"], token=feed.token) as client:
        events = await collect(
            client, lambda ev: reconnections(ev) >= 2 and isinstance(ev[-1], Quote), seconds=40
        )
    moves = [
        e for e in events if isinstance(e, StateChange) and e.state is ConnectionState.RECONNECTING
    ]
    assert all("max_age" in e.detail for e in moves), moves
    assert [e for e in events if isinstance(e, Gap)] == []
    assert_contiguous(quotes_of(events))
