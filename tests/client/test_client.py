"""FeedClient against an in-memory connection object: reconnects, resume, make-before-break.

The fake (tests/client/fakes.py) stands in for a websockets connection only;
each test plays the server's side of PROTOCOL.md by hand.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest
from websockets.exceptions import InvalidStatus
from websockets.http11 import Response

from marketfeed_client import (
    AuthenticationError,
    Backoff,
    ConnectionState,
    FeedClient,
    FeedError,
    Gap,
    Quote,
    ServerError,
    StateChange,
    Status,
)
from tests.client.fakes import FakeConnection, FakeDialer, quote, snapshot, welcome
from tests.timeouts import timeout

URL = "ws://feed.test/ws/quotes/"


class RecordingBackoff(Backoff):
    """A fast back-off that notes which kind of wait each reconnect used."""

    def __init__(self) -> None:
        super().__init__(initial_s=0.001, maximum_s=0.004, rng=random.Random(0))
        self.waits: list[str] = []

    def next_delay(self) -> float:
        self.waits.append("backoff")
        return super().next_delay()

    def jitter(self, spread_s: float) -> float:
        self.waits.append("jitter")
        return super().jitter(min(spread_s, 0.001))


@pytest.fixture
def dialer() -> FakeDialer:
    return FakeDialer()


@pytest.fixture
def backoff() -> RecordingBackoff:
    return RecordingBackoff()


@pytest.fixture
async def feed(dialer, backoff) -> AsyncIterator[FeedClient]:
    client = FeedClient(URL, ["AAPL", "msft"], token="t0k", connect=dialer, backoff=backoff,
                        reconnect_jitter_s=0.001)
    async with client:
        yield client


class Reader:
    """Reads the client's event iterator in the background, so the test can script the server."""

    def __init__(self, client: FeedClient) -> None:
        self.events: list[object] = []
        self.error: BaseException | None = None
        self._changed = asyncio.Event()
        self.task = asyncio.create_task(self._run(client.events()))

    async def _run(self, events) -> None:
        try:
            async for event in events:
                self.events.append(event)
                self._changed.set()
        except Exception as exc:
            self.error = exc
            self._changed.set()

    async def until(self, predicate) -> None:
        async def wait() -> None:
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(wait(), timeout())

    def quotes(self) -> list[tuple[str, int]]:
        return [(e.symbol, e.seq) for e in self.events if isinstance(e, Quote)]

    def gaps(self) -> list[Gap]:
        return [e for e in self.events if isinstance(e, Gap)]

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


@pytest.fixture
async def reader(feed) -> AsyncIterator[Reader]:
    r = Reader(feed)
    yield r
    await r.close()


async def open_subscribed(
    dialer: FakeDialer, epoch: str = "e1", **reply
) -> tuple[FakeConnection, dict]:
    """Accept the next connection: welcome it, read its subscribe, answer ``subscribed``."""
    conn = await dialer.connection()
    conn.push(welcome(epoch))
    request = await conn.request()
    assert request["op"] == "subscribe"
    conn.push({"type": "subscribed", "id": request["id"], "symbols": request["symbols"], **reply})
    return conn, request


async def test_header_auth_then_subscribe_then_quotes_in_order(feed, dialer, reader):
    conn, request = await open_subscribed(dialer)
    assert conn.headers == {"Authorization": "Token t0k"}
    assert conn.url == URL
    assert request["symbols"] == ["AAPL", "MSFT"]
    assert "since" not in request
    conn.push(snapshot("AAPL", 10), quote("AAPL", 11), [quote("MSFT", 3), quote("AAPL", 12)])
    await reader.until(lambda: len(reader.quotes()) == 4)
    assert reader.quotes() == [("AAPL", 10), ("AAPL", 11), ("MSFT", 3), ("AAPL", 12)]
    states = [e.state for e in reader.events if isinstance(e, StateChange)]
    assert states[-1] is ConnectionState.LIVE
    assert feed.state is ConnectionState.LIVE


