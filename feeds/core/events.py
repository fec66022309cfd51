"""Channel-layer events: every message the feed's processes send each other, in one place.

``feeds.core.protocol`` owns what a client reads; this module owns what the
ticker, the servers and the admin tell each other over the channel layer.
Each event is a plain dict (channels-redis serialises it with msgpack, so
values stay strings, numbers and lists) with a ``type`` and readable fields.

Groups (``feeds.core.groups``):

- one group per instrument: ``quote`` and ``status``, from the ticker;
- ``SERVERS_CONTROL_GROUP``, every server's hub: ``instruments.added``,
  ``auth.revoked``, ``entitlements.changed``, ``watchlists.changed``;
- ``TICKER_CONTROL_GROUP``, the ticker: ``instruments.changed``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Event = dict[str, Any]

QUOTE = "quote"
STATUS = "status"
# Admin or API wrote instruments: the ticker reloads its table.
INSTRUMENTS_CHANGED = "instruments.changed"
# The ticker found symbols new to its table: connections subscribed to "*" take them in.
INSTRUMENTS_ADDED = "instruments.added"
# Tokens (by digest) and users (by id, as text) whose connections must close with 4401.
AUTH_REVOKED = "auth.revoked"
# Users (by id, as text) whose visible instruments may have shrunk.
ENTITLEMENTS_CHANGED = "entitlements.changed"
# Users (by id, as text) whose watchlists were written: connections that follow them re-read.
WATCHLISTS_CHANGED = "watchlists.changed"
# /healthz's round trip through the layer.
HEALTH_CHECK = "health.check"


def quote(*, symbol: str, seq: int, text: str, epoch: str) -> Event:
    """One quote: its pre-encoded client text, its ``seq`` and the store's epoch."""
    return {"type": QUOTE, "symbol": symbol, "seq": seq, "text": text, "epoch": epoch}


def status(*, symbol: str, text: str) -> Event:
    """A trading state change of ``symbol``: the pre-encoded client ``status`` message."""
    return {"type": STATUS, "symbol": symbol, "text": text}


def instruments_changed() -> Event:
    return {"type": INSTRUMENTS_CHANGED}


def instruments_added(symbols: Iterable[str]) -> Event:
    return {"type": INSTRUMENTS_ADDED, "symbols": list(symbols)}


def auth_revoked(*, token_digests: Iterable[str] = (), user_ids: Iterable[str] = ()) -> Event:
    return {"type": AUTH_REVOKED, "tokens": list(token_digests), "users": list(user_ids)}


def entitlements_changed(user_ids: Iterable[str]) -> Event:
    return {"type": ENTITLEMENTS_CHANGED, "users": sorted(set(user_ids))}


def watchlists_changed(user_ids: Iterable[str]) -> Event:
    return {"type": WATCHLISTS_CHANGED, "users": sorted(set(user_ids))}


def health_check() -> Event:
    return {"type": HEALTH_CHECK}


def texts(event: Event, field: str) -> list[str]:
    """The strings of list field ``field`` (anything else in it is ignored), without repeats."""
    values = event.get(field)
    if not isinstance(values, list):
        return []
    return list(dict.fromkeys(v for v in values if isinstance(v, str)))
