"""The handshake's token cache (feeds/tokencache.py) on a fake database and a hand-driven clock.

What a handshake sees: a token checked within ``MAX_AGE_S`` is answered
without a query; an older one, or one never seen, waits for a query, and the
misses that arrive together share one; a revocation the process hears of
drops the entry at once; a token's expiry counts at every use.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from feeds import tokencache
from feeds.tokencache import MAX_AGE_S, TokenCache


@dataclass(frozen=True)
class FakeUser:
    pk: int


class FakeDatabase:
    """Tokens by digest; each ``fetch`` is one query, which waits on ``gate`` if one is set."""

    def __init__(self) -> None:
        self.tokens: dict[str, tuple[FakeUser, float | None]] = {}
        self.queries: list[dict[str, str]] = []
        self.gate: asyncio.Event | None = None
        self.during: list[object] = []  # callbacks run while a query is in flight
        self.fail: Exception | None = None

    async def fetch(self, wanted: dict[str, str]) -> dict[str, tuple[FakeUser, float | None]]:
        self.queries.append(dict(wanted))
        found = {d: self.tokens[d] for d in wanted if d in self.tokens}  # read first...
        while self.during:
            self.during.pop(0)()  # type: ignore[operator]  # ...then a revocation lands
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return found


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db() -> FakeDatabase:
    db = FakeDatabase()
    db.tokens["d-alice"] = (FakeUser(1), None)
    db.tokens["d-alice-2"] = (FakeUser(1), None)
    db.tokens["d-bob"] = (FakeUser(2), 2000.0)  # expires at wall time 2000
    return db


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def wall() -> Clock:
    return Clock()


@pytest.fixture
def cache(db, clock, wall) -> TokenCache:
    return TokenCache(db.fetch, clock=clock, wall=wall)


async def test_a_token_seen_within_the_bound_is_answered_without_a_query(cache, db, clock):
    assert await cache.lookup("d-alice", "p") == FakeUser(1)
    clock.now += MAX_AGE_S * 0.9
    assert await cache.lookup("d-alice", "p") == FakeUser(1)
    assert len(db.queries) == 1
    assert (cache.hits, cache.misses) == (1, 1)


async def test_an_unknown_token_is_refused_and_never_kept(cache, db):
    assert await cache.lookup("d-nobody", "p") is None
    assert await cache.lookup("d-nobody", "p") is None
    assert len(db.queries) == 2  # a refusal is asked again: a flood of bad tokens fills nothing
    assert len(cache) == 0


async def test_misses_arriving_together_share_one_query(cache, db):
    db.gate = asyncio.Event()
    first = asyncio.create_task(cache.lookup("d-alice", "pa"))
    await asyncio.sleep(0)  # the first query is in flight; the rest queue behind it
    rest = [
        asyncio.create_task(cache.lookup(d, p))
        for d, p in [("d-alice-2", "pa2"), ("d-bob", "pb"), ("d-nobody", "pn"), ("d-bob", "pb")]
    ]
    await asyncio.sleep(0)
    db.gate.set()
    users = [await first, *[await t for t in rest]]
    assert users == [FakeUser(1), FakeUser(1), FakeUser(2), None, FakeUser(2)]
    assert db.queries == [
        {"d-alice": "pa"},
        {"d-alice-2": "pa2", "d-bob": "pb", "d-nobody": "pn"},  # one query, each digest once
    ]


async def test_an_entry_older_than_the_bound_is_checked_again(cache, db, clock):
    assert await cache.lookup("d-alice", "p") == FakeUser(1)
    del db.tokens["d-alice"]  # revoked where this process heard nothing of it
    clock.now += MAX_AGE_S * 0.5
    assert await cache.lookup("d-alice", "p") == FakeUser(1)  # within the bound: cached
    clock.now += MAX_AGE_S * 0.6
    assert await cache.lookup("d-alice", "p") is None
    assert len(db.queries) == 2


async def test_a_token_expiring_while_cached_is_refused_at_its_expiry(cache, db, wall):
    assert await cache.lookup("d-bob", "p") == FakeUser(2)
    wall.now = 2000.0
    db.tokens.pop("d-bob")  # as the database's own expiry check would say
    assert await cache.lookup("d-bob", "p") is None


async def test_forgetting_a_token_drops_only_that_token(cache, db):
    for digest in ("d-alice", "d-alice-2", "d-bob"):
        await cache.lookup(digest, "p")
    cache.forget(token_digests=["d-alice"])
    del db.tokens["d-alice"]
    assert await cache.lookup("d-alice", "p") is None
    assert await cache.lookup("d-alice-2", "p") == FakeUser(1)
    assert len(db.queries) == 4  # three to fill, one for the forgotten token


async def test_forgetting_a_user_drops_every_token_of_that_user(cache, db):
    for digest in ("d-alice", "d-alice-2", "d-bob"):
        await cache.lookup(digest, "p")
    cache.forget(user_ids=["1"])
    db.tokens.pop("d-alice")
    db.tokens.pop("d-alice-2")
    assert await cache.lookup("d-alice", "p") is None
    assert await cache.lookup("d-alice-2", "p") is None
    assert await cache.lookup("d-bob", "p") == FakeUser(2)
    assert len(cache) == 1


async def test_a_revocation_during_a_query_makes_it_ask_again(cache, db):
    # The query read the row, then the revocation committed and was heard: its
    # answer may predate the revocation, so it is neither trusted nor kept.
    def revoke() -> None:
        del db.tokens["d-alice"]
        cache.forget(token_digests=["d-alice"])

    db.during.append(revoke)
    assert await cache.lookup("d-alice", "p") is None
    assert len(db.queries) == 2
    assert len(cache) == 0


async def test_a_failed_query_fails_its_handshakes_and_the_next_one_asks_again(cache, db):
    db.fail = RuntimeError("database away")
    with pytest.raises(RuntimeError, match="database away"):
        await cache.lookup("d-alice", "p")
    db.fail = None
    assert await cache.lookup("d-alice", "p") == FakeUser(1)


async def test_entries_are_bounded_in_number_and_age(cache, db, clock, monkeypatch):
    monkeypatch.setattr(tokencache, "MAX_ENTRIES", 2)
    for digest in ("d-alice", "d-alice-2", "d-bob"):
        await cache.lookup(digest, "p")
        clock.now += 0.1
    assert len(cache) == 2  # the oldest check went first
    clock.now += tokencache.KEEP_S + 1
    db.tokens["d-carol"] = (FakeUser(3), None)
    await cache.lookup("d-carol", "p")
    assert len(cache) == 1
