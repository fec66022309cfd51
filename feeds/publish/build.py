"""The process's publishing parts built from its settings: its quote store and its ticker.

``runticker`` (through its leader lease) and the embedded default both use it.
"""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from feeds import services
from feeds.publish.backfill import Backfill
from feeds.publish.bus import bus_for
from feeds.publish.redis_store import RedisStore
from feeds.publish.store import MemoryStore, QuoteStore
from feeds.publish.ticker import Ticker


def build_ticker(fence: str | None = None) -> Ticker:
    """A ticker on this process's settings; ``fence`` is the leader lease it runs under."""
    layer, store = get_channel_layer(), get_store()
    return Ticker(
        layer=layer,
        store=store,
        bus=bus_for(layer, store),
        load=database_sync_to_async(services.instruments_for_ticker),
        fingerprint=database_sync_to_async(services.instruments_fingerprint),
        seed=settings.FEED_SEED,
        time_scale=settings.FEED_TIME_SCALE,
        reload_interval_s=settings.FEED_RELOAD_INTERVAL_S,
        fence=fence,
        backfill=Backfill.from_settings(),
    )


_store: QuoteStore | None = None


def get_store() -> QuoteStore:
    """The process's store, built from settings on first use."""
    global _store
    if _store is None:
        if settings.REDIS_URL:
            _store = RedisStore(
                settings.REDIS_URL, lease_s=settings.FEED_LEASE_S, ring=settings.FEED_RESUME_RING,
                sentinel=settings.REDIS_SENTINEL,
            )
        else:
            _store = MemoryStore(ring=settings.FEED_RESUME_RING)
    return _store


def reset_store() -> None:
    """Forget the process's store (tests start each case with a fresh one)."""
    global _store
    _store = None
