"""The resume ring of RedisStore against a real Redis: bound, order, resets, and its cost."""

from __future__ import annotations

import pytest
import redis.asyncio as redis

from feeds.publish.redis_store import RedisStore
from feeds.publish.store import Fenced

# A private redis-server unless REDIS_URL names one.
pytestmark = [pytest.mark.redis, pytest.mark.live]


def text(symbol: str, seq: int) -> str:
    return f'{{"type":"quote","symbol":"{symbol}","seq":{seq}}}'


async def fill(
    store: RedisStore, upto: int, symbols: tuple[str, ...] = ("AAPL",), start: int = 1
) -> None:
    """Quotes start..upto of each symbol, one batch per seq, as the ticker saves them."""
    for seq in range(start, upto + 1):
        await store.save([(s, seq, text(s, seq)) for s in symbols], epoch="e1")


async def flush(url: str) -> None:
    client = redis.Redis.from_url(url)
    await client.flushdb()  # what a Redis restart without persistence does
    await client.aclose()


async def test_another_process_replays_what_the_ticker_saved_in_seq_order(store):
    await fill(store, 20, symbols=("AAPL", "EUR/USD"))
    got = await store.another().replay({"AAPL": 16, "EUR/USD": 20, "NOPE": 3, "NEWCO": 0})
    assert got == {
        "AAPL": [text("AAPL", n) for n in range(17, 21)],
        "EUR/USD": [],
        "NOPE": None,
        "NEWCO": [],
    }


async def test_the_ring_is_bounded_to_its_length(store, redis_url):
    small = RedisStore(redis_url, ring=8)
    try:
        await fill(small, 30)
        client = redis.Redis.from_url(redis_url)
        assert await client.llen("mf:ring:AAPL") == 8
        await client.aclose()
        expected = {"AAPL": [text("AAPL", n) for n in range(23, 31)]}
        assert await small.replay({"AAPL": 22}) == expected
        assert await small.replay({"AAPL": 21}) == {"AAPL": None}  # 22 has left the ring
        assert await small.replay({"AAPL": 31}) == {"AAPL": None}  # ahead of the newest
    finally:
        await small.aclose()


async def test_a_ring_of_zero_writes_no_ring_and_replays_nothing(store, redis_url):
    off = RedisStore(redis_url, ring=0)
    try:
        await fill(off, 5)
        assert await off.latest(["AAPL"]) == {"AAPL": (5, text("AAPL", 5))}
        assert await store.replay({"AAPL": 4}) == {"AAPL": None}
        assert await off.replay({"AAPL": 4}) == {"AAPL": None}
    finally:
        await off.aclose()


async def test_a_lost_store_starts_an_empty_ring(store, redis_url):
    await fill(store, 10)
    await flush(redis_url)
    assert await store.replay({"AAPL": 5}) == {"AAPL": None}
    await fill(store, 12, start=11)  # the ticker goes on numbering
    assert await store.replay({"AAPL": 10}) == {"AAPL": [text("AAPL", 11), text("AAPL", 12)]}
    assert await store.replay({"AAPL": 9}) == {"AAPL": None}


async def test_a_numbering_restart_never_replays_quotes_of_the_old_numbering(store, redis_url):
    await fill(store, 10)
    client = redis.Redis.from_url(redis_url)
    await client.delete("mf:epoch", "mf:latest")  # a reset that left the rings behind
    await client.aclose()
    await store.save([("AAPL", 1, "new-1")])
    await store.save([("AAPL", 2, "new-2")])
    assert await store.replay({"AAPL": 0}) == {"AAPL": ["new-1", "new-2"]}
    assert await store.replay({"AAPL": 5}) == {"AAPL": None}


async def test_a_fenced_save_adds_nothing_to_the_ring(store):
    assert await store.lease_take("a", 5)
    await store.save([("AAPL", 1, "q1")], epoch="e1", fence="a")
    await store.lease_release("a")
    assert await store.another().lease_take("b", 5)
    with pytest.raises(Fenced):
        await store.save([("AAPL", 2, "q2")], epoch="e1", fence="a")
    assert await store.replay({"AAPL": 0}) == {"AAPL": ["q1"]}


async def test_a_save_and_a_replay_are_one_command_each_whatever_the_batch(private_redis):
    """Counted by the server: with the slow log at 0 µs, Redis logs every command it runs, those
    a script runs with the client address ``?:0``."""
    admin = redis.Redis.from_url(private_redis.url, decode_responses=True, client_name="admin")
    store = RedisStore(private_redis.url)
    symbols = tuple(f"S{n}" for n in range(50))
    try:
        await store.epoch()  # connect, and make the epoch, before counting
        # The save script runs by its SHA1: the first save loads it (NOSCRIPT, SCRIPT LOAD).
        await store.save([("WARM", 1, "q")], epoch=await store.epoch())
        await admin.config_set("slowlog-log-slower-than", 0)
        await admin.config_set("slowlog-max-len", 1000)
        await admin.slowlog_reset()
        await fill(store, 3, symbols=symbols)
        replayed = await store.replay(dict.fromkeys(symbols, 1))
        log = await admin.execute_command("SLOWLOG", "GET", 1000)
        sent = [
            command[0].lower()
            for _, _, _, command, addr, name in log
            if addr != "?:0" and name != "admin"
        ]
        # three saves and one replay (SLOWLOG GET lists the newest first)
        assert sent == ["eval"] + ["evalsha"] * 3
        assert replayed == {s: [text(s, 2), text(s, 3)] for s in symbols}
    finally:
        await store.aclose()
        await admin.aclose()
