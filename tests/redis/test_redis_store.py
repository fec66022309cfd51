"""RedisStore against a real Redis server."""

from __future__ import annotations

import pytest

# A private redis-server unless REDIS_URL names one.
pytestmark = [pytest.mark.redis, pytest.mark.live]


async def test_latest_returns_what_was_saved_with_its_seq(store):
    await store.save(
        [("AAPL", 3, '{"type":"quote","seq":3}'), ("EUR/USD", 9, '{"type":"quote","seq":9}')]
    )
    await store.save([("AAPL", 4, '{"type":"quote","seq":4}')])
    assert await store.latest(["EUR/USD", "AAPL", "NOPE"]) == {
        "AAPL": (4, '{"type":"quote","seq":4}'),
        "EUR/USD": (9, '{"type":"quote","seq":9}'),
    }


async def test_every_process_sees_one_epoch_until_the_store_is_lost(store, redis_url):
    other = store.another()  # another server process
    first = await store.epoch()
    assert await other.epoch() == first
    import redis.asyncio as redis

    client = redis.Redis.from_url(redis_url)
    await client.flushdb()
    await client.aclose()
    assert await other.epoch() != first


async def test_connection_limit_holds_across_processes(store, redis_url):
    other = store.another()
    assert await store.connection_acquire("7", "a", 2)
    assert await other.connection_acquire("7", "b", 2)
    assert not await other.connection_acquire("7", "c", 2)
    await store.connection_release("7", "a")
    assert await other.connection_acquire("7", "c", 2)
    assert await store.connection_acquire("8", "x", 2)  # per user


async def test_a_storm_of_acquires_shares_few_round_trips_and_still_holds_the_limit(
    store, redis_url
):
    import asyncio

    import redis.asyncio as redis

    watcher = redis.Redis.from_url(redis_url)
    clients_before = len(await watcher.client_list())
    got = await asyncio.gather(*(store.connection_acquire("9", f"c{i}", 50) for i in range(500)))
    assert got.count(True) == 50  # the limit, however many arrived at once
    assert got[:50] == [True] * 50  # first come, first counted
    assert store._batch.pipelines < 100  # not a round trip (and a connection) each
    assert len(await watcher.client_list()) - clients_before < 10
    await asyncio.gather(*(store.connection_release("9", f"c{i}") for i in range(50)))
    assert await store.connection_acquire("9", "later", 50)
    await watcher.aclose()


async def test_a_storm_of_snapshots_shares_few_round_trips_and_each_gets_its_own(store):
    import asyncio

    await store.save([("AAPL", 3, "a3"), ("MSFT", 5, "m5")])
    epoch = await store.epoch()
    wanted = [["AAPL"], ["MSFT", "NOPE"], ["AAPL", "MSFT"], []] * 100
    before = store._batch.pipelines
    got = await asyncio.gather(*(store.snapshot(symbols) for symbols in wanted))
    assert got[:4] == [
        ({"AAPL": (3, "a3")}, epoch),
        ({"MSFT": (5, "m5")}, epoch),
        ({"AAPL": (3, "a3"), "MSFT": (5, "m5")}, epoch),
        ({}, epoch),
    ]
    assert got[4:] == got[:4] * 99
    assert store._batch.pipelines - before < 20  # not a round trip each


async def test_a_snapshot_of_a_fresh_store_makes_the_epoch_every_process_then_sees(
    store, redis_url
):
    import redis.asyncio as redis

    client = redis.Redis.from_url(redis_url)
    await client.flushdb()
    await client.aclose()
    latest, epoch = await store.snapshot(["AAPL"])
    assert latest == {}
    assert await store.another().epoch() == epoch


async def test_a_snapshot_while_redis_is_away_raises_for_its_caller_alone(store, redis_url):
    import redis.exceptions

    from feeds.publish.redis_store import RedisStore

    away = RedisStore("redis://127.0.0.1:1/0")  # nothing listens on port 1
    with pytest.raises(redis.exceptions.ConnectionError):
        await away.snapshot(["AAPL"])
    await away.aclose()
    assert (await store.snapshot([]))[1] == await store.epoch()  # the reachable one answers


async def test_ping_answers(store):
    await store.ping()


# --- the ticker's lease and fenced saves ------------------------------------------------


async def test_lease_has_one_holder_until_it_is_released(store):
    other = store.another()
    assert await store.lease_take("a", 5)
    assert await store.lease_take("a", 5)  # renewal
    assert not await other.lease_take("b", 5)
    assert await other.lease_holder() == "a"
    await other.lease_release("b")  # not b's to give up
    assert await other.lease_holder() == "a"
    await store.lease_release("a")
    assert await other.lease_take("b", 5)


async def test_a_save_under_someone_elses_lease_is_refused_and_writes_nothing(store):
    from feeds.publish.store import Fenced

    other = store.another()
    assert await store.lease_take("a", 5)
    epoch = await store.save([("AAPL", 1, "q1")], epoch="e1", fence="a")
    assert epoch == "e1"
    await store.lease_release("a")
    assert await other.lease_take("b", 5)
    with pytest.raises(Fenced, match="held by b"):
        await store.save([("AAPL", 2, "q2")], epoch="e1", fence="a")
    assert await store.latest(["AAPL"]) == {"AAPL": (1, "q1")}


async def test_a_store_lost_under_a_running_leader_gets_its_lease_and_epoch_back(store, redis_url):
    import redis.asyncio as redis

    assert await store.lease_take("a", 5)
    epoch = await store.save([("AAPL", 7, "q7")], epoch=await store.epoch(), fence="a")
    client = redis.Redis.from_url(redis_url)
    await client.flushdb()  # what a Redis restart without persistence does
    await client.aclose()
    assert await store.save([("AAPL", 8, "q8")], epoch=epoch, fence="a") == epoch
    assert await store.another().epoch() == epoch
    assert await store.lease_holder() == "a"
    assert await store.latest(["AAPL"]) == {"AAPL": (8, "q8")}


async def test_a_leader_adopts_the_epoch_a_server_made_after_the_loss(store, redis_url):
    import redis.asyncio as redis

    epoch = await store.save([("AAPL", 7, "q7")], epoch=await store.epoch())
    client = redis.Redis.from_url(redis_url)
    await client.flushdb()
    await client.aclose()
    made = await store.another().epoch()  # a client connected before the ticker's next save
    assert made != epoch
    assert await store.save([("AAPL", 8, "q8")], epoch=epoch) == made
