"""Bars from the ticker to the database: in batches, off the event loop, never in its way.

The ticker feeds ``BarWriter.record`` (the aggregator's, ``feeds.core.bars``) with
every quote it makes; that costs a subtraction for a quote without a trade and
touches no I/O. Every ``FEED_BARS_FLUSH_S`` the writer stores the bars that
changed since its last flush with one bulk upsert, in a worker thread, and at
most once a minute deletes the bars older than ``FEED_BARS_RETENTION_DAYS``
with one DELETE. ``close()`` (the ticker's ``stop()``) makes a last flush.

While the database is away the quote loop goes on: the changed bars wait in
memory (the newest copy of each bar, at most ``MAX_PENDING_BARS`` of them, the
oldest dropped beyond that with one log line) and are written when it is back;
the outage is logged once, on the process's shared ``outage(DATABASE)``.

A restarted ticker (or a new leader) may start in the middle of a period that
an earlier one already stored part of: the first flush of each symbol's first
bar reads that row back (one SELECT) and adds to it instead of overwriting it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

from channels.db import database_sync_to_async
from django.db import InterfaceError, OperationalError

from feeds import models
from feeds.core.bars import Bar, BarAggregator, merge
from feeds.publish.outage import DATABASE, outage

logger = logging.getLogger(__name__)

# About a day of bars for a thousand instruments trading every minute, a few
# hundred bytes each: what an outage may cost in memory before bars are dropped.
MAX_PENDING_BARS = 1_500_000
PRUNE_EVERY_S = 60.0  # retention is in days: once a minute is prompt enough
FINAL_FLUSH_TIMEOUT_S = 10.0  # a stopping ticker does not wait longer for the database
SECONDS_PER_DAY = 86_400
UPDATED_FIELDS = ["open", "high", "low", "close", "volume", "trades"]
_CONNECTION_ERRORS = (OperationalError, InterfaceError)


def _moment(start_s: int) -> datetime:
    return datetime.fromtimestamp(start_s, tz=UTC)


def _price(value: float) -> Decimal:
    # repr() is the shortest text of the float, which is the quote's price on its grid.
    return Decimal(repr(value))


class BarTable:
    """The ``Bar`` rows: synchronous, for a worker thread. Remembers instrument ids."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        # symbol -> (period start, the row an earlier ticker stored for it, if any)
        self._prior: dict[str, tuple[int, Bar | None]] = {}

    def store(self, bars: list[Bar], *, prune_before: datetime | None) -> None:
        """Upsert ``bars`` in one statement (per database batch) and prune old ones."""
        ids = self._instrument_ids({bar.symbol for bar in bars})
        known = [bar for bar in bars if bar.symbol in ids]  # an instrument deleted since
        rows = [self._row(bar, ids[bar.symbol]) for bar in self._continued(known, ids)]
        if rows:
            models.Bar.objects.bulk_create(
                rows, update_conflicts=True, unique_fields=["instrument", "start"],
                update_fields=UPDATED_FIELDS,
            )
        if prune_before is not None:
            deleted, _ = models.Bar.objects.filter(start__lt=prune_before).delete()
            if deleted:
                logger.info("bars: %d older than %s deleted", deleted, prune_before.isoformat())

    def forget(self) -> None:
        """Drop the cached ids: after an error they may name a deleted instrument."""
        self._ids.clear()

    def _instrument_ids(self, symbols: set[str]) -> dict[str, int]:
        missing = symbols - self._ids.keys()
        if missing:
            found = models.Instrument.objects.filter(symbol__in=missing).values_list("symbol", "id")
            self._ids.update(found)
        return self._ids

    def _continued(self, bars: list[Bar], ids: dict[str, int]) -> list[Bar]:
        """``bars``, each first bar of a symbol added to what was stored of its period."""
        unread = [bar for bar in bars if bar.fresh and bar.symbol not in self._prior]
        if unread:
            self._read_prior(unread, ids)
        out = []
        for bar in bars:
            start, prior = self._prior.get(bar.symbol, (None, None))
            same_minute = bar.fresh and prior is not None and start == bar.start
            out.append(merge(prior, bar) if same_minute else bar)
        return out

    def _read_prior(self, bars: list[Bar], ids: dict[str, int]) -> None:
        wanted = {(ids[bar.symbol], _moment(bar.start)): bar for bar in bars}
        found = models.Bar.objects.filter(
            instrument_id__in={key[0] for key in wanted}, start__in={key[1] for key in wanted}
        ).values_list("instrument_id", "start", "open", "high", "low", "close", "volume", "trades")
        stored = {(row[0], row[1]): row for row in found}
        for key, bar in wanted.items():
            row = stored.get(key)
            prior = None
            if row is not None:
                prior = Bar(bar.symbol, bar.start, *(float(p) for p in row[2:6]), row[6], row[7])
            self._prior[bar.symbol] = (bar.start, prior)

    @staticmethod
    def _row(bar: Bar, instrument_id: int) -> models.Bar:
        return models.Bar(
            instrument_id=instrument_id,
            start=_moment(bar.start),
            open=_price(bar.open),
            high=_price(bar.high),
            low=_price(bar.low),
            close=_price(bar.close),
            volume=bar.volume,
            trades=bar.trades,
        )


