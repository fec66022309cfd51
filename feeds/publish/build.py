"""``build_ticker()``: a ``Ticker`` wired to this process's settings, layer, store and database.

``runticker`` (through its leader lease) and the embedded default both use it.
"""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from feeds import services
from feeds.publish.backfill import Backfill
from feeds.publish.store import get_store
from feeds.publish.ticker import Ticker


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
        backfill=Backfill.from_settings(),
    )
