"""The backfill on the database: one write, once, beside the live ticker; the API has it at once."""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.layers import InMemoryChannelLayer
from django.contrib.auth.models import User
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from feeds.auth import issue_token
from feeds.core import engine
from feeds.models import Bar as BarRow
from feeds.publish.backfill import Backfill, parameters, rows_per_statement
from feeds.publish.build import build_ticker
from feeds.publish.leader import Leader
from feeds.publish.store import MemoryStore
from feeds.publish.ticker import Ticker
from feeds.services import instruments_for_ticker
from tests.bars.conftest import T0, add_bar
from tests.bars.test_writer import statements
from tests.timeouts import timeout

pytestmark = pytest.mark.django_db(transaction=True)
NOW = 1_800_000_030.0  # half a minute into a minute
UNTIL = int(NOW) // 60 * 60
DEFAULT_BARS = 3 * 1440  # FEED_BACKFILL_DAYS' default: three days of one-minute bars


def starts(seed: int = 7):
    """The books' first states, as a fresh ticker makes them."""
    return [
        (item.spec, engine.initial_state(item.spec, random.Random(f"{seed}:{item.spec.symbol}")))
        for item in instruments_for_ticker()
    ]


def fill(books=None) -> int:
    return Backfill(days=2, period_s=60).fill(
        books or starts(), seed=7, time_scale=60.0, now=NOW
    )


def count(symbol: str) -> int:
    return BarRow.objects.filter(instrument__symbol=symbol).count()


def test_the_backfill_is_one_statement_for_every_row_and_a_restart_writes_nothing(instruments):
    instruments("AAPL", quote_rate=8.0)
    instruments("EUR/USD", tick="0.00001", price="1.16450", lot_size=1000, quote_rate=10.0)
    books = starts()
    with CaptureQueriesContext(connection) as first:
        assert fill(books) == 2 * 2880
    # Instrument ids, which of them have recent bars, then the rows: as many in one INSERT
    # as SQLite binds (not the 999 parameters Django assumes), all in one transaction.
    per_statement = rows_per_statement()
    assert per_statement >= 32_766 // 8
    inserts = math.ceil(2 * 2880 / per_statement)
    assert statements(first) == ["SELECT", "SELECT"] + ["INSERT"] * inserts
    assert first.captured_queries[-1]["sql"] == "COMMIT"
    assert count("AAPL") == count("EUR/USD") == 2880
    newest = BarRow.objects.filter(instrument__symbol="AAPL").latest("start")
    assert newest.start == datetime.fromtimestamp(UNTIL - 60, tz=UTC)
    assert float(newest.close) == 100.0  # the reference price: where a fresh book starts
    # A restart (or a new leader) finds the history: it only looks.
    with CaptureQueriesContext(connection) as again:
        assert fill(books) == 0
    assert statements(again) == ["SELECT", "SELECT"]
    assert count("AAPL") == 2880


def test_without_a_child_process_the_backfill_simulates_in_its_own(
    instruments, monkeypatch, feed_log
):
    instruments("AAPL")

    def no_processes(*args, **kwargs):
        raise OSError("fork: Resource temporarily unavailable")

    monkeypatch.setattr("feeds.publish.backfill.ProcessPoolExecutor", no_processes)
    assert fill() == 2880
    assert count("AAPL") == 2880
    assert any("no child process" in r.getMessage() for r in feed_log.records)


def test_only_instruments_without_a_bar_in_the_window_are_backfilled(instruments):
    recent, old = instruments("AAPL"), instruments("MSFT")
    instruments("EUR/USD", tick="0.00001", price="1.16450")
    now = (UNTIL - T0) // 60  # add_bar counts minutes from T0
    add_bar(recent, now - 600, "1", "1", "1", "1")  # ten hours ago: in the window
    add_bar(old, now - 3 * 1440, "1", "1", "1", "1")  # three days ago: outside it
    assert fill() == 2 * 2880
    assert (count("AAPL"), count("MSFT"), count("EUR/USD")) == (1, 2881, 2880)


