"""The bar writer on the database (SQLite here; PostgreSQL in test_live.py): batches, not ticks."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext

from feeds.core.bars import Bar
from feeds.core.engine import Quote
from feeds.models import Bar as BarRow
from feeds.publish.bar_writer import BarTable, BarWriter
from feeds.publish.build import build_ticker
from tests.bars.conftest import T0, add_bar

pytestmark = pytest.mark.django_db(transaction=True)


def quote(symbol: str, at_s: float, last: float, volume: int) -> Quote:
    return Quote(symbol=symbol, bid=last - 0.01, ask=last + 0.01, bid_size=1, ask_size=1,
                 last=last, last_size=1, volume=volume, ts=int(at_s * 1_000_000))


def rows(symbol: str = "AAPL") -> list[tuple]:
    return list(
        BarRow.objects.filter(instrument__symbol=symbol).order_by("start").values_list(
            "start", "open", "high", "low", "close", "volume", "trades"
        )
    )


def statements(captured: CaptureQueriesContext) -> list[str]:
    """The kinds of the statements run, transaction control left out."""
    kinds = [q["sql"].split()[0].upper() for q in captured.captured_queries]
    return [k for k in kinds if k not in ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE")]


def at(minute: int) -> datetime:
    return datetime.fromtimestamp(T0 + 60 * minute, tz=UTC)


class CountingTable(BarTable):
    """The real table, counting its calls.

    ``fail`` makes the next calls raise like a dead database.
    """

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.fail = False

    def store(self, bars, *, prune_before):
        self.calls += 1
        if self.fail:
            raise OperationalError("connection refused")
        super().store(bars, prune_before=prune_before)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def writer(table: BarTable | None = None, **options) -> BarWriter:
    options = {"period_s": 60, "flush_s": 5.0, "retention_days": 0, **options}
    return BarWriter(table=table or CountingTable(), **options)


async def test_many_quotes_from_a_ticker_are_written_in_one_statement_per_flush(instruments):
    for symbol in ("AAPL", "MSFT", "EUR/USD"):
        await sync(instruments)(symbol, quote_rate=50.0)
    table = CountingTable()
    ticker = build_ticker()
    ticker.bars = bars = writer(table)
    ticker.clock = clock = Clock(T0)
    await ticker.reload(initial=True)
    published = 0
    for _ in range(590):  # nearly three minutes of the clock in 0.3 s steps
        clock.now += 0.3
        published += await ticker.tick()
    assert published > 3000
    assert table.calls == 0  # nothing written per tick
    assert await bars.flush() > 0
    assert table.calls == 1
    stored = await sync(rows)()
    assert [r[0] for r in stored] == [at(0), at(1), at(2)]
    assert all(r[2] >= max(r[1], r[4]) and r[3] <= min(r[1], r[4]) for r in stored)
    assert sum(r[6] for r in stored) > 100  # about one quote in three is a trade
    await ticker.stop()


def test_one_flush_is_one_upsert_after_the_first_reads(instruments):
    instruments("AAPL")
    instruments("MSFT")
    table = BarTable()
    bars = [
        Bar("AAPL", T0 + 60 * m, 10.0, 11.0, 9.0, 10.5, 100, 2, fresh=m == 0) for m in range(50)
    ]
    bars.append(Bar("MSFT", T0, 50.0, 50.0, 50.0, 50.0, 1, 1, fresh=True))
    with CaptureQueriesContext(connection) as first:
        table.store(bars, prune_before=None)
    # The instrument ids and the rows an earlier ticker may have left, then one upsert.
    assert statements(first) == ["SELECT", "SELECT", "INSERT"]
    with CaptureQueriesContext(connection) as second:
        table.store([Bar("AAPL", T0 + 60 * 49, 10.0, 12.0, 9.0, 12.0, 200, 3)], prune_before=None)
    assert statements(second) == ["INSERT"]
    assert "ON CONFLICT" in second.captured_queries[-2]["sql"]
    assert rows()[-1][2:] == (12, 9, 12, 200, 3)
    assert len(rows()) == 50


def test_a_restarted_ticker_adds_to_the_bar_an_earlier_one_stored(instruments):
    aapl = instruments("AAPL")
    add_bar(aapl, 0, "10.00", "12.00", "9.00", "11.00", volume=300, trades=3)
    first = BarWriter(period_s=60, flush_s=5, retention_days=0)
    first.record(quote("AAPL", T0 + 40, 11.50, 1_100), 1_000)
    first.record(quote("AAPL", T0 + 45, 8.50, 1_150), 1_100)
    first.record(quote("AAPL", T0 + 70, 13.00, 1_160), 1_150)
    table = first.table
    for bar in first.aggregator.drain():
        first.pending[bar.key] = bar
    table.store(list(first.pending.values()), prune_before=None)
    # Later in minute 1: it stays in minute 1.
    first.record(quote("AAPL", T0 + 50, 10.25, 1_170), 1_160)
    table.store(first.aggregator.drain(), prune_before=None)
    assert [r[1:] for r in rows()] == [
        (10, 12, 8.5, 8.5, 450, 5),  # the earlier 300 + 3 trades, and ours, counted once
        (13, 13, 10.25, 10.25, 20, 2),
    ]


def test_retention_deletes_old_bars_in_one_statement_at_most_once_a_minute(instruments):
    aapl = instruments("AAPL")
    for minute in range(0, 60 * 24 * 3, 60):  # hourly rows over three days
        add_bar(aapl, minute, "1", "1", "1", "1")
    clock = Clock(T0 + 3 * 86_400)
    table = BarTable()
    bars = writer(table, retention_days=1, clock=clock)
    with CaptureQueriesContext(connection) as pruning:
        table.store([], prune_before=bars._prune_due())
    assert statements(pruning) == ["DELETE"]
    assert rows()[0][0] == datetime.fromtimestamp(T0 + 2 * 86_400, tz=UTC)
    assert len(rows()) == 24


async def test_prune_runs_with_a_flush_and_then_waits_a_minute(instruments):
    await sync(instruments)("AAPL")
    clock = Clock(T0 + 10 * 86_400)
    bars = writer(retention_days=7, clock=clock)
    assert bars._prune_due() is not None
    await bars.flush()
    assert bars.table.calls == 1
    assert bars._prune_due() is None
    clock.now += 61
    assert bars._prune_due() is not None


async def test_while_the_database_is_away_bars_wait_and_are_written_when_it_is_back(
    instruments, feed_log
):
    await sync(instruments)("AAPL")
    table = CountingTable()
    bars = writer(table)
    table.fail = True
    for i in range(5):
        bars.record(quote("AAPL", T0 + 60 * i + 1, 10.0 + i, 1_001 + i), 1_000 + i)
        assert await bars.flush() == 0
    assert len(bars.pending) == 5
    warnings = [r for r in feed_log.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "the database unreachable" in warnings[0].getMessage()
    table.fail = False
    assert await bars.flush() == 5
    assert [r[1] for r in await sync(rows)()] == [10, 11, 12, 13, 14]
    assert not bars.pending
    assert any("reachable again" in r.getMessage() for r in feed_log.records)


async def test_a_long_outage_drops_the_oldest_bars_with_one_log_line(instruments, feed_log):
    await sync(instruments)("AAPL")
    table = CountingTable()
    table.fail = True
    bars = writer(table, max_pending=3)
    for i in range(6):
        bars.record(quote("AAPL", T0 + 60 * i + 1, 10.0 + i, 1_001 + i), 1_000 + i)
        await bars.flush()
    assert sorted(start for _, start in bars.pending) == [T0 + 180, T0 + 240, T0 + 300]
    assert sum("dropping the oldest bars" in r.getMessage() for r in feed_log.records) == 1
    table.fail = False
    await bars.flush()
    assert [r[1] for r in await sync(rows)()] == [13, 14, 15]


async def test_bars_of_an_instrument_deleted_since_are_dropped_quietly(instruments):
    await sync(instruments)("AAPL")
    bars = writer()
    bars.record(quote("GONE", T0 + 1, 5.0, 2), 1)
    bars.record(quote("AAPL", T0 + 1, 5.0, 2), 1)
    assert await bars.flush() == 2
    assert len(await sync(rows)()) == 1
    assert not bars.pending


async def test_close_writes_what_is_left(instruments):
    await sync(instruments)("AAPL")
    bars = writer()
    bars.record(quote("AAPL", T0 + 1, 5.0, 2), 1)
    await bars.close()
    assert len(await sync(rows)()) == 1


def sync(function):
    from channels.db import database_sync_to_async

    return database_sync_to_async(function)
