"""The settings that are built rather than read: the channel layer, the cache, logging.

``marketfeed.settings`` reads the environment; these functions turn what it
read into the dictionaries Django and Channels expect, so the settings module
stays a list of named choices.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

# redis-py 8 defaults to a 5 s socket timeout, equal to the layers' blocking
# read timeout, and caps a pool at 100 connections (docs/STACK.md, "Redis timeouts").
_REDIS_CLIENT = {"socket_timeout": None, "max_connections": 1000}


def local_secret_key(var_dir: Path) -> str:
    """A secret generated once per checkout and kept in var/, never shipped in the code."""
    path = var_dir / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        var_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(50)
        path.write_text(key)
        path.chmod(0o600)
        return key


def channel_layers(
    redis_url: str | None,
    sentinel: dict[str, Any] | None,
    layer: str,
    layer_urls: list[str],
) -> dict[str, Any]:
    """CHANNEL_LAYERS: Redis (``layer`` "pubsub" or "core", over ``layer_urls`` if several),
    else the embedded default's in-memory layer.

    With several URLs channels-redis hashes each group and channel name to one
    of them (docs/DEPLOY.md, "Sharding the bus"); Sentinel names the master of
    a single layer host.
    """
    if not redis_url:
        return {
            "default": {
                # Channels' in-memory layer without its per-message costs (feeds/publish/layers.py).
                "BACKEND": "feeds.publish.layers.LocalChannelLayer",
                # One member per server process (the hub), so a deep queue is cheap.
                "CONFIG": {"capacity": 10_000},
            }
        }
    single = {**(sentinel or {"address": redis_url}), **_REDIS_CLIENT}
    hosts = [{"address": url, **_REDIS_CLIENT} for url in layer_urls] or [single]
    if layer == "pubsub":
        return {
            "default": {
                "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                "CONFIG": {"hosts": hosts},
            }
        }
    return {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # One member per server process (the hub) takes every quote the
            # process needs, so its queue is deep, and short-lived.
            "CONFIG": {"hosts": hosts, "capacity": 10_000, "expiry": 10},
        }
    }


def caches(redis_url: str | None, sentinel: dict[str, Any] | None) -> dict[str, Any]:
    """CACHES: WebSocket tickets and login counters live here, so with Redis any
    process redeems any ticket and counts every attempt; the embedded default is
    one process: local memory."""
    if not redis_url:
        return {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    options = (
        # Behind Sentinel: a pool that asks the sentinels for the master.
        {"OPTIONS": {"pool_class": "feeds.publish.redis_connect.SentinelCachePool", **sentinel}}
        if sentinel
        else {}
    )
    return {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_url,
            "KEY_PREFIX": "marketfeed",
            **options,
        }
    }


def logging_config(level: str) -> dict[str, Any]:
    """LOGGING: one plain line per record; the feed at ``level``, libraries at WARNING."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
        # channels-redis logs a traceback a second while Redis is away: one line per outage.
        "filters": {"layer_outage": {"()": "feeds.publish.outage.LayerOutageFilter"}},
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "plain"},
            "layer_console": {
                "class": "logging.StreamHandler", "formatter": "plain",
                "filters": ["layer_outage"],
            },
        },
        "loggers": {
            "feeds": {"handlers": ["console"], "level": level, "propagate": False},
            "channels_redis": {
                "handlers": ["layer_console"], "level": "WARNING", "propagate": False,
            },
            "django": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        },
    }