def test_the_backfill_never_overwrites_a_stored_bar(instruments):
    aapl = instruments("AAPL")
    moment = UNTIL - 60
    BarRow.objects.create(instrument=aapl, start=datetime.fromtimestamp(moment, tz=UTC),
                          open=1, high=2, low=1, close=2, volume=5, trades=1)
    Backfill.write(parameters(aapl.id, [(moment, 9.0, 9.0, 9.0, 9.0, 900, 9)], {}))
    assert list(BarRow.objects.values_list("close", "volume")) == [(2, 5)]


class FlakyBackfill(Backfill):
    """The database goes away during the first write, and is back for the next."""

    def __init__(self) -> None:
        super().__init__(days=2, period_s=60)
        self.attempts = 0

    def write(self, rows) -> None:
        self.attempts += 1
        if self.attempts == 1:
            raise OperationalError("server closed the connection unexpectedly")
        super().write(rows)


async def test_a_backfill_the_database_interrupts_is_written_once_it_is_back(
    instruments, feed_log, monkeypatch
):
    await sync_to_async(instruments)("AAPL")
    monkeypatch.setattr("feeds.publish.backfill.RETRY_S", 0.01)
    backfill = FlakyBackfill()
    books = await sync_to_async(starts)()
    assert await backfill.run(books, seed=7, time_scale=60.0, now=NOW) == 2880
    assert backfill.attempts == 2
    assert await sync_to_async(count)("AAPL") == 2880
    messages = [r.getMessage() for r in feed_log.records]
    assert sum("the database unreachable" in m for m in messages) == 1
    assert any("reachable again" in m for m in messages)
    assert not any(r.exc_info for r in feed_log.records)  # an outage is a line, not a traceback


