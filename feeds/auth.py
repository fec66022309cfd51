"""Who may open a quote stream: origin check, API tokens, tickets.

Revocation is in ``feeds.revocation``, the login lockout in ``feeds.logins``.

PROTOCOL.md, "Authentication": a handshake whose ``Origin`` names a host
outside ALLOWED_HOSTS is refused (403) whatever its credentials; no ``Origin``
at all is a non-browser client and passes (Channels' own
``AllowedHostsOriginValidator`` refuses those, which would lock out wscat,
websocat and Python's websockets). A token in the ``Authorization`` header,
else a one-time ``?ticket=``, else a ``?token=`` authenticates the handshake;
a bad one refuses it (403). Otherwise the session cookie's user stands, and
failing that the connection must authenticate with its first message.

API tokens (django-rest-knox): the database holds a SHA-512 digest of each
token and the first 15 of its 64 hex characters (knox's lookup index), never
the token; each one expires ``FEED_TOKEN_TTL_DAYS`` after issue, and a user
may hold several (one per device). ``token_digest`` is that digest: it names
a token in revocation messages and in the re-check of open connections.

Tickets (``POST /api/ws-ticket/``): a random string that admits one WebSocket
or SSE handshake within ``FEED_WS_TICKET_TTL_S``, so that no long-lived
credential has to go into a URL. Kept in Django's cache under its SHA-256
(Redis with ``REDIS_URL``, so any server process redeems it); redeemed by a
delete that only one caller can win.

Handshakes look a token up through ``token_cache`` (feeds/tokencache.py): a
token checked within the last second admits its handshake without a query;
a revocation drops it at once, and the second bounds a lost one."""

from __future__ import annotations

import binascii
import hashlib
import logging
import math
import re
import secrets
import time
from hmac import compare_digest
from typing import Any
from urllib.parse import parse_qs, urlsplit

from channels.db import database_sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.http.request import split_domain_port, validate_host
from django.utils import timezone
from rest_framework import authentication, exceptions

from feeds.tokencache import TokenCache

logger = logging.getLogger(__name__)

# A knox token is up to 10 prefix characters and 64 hex characters; a ticket
# is 43. Anything longer, and anything not printable ASCII (NUL, lone
# surrogates), is refused before it reaches SQL or the cache.
MAX_CREDENTIAL_CHARS = 80
_TOKEN_RE = re.compile(rf"[!-~]{{1,{MAX_CREDENTIAL_CHARS}}}")
# knox's digests are SHA-512 in hex.
_DIGEST_RE = re.compile(r"[0-9a-f]{128}")

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
    """The credential a handshake carries and where: "header", "ticket" or "query".

    The header wins, then ``?ticket=``, then ``?token=``. A ticket is redeemed
    with ``user_for_ticket``, a token with ``user_for_token``.
    """
    header = _header(scope, b"authorization")
    if header is not None:
        kind, _, value = header.partition(" ")
        return (value.strip() if kind.lower() == "token" else ""), "header"
    query = parse_qs(bytes(scope.get("query_string", b"")).decode("latin-1"))
    if "ticket" in query:
        return query["ticket"][0], "ticket"
    if "token" in query:
        return query["token"][0], "query"
    return None, ""


def is_token_shaped(key: str) -> bool:
    return _TOKEN_RE.fullmatch(key) is not None


# --- API tokens (django-rest-knox) ---------------------------------------------------


def token_digest(key: str) -> str:
    """What names a token outside its owner's hands: knox's digest, as stored and broadcast."""
    from knox.crypto import hash_token

    try:
        return hash_token(key)
    except (UnicodeError, TypeError, binascii.Error):
        # Not a token at all (a lone surrogate, say): a digest that matches none.
        return hashlib.sha512(key.encode("utf-8", "replace")).hexdigest()


def _live(expiry: Any) -> bool:
    return expiry is None or expiry > timezone.now()


def find_token(key: str) -> Any | None:
    """The unexpired knox ``AuthToken`` row of ``key`` (with its user), or None.

    knox's own lookup: candidates by the stored 15-character prefix, then a
    constant-time compare of the digest.
    """
    from knox.models import get_token_model
    from knox.settings import CONSTANTS

    if not is_token_shaped(key):
        return None
    digest = token_digest(key)
    rows = get_token_model().objects.filter(token_key=key[: CONSTANTS.TOKEN_KEY_LENGTH])
    for row in rows.select_related("user"):
        if compare_digest(digest, row.digest) and _live(row.expiry):
            return row
    return None


def issue_token(user: Any) -> tuple[str, Any]:
    """A new token for ``user`` (another device): ``(token, row)``. The token is shown once.

    The user's expired tokens are deleted on the way.
    """
    from knox.models import get_token_model

    model = get_token_model()
    model.objects.filter(user=user, expiry__lt=timezone.now()).delete()
    row, token = model.objects.create(user=user)
    return token, row


