"""A ticker whose layer loses part of its groups (a shard's Redis away) publishes the rest."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from channels.layers import InMemoryChannelLayer

from feeds.core.engine import InstrumentSpec
from feeds.core.groups import group_for_symbol
from feeds.publish.bar_writer import BarTable, BarWriter
from feeds.publish.store import MemoryStore
from feeds.publish.ticker import PartlyPublished, Ticker
from feeds.services import ListedInstrument
from tests.timeouts import timeout


def spec(symbol: str) -> InstrumentSpec:
    return InstrumentSpec(
        symbol=symbol, tick_size=Decimal("0.01"), lot_size=100, reference_price=Decimal("100"),
        volatility=0.3, quote_rate=50.0,
    )


class HalfAwayLayer:
    """A layer one of whose groups cannot be reached; it records what got through."""

    def __init__(self, away: str) -> None:
        self.away = group_for_symbol(away)
        self.delivered: list[str] = []

    async def group_send(self, group: str, message: dict) -> None:
        if group == self.away:
            raise ConnectionError("this shard's Redis is away")
        if message["type"] == "quote":
            self.delivered.append(message["symbol"])


async def test_quotes_of_reachable_groups_go_out_when_one_group_is_away():
    layer = HalfAwayLayer(away="MSFT")
    clock = [1_000.0]
    books = [ListedInstrument(spec=spec(s), active=True) for s in ("AAPL", "MSFT", "IBM")]

    async def load():
        return books

    async def fingerprint():
        return "one"

    ticker = Ticker(
        layer=layer, store=MemoryStore(), load=load, fingerprint=fingerprint, seed=3,
        clock=lambda: clock[0],
    )
    await ticker.reload(initial=True)
    causes = []
    for _ in range(20):
        clock[0] += 1.0
        with pytest.raises(PartlyPublished) as partly:  # _run logs one outage, carries on
            await ticker.tick()
        causes.append(type(partly.value.__cause__))
    assert {"AAPL", "IBM"} <= set(layer.delivered)
    assert "MSFT" not in layer.delivered
    assert ticker.published == len(layer.delivered)
    assert causes == [ConnectionError] * 20  # MSFT quotes every second, the rest went out


class NoBars(BarTable):
    """Bars kept nowhere: these tests are about quotes."""

    def store(self, bars, *, prune_before) -> None:
        pass


class HeldLayer(InMemoryChannelLayer):
    """The in-memory layer whose quote sends wait, once held, until released."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: dict[str, int] = {}  # symbol -> the last seq sent
        self.held = asyncio.Event()
        self.release = asyncio.Event()
        self.hold = False

    async def group_send(self, group: str, message: dict) -> None:
        if message["type"] == "quote":
            if self.hold:
                self.held.set()
                await self.release.wait()
            self.sent[message["symbol"]] = message["seq"]
        await super().group_send(group, message)


async def test_a_stop_during_a_pass_sends_every_quote_the_store_saved():
    """Otherwise the next leader goes on after a seq that no subscriber was sent."""
    layer = HeldLayer()
    store = MemoryStore()
    symbols = ["AAPL", "MSFT", "IBM"]
    books = [ListedInstrument(spec=spec(s), active=True) for s in symbols]

    async def load():
        return books

    async def fingerprint():
        return "one"

    ticker = Ticker(
        layer=layer, store=store, load=load, fingerprint=fingerprint, seed=5,
        bars=BarWriter(period_s=60, flush_s=60, retention_days=1, table=NoBars()),
    )
    await ticker.start()
    layer.hold = True
    await asyncio.wait_for(layer.held.wait(), timeout(5))  # a pass is saved and half sent
    stopping = asyncio.create_task(ticker.stop())
    await asyncio.sleep(0)  # let stop begin while the pass is held
    layer.release.set()
    await asyncio.wait_for(stopping, timeout(5))
    saved = {symbol: seq for symbol, (seq, _) in (await store.latest(symbols)).items()}
    assert saved  # the held pass was saved
    assert saved == layer.sent
