"""Who may open a quote stream: origin check and token authentication.

PROTOCOL.md, "Authentication": a handshake whose ``Origin`` names a host
outside ALLOWED_HOSTS is refused (403) whatever its credentials; no ``Origin``
at all is a non-browser client and passes (Channels' own
``AllowedHostsOriginValidator`` refuses those, which would lock out wscat,
websocat and Python's websockets). A token in the ``Authorization`` header,
else in ``?token=``, authenticates the handshake; a bad one refuses it (403).
Otherwise the session cookie's user stands, and failing that the connection
must authenticate with its first message.

Revocation: deleting or changing a token, and deactivating or deleting a
user, broadcast ``auth.revoked`` to every server process once the transaction
commits (``SERVERS_CONTROL_GROUP``); each process closes the open connections
of that token or user with ``unauthorized`` and 4401. The hooks are model
signals because Django's user admin, DRF's token admin and cascading deletes
write these rows without passing through any service of ours; the message
itself still waits for the commit. Connections carry a digest of their token,
never the token, in that message.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.http.request import split_domain_port, validate_host

from feeds.core import events
from feeds.core.groups import SERVERS_CONTROL_GROUP

logger = logging.getLogger(__name__)

# DRF token keys are 40 characters (the column's length); anything else, and
# anything not printable ASCII (NUL, lone surrogates), is refused before SQL.
_TOKEN_RE = re.compile(r"[!-~]{1,40}")

Scope = dict[str, Any]


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def peer(scope: Scope) -> str:
    client = scope.get("client") or ("?", 0)
    return f"{client[0]}:{client[1]}"


def origin_allowed(origin: str | None) -> bool:
    """True when there is no Origin, or it names a host in ALLOWED_HOSTS."""
    if origin is None:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.netloc:
        return False
    host, _port = split_domain_port(parts.netloc)
    allowed = settings.ALLOWED_HOSTS
    return bool(host) and validate_host(host, allowed)


async def refuse(send: Any, scope: Scope, reason: str) -> None:
    """Refuse a handshake: a close before accept is an HTTP 403."""
    logger.info("websocket refused from %s: %s", peer(scope), reason)
    await send({"type": "websocket.close", "code": 1008})


class OriginValidator:
    """Refuse handshakes from foreign browser origins; allow those with no Origin."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            origin = _header(scope, b"origin")
            if not origin_allowed(origin):
                await receive()  # the websocket.connect event
                return await refuse(send, scope, f"origin {origin!r} is not an allowed host")
        return await self.app(scope, receive, send)


def handshake_token(scope: Scope) -> tuple[str | None, str]:
    """The token a handshake carries and where: the header wins over the query string."""
    header = _header(scope, b"authorization")
    if header is not None:
        kind, _, value = header.partition(" ")
        return (value.strip() if kind.lower() == "token" else ""), "header"
    query = parse_qs(bytes(scope.get("query_string", b"")).decode("latin-1"))
    if "token" in query:
        return query["token"][0], "query"
    return None, ""


def token_digest(key: str) -> str:
    """What names a token outside the database (revocation messages): never the key itself."""
    return hashlib.sha256(key.encode("ascii", "replace")).hexdigest()


def is_token_shaped(key: str) -> bool:
    return _TOKEN_RE.fullmatch(key) is not None


@database_sync_to_async
def user_for_token(key: str) -> Any | None:
    """The active user a DRF token belongs to, or None."""
    from rest_framework.authtoken.models import Token

    if not is_token_shaped(key):
        return None
    try:
        token = Token.objects.select_related("user").get(key=key)
    except Token.DoesNotExist:
        return None
    return token.user if token.user.is_active else None


class TokenAuthMiddleware:
    """Put the user of a handshake token into ``scope["user"]``, or refuse the handshake.

    Sits inside Channels' AuthMiddlewareStack so that a token overrides the
    session's user; ``scope["auth_method"]`` records which way won.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)
        key, where = handshake_token(scope)
        scope = dict(scope)
        if key is not None:
            user = await user_for_token(key)
            if user is None:
                await receive()
                return await refuse(send, scope, f"bad token in the {where}")
            scope["user"] = user
            scope["auth_method"] = where
            scope["auth_token"] = key
        else:
            user = scope.get("user")
            scope["auth_method"] = "session" if user is not None and user.is_authenticated else ""
        return await self.app(scope, receive, send)


# --- revocation ----------------------------------------------------------------------


def revoked_event(*, tokens: Iterable[str] = (), users: Iterable[object] = ()) -> dict[str, Any]:
    """The layer message: token digests and user ids (as strings) whose connections must close."""
    return events.auth_revoked(
        token_digests=[token_digest(key) for key in tokens], user_ids=[str(pk) for pk in users]
    )


def revoke_on_commit(*, tokens: Iterable[str] = (), users: Iterable[object] = ()) -> None:
    """Once the current transaction commits, close these tokens' and users' connections everywhere."""
    event = revoked_event(tokens=tokens, users=users)
    transaction.on_commit(lambda: revocation_notify(event))


def revocation_notify(event: dict[str, Any]) -> None:
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
    # A changed token (e.g. moved to another user in the admin) ends the
    # connections it opened; they may reconnect if it still lets them.
    if not created and instance.key:
        revoke_on_commit(tokens=[instance.key])


def _token_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    if instance.key:
        revoke_on_commit(tokens=[instance.key])


def _user_saved(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    if not created and not instance.is_active:
        revoke_on_commit(users=[instance.pk])


def _user_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    revoke_on_commit(users=[instance.pk])


def connect_revocation_signals() -> None:
    """Hook token and user writes (called once from feeds.edges.admin, loaded in every process)."""
    from django.contrib.auth import get_user_model
    from django.db.models.signals import post_delete, post_save
    from rest_framework.authtoken.models import Token, TokenProxy

    for model in (Token, TokenProxy):
        post_save.connect(_token_saved, sender=model, dispatch_uid=f"revoke-save-{model.__name__}")
        post_delete.connect(_token_deleted, sender=model, dispatch_uid=f"revoke-del-{model.__name__}")
    user = get_user_model()
    post_save.connect(_user_saved, sender=user, dispatch_uid="revoke-user-save")
    post_delete.connect(_user_deleted, sender=user, dispatch_uid="revoke-user-delete")


@database_sync_to_async
def still_authorized(tokens: list[str], users: list[str]) -> tuple[dict[str, str], set[str]]:
    """Of these token keys and user ids, those that still authenticate, one query per 500.

    Returns ``{key: user id}`` of the tokens that exist for an active user, and
    the ids of the users that exist and are active.
    """
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    good_tokens: dict[str, str] = {}
    for start in range(0, len(tokens), 500):  # SQLite caps query parameters
        rows = Token.objects.filter(key__in=tokens[start : start + 500], user__is_active=True)
        good_tokens.update((key, str(pk)) for key, pk in rows.values_list("key", "user_id"))
    good_users: set[str] = set()
    for start in range(0, len(users), 500):
        rows = get_user_model().objects.filter(pk__in=users[start : start + 500], is_active=True)
        good_users.update(str(pk) for pk in rows.values_list("pk", flat=True))
    return good_tokens, good_users
