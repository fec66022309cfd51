"""Revocation: credentials that no longer hold close the connections they opened.

Deleting or changing a token, and deactivating or deleting a user, broadcast
``auth.revoked`` to every server process once the transaction commits
(``SERVERS_CONTROL_GROUP``); each process closes the open connections of
that token or user with ``unauthorized`` and 4401. The hooks are model
signals because Django's user admin, knox's token admin and cascading deletes
write these rows without passing through any service of ours; the message
itself still waits for the commit. Connections carry a digest of their token,
never the token, in that message. A ticket is no long-lived credential: a
connection it opened is closed by its user's revocation. ``still_authorized``
is what the servers' periodic re-check asks, for a broadcast that was lost.

The handshakes' token cache (feeds/tokencache.py) forgets what a revocation
names: in the revoking process when the transaction commits, and in every
server process when its hub hears ``auth.revoked`` (``forget_revoked``). Any
other save of a user (a new password, say) makes this process check that
user's tokens again at their next handshake.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import transaction
from django.utils import timezone

from feeds.auth import _DIGEST_RE, token_cache, token_digest
from feeds.core import events
from feeds.core.groups import SERVERS_CONTROL_GROUP

logger = logging.getLogger(__name__)


def revoked_event(
    *, tokens: Iterable[str] = (), users: Iterable[object] = (), token_digests: Iterable[str] = ()
) -> dict[str, Any]:
    """The layer message: token digests and user ids (as strings) whose connections must close.

    ``tokens`` are keys (digested here), ``token_digests`` digests as stored.
    """
    digests = [*(token_digest(key) for key in tokens), *token_digests]
    return events.auth_revoked(token_digests=digests, user_ids=[str(pk) for pk in users])


def revoke_on_commit(
    *, tokens: Iterable[str] = (), users: Iterable[object] = (), token_digests: Iterable[str] = ()
) -> None:
    """Once the transaction commits, close these tokens' and users' connections everywhere."""
    event = revoked_event(tokens=tokens, users=users, token_digests=token_digests)
    transaction.on_commit(lambda: revocation_notify(event))


def forget_revoked(event: dict[str, Any]) -> None:
    """This process's token cache forgets the tokens and users an ``auth.revoked`` names."""
    token_cache.forget(token_digests=event.get("tokens", ()), user_ids=event.get("users", ()))


def revocation_notify(event: dict[str, Any]) -> None:
    forget_revoked(event)  # here first: a handshake on this process must not wait for the layer
    # The servers' periodic re-check (FEED_AUTH_RECHECK_S) still closes them if this is lost.
    notify_servers(event, what="a token revocation")


def notify_servers(event: dict[str, Any], *, what: str) -> None:
    """Send ``event`` to every server process (their hubs' control group); a failure is logged."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(SERVERS_CONTROL_GROUP, event)
    except Exception:
        logger.warning("could not broadcast %s", what, exc_info=True)


def _token_saved(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    # A changed token (moved to another user, or its expiry edited in the
    # admin) ends the connections it opened; they may reconnect if it still lets them.
    if not created and instance.digest:
        revoke_on_commit(token_digests=[instance.digest])


def _token_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    if instance.digest:
        logger.info("API token of user %s deleted (revoked or expired)", instance.user_id)
        revoke_on_commit(token_digests=[instance.digest])


def _user_saved(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    if created:
        return
    if not instance.is_active:
        revoke_on_commit(users=[instance.pk])
    else:  # a password, a name: nothing revoked, but this process reads the user afresh
        pk = instance.pk
        transaction.on_commit(lambda: token_cache.forget(user_ids=[pk]))


def _user_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    revoke_on_commit(users=[instance.pk])


def connect_revocation_signals() -> None:
    """Hook token and user writes (called once from feeds.edges.admin, loaded in every process)."""
    from django.contrib.auth import get_user_model
    from django.db.models.signals import post_delete, post_save
    from knox.models import get_token_model

    token = get_token_model()
    post_save.connect(_token_saved, sender=token, dispatch_uid="revoke-save-token")
    post_delete.connect(_token_deleted, sender=token, dispatch_uid="revoke-del-token")
    user = get_user_model()
    post_save.connect(_user_saved, sender=user, dispatch_uid="revoke-user-save")
    post_delete.connect(_user_deleted, sender=user, dispatch_uid="revoke-user-delete")


@database_sync_to_async
def still_authorized(tokens: list[str], users: list[str]) -> tuple[dict[str, str], set[str]]:
    """Of these tokens and user ids, those that still authenticate, one query per 500.

    Each of ``tokens`` is a token key or its ``token_digest`` (a connection
    need keep only the digest). Returns ``{item: user id}`` of the items, as
    given, whose token exists, has not expired and belongs to an active user,
    and the ids of the users that exist and are active.
    """
    from django.contrib.auth import get_user_model
    from django.db.models import Q
    from knox.models import get_token_model

    by_digest: dict[str, list[str]] = {}
    for item in tokens:
        digest = item if _DIGEST_RE.fullmatch(item) else token_digest(item)
        by_digest.setdefault(digest, []).append(item)
    digests = list(by_digest)
    good_tokens: dict[str, str] = {}
    unexpired = Q(expiry__isnull=True) | Q(expiry__gt=timezone.now())
    for start in range(0, len(digests), 500):  # SQLite caps query parameters
        rows = get_token_model().objects.filter(
            unexpired, digest__in=digests[start : start + 500], user__is_active=True
        )
        for digest, pk in rows.values_list("digest", "user_id"):
            good_tokens.update((item, str(pk)) for item in by_digest[digest])
    good_users: set[str] = set()
    for start in range(0, len(users), 500):
        rows = get_user_model().objects.filter(pk__in=users[start : start + 500], is_active=True)
        good_users.update(str(pk) for pk in rows.values_list("pk", flat=True))
    return good_tokens, good_users


