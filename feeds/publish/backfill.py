"""History from the first second: the ticker backfills missing bars, beside the live stream.

When the ticker starts, every instrument with no bar stored in the last
``FEED_BACKFILL_DAYS`` (a new database; a feed that was off for longer) gets
that much history of one-minute bars (``FEED_BARS_PERIOD_S`` each with the
test knob), made by the price process itself (``feeds.core.backfill``) and
ending exactly at the price the live ticker starts from. So the chart and
``GET /api/bars/`` have days of history at once, not after days. The default
is three: two days would give the hourly chart 48 candles, short of the 60 it
opens on.

Simulating the 60 default instruments' 259,200 bars (three days) and storing them takes
seconds, so it runs beside the live ticker, after the ticker has started
publishing: the live stream does not wait for it. The database work runs in
a worker thread of its own (never the thread Django's views share), and the
simulation in a child process. Simulating in the thread too held the GIL
against the event loop for seconds: quotes published meanwhile reached a
client 11.6 ms after their ``ts`` at the median (0.8 ms once it was done),
29 ms at the 99th percentile (2.0 ms); with the child process (and SQLite's
prices bound as text, see ``parameters``), 1.0 and 14 to 17 ms (0.8 and 1.6
to 2.0 ms after), on the same 2-core machine, then lightly loaded.
It is one batched write in one transaction:

- on SQLite, multi-row ``INSERT`` statements of as many rows as its limit
  on bound parameters allows: the library's own (32,766 by default since
  SQLite 3.32, 250,000 in Debian's build; not the 999 Django assumes), up to
  65,535: 22 statements of 8,191 rows for two days' 172,800 rows;
- on PostgreSQL, one ``INSERT ... SELECT FROM unnest(...)`` of eight array
  parameters, one per column: psycopg parses a statement's placeholders in
  Python, so 1.4 million of them cost more than the rest of the backfill.

``bulk_create`` would prepare every value through the ORM's field methods:
about five times the CPU of all this (measured on SQLite for the 172,800
rows: 12 to 15 s against 2.1 to 2.7 s), with SQLite's write lock held
meanwhile.

It never overwrites a row (``OR IGNORE``, ``ON CONFLICT DO NOTHING``): a
restart finds the bars and backfills nothing, and the live writer's bars
start after the backfilled ones. Under ``runticker`` only the leader runs a
ticker, so only it backfills.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime
from decimal import Decimal
from multiprocessing import get_context
from typing import Any, TypeVar

from channels.db import database_sync_to_async
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Exists, OuterRef
from django.db.models.constants import OnConflict

from feeds import models
from feeds.core.backfill import Row, history_rows, periods
from feeds.core.engine import InstrumentSpec, MarketState
from feeds.publish.bar_writer import FINAL_FLUSH_TIMEOUT_S
from feeds.publish.child import die_with_parent
from feeds.publish.outage import DATABASE, outage

logger = logging.getLogger(__name__)

COLUMNS = ("instrument", "start", "open", "high", "low", "close", "volume", "trades")
MAX_PARAMETERS = 65_535  # PostgreSQL's protocol counts bind parameters in 16 bits
RETRY_S = 1.0  # while the database is away
_CONNECTION_ERRORS = (OperationalError, InterfaceError)
T = TypeVar("T")

Start = tuple[InstrumentSpec, MarketState]


def _moment(start_s: int) -> datetime:
    return datetime.fromtimestamp(start_s, tz=UTC)


def rows_per_statement() -> int:
    """As many rows as one statement may bind on this database."""
    connection.ensure_connection()
    limit = connection.features.max_query_params or MAX_PARAMETERS
    if connection.vendor == "sqlite":  # Django assumes 999; ask the library itself
        limit = connection.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    return max(1, min(limit, MAX_PARAMETERS) // len(COLUMNS))


def unnest_sql() -> str:
    """PostgreSQL: one ``INSERT`` of every bar, from one array parameter per column."""
    meta = models.Bar._meta
    fields = [meta.get_field(name) for name in COLUMNS]
    names = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    arrays = ", ".join(f"%s::{field.db_type(connection)}[]" for field in fields)
    return (
        f"INSERT INTO {connection.ops.quote_name(meta.db_table)} ({names}) "
        f"SELECT * FROM unnest({arrays}) ON CONFLICT DO NOTHING"
    )


def insert_sql(rows: int) -> str:
    """An ``INSERT`` of ``rows`` bars that skips a bar already stored, on this database."""
    ops, meta = connection.ops, models.Bar._meta
    fields = [meta.get_field(name) for name in COLUMNS]
    names = ", ".join(ops.quote_name(field.column) for field in fields)
    values = ", ".join([f"({', '.join(['%s'] * len(fields))})"] * rows)
    suffix = ops.on_conflict_suffix_sql(fields, OnConflict.IGNORE, None, None)
    return (
        f"{ops.insert_statement(on_conflict=OnConflict.IGNORE)} {ops.quote_name(meta.db_table)} "
        f"({names}) VALUES {values} {suffix}"
    ).rstrip()


def parameters(instrument_id: int, bars: list[Row], moments: dict[int, Any]) -> list[Any]:
    """Each bar's row for the ``INSERT``, adapted as the ORM would for this database.

    ``moments`` caches the adapted start times: every instrument has the same ones.
    """
    adapt = connection.ops.adapt_decimalfield_value
    # SQLite's driver would turn each Decimal into text with a call back into Python, one
    # by one while it binds a statement's thousands of values, holding the GIL: do it here.
    text = connection.vendor == "sqlite"

    def price(value: Decimal) -> Any:
        return str(value) if text else adapt(value)

    rows = []
    for start, open_, high, low, close, volume, trades in bars:
        moment = moments.get(start)
        if moment is None:
            moment = moments[start] = connection.ops.adapt_datetimefield_value(_moment(start))
        rows.append((
            instrument_id, moment,
            # repr() is the float's shortest text: the price on its tick grid, as the writer stores
            price(Decimal(repr(open_))), price(Decimal(repr(high))),
            price(Decimal(repr(low))), price(Decimal(repr(close))),
            volume, trades,
        ))
    return rows


class Backfill:
    """Backfills the instruments without recent bars, once, when the ticker starts."""

    def __init__(self, *, days: int, period_s: int) -> None:
        self.days = days
        self.count = periods(days)  # bars per instrument
        self.period_s = period_s
        self.done = asyncio.Event()  # set when it finished, wrote nothing, or failed
        self.written = 0  # rows stored
        self.seconds = 0.0  # how long it took, start to commit
        self.until = 0  # the first live period: the history ends before it
        self.instruments = 0  # how many had no recent bars
        self._abandon = threading.Event()
        self._work: asyncio.Future[int] | None = None

    @classmethod
    def from_settings(cls) -> Backfill | None:
        """The backfill ``FEED_BACKFILL_DAYS`` asks for; None when it is 0 (off)."""
        from django.conf import settings

        days = settings.FEED_BACKFILL_DAYS
        if settings.FEED_BARS_RETENTION_DAYS:  # no history the retention would delete at once
            days = min(days, settings.FEED_BARS_RETENTION_DAYS)
        return cls(days=days, period_s=settings.FEED_BARS_PERIOD_S) if days else None

    async def run(
        self, starts: Sequence[Start], *, seed: int, time_scale: float, now: float
    ) -> int:
        """Backfill in a worker thread; returns the rows written. Failures are logged, not raised.

        ``starts`` are the live books' first states: each history ends on its price.
        While the database is away it waits, like the bar writer, and tries again.
        """
        began = time.perf_counter()
        try:
            rows = await self._steadily(
                self.prepare, list(starts), seed=seed, time_scale=time_scale, now=now
            )
            simulated = time.perf_counter()
            if rows:
                await self._steadily(self.write, rows)
                self.written = len(rows)
                self._report(began, simulated)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("bars: the backfill failed; the chart starts with the live bars")
        finally:
            self.done.set()
        return self.written

    async def _steadily(self, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``work`` in a worker thread, again after each database outage, until stopped."""
        in_thread = database_sync_to_async(work, thread_sensitive=False)
        while True:
            self._work = asyncio.ensure_future(in_thread(*args, **kwargs))
            try:
                result = await asyncio.shield(self._work)
            except _CONNECTION_ERRORS as exc:
                outage(DATABASE).failed("bar backfill", exc)
                await asyncio.sleep(RETRY_S)  # stop() cancels this
                continue
            if outage(DATABASE).active:
                outage(DATABASE).recovered("bar backfill")
            return result

    async def close(self) -> None:
        """Stop simulating; wait (bounded) for a write already under way."""
        self._abandon.set()
        if self._work is None or self._work.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._work), FINAL_FLUSH_TIMEOUT_S)
        except Exception:  # logged by run(), or still writing: the transaction ends it
            pass

    def fill(self, starts: list[Start], *, seed: int, time_scale: float, now: float) -> int:
        """Synchronous: ``prepare`` and ``write``, in this thread; returns the rows written."""
        began = time.perf_counter()
        rows = self.prepare(starts, seed=seed, time_scale=time_scale, now=now)
        simulated = time.perf_counter()
        if rows:
            self.write(rows)
            self.written = len(rows)
            self._report(began, simulated)
        return len(rows)

    def prepare(
        self, starts: list[Start], *, seed: int, time_scale: float, now: float
    ) -> list[tuple[Any, ...]]:
        """Synchronous: find who lacks history and simulate it; the rows to write."""
        self.until = until = int(now) // self.period_s * self.period_s  # live bars start here
        since = until - self.count * self.period_s
        ids = dict(
            models.Instrument.objects.filter(
                symbol__in=[spec.symbol for spec, _ in starts]
            ).values_list("symbol", "id")
        )
        # One seek per instrument on the (instrument, start) index, however many bars there are.
        in_window = models.Bar.objects.filter(
            instrument=OuterRef("pk"), start__gte=_moment(since), start__lt=_moment(until)
        )
        recent = set(
            models.Instrument.objects.filter(id__in=ids.values())
            .filter(Exists(in_window))
            .values_list("id", flat=True)
        )
        wanted = [
            (spec, state) for spec, state in starts
            if spec.symbol in ids and ids[spec.symbol] not in recent
        ]
        self.instruments = len(wanted)
        if not wanted or self._abandon.is_set():
            return []
        options = dict(
            seed=seed, count=self.count, period_s=self.period_s, time_scale=time_scale,
            until_s=until,
        )
        rows: list[Any] = []
        moments: dict[int, Any] = {}
        for spec, bars in self._histories(wanted, options):
            rows += parameters(ids[spec.symbol], bars, moments)
        return [] if self._abandon.is_set() else rows

    def _histories(
        self, wanted: list[Start], options: dict[str, Any]
    ) -> Iterator[tuple[InstrumentSpec, list[Row]]]:
        """Each history, made in a child process (spawned: nothing of ours is copied).

        If no process can be had (or the interpreter's main script cannot be
        imported again, as ``spawn`` does), the rest are made in this thread.
        """
        made = 0
        try:
            with ProcessPoolExecutor(
                max_workers=1, mp_context=get_context("spawn"), initializer=die_with_parent
            ) as pool:
                futures = [pool.submit(history_rows, s, state, **options) for s, state in wanted]
                for (spec, _), future in zip(wanted, futures, strict=True):
                    if self._abandon.is_set():
                        pool.shutdown(cancel_futures=True)
                        return
                    yield spec, future.result()
                    made += 1
                return
        except (BrokenProcessPool, OSError) as exc:
            logger.warning("bars: backfilling in this process (no child process: %s)", exc)
        for spec, state in wanted[made:]:
            if self._abandon.is_set():
                return
            yield spec, history_rows(spec, state, **options)

    def _report(self, began: float, simulated: float) -> None:
        self.seconds = time.perf_counter() - began
        logger.info(
            "bars: backfilled %d instruments with %d periods each, %d bars, in %.1f s "
            "(%.1f s simulating, %.1f s writing)",
            self.instruments, self.count, self.written, self.seconds, simulated - began,
            self.seconds - (simulated - began),
        )

    @staticmethod
    def write(rows: list[tuple[Any, ...]]) -> None:
        """The one batched write: in one transaction, as few statements as the database allows."""
        with transaction.atomic(), connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(unnest_sql(), [list(column) for column in zip(*rows, strict=True)])
                return
            size = rows_per_statement()
            full = insert_sql(size)
            for at in range(0, len(rows), size):
                chunk = rows[at : at + size]
                sql = full if len(chunk) == size else insert_sql(len(chunk))
                cursor.execute(sql, [value for row in chunk for value in row])
