"""Watchlists: several named, ordered lists of symbols per user, kept on the server.

Every write goes through here (the REST API in ``feeds.edges.api.watchlists``)
and, once its transaction commits, tells every server process
``watchlists.changed`` for the user (``SERVERS_CONTROL_GROUP``; in the
embedded default also relayed to the machine's other processes,
``feeds.relay``). A feed connection that asked to follow its user's lists
(the ``watchlists`` op, PROTOCOL.md "Watchlists") then reads them again and
is sent them: every browser and device of the user sees a change within a
second, without polling.

The rules, each refused with a ``WatchlistError`` (400 in the API):

- a name is 1 to ``MAX_NAME_CHARS`` characters once trimmed, unique per user
  (case-insensitively);
- a user has at most ``MAX_LISTS`` lists;
- symbols are matched case-insensitively and stored upper-case
  (``eur/usd`` is ``EUR/USD``), in the order given; a symbol given twice, or
  one that names no instrument the user may see, is refused, naming them;
- a list holds at most ``FEED_MAX_SYMBOLS`` symbols: what one feed
  connection may subscribe to.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from feeds.core import events
from feeds.entitlements import visible_symbols_among
from feeds.models import Watchlist
from feeds.revocation import notify_servers

logger = logging.getLogger(__name__)

MAX_LISTS = 20
MAX_NAME_CHARS = 60  # the model's max_length


class WatchlistError(Exception):
    """A write the rules refuse: ``detail`` says why, ``field`` which input, ``symbols`` which."""

    def __init__(self, detail: str, *, field: str, symbols: list[str] | None = None) -> None:
        super().__init__(detail)
        self.detail, self.field, self.symbols = detail, field, symbols


class UnknownSymbols(WatchlistError):
    """Symbols that name no instrument the user may see."""

    def __init__(self, symbols: list[str]) -> None:
        super().__init__(
            "unknown symbol(s): " + ", ".join(symbols), field="symbols", symbols=symbols
        )


def as_dict(row: Watchlist) -> dict[str, Any]:
    """A list as the API and the feed show it."""
    return {
        "id": row.pk,
        "name": row.name,
        "symbols": list(row.symbols),
        "updated": row.updated.isoformat(timespec="microseconds").replace("+00:00", "Z"),
    }


def lists_of(user_id: object) -> list[dict[str, Any]]:
    """Every list of the user, oldest first."""
    return [as_dict(row) for row in Watchlist.objects.filter(user_id=user_id).order_by("pk")]


def get(user: Any, pk: object) -> Watchlist | None:
    """The user's list ``pk``; None when there is none, or it is someone else's."""
    return Watchlist.objects.filter(user_id=user.pk, pk=pk).first()


def create(user: Any, *, name: str, symbols: list[str]) -> Watchlist:
    name = clean_name(name)
    symbols = clean_symbols(symbols, user)
    with transaction.atomic():
        _lock_user(user)
        if Watchlist.objects.filter(user_id=user.pk).count() >= MAX_LISTS:
            raise WatchlistError(f"at most {MAX_LISTS} watchlists per user", field="name")
        _check_unique(user, name, None)
        row = Watchlist.objects.create(user_id=user.pk, name=name, symbols=symbols)
        changed_on_commit([user.pk])
    logger.info("user %s created watchlist %s (%d symbols)", user.pk, row.pk, len(symbols))
    return row


def update(
    user: Any, row: Watchlist, *, name: str | None = None, symbols: list[str] | None = None
) -> Watchlist:
    """Rename ``row`` and/or replace its symbols (those given)."""
    if name is not None:
        name = clean_name(name)
    if symbols is not None:
        symbols = clean_symbols(symbols, user)
    with transaction.atomic():
        _lock_user(user)
        if name is not None:
            _check_unique(user, name, row.pk)
            row.name = name
        if symbols is not None:
            row.symbols = symbols
        row.save()
        changed_on_commit([user.pk])
    return row


def delete(user: Any, row: Watchlist) -> None:
    with transaction.atomic():
        row.delete()
        changed_on_commit([user.pk])
    logger.info("user %s deleted a watchlist", user.pk)


# --- the rules ------------------------------------------------------------------------


def clean_name(raw: str) -> str:
    name = " ".join(raw.split())
    if not name:
        raise WatchlistError("a watchlist needs a name", field="name")
    if len(name) > MAX_NAME_CHARS:
        raise WatchlistError(f"a name is at most {MAX_NAME_CHARS} characters", field="name")
    return name


def clean_symbols(raw: Iterable[str], user: Any) -> list[str]:
    """``raw`` upper-case, in order; refuses repeats, too many, and unknown or hidden symbols."""
    symbols = [s.strip().upper() for s in raw]
    limit = settings.FEED_MAX_SYMBOLS
    if len(symbols) > limit:
        raise WatchlistError(f"a watchlist holds at most {limit} symbols", field="symbols")
    seen: set[str] = set()
    repeated: dict[str, None] = {}
    for symbol in symbols:
        if symbol in seen:
            repeated[symbol] = None
        seen.add(symbol)
    if repeated:
        raise WatchlistError(
            "symbol(s) given more than once: " + ", ".join(repeated),
            field="symbols",
            symbols=list(repeated),
        )
    known = visible_symbols_among(symbols, user)
    unknown = [s for s in symbols if s not in known]
    if unknown:
        raise UnknownSymbols(unknown)
    return symbols



def _check_unique(user: Any, name: str, pk: object | None) -> None:
    same = Watchlist.objects.filter(user_id=user.pk, name__iexact=name)
    if pk is not None:
        same = same.exclude(pk=pk)
    if same.exists():
        raise WatchlistError(f"you already have a watchlist named {name!r}", field="name")


def _lock_user(user: Any) -> None:
    """Serialise one user's writes (the count and name checks); SQLite serialises anyway."""
    list(get_user_model().objects.select_for_update().filter(pk=user.pk).values_list("pk"))


# --- the change broadcast ---------------------------------------------------------------


def changed_on_commit(users: Iterable[object]) -> None:
    """Once the transaction commits, tell every server process these users' lists changed."""
    event = events.watchlists_changed(str(pk) for pk in users)
    transaction.on_commit(lambda: notify_servers(event, what="a watchlist change"))
