"""Reaching Redis: the one-line check at start-up, and Sentinel's parts.

``check_reachable`` turns an unreachable ``REDIS_URL`` or Sentinel set into
one clear line before anything starts; ``sentinel_parts`` splits
settings.REDIS_SENTINEL for redis-py; ``SentinelCachePool`` gives Django's
Redis cache the master that Sentinel names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.sentinel
from django.core.exceptions import ImproperlyConfigured


def check_reachable(
    url: str, *, timeout_s: float = 3.0, sentinel: Mapping[str, Any] | None = None
) -> None:
    """Raise ``ImproperlyConfigured`` with one clear line unless Redis answers at ``url``.

    With ``sentinel`` (settings.REDIS_SENTINEL) the sentinels must name a master
    and that master must answer.
    """
    if sentinel:
        _check_sentinel_master(sentinel, timeout_s)
        return
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise ImproperlyConfigured(
            f"REDIS_URL={safe_url(url)}: cannot reach Redis ({exc})"
        ) from None
    finally:
        client.close()


def _check_sentinel_master(sentinel: Mapping[str, Any], timeout_s: float) -> None:
    sentinels, name, sentinel_kwargs, connection = sentinel_parts(sentinel)
    named = "REDIS_SENTINELS=" + ",".join(_host_port(host, port) for host, port in sentinels)
    manager = redis.sentinel.Sentinel(sentinels, sentinel_kwargs=sentinel_kwargs)
    try:
        # Sentinel by sentinel (discover_master's error is a page of repr()s): why each failed.
        problems: list[str] = []
        for (host, port), asked in zip(sentinels, manager.sentinels, strict=True):
            where = _host_port(host, port)
            try:
                state = asked.sentinel_masters().get(name)
            except redis.RedisError as exc:
                problems.append(f"{where}: {exc}")
                continue
            if state is None:
                problems.append(f"{where}: monitors no master named {name!r}")
            elif not manager.check_master_state(state, name):
                problems.append(f"{where}: says the master is down")
            else:
                host, port = state["ip"], state["port"]
                break
        else:
            raise ImproperlyConfigured(f"{named}: no master {name!r} ({'; '.join(problems)})")
        client = manager.master_for(
            name, socket_connect_timeout=timeout_s, socket_timeout=timeout_s, **connection
        )
        try:
            client.ping()
        except redis.RedisError as exc:
            raise ImproperlyConfigured(
                f"{named}: the master {name!r} at {_host_port(host, port)} does not answer ({exc})"
            ) from None
        finally:
            client.close()
    finally:
        for sentinel_client in manager.sentinels:
            sentinel_client.close()


def sentinel_parts(
    sentinel: Mapping[str, Any],
) -> tuple[list[tuple[str, int]], str, dict[str, Any] | None, dict[str, Any]]:
    """``(sentinels, master name, sentinel_kwargs, the master's connection options)``."""
    connection = dict(sentinel)
    sentinels = [tuple(address) for address in connection.pop("sentinels")]
    name = connection.pop("master_name")
    sentinel_kwargs = connection.pop("sentinel_kwargs", None)
    return sentinels, name, sentinel_kwargs, connection  # type: ignore[return-value]


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class SentinelCachePool(redis.sentinel.SentinelConnectionPool):
    """Django's Redis cache on the master Sentinel names (CACHES' ``pool_class`` option).

    Django builds its pool with ``pool_class.from_url(LOCATION, **OPTIONS)``;
    OPTIONS carry the Sentinel entry, and LOCATION (settings' REDIS_URL, the
    master's name) is not an address, so it is not read.
    """

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SentinelCachePool:  # type: ignore[override]
        sentinels, name, sentinel_kwargs, connection = sentinel_parts(options)
        manager = redis.sentinel.Sentinel(sentinels, sentinel_kwargs=sentinel_kwargs)
        return cls(name, manager, **connection)


def safe_url(url: str) -> str:
    """The URL with any password masked, for logs and errors."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
