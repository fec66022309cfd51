"""Every API error is JSON with a ``"detail"`` string (PROTOCOL.md: errors are JSON).

- ``exception_handler`` (``REST_FRAMEWORK["EXCEPTION_HANDLER"]``) wraps DRF's:
  validation errors keep their per-field lists and gain a ``detail`` summary;
  Django's refusals of a request body (too large, too many fields) become
  JSON 413 / 400 instead of an HTML page. Anything else unhandled stays a 500
  for Django to log and report.
- ``api_not_found`` is the catch-all view at the end of ``feeds.edges.api.urls``:
  unknown URLs under ``/api/`` are ``404 {"detail": ...}`` whatever ``DEBUG``
  says, and a GET that only lacks its trailing slash is redirected, as
  ``APPEND_SLASH`` would do.
- ``handler404`` / ``handler500`` are for ``marketfeed/urls.py``: JSON under
  ``/api/``, Django's usual pages elsewhere.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from itertools import islice
from typing import Any

from django.core.exceptions import (
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponsePermanentRedirect,
    JsonResponse,
)
from django.urls import Resolver404, resolve
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"
# A summary line, not a dump: the full per-field errors are in the body too.
MAX_SUMMARY_MESSAGES = 5


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "payload_too_large"


class BadRequest(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "Bad request."
    default_code = "bad_request"


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, then make sure the body is an object with a ``detail`` string."""
    if isinstance(exc, SuspiciousOperation):
        exc = _refusal(exc, context)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    response.data = with_detail(response.data)
    return response


def _refusal(exc: SuspiciousOperation, context: dict[str, Any]) -> exceptions.APIException:
    """Django's request-body limits, as API errors (Django would answer them in HTML)."""
    request = context.get("request")
    path = getattr(request, "path", "?")
    logger.info("refused a request to %s: %s: %s", path, type(exc).__name__, exc)
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge()
    if isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
        # These messages name the setting and nothing from the client, so they
        # are safe and useful to pass on; other refusals may quote the client.
        return BadRequest(str(exc))
    return BadRequest()


def with_detail(data: Any) -> dict[str, Any]:
    """``data`` as an object whose ``detail`` is one string, other keys kept."""
    if isinstance(data, dict):
        detail = data.get("detail")
        if isinstance(detail, str):
            return data
        rest = {key: value for key, value in data.items() if key != "detail"}
        summary = summarize(data)
        return {"detail": summary, **rest}
    return {"detail": summarize(data), "errors": data}


def summarize(data: Any) -> str:
    """One line naming the first few errors, e.g. ``username: This field is required.``"""
    messages = list(islice(_messages(data, ""), MAX_SUMMARY_MESSAGES + 1))
    if not messages:
        return "Invalid request."
    if len(messages) > MAX_SUMMARY_MESSAGES:
        messages[-1] = "..."
    return " ".join(messages)


def _messages(data: Any, where: str) -> Iterator[str]:
    if isinstance(data, dict):
        for key, value in data.items():
            name = "" if key in (api_settings.NON_FIELD_ERRORS_KEY, "detail") else str(key)
            yield from _messages(value, f"{where}.{name}" if where and name else where or name)
    elif isinstance(data, list | tuple):
        for item in data:
            yield from _messages(item, where)
    else:
        yield f"{where}: {data}" if where else str(data)


# --- plain Django views ------------------------------------------------------------


@csrf_exempt  # it changes nothing; else a cookie-less POST got Django's HTML 403 page
def api_not_found(request: HttpRequest, unmatched: str = "") -> HttpResponse:
    """404 JSON for any URL under /api/ that names no endpoint.

    A GET or HEAD whose path with a trailing slash added is an endpoint is
    redirected there (301), since this catch-all keeps ``APPEND_SLASH`` from
    seeing a 404.
    """
    path = request.path_info
    if not path.endswith("/") and _is_endpoint(path + "/", request):
        if request.method in ("GET", "HEAD"):
            return HttpResponsePermanentRedirect(request.get_full_path(force_append_slash=True))
        return JsonResponse(
            {"detail": f"Not found. API URLs end with a slash: {request.path}/"}, status=404
        )
    return JsonResponse({"detail": "Not found: no API endpoint at this URL."}, status=404)


def _is_endpoint(path: str, request: HttpRequest) -> bool:
    try:
        match = resolve(path, getattr(request, "urlconf", None))
    except Resolver404:
        return False
    return match.func is not api_not_found


def handler404(request: HttpRequest, exception: Exception) -> HttpResponse:
    """``handler404`` for the root URLconf: JSON under /api/, Django's page elsewhere."""
    if request.path.startswith(API_PREFIX):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


def handler500(request: HttpRequest) -> HttpResponse:
    """``handler500`` for the root URLconf: JSON under /api/, Django's page elsewhere.

    Deliberately says nothing about the failure; Django has already logged it.
    """
    if request.path.startswith(API_PREFIX):
        return JsonResponse({"detail": "Internal server error."}, status=500)
    return defaults.server_error(request)
