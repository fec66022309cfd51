"""Bars from a real daphne (embedded ticker, short test periods), on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from datetime import datetime

import pytest

from tests.faults.test_database_down import Database, Stream, until_status
from tests.timeouts import stop, timeout

pytestmark = pytest.mark.live
FAST_BARS = {"FEED_BARS_PERIOD_S": "1", "FEED_BARS_FLUSH_S": "0.2"}
OUTAGE_S = 5  # long enough for several one-second bars to wait for the database


def bars(feed, symbol: str = "AAPL", **query: str) -> list[dict]:
    params = "&".join(f"{k}={v}" for k, v in query.items())
    request = urllib.request.Request(
        f"{feed.server.url}/api/bars/{symbol}/?{params}",
        headers={"Authorization": f"Token {feed.token}"},
    )
    with urllib.request.urlopen(request, timeout=timeout(10)) as response:
        return json.loads(response.read())["bars"]


async def bars_until(feed, done, **query: str) -> list[dict]:
    """Poll the API (a client's view) until ``done(bars)``; fails after a generous wait."""
    deadline = time.monotonic() + timeout(30)
    while True:
        found = await asyncio.to_thread(bars, feed, **query)
        if done(found) or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.2)


async def test_a_running_server_serves_bars_that_grow_and_roll_up(feed_server):
    feed = feed_server(env_extra=FAST_BARS)
    found = await bars_until(feed, lambda b: sum(bar["complete"] for bar in b) >= 3)
    complete = [bar for bar in found if bar["complete"]]
    assert len(complete) >= 3, found
    for bar in found:
        body = (bar["open"], bar["close"])
        assert bar["low"] <= min(body) <= max(body) <= bar["high"]
        assert bar["volume"] > 0
        assert bar["trades"] >= 1
    starts = [bar["start"] for bar in found]
    assert starts == sorted(starts)
    assert len(set(starts)) == len(starts)
    # "5m" with 1 s test periods: 5 s bars made of the stored ones.
    rolled = await asyncio.to_thread(bars, feed, interval="5m")
    assert rolled
    assert sum(b["trades"] for b in rolled) >= sum(b["trades"] for b in found[-1:])
    assert "Traceback" not in feed.log()


async def test_a_new_feed_has_two_days_of_history_at_once_and_then_live_bars(feed_server):
    feed = feed_server(env_extra={"FEED_BARS_FLUSH_S": "0.2", "FEED_BACKFILL_DAYS": "2"})
    hours = await bars_until(feed, lambda b: len(b) >= 48, interval="1h", limit="1000")
    first, last = (datetime.fromisoformat(hours[i]["start"]).timestamp() for i in (0, -1))
    assert last - first >= 47 * 3600, hours
    assert not hours[-1]["complete"]  # the running hour, the live bars in it
    # Said once the last instrument's bars are in: AAPL's can be readable before that.
    done = "bars: backfilled 60 instruments with 2880 periods each"
    deadline = time.monotonic() + timeout(60)
    while done not in feed.log():
        assert time.monotonic() < deadline, feed.log()[-2000:]
        await asyncio.sleep(0.2)
    assert "Traceback" not in feed.log()


@pytest.mark.postgres
async def test_a_feed_on_postgresql_stores_its_history_too(feed_server, postgres_url):
    feed = feed_server(env_extra={"DATABASE_URL": postgres_url, "FEED_BACKFILL_DAYS": "2"})
    # (This session's database may have it from an earlier server: the history is there.)
    hours = await bars_until(feed, lambda b: len(b) >= 48, interval="1h", limit="1000")
    assert len(hours) >= 48
    assert "Traceback" not in feed.log()


@pytest.mark.postgres
async def test_bars_made_while_postgresql_was_away_are_written_when_it_is_back(
    feed_server, postgres_url
):
    feed = feed_server(env_extra={"DATABASE_URL": postgres_url, **FAST_BARS})
    token = {"Authorization": f"Token {feed.token}"}
    await bars_until(feed, lambda b: len(b) >= 2)
    stream = Stream(feed.server.ws_url + f"?token={feed.token}")
    streaming = asyncio.create_task(stream.run())
    database = Database(postgres_url)
    try:
        await asyncio.wait_for(stream.more(5), timeout(15))
        await asyncio.to_thread(database.down)
        try:
            went = time.time()
            status, _, body = await until_status(feed.server.url + "/api/instruments/", token, 503)
            assert status == 503, body
            # The quote loop does not wait for the bars: quotes keep coming, for seconds.
            while time.time() < went + OUTAGE_S:
                await asyncio.wait_for(stream.more(1), timeout(20))
            assert not streaming.done()
            back = time.time()
        finally:
            await asyncio.to_thread(database.up)
        status, _, body = await until_status(feed.server.url + "/api/instruments/", token, 200)
        assert status == 200, body
        def covers_outage(found: list[dict]) -> bool:
            seconds = {int(datetime.fromisoformat(b["start"]).timestamp()) for b in found}
            return sum(1 for s in seconds if went + 1 <= s <= back - 1) >= 2

        found = await bars_until(feed, covers_outage, limit="1000")
        assert covers_outage(found), (went, back, found[-10:])
    finally:
        await stop(streaming)
    log = feed.log()
    assert "Traceback" not in log, log
    assert log.count("the database unreachable") == 1, log
