"""Who may open a quote stream: origin check and token authentication.

PROTOCOL.md, "Authentication": a handshake whose ``Origin`` names a host
outside ALLOWED_HOSTS is refused (403) whatever its credentials; no ``Origin``
at all is a non-browser client and passes (Channels' own
``AllowedHostsOriginValidator`` refuses those, which would lock out wscat,
websocat and Python's websockets). A token in the ``Authorization`` header,
else in ``?token=``, authenticates the handshake; a bad one refuses it (403).
Otherwise the session cookie's user stands, and failing that the connection
must authenticate with its first message.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs, urlsplit

from channels.db import database_sync_to_async
from django.conf import settings
from django.http.request import split_domain_port, validate_host

logger = logging.getLogger(__name__)

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


@database_sync_to_async
def user_for_token(key: str) -> Any | None:
    """The active user a DRF token belongs to, or None."""
    from rest_framework.authtoken.models import Token

    if not key or len(key) > 64:
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
        else:
            user = scope.get("user")
            scope["auth_method"] = "session" if user is not None and user.is_authenticated else ""
        return await self.app(scope, receive, send)