@pytest.mark.parametrize(
    ("auth", "wire_format", "url", "headers"),
    [
        ("query", "json", URL + "?token=t0k", {}),
        ("message", "json", URL, {}),
        ("header", "msgpack", URL + "?format=msgpack", {"Authorization": "Token t0k"}),
    ],
)
async def test_other_ways_to_authenticate_and_the_messagepack_format(
    dialer, auth, wire_format, url, headers
):
    async with FeedClient(
        URL, ["AAPL"], token="t0k", auth=auth, wire_format=wire_format, connect=dialer
    ):
        conn = await dialer.connection()
        assert (conn.url, conn.headers) == (url, headers)
        if auth == "message":
            assert await conn.request() == {"op": "auth", "token": "t0k", "id": "auth"}


async def test_a_prev_seq_marked_skip_is_a_conflated_gap_before_the_quote(feed, dialer, reader):
    conn, _ = await open_subscribed(dialer)
    conn.push(snapshot("AAPL", 1), quote("AAPL", 2), quote("AAPL", 6, prev_seq=2), quote("AAPL", 9))
    await reader.until(lambda: len(reader.quotes()) == 4)
    kinds = [
        (type(e).__name__, getattr(e, "seq", getattr(e, "next_seq", None)))
        for e in reader.events
        if isinstance(e, Quote | Gap)
    ]
    assert kinds == [("Quote", 1), ("Quote", 2), ("Gap", 6), ("Quote", 6), ("Gap", 9), ("Quote", 9)]
    assert [(g.reason, g.missed) for g in reader.gaps()] == [("conflated", 3), ("lost", 2)]


async def test_a_lost_connection_resubscribes_with_since_and_a_recovered_replay_has_no_gap(
    feed, dialer, reader, backoff
):
    conn, _ = await open_subscribed(dialer)
    conn.push(snapshot("AAPL", 1), quote("AAPL", 2), snapshot("MSFT", 7))
    await reader.until(lambda: len(reader.quotes()) == 3)
    conn.hang_up(None)  # the TCP connection drops: no close frame
    second, request = await open_subscribed(dialer, recovered={"AAPL": True, "MSFT": True})
    assert request["since"] == {"AAPL": 2, "MSFT": 7}
    assert request["epoch"] == "e1"
    second.push(quote("AAPL", 2), quote("AAPL", 3), quote("AAPL", 4), quote("MSFT", 8))
    await reader.until(lambda: len(reader.quotes()) == 6)
    assert reader.quotes()[3:] == [("AAPL", 3), ("AAPL", 4), ("MSFT", 8)]
    assert reader.gaps() == []
    assert backoff.waits == ["backoff"]
    assert any(
        isinstance(e, StateChange) and e.state is ConnectionState.RECONNECTING
        for e in reader.events
    )


async def test_a_resume_the_server_cannot_replay_reports_the_gap_then_the_snapshot(
    feed, dialer, reader
):
    conn, _ = await open_subscribed(dialer)
    conn.push(snapshot("AAPL", 5))
    await reader.until(lambda: len(reader.quotes()) == 1)
    conn.hang_up(1011, "server error")
    second, _ = await open_subscribed(dialer, recovered={"AAPL": False})
    second.push(snapshot("AAPL", 300))
    await reader.until(lambda: len(reader.quotes()) == 2)
    [gap] = reader.gaps()
    assert (gap.symbol, gap.after_seq, gap.next_seq, gap.reason) == (
        "AAPL",
        5,
        300,
        "not_recovered",
    )


async def test_a_new_epoch_after_reconnect_is_an_epoch_gap(feed, dialer, reader):
    conn, _ = await open_subscribed(dialer)
    conn.push(snapshot("AAPL", 500))
    await reader.until(lambda: len(reader.quotes()) == 1)
    conn.hang_up(1001)
    second, request = await open_subscribed(dialer, epoch="e2")
    assert request["epoch"] == "e1"  # what we had; the server answers with snapshots of e2
    second.push(snapshot("AAPL", 3, epoch="e2"), quote("AAPL", 4))
    await reader.until(lambda: len(reader.quotes()) == 3)
    assert [(g.reason, g.epoch) for g in reader.gaps()] == [("epoch", "e2")]
    assert reader.quotes()[1:] == [("AAPL", 3), ("AAPL", 4)]


@pytest.mark.parametrize(("code", "wait"), [(1001, "jitter"), (4429, "backoff"), (1011, "backoff")])
async def test_close_codes_choose_the_wait_before_dialling_again(
    feed, dialer, reader, backoff, code, wait
):
    conn, _ = await open_subscribed(dialer)
    conn.hang_up(code)
    await open_subscribed(dialer)
    assert backoff.waits == [wait]


