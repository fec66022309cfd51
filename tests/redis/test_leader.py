"""The leader lease in-process: runticker's loop, two of them on one real Redis."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from channels.layers import InMemoryChannelLayer

from feeds.core.engine import InstrumentSpec
from feeds.publish.bar_writer import BarWriter
from feeds.publish.leader import Leader
from feeds.publish.ticker import Ticker
from feeds.services import ListedInstrument
from tests.timeouts import timeout
from tests.unit.test_ticker_publish import NoBars

# A private redis-server unless REDIS_URL names one.
pytestmark = [pytest.mark.redis, pytest.mark.live]

SPEC = InstrumentSpec(
    symbol="AAPL", tick_size=Decimal("0.01"), lot_size=100, reference_price=Decimal("190"),
    volatility=0.3, quote_rate=200.0,
)


class RecordingLayer(InMemoryChannelLayer):
    """The in-memory layer, noting every quote published as (who, seq)."""

    def __init__(self) -> None:
        super().__init__()
        self.quotes: list[tuple[str, int]] = []
        self.arrived = asyncio.Event()

    async def group_send(self, group, message):
        if message["type"] == "quote":
            self.quotes.append((self.who, message["seq"]))
            self.arrived.set()
        await super().group_send(group, message)

    async def count(self, who: str, n: int) -> None:
        while sum(1 for w, _ in self.quotes if w == who) < n:
            self.arrived.clear()
            await self.arrived.wait()


def leader(store, layer: RecordingLayer, name: str, lease_s: float) -> Leader:
    async def load():
        return [ListedInstrument(spec=SPEC, active=True)]

    async def fingerprint():
        return 1

    def build(fence: str) -> Ticker:
        layer.who = fence
        bars = BarWriter(period_s=60, flush_s=60, retention_days=1, table=NoBars())
        return Ticker(
            layer=layer, store=store, load=load, fingerprint=fingerprint, fence=fence, bars=bars
        )

    return Leader(store=store, build=build, lease_s=lease_s, holder=name)


async def test_one_leads_the_other_stands_by_then_takes_over_and_seq_goes_on(store):
    layer = RecordingLayer()
    first = leader(store, layer, "first", 0.6)
    second = leader(store.another(), layer, "second", 0.6)
    stops = [asyncio.Event(), asyncio.Event()]
    run_first = asyncio.create_task(first.run(stops[0]))
    await asyncio.wait_for(first.leading.wait(), timeout(5))
    run_second = asyncio.create_task(second.run(stops[1]))
    await asyncio.wait_for(second.standing_by.wait(), timeout(5))
    await asyncio.wait_for(layer.count("first", 20), timeout(10))
    assert {w for w, _ in layer.quotes} == {"first"}

    stops[0].set()  # SIGTERM: the lease is given up at once
    await asyncio.wait_for(run_first, timeout(5))
    await asyncio.wait_for(layer.count("second", 20), timeout(10))
    stops[1].set()
    await asyncio.wait_for(run_second, timeout(5))
    seqs = [seq for _, seq in layer.quotes]
    assert seqs == list(range(1, len(seqs) + 1)), "seq went backwards, repeated or jumped"


async def test_a_leader_whose_lease_was_taken_is_fenced_and_stops_publishing(store, redis_url):
    import redis.asyncio as redis

    layer = RecordingLayer()
    old = leader(store, layer, "old", 30.0)  # renews every 10 s: the fence must catch it first
    stop = asyncio.Event()
    run = asyncio.create_task(old.run(stop))
    await asyncio.wait_for(layer.count("old", 5), timeout(10))
    other = store.another()
    client = redis.Redis.from_url(redis_url)
    await client.set("mf:leader", "new", px=30_000)  # it expired while "old" stalled; "new" took it
    await client.aclose()
    await asyncio.wait_for(old.standing_by.wait(), timeout(5))
    published = len(layer.quotes)
    (seq, _), = (await other.latest(["AAPL"])).values()
    assert seq == layer.quotes[-1][1]  # nothing saved that was not published
    stop.set()
    await asyncio.wait_for(run, timeout(5))
    assert len(layer.quotes) == published
    assert await other.lease_holder() == "new"  # stopping did not give up someone else's lease
