"""The web ticker page (static; live data comes over the WebSocket) and ``/metrics``."""

from __future__ import annotations

import asyncio
import secrets

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST

from feeds.edges.health import requesting_user
from feeds.edges.metrics import exposition

# The consumer's route (marketfeed/asgi.py); the page builds ws(s)://<its own host> + this.
QUOTES_WS_PATH = "/ws/quotes/"


@require_safe
@login_required
def ticker(request: HttpRequest) -> HttpResponse:
    """The signed-in user's live watchlist; anonymous visitors go to the login page."""
    response = render(
        request,
        "feeds/ticker.html",
        {
            "username": request.user.get_username(),
            # Only a fallback: the client prefers heartbeat_s from the server's welcome.
            "heartbeat_s": settings.FEED_HEARTBEAT_S,
            "ws_path": QUOTES_WS_PATH,
            "bars_url": _bars_url(),
        },
    )
    # CSP: the page may connect to its own origin only; its WebSocket origin is
    # named too, for browsers whose 'self' does not cover ws(s): (CSP level 2).
    response._csp_update = {"connect-src": [_ws_origin(request)]}  # type: ignore[attr-defined]
    return response


def _ws_origin(request: HttpRequest) -> str:
    """``ws(s)://host[:port]`` of this request: the host was validated against ALLOWED_HOSTS."""
    return f"{'wss' if request.is_secure() else 'ws'}://{request.get_host()}"


def _bars_url() -> str:
    """The candle history route (``api:bar-list``) up to its symbol; the page appends ``SYMBOL/``.

    Reversed rather than spelled out, so the page follows wherever the API is mounted.
    """
    placeholder = "-"
    return reverse("api:bar-list", kwargs={"symbol": placeholder}).removesuffix(f"{placeholder}/")


@never_cache
@require_safe
async def metrics(request: HttpRequest) -> HttpResponse:
    """This process's figures (feeds.edges.metrics), for staff or the metrics token's bearer."""
    refused = await _metrics_refusal(request)
    if refused is not None:
        status, detail = refused
        return JsonResponse({"detail": detail}, status=status)
    return HttpResponse(exposition(asyncio.get_running_loop()), content_type=CONTENT_TYPE_LATEST)


async def _metrics_refusal(request: HttpRequest) -> tuple[int, str] | None:
    kind, _, credential = request.headers.get("Authorization", "").partition(" ")
    if kind.lower() == "bearer":
        expected = settings.FEED_METRICS_TOKEN
        if expected and secrets.compare_digest(credential.strip().encode(), expected.encode()):
            return None
        return 403, "Invalid metrics token."
    user = await requesting_user(request)
    if user is None:
        return 401, (
            "Authentication credentials were not provided: a staff login or the metrics token."
        )
    if not (user.is_active and user.is_staff):
        return 403, "Metrics are for staff users and the bearer of the metrics token."
    return None
