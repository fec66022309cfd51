"""Who may see which instruments: the licence rule, its enforcement, and its revocation.

PROTOCOL.md, "Entitlements". With ``FEED_ENTITLEMENTS`` off everybody sees
every instrument. With it on, a user sees an instrument when at least one
``Entitlement`` row of theirs, or of one of their groups, names its exchange
or its asset class; a superuser sees everything. Exchanges compare
case-insensitively (``xnas`` entitles ``XNAS``).

The rule is one SQL filter (``visible_instruments``), so every caller asks
the database one query, however many symbols are involved: the consumer at
subscribe time, the REST views, the SSE stream.

Revocation: deleting or editing an entitlement, taking a user out of a group,
deleting a group, or demoting a superuser broadcasts ``entitlements.changed``
naming the affected users to every server process once the transaction
commits (``SERVERS_CONTROL_GROUP``). Each of their connections recomputes its
visible set and drops, with a ``status`` ``revoked``, every subscribed symbol
no longer in it. Granting sends nothing: the next subscribe sees it. The
hooks are model signals because the admin, the ORM and cascading deletes all
write these rows; the message still waits for the commit. A lost broadcast is
caught by the consumer's periodic re-check (``FEED_AUTH_RECHECK_S``), which
calls ``enforce`` too.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping
from typing import Any, Protocol

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.db.models.functions import Upper

from feeds.core import events
from feeds.core.protocol import ErrorCode, ProtocolError, RequestId, is_symbol
from feeds.models import Entitlement, Instrument
from feeds.revocation import notify_servers

logger = logging.getLogger(__name__)

# A not_entitled error message names at most this many symbols in its text (all in "symbols").
_NAMED_IN_MESSAGE = 20

Visible = set[str] | None


# --- the rule -----------------------------------------------------------------------


def sees_everything(user: Any) -> bool:
    """True when no filter applies to ``user``: entitlements off, or a superuser."""
    return not settings.FEED_ENTITLEMENTS or bool(getattr(user, "is_superuser", False))


def visible_instruments(queryset: QuerySet[Instrument], user: Any) -> QuerySet[Instrument]:
    """``queryset`` narrowed to the instruments ``user`` may see (one EXISTS subquery)."""
    if sees_everything(user):
        return queryset
    if user is None or not user.is_authenticated:
        return queryset.none()
    grants = (
        Entitlement.objects.filter(Q(user=user.pk) | Q(group__user=user.pk))
        .annotate(venue=Upper("exchange"))
        .filter(
            (~Q(exchange="") & Q(venue=Upper(OuterRef("exchange"))))
            | (~Q(asset_class="") & Q(asset_class=OuterRef("asset_class")))
        )
    )
    return queryset.filter(Exists(grants))


def visible_symbols_among(symbols: Iterable[str], user: Any) -> set[str]:
    """Those of ``symbols`` that are instruments ``user`` may see (one query per 500)."""
    wanted = [s for s in symbols if is_symbol(s)]
    found: set[str] = set()
    for start in range(0, len(wanted), 500):  # SQLite caps query parameters
        chunk = Instrument.objects.filter(symbol__in=wanted[start : start + 500])
        found.update(visible_instruments(chunk, user).values_list("symbol", flat=True))
    return found


def visible_symbols_sync(user: Any) -> Visible:
    """The symbols ``user`` may see, or None for every instrument (including ones added later)."""
    if sees_everything(user):
        return None
    return set(visible_instruments(Instrument.objects.all(), user).values_list("symbol", flat=True))


async def visible_symbols(user: Any) -> Visible:
    """Async twin of ``visible_symbols_sync``; no thread hop when no filter applies."""
    if sees_everything(user):
        return None
    visible: Visible = await database_sync_to_async(visible_symbols_sync)(user)
    return visible


def instrument_visible(user: Any, instrument: Instrument) -> bool:
    """True when ``user`` may see ``instrument``."""
    if sees_everything(user):
        return True
    return visible_instruments(Instrument.objects.filter(pk=instrument.pk), user).exists()


def not_visible(symbols: Iterable[str], visible: Visible) -> tuple[str, ...]:
    """Those of ``symbols`` outside ``visible``, in their order."""
    if visible is None:
        return ()
    return tuple(s for s in symbols if s not in visible)


def refuse_not_entitled(
    symbols: tuple[str, ...], visible: Visible, request_id: RequestId
) -> None:
    """Raise ``not_entitled`` naming every symbol of the request ``visible`` leaves out."""
    refused = not_visible(symbols, visible)
    if refused:
        shown = ", ".join(refused[:_NAMED_IN_MESSAGE])
        if len(refused) > _NAMED_IN_MESSAGE:
            shown += ", ..."
        raise ProtocolError(
            ErrorCode.NOT_ENTITLED,
            "not entitled to: " + shown,
            request_id=request_id,
            symbols=refused,
        )


async def check_subscribe(user: Any, symbols: tuple[str, ...], request_id: RequestId) -> None:
    """Refuse a subscribe naming a symbol ``user`` may not see (no query when all are visible)."""
    refuse_not_entitled(symbols, await visible_symbols(user), request_id)


# --- enforcement on open connections -------------------------------------------------


class Entitled(Protocol):
    """What ``enforce`` needs of a connection (QuoteConsumer)."""

    user: Any
    user_key: str | None
    subs: Mapping[str, object]

    async def drop_revoked(self, symbols: list[str]) -> None: ...


def _current_visibility(user_keys: Collection[str]) -> dict[str, tuple[bool, Visible]]:
    """``{user id: (is superuser, visible)}`` from the database as it is now.

    A user that no longer exists or is inactive sees nothing; auth revocation
    closes such connections anyway.
    """
    from django.contrib.auth import get_user_model

    keys = sorted(user_keys)
    found: dict[str, tuple[bool, Visible]] = dict.fromkeys(keys, (False, set()))
    for start in range(0, len(keys), 500):  # SQLite caps query parameters
        users = get_user_model().objects.filter(pk__in=keys[start : start + 500], is_active=True)
        for user in users.only("pk", "is_superuser"):
            found[str(user.pk)] = (user.is_superuser, visible_symbols_sync(user))
    return found


async def enforce(conns: Iterable[Entitled]) -> None:
    """Drop, with ``status`` ``revoked``, each subscribed symbol its user may no longer see.

    One user query (per 500) and one visibility query per distinct user, in
    one thread hop; connections with no subscriptions cost nothing.
    """
    if not settings.FEED_ENTITLEMENTS:
        return
    watched = [c for c in conns if c.user_key is not None and c.subs]
    if not watched:
        return
    visibility = await database_sync_to_async(_current_visibility)(
        {c.user_key for c in watched if c.user_key is not None}
    )
    for conn in watched:
        is_superuser, visible = visibility[conn.user_key or ""]
        # The connection's user was read at connect; its next subscribe must see a demotion.
        conn.user.is_superuser = is_superuser
        gone = list(not_visible(list(conn.subs), visible))
        if gone:
            await conn.drop_revoked(gone)


def concerns(event: dict[str, Any], user_key: str | None) -> bool:
    """True when ``event`` is an entitlement change for the user of ``user_key``."""
    return (
        event.get("type") == events.ENTITLEMENTS_CHANGED
        and user_key is not None
        and user_key in event.get("users", ())
    )


# --- the change broadcast ---------------------------------------------------------------


def changed_event(users: Iterable[object]) -> dict[str, Any]:
    """The layer message: the ids (as strings) of the users whose visible set may have shrunk."""
    return events.entitlements_changed(str(pk) for pk in users)


def changed_on_commit(users: Iterable[object]) -> None:
    """Once the current transaction commits, make these users' connections re-check."""
    event = changed_event(users)
    if event["users"]:
        transaction.on_commit(lambda: changed_notify(event))


