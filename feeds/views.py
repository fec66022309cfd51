"""The web ticker page."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


@login_required
def ticker(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "feeds/ticker.html",
        {"heartbeat_s": settings.FEED_HEARTBEAT_S, "ws_path": "/ws/quotes/"},
    )
