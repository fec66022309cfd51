"""Starting and stopping the feed's long-lived parts inside a process.

``build_ticker()`` makes a ``Ticker`` wired to this process's settings, layer,
store and database; ``runticker`` and the embedded mode both use it. In the
embedded default (``FEED_TICKER=embedded``) the server process starts one
ticker on its event loop as soon as the loop runs (``ensure_embedded``).
"""

from __future__ import annotations

import asyncio
import gc
import logging

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from feeds import services
from feeds.store import get_store
from feeds.ticker import Ticker

logger = logging.getLogger(__name__)

_embedded: dict[asyncio.AbstractEventLoop, asyncio.Task[Ticker]] = {}


def freeze_startup_objects() -> None:
    """Move everything loaded at start-up out of the garbage collector's sight.

    Django, Twisted and the app are a few hundred thousand objects that live
    as long as the process; every full collection would walk them all again,
    a pause of tens of milliseconds in the middle of the stream.
    """
    gc.collect()
    gc.freeze()


def build_ticker(fence: str | None = None) -> Ticker:
    """A ticker on this process's settings; ``fence`` is the leader lease it runs under."""
    return Ticker(
        layer=get_channel_layer(),
        store=get_store(),
        load=database_sync_to_async(services.instruments_for_ticker),
        fingerprint=database_sync_to_async(services.instruments_fingerprint),
        seed=settings.FEED_SEED,
        time_scale=settings.FEED_TIME_SCALE,
        reload_interval_s=settings.FEED_RELOAD_INTERVAL_S,
        fence=fence,
    )


def ensure_embedded() -> None:
    """Start the in-process ticker on the running loop, once, if settings ask for it."""
    if settings.FEED_TICKER != "embedded":
        return
    loop = asyncio.get_running_loop()
    if loop in _embedded:
        return
    _embedded[loop] = loop.create_task(_start_embedded(), name="embedded-ticker")


async def _start_embedded() -> Ticker:
    delay = 0.5
    while True:
        ticker = build_ticker()
        try:
            await ticker.start()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # e.g. not migrated yet: say so and try again
            logger.error("embedded ticker could not start (%s); retrying in %.0f s", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
            continue
        return ticker
