"""``python -m bench.tickwork N``: a fixed ticker workload, for instruction counts.

N ticker passes over fan146's instruments (21 symbols at 15,000 / (146 x 21)
quotes/s each), built from this process's settings exactly as ``runticker``
or the embedded default builds its ticker: the store, the layer and the bus
they select. A fake clock moves to the next due quote before each pass, so
each pass is one quote, as at 103 quotes/s, and the run does not depend on
how fast the machine is. Wall-clock timings on a shared machine are noise;
instructions are not:

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python -m bench.tickwork 1200        # and 200: the difference / 1000
                                                       # is instructions per quote

With ``REDIS_URL`` set (a redis-server, with a subscriber on the groups'
channels, e.g. ``redis-cli psubscribe 'asgi__group__*'``) it is the ticker of
the Redis layout; without, the embedded one. docs/SCALING.md has the figures.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from decimal import Decimal

SYMBOLS = 21
RATE = 15_000 / (146 * SYMBOLS)


async def passes(n: int) -> int:
    from feeds.core.engine import InstrumentSpec
    from feeds.publish.build import build_ticker, get_store
    from feeds.services import ListedInstrument

    books = [
        ListedInstrument(
            spec=InstrumentSpec(
                symbol=f"B{i:03d}", tick_size=Decimal("0.01"), lot_size=100,
                reference_price=Decimal("100"), volatility=0.3, quote_rate=RATE,
            ),
            active=True,
        )
        for i in range(SYMBOLS)
    ]
    clock = [1_000_000.0]

    async def load() -> list[ListedInstrument]:
        return books

    async def fingerprint() -> object:
        return 1

    ticker = build_ticker(fence=None)
    ticker._load, ticker._fingerprint, ticker.backfill = load, fingerprint, None
    ticker.clock = lambda: clock[0]
    ticker.epoch = await ticker.store.epoch()
    await ticker.reload(initial=True)
    sent = 0
    for _ in range(n):
        ticker._idle_time()  # drops stale heap entries, as the loop does
        clock[0] = ticker._heap[0].due
        sent += await ticker.tick()
    close = getattr(get_store(), "aclose", None)
    if close is not None:
        await close()
    return sent


def main(argv: list[str]) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketfeed.settings")
    os.environ.setdefault("MARKETFEED_VAR_DIR", tempfile.mkdtemp(prefix="marketfeed-tickwork-"))
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["FEED_BACKFILL_DAYS"] = "0"
    import django

    django.setup()
    n = int(argv[0]) if argv else 1000
    sent = asyncio.run(passes(n))
    print(f"tickwork: {n} passes, {sent} quotes published", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
