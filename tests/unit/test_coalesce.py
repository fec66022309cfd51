"""Coalesced lookups (feeds/deliver/coalesce.py): together in one query, never an older answer."""

from __future__ import annotations

import asyncio

import pytest

from feeds.deliver.coalesce import Coalesced


class Table:
    def __init__(self) -> None:
        self.rows = {"AAPL": True, "MSFT": False, "EUR/USD": True}
        self.queries: list[list[str]] = []
        self.gate: asyncio.Event | None = None
        self.fail: Exception | None = None
        self.started = asyncio.Event()

    async def fetch(self, keys: list[str]) -> dict[str, bool]:
        self.queries.append(sorted(keys))
        self.started.set()
        found = {k: self.rows[k] for k in keys if k in self.rows}  # read first, then wait
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return found


async def test_lookups_asked_together_share_one_query_and_get_their_own_keys():
    table = Table()
    lookup = Coalesced(table.fetch)
    a, b = await asyncio.gather(lookup(["AAPL", "NOPE"]), lookup(["MSFT", "AAPL"]))
    assert a == {"AAPL": True}
    assert b == {"MSFT": False, "AAPL": True}
    assert table.queries == [["AAPL", "MSFT", "NOPE"]]


async def test_a_lookup_during_a_query_waits_for_the_next_one():
    table = Table()
    table.gate = asyncio.Event()
    lookup = Coalesced(table.fetch)
    first = asyncio.create_task(lookup(["AAPL"]))
    await table.started.wait()  # the first query is in flight
    table.rows["AAPL"] = False  # changed after that query read it
    later = asyncio.create_task(lookup(["AAPL"]))
    await asyncio.sleep(0)
    table.gate.set()
    assert await first == {"AAPL": True}  # what the first query read
    assert await later == {"AAPL": False}  # a query begun after it asked
    assert table.queries == [["AAPL"], ["AAPL"]]


async def test_a_failed_query_fails_its_lookups_and_the_next_asks_again():
    table = Table()
    table.fail = RuntimeError("database away")
    lookup = Coalesced(table.fetch)
    with pytest.raises(RuntimeError, match="database away"):
        await lookup(["AAPL"])
    table.fail = None
    assert await lookup(["AAPL"]) == {"AAPL": True}
