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

``--gap-ms G`` sleeps G ms on the event loop after each pass, as ``runticker``
does between quotes at a low rate, and prints the thread CPU time per pass,
the wake-up included: what a pass costs when it starts cold rather than
straight after the one before (``--gap-ms 0``, the default, runs them back
to back).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from decimal import Decimal

SYMBOLS = 21
RATE = 15_000 / (146 * SYMBOLS)


async def passes(n: int, gap_s: float = 0.0) -> tuple[int, float]:
    """Run ``n`` passes; the quotes published and the thread CPU seconds they took."""
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
    began = time.thread_time()
    for _ in range(n):
        ticker._idle_time()  # drops stale heap entries, as the loop does
        clock[0] = ticker._heap[0].due
        sent += await ticker.tick()
        if gap_s:
            await asyncio.sleep(gap_s)
    cpu_s = time.thread_time() - began
    close = getattr(get_store(), "aclose", None)
    if close is not None:
        await close()
    return sent, cpu_s


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tickwork")
    parser.add_argument("passes", type=int, nargs="?", default=1000)
    parser.add_argument("--gap-ms", type=float, default=0.0, help="sleep after each pass")
    args = parser.parse_args(argv)
    if args.passes < 1 or args.gap_ms < 0:
        parser.error("passes must be at least 1 and --gap-ms not negative")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketfeed.settings")
    if "MARKETFEED_VAR_DIR" not in os.environ:
        os.environ["MARKETFEED_VAR_DIR"] = tempfile.mkdtemp(prefix="marketfeed-tickwork-")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["FEED_BACKFILL_DAYS"] = "0"
    import django

    django.setup()
    sent, cpu_s = asyncio.run(passes(args.passes, args.gap_ms / 1000))
    print(
        f"tickwork: {args.passes} passes, {sent} quotes published, "
        f"{cpu_s / args.passes * 1e6:.0f} µs thread CPU per pass (gap {args.gap_ms:g} ms)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
