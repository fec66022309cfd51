"""The web ticker page. The page itself is static; live data comes over the WebSocket."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

# The consumer's route (marketfeed/asgi.py); the page builds ws(s)://<its own host> + this.
QUOTES_WS_PATH = "/ws/quotes/"


@require_safe
@login_required
def ticker(request: HttpRequest) -> HttpResponse:
    """The signed-in user's live watchlist; anonymous visitors go to the login page."""
    return render(
        request,
        "feeds/ticker.html",
        {
            "username": request.user.get_username(),
            # Only a fallback: the client prefers heartbeat_s from the server's welcome.
            "heartbeat_s": settings.FEED_HEARTBEAT_S,
            "ws_path": QUOTES_WS_PATH,
        },
    )
