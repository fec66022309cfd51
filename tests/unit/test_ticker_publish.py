"""A ticker whose layer loses part of its groups (a shard's Redis away) publishes the rest."""

from __future__ import annotations

import logging
from decimal import Decimal

from feeds.core.engine import InstrumentSpec
from feeds.core.groups import group_for_symbol
from feeds.publish.store import MemoryStore
from feeds.publish.ticker import Ticker
from feeds.services import ListedInstrument


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


async def test_quotes_of_reachable_groups_go_out_when_one_group_is_away(caplog):
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
    published = 0
    log = logging.getLogger("feeds.publish.outage")  # feeds loggers do not propagate
    log.addHandler(caplog.handler)
    try:
        for _ in range(20):
            clock[0] += 1.0
            published += await ticker.tick()
    finally:
        log.removeHandler(caplog.handler)
    assert {"AAPL", "IBM"} <= set(layer.delivered)
    assert "MSFT" not in layer.delivered
    assert published == len(layer.delivered) == ticker.published
    warnings = [r for r in caplog.records if "part of the channel layer" in r.getMessage()]
    assert len(warnings) == 1  # one line per outage, not one per quote
