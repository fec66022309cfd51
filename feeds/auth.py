"""Who may use the feed: origin check, API tokens, tickets, revocation, login lockout.

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

Revocation: deleting or changing a token, and deactivating or deleting a
user, broadcast ``auth.revoked`` to every server process once the transaction
commits (``SERVERS_CONTROL_GROUP``); each process closes the open connections
of that token or user with ``unauthorized`` and 4401. The hooks are model
signals because Django's user admin, knox's token admin and cascading deletes
write these rows without passing through any service of ours; the message
itself still waits for the commit. Connections carry a digest of their token,
never the token, in that message. A ticket is no long-lived credential: a
connection it opened is closed by its user's revocation.

Brute force (django-axes, ``LoginAttempts``): failed logins, through the
login form, the admin or ``POST /api/token/``, are counted per username and
per client address in Django's cache; past ``FEED_LOGIN_FAILURES_PER_USER``
(or ``..._PER_ADDRESS``) within ``FEED_LOGIN_WINDOW_S``, that username (or
address) is locked out for the window: 429 with ``Retry-After``.
"""

from __future__ import annotations

import binascii
import hashlib
import logging
import math
import re
import secrets
import time
from collections.abc import Iterable
from hmac import compare_digest
from typing import Any
from urllib.parse import parse_qs, urlsplit

from asgiref.sync import async_to_sync
from axes.handlers.base import AbstractAxesHandler, AxesBaseHandler
from axes.helpers import get_client_username
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.request import split_domain_port, validate_host
from django.template.loader import render_to_string
from django.utils import timezone
from rest_framework import authentication, exceptions

from feeds.core import events
from feeds.core.groups import SERVERS_CONTROL_GROUP

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


@database_sync_to_async
def user_for_token(key: str) -> Any | None:
    """The active user an unexpired API token belongs to, or None."""
    row = find_token(key)
    if row is None or not row.user.is_active:
        return None
    return row.user


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

    Sits inside Channels' AuthMiddlewareStack so that a credential overrides
    the session's user; ``scope["auth_method"]`` records which way won
    ("header", "ticket", "query" or "session"), ``scope["auth_token"]`` the
    token (None for a ticket or the session: nothing long-lived to revoke).
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)
        key, where = handshake_token(scope)
        scope = dict(scope)
        if key is not None:
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
            scope["user"] = user
            scope["auth_method"] = where
            scope["auth_token"] = None if where == "ticket" else key
        else:
            user = scope.get("user")
            scope["auth_method"] = "session" if user is not None and user.is_authenticated else ""
        return await self.app(scope, receive, send)


# --- revocation ----------------------------------------------------------------------


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
    # A changed token (moved to another user, or its expiry edited in the
    # admin) ends the connections it opened; they may reconnect if it still lets them.
    if not created and instance.digest:
        revoke_on_commit(token_digests=[instance.digest])


def _token_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    if instance.digest:
        logger.info("API token of user %s deleted (revoked or expired)", instance.user_id)
        revoke_on_commit(token_digests=[instance.digest])