class HeldBackfill(Backfill):
    """A backfill whose worker waits, until the ticker stops, before it starts simulating."""

    def __init__(self) -> None:
        super().__init__(days=2, period_s=60)
        self.release = threading.Event()

    def fill(self, *args, **kwargs) -> int:
        assert self.release.wait(timeout(30))
        return super().fill(*args, **kwargs)

    async def close(self) -> None:
        self._abandon.set()  # what super().close() does first, before the worker goes on
        self.release.set()
        await super().close()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_the_live_ticker_publishes_while_the_backfill_runs_and_stop_abandons_it(
    instruments,
):
    await sync_to_async(instruments)("AAPL", quote_rate=50.0)
    ticker = build_ticker()
    ticker.clock = clock = Clock(time.time())
    ticker.backfill = held = HeldBackfill()
    live_from = datetime.fromtimestamp(int(clock.now) // 60 * 60, tz=UTC)
    await ticker.start()
    try:
        published = 0
        for _ in range(10):
            clock.now += 0.2
            published += await ticker.tick()
        assert published > 20
        assert not held.done.is_set()
    finally:
        await asyncio.wait_for(ticker.stop(), timeout(30))
    assert held.written == 0
    history = BarRow.objects.filter(start__lt=live_from)  # the live bars are the final flush's
    assert await sync_to_async(history.count)() == 0


async def test_right_after_start_the_api_serves_the_default_three_days_of_history(instruments):
    aapl = await sync_to_async(instruments)("AAPL", quote_rate=8.0)
    ticker = build_ticker()
    await ticker.start()
    try:
        assert ticker.backfill is not None
        await asyncio.wait_for(ticker.backfill.done.wait(), timeout(60))
        assert ticker.backfill.written == DEFAULT_BARS
        until = ticker.backfill.until  # the live bars start on this minute
    finally:
        await ticker.stop()
    stopped = time.time()
    client = await sync_to_async(api_client)()
    get = sync_to_async(client.get)
    hours = (await get("/api/bars/AAPL/", {"interval": "1h", "limit": 1000})).json()["bars"]
    first = datetime.fromisoformat(hours[0]["start"])
    assert first <= datetime.fromtimestamp(until, tz=UTC) - timedelta(hours=72)
    assert len(hours) >= 72  # the chart opens on at least 60 candles of each interval
    minutes = (await get("/api/bars/AAPL/", {"limit": 1000})).json()["bars"]
    assert len(minutes) == 1000
    stamps = [datetime.fromisoformat(bar["start"]).timestamp() for bar in minutes]
    history = [stamp for stamp in stamps if stamp < until]
    live = stamps[len(history):]
    assert history[-1] == until - 60
    assert all(b - a == 60 for a, b in itertools.pairwise(history))
    # A live bar is a minute with quotes: one the ticker started late in may have none.
    assert all(stamp >= until and stamp % 60 == 0 for stamp in live)
    assert len(live) <= (stopped - until) // 60 + 1, live
    # The live bars carry on from where the history ends: the reference price, a fresh book's.
    (last_backfilled,) = [bar for bar in minutes if bar["start"] == _iso(until - 60)]
    assert last_backfilled["close"] == float(aapl.reference_price)
    # A restart finds the history and writes none.
    again = build_ticker()
    await again.start()
    try:
        await asyncio.wait_for(again.backfill.done.wait(), timeout(30))
        assert again.backfill.written == 0
    finally:
        await again.stop()


def api_client() -> APIClient:
    user = User.objects.create_user("historian", password="bar-pass-123")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {issue_token(user)[0]}")
    return client


def _iso(moment: int) -> str:
    return datetime.fromtimestamp(moment, tz=UTC).isoformat().replace("+00:00", "Z")


class Lease:
    """A lease for two leaders in one process: the first to ask holds it."""

    def __init__(self) -> None:
        self.holder: str | None = None

    async def lease_take(self, holder: str, ttl_s: float) -> bool:
        self.holder = self.holder or holder
        return self.holder == holder

    async def lease_release(self, holder: str) -> None:
        if self.holder == holder:
            self.holder = None

    async def lease_holder(self) -> str | None:
        return self.holder


async def test_with_a_leader_and_a_standby_only_the_leader_backfills(instruments):
    await sync_to_async(instruments)("AAPL")
    lease, built = Lease(), []

    def build(fence: str) -> Ticker:
        ticker = build_ticker(fence)
        ticker.layer, ticker.store = InMemoryChannelLayer(), MemoryStore()
        built.append(ticker)
        return ticker

    leaders = [Leader(store=lease, build=build, lease_s=30, holder=n) for n in ("one", "two")]
    stop = asyncio.Event()
    runs = [asyncio.create_task(leader.run(stop)) for leader in leaders]
    try:
        await asyncio.wait_for(leaders[0].leading.wait(), timeout(10))
        await asyncio.wait_for(leaders[1].standing_by.wait(), timeout(10))
        assert len(built) == 1
        await asyncio.wait_for(built[0].backfill.done.wait(), timeout(60))
        assert built[0].backfill.written == DEFAULT_BARS
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*runs), timeout(30))
    # (and the live bar of the minute the leader started in, from its last flush)
    assert await sync_to_async(count)("AAPL") in (DEFAULT_BARS, DEFAULT_BARS + 1, DEFAULT_BARS + 2)


def test_the_setting_turns_it_off_and_is_held_to_the_retention(settings):
    settings.FEED_BACKFILL_DAYS, settings.FEED_BARS_RETENTION_DAYS = 0, 7
    assert Backfill.from_settings() is None
    settings.FEED_BACKFILL_DAYS, settings.FEED_BARS_RETENTION_DAYS = 5, 3
    assert Backfill.from_settings().count == 3 * 1440  # no history the retention would delete
    settings.FEED_BACKFILL_DAYS, settings.FEED_BARS_RETENTION_DAYS = 5, 0
    assert Backfill.from_settings().count == 5 * 1440
