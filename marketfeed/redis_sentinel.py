"""Redis behind Sentinel: REDIS_SENTINELS, REDIS_SENTINEL_MASTER, REDIS_SENTINEL_PASSWORD.

``REDIS_SENTINELS=host:port[,host:port...]`` names the sentinels; the channel
layer, the quote store, the ticker's lease and Django's cache then use the
master that Sentinel names for ``REDIS_SENTINEL_MASTER`` (default
``mymaster``), and follow it to the new master after a fail-over. It selects
the scale-out layout by itself: ``REDIS_URL`` is not needed. When ``REDIS_URL``
is set as well, it gives only the master's user, password and database number;
its host and port are ignored, since Sentinel says where the master is.
``REDIS_SENTINEL_PASSWORD`` is the sentinels' own password (their
``requirepass``), when they have one.

``sentinel_settings`` returns the Sentinel entry (a channels-redis ``hosts``
entry: ``sentinels``, ``master_name``, ``sentinel_kwargs`` and the master's
connection options, which ``feeds.publish.redis_store`` reads too) and the
``REDIS_URL`` the rest of the settings see: ``redis://[auth@]<master name>/<db>``,
a name for logs and a switch for the scale-out layout, never an address that
anything connects to. Every bad value is one ``ImproperlyConfigured`` line.
"""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

DEFAULT_MASTER = "mymaster"
# A sentinel that does not answer within this is skipped for the next one in the list.
SENTINEL_TIMEOUT_S = 1.0
_MASTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")
_EXAMPLE = (
    "expected host:port[,host:port...], e.g. 10.0.0.5:26379,10.0.0.6:26379 ([::1]:26379 for IPv6)"
)


def parse_sentinels(name: str, raw: str) -> list[tuple[str, int]]:
    """``host:port[,host:port...]`` as ``[(host, port)]``; IPv6 hosts in brackets."""
    sentinels: list[tuple[str, int]] = []
    items = [item.strip() for item in raw.split(",") if item.strip()]
    if not items:
        raise ImproperlyConfigured(f"{name}={raw!r}: {_EXAMPLE}")
    for number, item in enumerate(items, 1):
        host, colon, port = item.rpartition(":")
        bracketed = host.startswith("[") and host.endswith("]")
        if bracketed:
            host = host[1:-1]
        valid = (
            colon and host and port.isdigit() and 1 <= int(port) <= 65535
            and (bracketed or ":" not in host) and not any(c in host for c in "[]/@ ")
        )
        if not valid:
            raise ImproperlyConfigured(f"{name}={raw!r}: entry {number} {item!r}: {_EXAMPLE}")
        if (host, int(port)) in sentinels:
            raise ImproperlyConfigured(f"{name}={raw!r}: entry {number} {item!r} is listed twice")
        sentinels.append((host, int(port)))
    return sentinels


def sentinel_settings(redis_url: str | None) -> tuple[dict[str, Any] | None, str | None]:
    """``(Sentinel entry, REDIS_URL)`` from the environment; ``(None, redis_url)`` without Sentinel.

    ``redis_url`` is the validated ``REDIS_URL`` (or None).
    """
    raw = os.environ.get("REDIS_SENTINELS", "").strip()
    master = os.environ.get("REDIS_SENTINEL_MASTER", "").strip()
    password = os.environ.get("REDIS_SENTINEL_PASSWORD", "")
    if not raw:
        alone = (("REDIS_SENTINEL_MASTER", master), ("REDIS_SENTINEL_PASSWORD", password))
        for name, value in alone:
            if value:
                # Not ignored: a forgotten REDIS_SENTINELS would mean one Redis and no fail-over.
                raise ImproperlyConfigured(
                    f"{name} is set but REDIS_SENTINELS is not: name the sentinels "
                    f"(host:port,...) or unset {name}"
                )
        return None, redis_url
    sentinels = parse_sentinels("REDIS_SENTINELS", raw)
    master = master or DEFAULT_MASTER
    if not _MASTER_NAME.match(master):
        raise ImproperlyConfigured(
            f"REDIS_SENTINEL_MASTER={master!r}: expected a name of letters, digits, '.', '_' "
            "and '-' (as in the sentinels' 'sentinel monitor <name> ...')"
        )
    sentinel_kwargs: dict[str, Any] = {
        "socket_timeout": SENTINEL_TIMEOUT_S, "socket_connect_timeout": SENTINEL_TIMEOUT_S,
    }
    if password:
        sentinel_kwargs["password"] = password
    entry: dict[str, Any] = {
        "sentinels": sentinels, "master_name": master, "sentinel_kwargs": sentinel_kwargs, "db": 0,
    }
    auth = ""
    if redis_url:
        parts = urlsplit(redis_url)
        if parts.scheme != "redis":
            raise ImproperlyConfigured(
                f"REDIS_URL={_masked(redis_url)}: with REDIS_SENTINELS it gives only the "
                "password and database, as redis://[:PASSWORD@]ANY/DB (TLS and unix sockets "
                "are not supported through Sentinel)"
            )
        db = parts.path.strip("/") or "0"
        if not db.isdigit():
            raise ImproperlyConfigured(
                f"REDIS_URL={_masked(redis_url)}: the database {db!r} is not a number"
            )
        entry["db"] = int(db)
        if parts.username:
            entry["username"] = unquote(parts.username)
        if parts.password is not None:
            entry["password"] = unquote(parts.password)
        auth = parts.netloc.rpartition("@")[0]
        auth = auth + "@" if auth else ""
    return entry, f"redis://{auth}{master}/{entry['db']}"


def _masked(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return repr(url)
    return repr(url.replace(":" + parts.password + "@", ":***@", 1))