def _user_saved(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    if not created and not instance.is_active:
        revoke_on_commit(users=[instance.pk])


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


# --- brute force: failed logins (django-axes) --------------------------------------------


def client_address(request: HttpRequest) -> str | None:
    """The address failed logins are counted under (``AXES_CLIENT_IP_CALLABLE``).

    ``REMOTE_ADDR`` as the server sets it: daphne takes it from
    ``X-Forwarded-For`` only when told it is behind the proxy
    (``--proxy-headers``), so a client cannot choose its own address here.
    """
    address = request.META.get("REMOTE_ADDR")
    return str(address) if address else None


def _window_s() -> float:
    return float(settings.FEED_LOGIN_WINDOW_S)


class LoginAttempts(AbstractAxesHandler, AxesBaseHandler):
    """django-axes handler (``AXES_HANDLER``): two counters per failed login, in the cache.

    One per username (limit ``FEED_LOGIN_FAILURES_PER_USER``) and one per
    client address (``FEED_LOGIN_FAILURES_PER_ADDRESS``). axes' own cache
    handler compares every counter with one limit, so an address behind which
    one user is attacked would lock out everyone else there; hence this one.
    A counter lives for the window from its first failure (``add`` then
    ``incr``: atomic in Redis); reaching its limit locks that username or
    address until the window has passed from then, whatever is tried
    meanwhile: attempts during a lockout are refused before any password
    check and counted nowhere, so they do not prolong it.
    """

    def _subjects(
        self, request: Any, credentials: dict[str, Any] | None
    ) -> list[tuple[str, str, int]]:
        """``(what, cache key base, limit)`` for the username and the address of this attempt."""
        subjects: list[tuple[str, str, int]] = []
        username = get_client_username(request, credentials)
        if username:
            digest = hashlib.sha256(str(username).encode("utf-8", "replace")).hexdigest()
            subjects.append((f"username {str(username)[:150]!r}", f"feeds:login:user:{digest}",
                             settings.FEED_LOGIN_FAILURES_PER_USER))
        address = getattr(request, "axes_ip_address", None) or client_address(request)
        if address:
            subjects.append((f"address {address}", f"feeds:login:addr:{address}",
                             settings.FEED_LOGIN_FAILURES_PER_ADDRESS))
        return subjects

    def _locked_until(self, request: Any, credentials: dict[str, Any] | None) -> float:
        """When the latest lockout on this attempt's username or address ends (0: none)."""
        now = time.time()
        until = 0.0
        for _what, base, _limit in self._subjects(request, credentials):
            value = cache.get(base + ":lock")
            if isinstance(value, int | float) and value > now:
                until = max(until, float(value))
        return until

    def is_locked(self, request: Any, credentials: dict[str, Any] | None = None) -> bool:
        until = self._locked_until(request, credentials)
        if until:
            request.feeds_retry_after = max(1, math.ceil(until - time.time()))
        return bool(until)

    def get_failures(self, request: Any, credentials: dict[str, Any] | None = None) -> int:
        subjects = self._subjects(request, credentials)
        counts = [cache.get(base + ":n", 0) for _what, base, _limit in subjects]
        return max(counts, default=0)

    def user_login_failed(
        self, sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any
    ) -> None:
        if request is None:
            return
        if self.is_locked(request, credentials):
            # Refused by the lockout (AxesStandaloneBackend) before any password check.
            request.axes_locked_out = True
            return
        window = _window_s()
        ttl = math.ceil(window)
        for what, base, limit in self._subjects(request, credentials):
            failures = self._count(base + ":n", ttl)
            if failures >= limit and cache.add(base + ":lock", time.time() + window, timeout=ttl):
                logger.warning(
                    "login locked out for %s: %d failed logins within %g s (path %s)",
                    what, failures, window, getattr(request, "path", "?"),
                )
        logger.info(
            "failed login for %s from %s",
            repr(str(get_client_username(request, credentials))[:150]),
            getattr(request, "axes_ip_address", None),
        )
        if self.is_locked(request, credentials):
            request.axes_locked_out = True

    @staticmethod
    def _count(key: str, ttl: int) -> int:
        if cache.add(key, 1, timeout=ttl):
            return 1
        try:
            return int(cache.incr(key))
        except ValueError:  # expired between add and incr
            cache.add(key, 1, timeout=ttl)
            return 1

    def user_logged_in(self, sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
        logger.info(
            "login of user %s from %s", user.pk, getattr(request, "axes_ip_address", None)
        )

    def user_logged_out(self, sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
        pass

    def reset_attempts(
        self,
        *,
        ip_address: str | None = None,
        username: str | None = None,
        ip_or_username: bool = False,
    ) -> int:
        """Lift the counters and lockout of a username or address (axes' reset commands)."""
        request = HttpRequest()
        if ip_address:
            request.META["REMOTE_ADDR"] = ip_address
        credentials = {"username": username} if username else None
        count = 0
        for _what, base, _limit in self._subjects(request, credentials):
            count += int(bool(cache.delete(base + ":n")))
            cache.delete(base + ":lock")
        logger.info("login lockout reset for username %r / address %s", username, ip_address)
        return count


def lockout_response(request: HttpRequest, *_: Any) -> HttpResponse:
    """What a locked-out login gets (``AXES_LOCKOUT_CALLABLE``): 429 with ``Retry-After``.

    JSON ``{"detail": ...}`` under ``/api/``, a page elsewhere (the login
    form, the admin's). axes passes further arguments that differ between its
    sync and async paths; nothing here needs them.
    """
    retry_after = getattr(request, "feeds_retry_after", None) or max(1, math.ceil(_window_s()))
    minutes = max(1, math.ceil(retry_after / 60))
    detail = (
        f"Too many failed logins: this account or address is locked. "
        f"Try again in {minutes} minute{'s' if minutes != 1 else ''}."
    )
    response: HttpResponse
    if request.path_info.startswith("/api/"):
        response = JsonResponse({"detail": detail}, status=429)
    else:
        html = render_to_string(
            "registration/locked_out.html", {"detail": detail, "retry_after": retry_after}, request
        )
        response = HttpResponse(html, status=429)
    response["Retry-After"] = str(retry_after)
    return response
