"""The ASGI application: HTTP to Django; WebSocket through origin check and auth to the feed.

``daphne marketfeed.asgi:application`` serves the complete feed. In the
embedded default the ticker starts inside this process as soon as the server's
event loop runs (daphne: when the Twisted reactor starts; any other server: at
the first request).

Every WebSocket is registered with the process owner (``feeds.deliver.process``)
while it is open, so that a shutdown first asks each client to ``reconnect`` elsewhere, waits up to
``FEED_RECONNECT_GRACE_S`` for them to move, then closes the rest with 1001
"going away" (PROTOCOL.md):
under daphne, a Twisted "before shutdown" trigger does it on SIGTERM, before
daphne cancels the applications and the reactor drops the sockets; under
another server, ``lifespan.shutdown`` does.
"""

from __future__ import annotations

import asyncio
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketfeed.settings")

from django.core.exceptions import ImproperlyConfigured

try:
    from django.conf import settings
    from django.core.asgi import get_asgi_application

    django_application = get_asgi_application()
    if settings.REDIS_URL:
        from feeds.publish.redis_connect import check_reachable

        check_reachable(settings.REDIS_URL, sentinel=settings.REDIS_SENTINEL)
except ImproperlyConfigured as exc:
    # One clear line for a bad setting, not a traceback from inside the server.
    print(f"marketfeed: configuration error: {exc}", file=sys.stderr)
    raise SystemExit(2) from None

from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from django.urls import path

from feeds.auth import OriginValidator, TokenAuthMiddleware
from feeds.deliver import process, shutdown
from feeds.deliver.server import SERVER_SEND
from feeds.edges import sse
from feeds.edges.websocket import QuoteConsumer

# A credential in the handshake skips Channels' session stack; without one,
# TokenAuthMiddleware runs it for the cookie's user (feeds/auth.py).
websocket_application = OriginValidator(
    TokenAuthMiddleware(URLRouter([path("ws/quotes/", QuoteConsumer.as_asgi())]))
)

router = ProtocolTypeRouter({"http": django_application, "websocket": websocket_application})

# --- Server-Sent Events (feeds/edges/sse.py): /sse/quotes/ before Django, with the session ---
sse_application = AuthMiddlewareStack(sse.stream_quotes)


async def application(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    process.here().ensure_ticker()
    if scope["type"] == "websocket":
        # Session middleware wraps ``send``; the consumer needs the server's own
        # to reach the transport (feeds.deliver.server).
        scope = dict(scope, **{SERVER_SEND: send})
        with process.here().websocket_open(send):
            return await _outliving_daphnes_cancel(router(scope, receive, send))
    if scope["type"] == "http" and scope.get("path") == sse.PATH:  # Server-Sent Events
        return await sse_application(dict(scope, **{SERVER_SEND: send}), receive, send)
    return await router(scope, receive, send)


async def _outliving_daphnes_cancel(app):  # type: ignore[no-untyped-def]
    """Run one WebSocket's application; at shutdown, let it live out its grace.

    daphne cancels every application the moment it begins to shut down, in
    the same breath as our make-before-break trigger: a connection cancelled
    then would drop its client at once, without ``reconnect``, grace or 1001.
    Once the shutdown has begun, a cancel waits for the connection to end by
    itself (the shutdown closes it), bounded by the grace; otherwise it
    cancels the connection as usual.
    """
    inner = asyncio.ensure_future(app)
    try:
        return await asyncio.shield(inner)
    except asyncio.CancelledError:
        if shutdown.begun() and not inner.done():
            await asyncio.wait({inner}, timeout=shutdown.longest_s())
        inner.cancel()
        await asyncio.gather(inner, return_exceptions=True)
        raise


async def _lifespan(receive, send):  # type: ignore[no-untyped-def]
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            process.here().ensure_ticker()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await shutdown.shutdown()  # make-before-break: reconnect, grace, 1001; then the ticker
            await send({"type": "lifespan.shutdown.complete"})
            return


def _ensure_ticker() -> None:
    process.here().ensure_ticker()


def _start_with_reactor() -> None:
    """Under daphne, start the embedded ticker when the reactor (and its loop) runs."""
    if "twisted.internet.reactor" not in sys.modules:
        return
    from twisted.internet import reactor

    # Startup callbacks run before the asyncio loop spins; callLater(0) runs inside it.
    reactor.callWhenRunning(reactor.callLater, 0, _ensure_ticker)
    # Registered before daphne's own trigger (it cancels every application), so the
    # shutdown has begun when that cancel arrives; the phase waits for the Deferred.
    reactor.addSystemEventTrigger("before", "shutdown", _close_websockets_at_shutdown)


def _close_websockets_at_shutdown():  # type: ignore[no-untyped-def]
    from twisted.internet.defer import Deferred

    # make-before-break: reconnect, grace (a second SIGTERM cuts it short), 1001.
    # begin() now, before daphne's own trigger cancels the applications.
    shutdown.begin()
    return Deferred.fromFuture(asyncio.ensure_future(shutdown.shutdown(interruptible=True)))


_start_with_reactor()
process.freeze_startup_objects()