async def test_4429_backs_off_longer_each_time_until_a_connection_succeeds(
    feed, dialer, reader, backoff
):
    for _ in range(3):
        conn = await dialer.connection()
        conn.push({"type": "error", "code": "too_many_connections", "message": "at most 1"})
        conn.hang_up(4429)
    await open_subscribed(dialer)
    assert backoff.waits == ["backoff"] * 3
    await reader.until(lambda: feed.state is ConnectionState.LIVE)
    assert backoff.attempt == 0  # subscribed: the next failure starts from the shortest wait


async def test_4401_raises_authentication_error_with_the_servers_message_and_does_not_redial(
    feed, dialer, reader
):
    conn = await dialer.connection()
    conn.push({"type": "error", "code": "unauthorized", "message": "invalid token"})
    conn.hang_up(4401)
    await reader.until(lambda: reader.error is not None)
    assert isinstance(reader.error, AuthenticationError)
    assert "invalid token" in str(reader.error)
    assert dialer.attempts == 1
    with pytest.raises(AuthenticationError):  # and again for anyone who reads later
        async for _ in feed.events():
            pass


async def test_1003_for_an_unknown_format_is_a_feed_error_and_is_not_redialled(
    feed, dialer, reader
):
    conn = await dialer.connection()
    conn.push({"type": "error", "code": "bad_request", "message": "unknown format 'json': msgpack"})
    conn.hang_up(1003)
    await reader.until(lambda: reader.error is not None)
    assert isinstance(reader.error, FeedError)
    assert not isinstance(reader.error, AuthenticationError)
    assert "unknown format 'json'" in str(reader.error)
    assert "1003" in str(reader.error)
    assert dialer.attempts == 1


async def test_an_http_403_on_a_token_handshake_is_an_authentication_error(dialer):
    dialer.failures.append(InvalidStatus(Response(403, "Forbidden", [])))
    async with FeedClient(URL, ["AAPL"], token="bad", connect=dialer) as feed:
        with pytest.raises(AuthenticationError, match="403"):
            await asyncio.wait_for(anext(feed.quotes()), timeout())
    assert dialer.attempts == 1


async def test_a_refused_dial_is_retried_with_back_off(dialer, backoff):
    dialer.failures.extend([ConnectionRefusedError(111, "refused"), OSError("unreachable")])
    async with FeedClient(URL, ["AAPL"], token="t", connect=dialer, backoff=backoff) as feed:
        conn, _ = await open_subscribed(dialer)
        assert backoff.waits == ["backoff", "backoff"]
        assert dialer.attempts == 3
        conn.push(snapshot("AAPL", 1))
        first = await asyncio.wait_for(anext(feed.quotes()), timeout())
    assert (first.symbol, first.seq, first.snapshot) == ("AAPL", 1, True)


async def test_an_unknown_symbol_raises_server_error_naming_it(dialer):
    async with FeedClient(URL, ["AAPL", "NOPE"], token="t", connect=dialer) as feed:
        conn = await dialer.connection()
        conn.push(welcome())
        request = await conn.request()
        conn.push(
            {
                "type": "error",
                "id": request["id"],
                "code": "unknown_symbol",
                "message": "unknown symbol(s): NOPE",
                "symbols": ["NOPE"],
            }
        )
        with pytest.raises(ServerError) as caught:
            await asyncio.wait_for(anext(feed.quotes()), timeout())
    assert caught.value.code == "unknown_symbol"
    assert caught.value.symbols == ("NOPE",)


