"""URLs of the REST API, mounted at ``/api/`` by ``feeds.urls``.

Detail URLs take the rest of the path as the symbol, so ``EUR/USD`` works
both as ``/api/quotes/EUR/USD/`` and as ``/api/quotes/EUR%2FUSD/`` (the
server decodes ``%2F`` before routing). The greedy ``(?P<symbol>.+)`` runs up
to the final slash, which the pattern requires and leaves out of the symbol.
Anything else under ``/api/`` is a JSON 404 (``errors.api_not_found``).
"""

from __future__ import annotations

from django.urls import path, re_path

from feeds.edges.api import bars, errors, views, watchlists

app_name = "api"

urlpatterns = [
    path("token/", views.TokenCreateApi.as_view(), name="token"),
    path("token/revoke/", views.TokenRevokeApi.as_view(), name="token-revoke"),
    path("ws-ticket/", views.TicketCreateApi.as_view(), name="ws-ticket"),
    path("instruments/", views.InstrumentListApi.as_view(), name="instrument-list"),
    re_path(
        r"^instruments/(?P<symbol>.+)/$",
        views.InstrumentDetailApi.as_view(),
        name="instrument-detail",
    ),
    path("quotes/", views.QuoteListApi.as_view(), name="quote-list"),
    re_path(r"^quotes/(?P<symbol>.+)/$", views.QuoteDetailApi.as_view(), name="quote-detail"),
    re_path(r"^bars/(?P<symbol>.+)/$", bars.BarListApi.as_view(), name="bar-list"),  # bars
    path("watchlists/", watchlists.WatchlistListApi.as_view(), name="watchlist-list"),
    path(
        "watchlists/<int:pk>/", watchlists.WatchlistDetailApi.as_view(), name="watchlist-detail"
    ),
    # Last: whatever matched nothing above.
    re_path(r"^(?P<unmatched>.*)$", errors.api_not_found, name="not-found"),
]
