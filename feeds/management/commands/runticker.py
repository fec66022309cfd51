"""``manage.py runticker``: the ticker as its own process, for scale-out on Redis."""

from __future__ import annotations

import asyncio
import logging
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from feeds.runtime import build_ticker

logger = logging.getLogger("feeds.ticker")


class Command(BaseCommand):
    help = "Run the quote generator in this process until SIGTERM or Ctrl-C."

    def handle(self, *args: object, **options: object) -> None:
        if not settings.REDIS_URL:
            raise CommandError(
                "runticker publishes through Redis: set REDIS_URL (the embedded default "
                "already runs a ticker inside the server process)"
            )
        asyncio.run(self._run())

    async def _run(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        ticker = build_ticker()
        await ticker.start()
        await stop.wait()
        logger.info("ticker stopping")
        await ticker.stop()
