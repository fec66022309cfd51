"""The ticker: the feed's clock and its only publisher.

For every active instrument it runs the price engine at the instrument's quote
rate, numbers each quote (``seq``, per symbol, kept in the store so it never
goes backwards), encodes it once, saves it to the quote store and only then
publishes it to the instrument's channel-layer group. It also publishes
``status`` when an instrument is halted or resumed.

It reloads the instruments when told to (a control message sent on commit by
``feeds.services``) and polls a cheap fingerprint as a safety net. The same
``Ticker`` runs inside the server process (embedded default) or alone under
``manage.py runticker``; ``start()`` / ``stop()`` are the whole lifecycle.

Under ``runticker`` the ticker has a *fence*: the name of the leader lease it
was started under. Every save carries it, and the first save the store refuses
(another ticker took the lease) stops publishing and sets ``fenced``.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from django.db import DatabaseError

from feeds.core import engine, events, protocol
from feeds.core.engine import InstrumentSpec, MarketState
from feeds.core.groups import SERVERS_CONTROL_GROUP, TICKER_CONTROL_GROUP, group_for_symbol
from feeds.core.protocol import State
from feeds.publish.backfill import Backfill
from feeds.publish.bar_writer import BarWriter
from feeds.publish.bus import LayerBus
from feeds.publish.outage import DATABASE, STORE, outage
from feeds.publish.store import Fenced, QuoteStore
from feeds.services import ListedInstrument

logger = logging.getLogger(__name__)


class PartlyPublished(Exception):
    """A pass whose quotes reached some groups but not all (a shard of the layer is away)."""

    def __init__(self, sent: int) -> None:
        super().__init__(f"{sent} quotes published, the rest unreachable")
        self.sent = sent


MAX_IDLE_S = 0.25  # the loop wakes at least this often to notice reloads and stops
CATCH_UP_LIMIT_S = 0.5  # after a stall, skip ahead rather than burst out old quotes
FAILURE_BACKOFF_S = 1.0
# On stop, a pass already saving its quotes gets this long to send them, so a seq
# the store holds has reached the layer too and the next leader goes on from it.
STOP_PUBLISH_GRACE_S = 5.0

Loader = Callable[[], Awaitable[list[ListedInstrument]]]
Fingerprint = Callable[[], Awaitable[object]]


@dataclass(slots=True)
class Book:
    """One instrument's running state inside the ticker."""

    spec: InstrumentSpec
    state: MarketState
    rng: random.Random
    seq: int
    due: float  # clock time of the next quote
    stamp: float  # clock time of the last step
    failures: int = 0


@dataclass(order=True, slots=True)
class _Due:
    due: float
    symbol: str = field(compare=False)