class BarWriter:
    """Aggregates the ticker's quotes and stores the bars every ``flush_s`` seconds."""

    def __init__(
        self,
        *,
        period_s: int,
        flush_s: float,
        retention_days: int,
        table: BarTable | None = None,
        clock: Callable[[], float] = time.time,
        max_pending: int = MAX_PENDING_BARS,
    ) -> None:
        self.aggregator = BarAggregator(period_s)
        self.record = self.aggregator.record  # the ticker's hot path: no extra call
        self.flush_s = flush_s
        self.retention_s = retention_days * SECONDS_PER_DAY
        self.table = table or BarTable()
        self.clock = clock
        self.max_pending = max_pending
        self.pending: dict[tuple[str, int], Bar] = {}
        self.flushes = 0  # successful writes, for tests and the curious
        self._pruned_at = float("-inf")
        self._dropping = False
        self._store = database_sync_to_async(self.table.store)

    @classmethod
    def from_settings(cls) -> BarWriter:
        from django.conf import settings

        return cls(
            period_s=settings.FEED_BARS_PERIOD_S,
            flush_s=settings.FEED_BARS_FLUSH_S,
            retention_days=settings.FEED_BARS_RETENTION_DAYS,
        )

    async def run(self) -> None:
        """Flush every ``flush_s`` seconds until cancelled; failures are handled in ``flush``."""
        while True:
            await asyncio.sleep(self.flush_s)
            await self.flush()

    async def close(self) -> None:
        """The last flush, bounded in time: a stopping ticker never hangs on the database."""
        try:
            await asyncio.wait_for(self.flush(), FINAL_FLUSH_TIMEOUT_S)
        except TimeoutError:
            pass
        if self.pending:
            logger.warning(
                "bars: %d bars not written at shutdown (the database is away)", len(self.pending)
            )

    async def flush(self) -> int:
        """Store what changed since the last flush (and what is still waiting); returns how many."""
        for bar in self.aggregator.drain():
            self.pending[bar.key] = bar
        self._bound()
        prune_before = self._prune_due()
        if not self.pending and prune_before is None:
            return 0
        batch = list(self.pending.values())
        try:
            await self._store(batch, prune_before=prune_before)
        except _CONNECTION_ERRORS as exc:  # kept for the next flush
            self.table.forget()
            outage(DATABASE).failed("bar writer", exc)
            return 0
        except Exception:  # a batch the database refuses would be refused forever
            self.table.forget()
            logger.exception("bars: %d bars could not be written and are dropped", len(batch))
            self.pending.clear()
            return 0
        self.pending.clear()
        self.flushes += 1
        self._dropping = False
        if prune_before is not None:
            self._pruned_at = self.clock()
        outage(DATABASE).recovered("bar writer")
        return len(batch)

    def _prune_due(self) -> datetime | None:
        now = self.clock()
        if not self.retention_s or now - self._pruned_at < PRUNE_EVERY_S:
            return None
        return _moment(int(now - self.retention_s))

    def _bound(self) -> None:
        excess = len(self.pending) - self.max_pending
        if excess <= 0:
            return
        oldest = sorted(self.pending.values(), key=lambda bar: bar.start)[:excess]
        for bar in oldest:
            del self.pending[bar.key]
        if not self._dropping:
            self._dropping = True
            logger.warning(
                "bars: the database has been away too long; dropping the oldest bars "
                "beyond %d waiting (%d now)", self.max_pending, excess,
            )