async def test_make_before_break_switches_on_subscribed_without_duplicates_or_gaps(
    feed, dialer, reader
):
    old, _ = await open_subscribed(dialer)
    old.push(snapshot("AAPL", 1), quote("AAPL", 2), quote("AAPL", 3))
    await reader.until(lambda: len(reader.quotes()) == 3)
    old.push({"type": "reconnect", "within_s": 5, "reason": "max_age"})
    new = await dialer.connection()
    old.push(quote("AAPL", 4), quote("AAPL", 5))  # the old one streams on meanwhile
    await reader.until(lambda: len(reader.quotes()) == 5)
    new.push(welcome())
    request = await new.request()
    assert request["since"]["AAPL"] == 5
    assert request["epoch"] == "e1"
    assert not old.closed.is_set()  # not before the new one is subscribed
    old.push(quote("AAPL", 6))
    new.push(
        {
            "type": "subscribed",
            "id": request["id"],
            "symbols": request["symbols"],
            "recovered": {"AAPL": True, "MSFT": True},
        },
        quote("AAPL", 6),
        quote("AAPL", 7),
    )
    await asyncio.wait_for(old.closed.wait(), timeout())
    new.push(quote("AAPL", 8))
    await reader.until(lambda: ("AAPL", 8) in reader.quotes())
    assert reader.quotes() == [("AAPL", n) for n in range(1, 9)]
    assert reader.gaps() == []
    assert dialer.attempts == 2  # the old one's close started no third connection
    assert feed.state is ConnectionState.LIVE


async def test_if_the_new_connection_fails_the_old_ones_going_away_dials_again(
    feed, dialer, reader
):
    old, _ = await open_subscribed(dialer)
    old.push({"type": "reconnect", "within_s": 5, "reason": "shutdown"})
    doomed = await dialer.connection()
    doomed.hang_up(None)
    old.hang_up(1001)
    third, _request = await open_subscribed(dialer)
    third.push(snapshot("AAPL", 1))
    await reader.until(lambda: reader.quotes() == [("AAPL", 1)])


async def test_a_revoked_symbol_is_reported_and_left_out_of_the_next_subscribe(
    feed, dialer, reader
):
    conn, _ = await open_subscribed(dialer)
    conn.push(snapshot("MSFT", 2), {"type": "status", "symbol": "MSFT", "state": "revoked"})
    await reader.until(lambda: any(isinstance(e, Status) for e in reader.events))
    assert [e for e in reader.events if isinstance(e, Status)] == [Status("MSFT", "revoked")]
    conn.hang_up(1001)
    _, request = await open_subscribed(dialer)
    assert request["symbols"] == ["AAPL"]
    assert "MSFT" not in request.get("since", {})


async def test_garbage_from_the_server_is_dropped_and_the_stream_goes_on(feed, dialer, reader):
    conn, _ = await open_subscribed(dialer)
    conn.push_raw("{not json")
    conn.push({**quote("AAPL", 1), "seq": "one"}, {"type": "novel", "x": 1}, quote("AAPL", 2))
    await reader.until(lambda: reader.quotes() == [("AAPL", 2)])
    assert reader.error is None


async def test_callbacks_see_gaps_statuses_and_state_changes_while_quotes_iterates(dialer):
    seen: list[str] = []

    def boom(_event: object) -> None:
        raise RuntimeError("a bug in the application's callback")

    async with FeedClient(
        URL,
        ["AAPL"],
        token="t",
        connect=dialer,
        on_gap=lambda g: seen.append(f"gap {g.next_seq}"),
        on_status=lambda s: seen.append(f"status {s.state}"),
        on_state=boom,  # must not stop the feed
    ) as feed:
        conn, _ = await open_subscribed(dialer)
        conn.push(
            snapshot("AAPL", 1),
            {"type": "status", "symbol": "AAPL", "state": "halted"},
            quote("AAPL", 5),
        )
        got = []
        async for q in feed.quotes():
            got.append(q.seq)
            if len(got) == 2:
                break
    assert got == [1, 5]
    assert seen == ["status halted", "gap 5"]


async def test_close_ends_the_iterator_and_closes_the_connection(dialer):
    feed = FeedClient(URL, ["AAPL"], token="t", connect=dialer)
    feed.start()
    conn, _ = await open_subscribed(dialer)
    await feed.close()
    assert conn.closed.is_set()
    assert [e async for e in feed.events() if isinstance(e, Quote)] == []
    assert feed.state is ConnectionState.CLOSED


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"symbols": []}, "at least one symbol"),
        ({"auth": "cookie"}, "auth must be"),
        ({"wire_format": "xml"}, "wire_format"),
        ({"url": "http://x/"}, "WebSocket URL"),
    ],
)
def test_bad_construction_arguments_are_refused(kwargs, message):
    args = {"url": URL, "symbols": ["AAPL"], **kwargs}
    with pytest.raises(ValueError, match=message):
        FeedClient(args.pop("url"), args.pop("symbols"), **args)