class Ticker:
    def __init__(
        self,
        *,
        layer: Any,
        store: QuoteStore,
        load: Loader,
        fingerprint: Fingerprint,
        seed: int | None = None,
        time_scale: float = 1.0,
        reload_interval_s: float = 1.0,
        clock: Callable[[], float] = time.time,
        fence: str | None = None,
        bars: BarWriter | None = None,
        backfill: Backfill | None = None,
        bus: LayerBus | None = None,
    ) -> None:
        self.layer = layer
        self.store = store
        # How a pass reaches the layer: save, then group_send, unless a cheaper bus is given.
        self.bus = bus or LayerBus(layer, store)
        self._load = load
        self._fingerprint = fingerprint
        self.seed = random.randrange(2**63) if seed is None else seed
        self.time_scale = time_scale
        self.reload_interval_s = reload_interval_s
        self.clock = clock
        self.books: dict[str, Book] = {}
        self._listed: set[str] = set()  # every symbol of the table, halted ones too (wildcards)
        self._heap: list[_Due] = []
        self._known_fingerprint: object = None
        self._reload_now = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._control_channel: str | None = None
        self._fence = fence
        self.fenced = asyncio.Event()
        self._stopping = False
        self._between_passes = asyncio.Event()  # clear while a pass saves and sends
        self._between_passes.set()
        self.epoch: str | None = None
        self.published = 0
        # One-minute bars of the trades (feeds.core.bars), stored in batches by their own task.
        self.bars = bars or BarWriter.from_settings()
        # History for instruments without recent bars, made beside the live stream at start.
        self.backfill = backfill

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Load instruments and start publishing; returns once the first load is done."""
        self.epoch = await self.store.epoch()
        await self.reload(initial=True)
        self._control_channel = await self.layer.new_channel("ticker.")
        await self.layer.group_add(TICKER_CONTROL_GROUP, self._control_channel)
        self._tasks = [
            asyncio.create_task(self._run(), name="ticker-run"),
            asyncio.create_task(self._control_loop(), name="ticker-control"),
            asyncio.create_task(self._poll_loop(), name="ticker-poll"),
            asyncio.create_task(self.bars.run(), name="ticker-bars"),
        ]
        if self.backfill is not None:  # each history ends on the price its book starts at
            starts = [(book.spec, book.state) for book in self.books.values()]
            self._tasks.append(asyncio.create_task(self.backfill.run(
                starts, seed=self.seed, time_scale=self.time_scale, now=self.clock()
            ), name="ticker-backfill"))
        logger.info("ticker started: %d instruments, seed %d", len(self.books), self.seed)

    async def stop(self) -> None:
        self._stopping = True  # no pass starts from here on
        if not self._between_passes.is_set():
            try:
                await asyncio.wait_for(self._between_passes.wait(), STOP_PUBLISH_GRACE_S)
            except TimeoutError:
                logger.warning("ticker: a publishing pass did not finish; stopped in it")
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self.backfill is not None:
            await self.backfill.close()
        await self.bars.close()  # the bars since the last flush
        if self._control_channel is not None:
            try:
                await self.layer.group_discard(TICKER_CONTROL_GROUP, self._control_channel)
            except Exception:
                logger.debug("could not leave the control group", exc_info=True)

    # --- instruments -----------------------------------------------------------------------

    async def reload(self, *, initial: bool = False) -> None:
        """Bring the running set of books in line with the instrument table."""
        self._known_fingerprint = await self._fingerprint()
        listed = {item.spec.symbol: item for item in await self._load()}
        # --- wildcard subscriptions: symbols new to the table, however they got there ---
        added = [] if initial else sorted(listed.keys() - self._listed)
        self._listed = set(listed)
        now = self.clock()
        going = [s for s in self.books if s not in listed or not listed[s].active]
        coming = [s for s, item in listed.items() if item.active and s not in self.books]
        for symbol in going:
            del self.books[symbol]
        for symbol, item in listed.items():
            book = self.books.get(symbol)
            if book is not None and book.spec != item.spec:
                self._respec(book, item.spec)
        if coming:
            await self._open_books([listed[s].spec for s in coming], now)
        if not initial:  # at start-up nothing changed for anyone
            for symbol in going:
                await self._publish_status(symbol, State.HALTED)
            for symbol in coming:
                await self._publish_status(symbol, State.TRADING)
        if added:  # --- wildcard subscriptions: "*" connections join them ---
            await self.layer.group_send(SERVERS_CONTROL_GROUP, events.instruments_added(added))
        if going or coming:
            logger.info(
                "instruments reloaded: %d ticking, halted %s, started %s",
                len(self.books),
                _few(going),
                _few(coming),
            )

    async def _open_books(self, specs: list[InstrumentSpec], now: float) -> None:
        latest = await self.store.latest([spec.symbol for spec in specs])
        for spec in specs:
            rng = random.Random(f"{self.seed}:{spec.symbol}")
            seq, text = latest.get(spec.symbol, (0, ""))
            state = _state_from_quote(spec, text) if text else None
            if state is None:
                state = engine.initial_state(spec, rng)
            book = Book(spec=spec, state=state, rng=rng, seq=seq, due=now, stamp=now)
            book.due = now + engine.next_interval(spec, rng)
            self.books[spec.symbol] = book
            heapq.heappush(self._heap, _Due(book.due, spec.symbol))

    def _respec(self, book: Book, spec: InstrumentSpec) -> None:
        old = book.spec
        book.spec = spec
        if spec.tick_size != old.tick_size:
            book.state = engine.rescale(spec, book.state, old.tick_size)
        if spec.quote_rate != old.quote_rate:
            book.due = self.clock() + engine.next_interval(spec, book.rng)
            heapq.heappush(self._heap, _Due(book.due, spec.symbol))

    # --- publishing ------------------------------------------------------------------------

    async def _run(self) -> None:
        store_outage = outage(STORE)
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Fenced as exc:
                logger.warning("ticker: no longer the leader (%s); publishing stopped", exc)
                self.fenced.set()
                return
            except PartlyPublished as exc:  # some groups unreachable: the others got their quotes
                store_outage.failed("ticker publishing", exc.__cause__ or exc)
                await asyncio.sleep(self._idle_time())
                continue
            except Exception as exc:  # the store or the layer is down: say so once, back off, go on
                store_outage.failed("ticker publishing", exc)
                await asyncio.sleep(FAILURE_BACKOFF_S)
                continue
            if store_outage.active:
                store_outage.recovered("ticker publishing")
            await asyncio.sleep(self._idle_time())

    def _idle_time(self) -> float:
        heap = self._heap
        books = self.books
        while heap and (heap[0].symbol not in books or books[heap[0].symbol].due != heap[0].due):
            heapq.heappop(heap)  # stale entry of a halted or rescheduled book
        if not heap:
            return MAX_IDLE_S
        return min(MAX_IDLE_S, max(0.0, heap[0].due - self.clock()))

    def step_due(self, now: float) -> list[tuple[str, int, str]]:
        """Step every book whose quote is due and return ``(symbol, seq, text)`` in time order."""
        out: list[tuple[str, int, str]] = []
        heap = self._heap
        ts_us = int(now * 1_000_000)
        while heap and heap[0].due <= now:
            entry = heapq.heappop(heap)
            book = self.books.get(entry.symbol)
            if book is None or book.due != entry.due:
                continue
            try:
                dt_years = max(now - book.stamp, 1e-6) * self.time_scale / engine.SECONDS_PER_YEAR
                volume_before = book.state.volume
                book.state = engine.step(book.spec, book.state, book.rng, dt_years)
                quote = engine.quote_of(book.spec, book.state, ts_us)
                text = protocol.encode_quote(quote, book.seq + 1)
            except Exception:  # one bad instrument never stops the feed
                book.failures += 1
                logger.exception(
                    "ticker: %s failed to step (%d in a row)", entry.symbol, book.failures
                )
                book.due = now + FAILURE_BACKOFF_S * min(book.failures, 30)
            else:
                book.failures = 0
                book.seq += 1
                book.stamp = now
                out.append((entry.symbol, book.seq, text))
                self.bars.record(quote, volume_before)  # bars: a trade when the volume grew
                interval = engine.next_interval(book.spec, book.rng)
                book.due = max(book.due, now - CATCH_UP_LIMIT_S) + interval
            heapq.heappush(heap, _Due(book.due, entry.symbol))
        return out

    async def tick(self) -> int:
        """Publish every quote that is due now; returns how many."""
        if self._stopping:
            return 0
        quotes = self.step_due(self.clock())
        if not quotes:
            return 0
        # Saved first, then one message per quote (feeds/publish/bus.py). The store
        # may hand back another epoch (it lost its data and a server made a new
        # one): the quotes then belong to that one, and servers resnapshot.
        self._between_passes.clear()
        try:
            done = await self.bus.publish(quotes, epoch=self.epoch, fence=self._fence)
        finally:
            self._between_passes.set()
        self.epoch = done.epoch
        self.published += done.sent
        if done.failure is not None:  # one shard, or all of it: one outage either way, for _run
            raise PartlyPublished(done.sent) from done.failure
        return done.sent

    async def _publish_status(self, symbol: str, state: State) -> None:
        text = protocol.status(symbol, state)
        await self.layer.group_send(
            group_for_symbol(symbol), events.status(symbol=symbol, text=text)
        )

    # --- control -----------------------------------------------------------------------------

    async def _control_loop(self) -> None:
        assert self._control_channel is not None
        while True:
            try:
                message = await self.layer.receive(self._control_channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                outage(STORE).failed("ticker control", exc)
                await asyncio.sleep(FAILURE_BACKOFF_S)
                continue
            if message.get("type") == events.INSTRUMENTS_CHANGED:
                self._reload_now.set()

    async def _poll_loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._reload_now.wait(), self.reload_interval_s)
            except TimeoutError:
                pass
            forced = self._reload_now.is_set()
            self._reload_now.clear()
            try:
                if forced or await self._fingerprint() != self._known_fingerprint:
                    await self.reload()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away: keep ticking what we have
                which = DATABASE if isinstance(exc, DatabaseError) else STORE
                outage(which).failed("ticker reload", exc)
            else:
                if outage(DATABASE).active:
                    outage(DATABASE).recovered("ticker reload")


def _few(symbols: list[str], shown: int = 8) -> str:
    if not symbols:
        return "none"
    names = sorted(symbols)
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _state_from_quote(spec: InstrumentSpec, text: str) -> MarketState | None:
    """Resume a book from its last published quote, so a restart does not jump the price."""
    try:
        fields = json.loads(text)
        tick = spec.tick
        bid, ask = round(fields["bid"] / tick), round(fields["ask"] / tick)
        if not 0 < bid < ask:
            return None
        base = engine.initial_state(spec, random.Random(0))
        return replace(
            base,
            mid=(fields["bid"] + fields["ask"]) / 2,
            bid=bid,
            ask=ask,
            bid_size=int(fields["bid_size"]),
            ask_size=int(fields["ask_size"]),
            last=max(1, round(fields["last"] / tick)),
            last_size=int(fields["last_size"]),
            volume=int(fields["volume"]),
        )
    except (ValueError, KeyError, TypeError, ZeroDivisionError):
        return None