def changed_notify(event: dict[str, Any]) -> None:
    # The servers' periodic re-check (FEED_AUTH_RECHECK_S) still drops them if this is lost.
    notify_servers(event, what="an entitlement change")


def holders(*, user_id: object | None, group_id: object | None) -> set[object]:
    """The users an entitlement row applies to: its user, or its group's members now."""
    if user_id is not None:
        return {user_id}
    if group_id is None:
        return set()
    from django.contrib.auth import get_user_model

    return set(get_user_model().objects.filter(groups=group_id).values_list("pk", flat=True))


def _entitlement_pre_save(sender: Any, instance: Entitlement, **kwargs: Any) -> None:
    # An edit can only take away from the row's previous holders; the new ones gain.
    if instance.pk is None:
        return
    before = Entitlement.objects.filter(pk=instance.pk).values_list("user_id", "group_id").first()
    previous = set() if before is None else holders(user_id=before[0], group_id=before[1])
    instance._previous_holders = previous  # type: ignore[attr-defined]


def _entitlement_saved(sender: Any, instance: Entitlement, created: bool, **kwargs: Any) -> None:
    if not created:
        changed_on_commit(getattr(instance, "_previous_holders", ()))


def _entitlement_pre_delete(sender: Any, instance: Entitlement, **kwargs: Any) -> None:
    # pre_delete: a group's members are still there when its deletion cascades here.
    changed_on_commit(holders(user_id=instance.user_id, group_id=instance.group_id))


def _membership_changed(
    sender: Any,
    instance: Any,
    action: str,
    reverse: bool,
    pk_set: set[object] | None,
    **kwargs: Any,
) -> None:
    """``user.groups`` (``reverse`` False) or ``group.user_set`` (True) lost members."""
    if not reverse and action in ("post_remove", "pre_clear"):
        changed_on_commit([instance.pk])
    elif action == "post_remove":
        changed_on_commit(pk_set or ())
    elif action == "pre_clear":
        changed_on_commit(instance.user_set.values_list("pk", flat=True))


def _user_saved(
    sender: Any, instance: Any, created: bool, update_fields: Any = None, **kwargs: Any
) -> None:
    # A superuser demoted; a login (update_fields={"last_login"}) sends nothing.
    if created or (update_fields is not None and "is_superuser" not in update_fields):
        return
    if not instance.is_superuser:
        changed_on_commit([instance.pk])


def connect_signals() -> None:
    """Hook entitlement, group membership and user writes.

    Called from feeds.edges.admin, which is loaded everywhere.
    """
    from django.contrib.auth import get_user_model
    from django.db.models.signals import m2m_changed, post_save, pre_delete, pre_save

    user = get_user_model()
    hooks = [
        (pre_save, _entitlement_pre_save, Entitlement),
        (post_save, _entitlement_saved, Entitlement),
        (pre_delete, _entitlement_pre_delete, Entitlement),
        (m2m_changed, _membership_changed, user.groups.through),
        (post_save, _user_saved, user),
    ]
    for signal, receiver, sender in hooks:
        signal.connect(receiver, sender=sender, dispatch_uid=f"entitlements-{receiver.__name__}")

