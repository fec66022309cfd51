"""runticker --metrics-port: the ticker of a scale-out deployment can be scraped too."""

from __future__ import annotations

import asyncio
import os
import sys
import urllib.request

import pytest

from tests.metrics.test_metrics import sample
from tests.servers import NO_HISTORY, Server, free_port, manage
from tests.timeouts import timeout

pytestmark = [pytest.mark.redis, pytest.mark.live]


def scrape(port: int) -> str:
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=timeout(10)) as response:
        return response.read().decode()


async def test_the_leaders_metrics_show_it_leads_and_publishes(redis_url, tmp_path):
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "FEED_TICKER")}
    env.update(REDIS_URL=redis_url, MARKETFEED_VAR_DIR=str(tmp_path), PYTHONUNBUFFERED="1")
    env.update(NO_HISTORY)
    manage(env, "migrate", "--noinput")
    port = free_port()
    ticker = Server(
        env, port, ready="leader:",
        command=[sys.executable, "manage.py", "runticker", "--metrics-port", str(port)],
    )
    ticker.start()
    try:
        first = await asyncio.to_thread(scrape, port)
        assert sample(first, "marketfeed_ticker_leader") == 1
        assert sample(first, "marketfeed_instruments_ticking") > 0
        published = sample(first, "marketfeed_quotes_published_total")
        async with asyncio.timeout(timeout(20)):
            while True:
                text = await asyncio.to_thread(scrape, port)
                if sample(text, "marketfeed_quotes_published_total") > published:
                    break
                await asyncio.sleep(0.2)  # polling a figure that grows several times a second
        assert sample(text, "process_resident_memory_bytes") > 0
    finally:
        ticker.stop()