def find_tokens(wanted: dict[str, str]) -> dict[str, tuple[Any, float | None]]:
    """Of ``{digest: prefix}``, the live tokens of active users: ``{digest: (user, expiry)}``.

    ``find_token`` for many tokens at once: candidates by the stored prefix
    (one query per 500), a constant-time compare of each digest, then their
    active users in one query (one per 500), one object per user; the expiry
    as a wall-clock timestamp (None: none).
    """
    from django.contrib.auth import get_user_model
    from knox.models import get_token_model

    prefixes = sorted(set(wanted.values()))
    candidates: dict[str, list[tuple[str, Any, Any]]] = {}
    for start in range(0, len(prefixes), 500):  # SQLite caps query parameters
        rows = get_token_model().objects.filter(token_key__in=prefixes[start : start + 500])
        for prefix, digest, expiry, user_id in rows.values_list(
            "token_key", "digest", "expiry", "user_id"
        ):
            candidates.setdefault(prefix, []).append((digest, expiry, user_id))
    good: dict[str, tuple[Any, Any]] = {}
    for digest, prefix in wanted.items():
        for stored, expiry, user_id in candidates.get(prefix, ()):
            if compare_digest(digest, stored) and _live(expiry):
                good[digest] = (user_id, expiry)
    ids = sorted({user_id for user_id, _ in good.values()})
    users: dict[Any, Any] = {}
    for start in range(0, len(ids), 500):
        active = get_user_model()._default_manager.filter(is_active=True)
        users.update(active.in_bulk(ids[start : start + 500]))
    return {
        digest: (users[user_id], None if expiry is None else expiry.timestamp())
        for digest, (user_id, expiry) in good.items()
        if user_id in users
    }


# The handshakes' cache of this process (feeds/tokencache.py); revocations call its ``forget``.
token_cache = TokenCache(database_sync_to_async(find_tokens))


async def user_for_token(key: str) -> Any | None:
    """The active user an unexpired API token belongs to, or None (``token_cache``: ≤ 1 s old)."""
    from knox.settings import CONSTANTS

    if not is_token_shaped(key):
        return None
    return await token_cache.lookup(token_digest(key), key[: CONSTANTS.TOKEN_KEY_LENGTH])


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's ``Authorization: Token <token>`` scheme over knox's hashed, expiring tokens.

    DRF's header parsing and error messages; knox's lookup (``find_token``),
    with a token's shape checked first. ``request.auth`` is the knox row.
    """

    keyword = "Token"

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        row = find_token(key)
        if row is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        if not row.user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        return row.user, row


# --- tickets -----------------------------------------------------------------------------

_TICKET_KEY = "feeds:ws-ticket:"


def _ticket_key(ticket: str) -> str:
    # The cache holds a hash: a dump of Redis yields no redeemable ticket.
    return _TICKET_KEY + hashlib.sha256(ticket.encode("ascii")).hexdigest()


def issue_ticket(user: Any) -> str:
    """A ticket that admits ``user`` to one handshake within ``FEED_WS_TICKET_TTL_S``."""
    ttl = float(settings.FEED_WS_TICKET_TTL_S)
    ticket = secrets.token_urlsafe(32)
    value = {"user": str(user.pk), "until": time.time() + ttl}
    cache.set(_ticket_key(ticket), value, timeout=math.ceil(ttl))
    return ticket


def redeem_ticket(ticket: str) -> str | None:
    """The user id of an unexpired, unredeemed ticket, which is gone from then on; else None.

    Two redemptions of one ticket, on any processes, cannot both win: only one
    ``delete`` finds the key.
    """
    if not is_token_shaped(ticket):
        return None
    key = _ticket_key(ticket)
    value = cache.get(key)
    if not isinstance(value, dict) or not cache.delete(key):
        return None
    if value.get("until", 0) < time.time():
        return None
    return str(value.get("user"))


@database_sync_to_async
def user_for_ticket(ticket: str) -> Any | None:
    """The active user of a ticket, consuming it; None when it is unknown, used or expired."""
    from django.contrib.auth import get_user_model

    user_id = redeem_ticket(ticket)
    if user_id is None:
        return None
    return get_user_model()._default_manager.filter(pk=user_id, is_active=True).first()


class TokenAuthMiddleware:
    """Put the user of a handshake token or ticket into ``scope["user"]``, or refuse the handshake.

    It wraps Channels' ``AuthMiddlewareStack`` rather than sitting inside it:
    a handshake that carries a credential never goes through the session and
    auth middleware (a thread hop for the session's user it would not use);
    one without goes through them, and the session cookie's user stands.
    ``scope["auth_method"]`` records which way won ("header", "ticket",
    "query" or "session"), ``scope["auth_token"]`` the token (None for a
    ticket or the session: nothing long-lived to revoke).
    """

    def __init__(self, app: Any) -> None:
        from channels.auth import AuthMiddlewareStack

        self.app = app
        self.with_session = AuthMiddlewareStack(self._session)

    async def _session(self, scope: Scope, receive: Any, send: Any) -> None:
        user = scope.get("user")
        scope = dict(scope)
        scope["auth_method"] = "session" if user is not None and user.is_authenticated else ""
        return await self.app(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)
        key, where = handshake_token(scope)
        if key is None:
            return await self.with_session(scope, receive, send)
        if where == "ticket":
            user = await user_for_ticket(key)
        else:
            user = await user_for_token(key)
        if user is None:
            await receive()
            reason = f"bad token in the {where}"
            if where == "ticket":
                reason = "bad ticket (unknown, used or expired)"
            return await refuse(send, scope, reason)
        scope = dict(scope)
        scope["user"] = user
        scope["auth_method"] = where
        scope["auth_token"] = None if where == "ticket" else key
        return await self.app(scope, receive, send)
