"""The database is away: a clear 503, not a traceback page.

The quote stream runs from memory (or Redis) and goes on without the
database; what needs it (token and session lookups, instruments, the admin)
cannot answer. ``DatabaseUnavailableMiddleware`` turns the driver's
``OperationalError`` / ``InterfaceError`` raised in a view into 503 with a
``Retry-After``: ``{"detail": ...}`` JSON under ``/api/`` (PROTOCOL.md: API
errors are JSON), a short plain page elsewhere. The outage is logged once
(``feeds.publish.outage``), not as a traceback per request; other errors are left to
Django as before.
"""

from __future__ import annotations

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.deprecation import MiddlewareMixin

from feeds.publish.outage import DATABASE, outage

API_PREFIX = "/api/"
RETRY_AFTER_S = 5  # a hint for clients and balancers; the database usually returns within that
DETAIL = "The database is unavailable; try again shortly."
PAGE = (
    "<!doctype html><html><head><title>Service unavailable</title></head>"
    "<body><h1>Service unavailable</h1><p>" + DETAIL + "</p></body></html>"
)


class DatabaseUnavailableMiddleware(MiddlewareMixin):  # the mixin serves sync and async stacks
    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        outage(DATABASE).failed(f"request {request.method} {request.path}", exception)
        return database_unavailable(request)


def database_unavailable(request: HttpRequest) -> HttpResponse:
    """The 503 for ``request``: JSON under /api/, a plain page elsewhere."""
    response: HttpResponse
    if request.path.startswith(API_PREFIX):
        response = JsonResponse({"detail": DETAIL}, status=503)
    else:
        response = HttpResponse(PAGE, status=503, content_type="text/html; charset=utf-8")
    response["Retry-After"] = str(RETRY_AFTER_S)
    return response
