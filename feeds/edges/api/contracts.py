"""The published contracts, served to logged-in users like the rest of ``/api/``.

- ``GET /api/schema/``: the REST API's OpenAPI 3 schema (drf-spectacular, the
  decorators in ``schema.py``); JSON, or YAML with ``?format=yaml``.
- ``GET /api/schema/docs/``: Swagger UI on that schema. Its JavaScript, CSS
  and icon come from drf-spectacular-sidecar's static files and its start-up
  script from this same URL (``?script``), so the page loads nothing from
  another host and works offline; its own Content-Security-Policy says so to
  the browser (``'self'`` only).
- ``GET /api/asyncapi.json``: docs/asyncapi.json, the AsyncAPI 3.0 document
  of the WebSocket and SSE protocol (PROTOCOL.md in machine-readable form).

Authenticated on purpose, though neither is a secret (both are in the
repository): every endpoint under ``/api/`` but the token one needs a login,
and an anonymous request gets the same 401 JSON here as anywhere else there.
None of these three is an operation of the REST API, so none is in the
OpenAPI schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.renderers import (
    OpenApiJsonRenderer,
    OpenApiJsonRenderer2,
    OpenApiYamlRenderer,
    OpenApiYamlRenderer2,
)
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

ASYNCAPI_DOCUMENT = Path(settings.BASE_DIR) / "docs" / "asyncapi.json"

# The docs page may run its own scripts and styles and talk to this origin, nothing else.
# Swagger UI sets inline styles on its elements, hence 'unsafe-inline' for styles only.
DOCS_PAGE_CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    )
)


class SchemaView(SpectacularAPIView):
    """The OpenAPI schema: JSON first, so that errors (401 ...) are JSON too."""

    permission_classes = (IsAuthenticated,)
    renderer_classes = (
        OpenApiJsonRenderer, OpenApiJsonRenderer2, OpenApiYamlRenderer, OpenApiYamlRenderer2,
    )

    @extend_schema(exclude=True)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class SchemaDocsView(SpectacularSwaggerSplitView):
    """Swagger UI for the schema, every asset local; errors as JSON like the rest of /api/."""

    permission_classes = (IsAuthenticated,)
    url_name = "api-schema"

    @extend_schema(exclude=True)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        response = super().get(request, *args, **kwargs)
        response["Content-Security-Policy"] = DOCS_PAGE_CSP
        return response

    def handle_exception(self, exc: Exception) -> Response:
        # The page renders HTML templates; a refusal is an API error and reads as one.
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return super().handle_exception(exc)


class AsyncApiView(APIView):
    """docs/asyncapi.json as it is in the repository, byte for byte."""

    permission_classes = (IsAuthenticated,)

    @extend_schema(exclude=True)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:
        response = HttpResponse(ASYNCAPI_DOCUMENT.read_bytes(), content_type="application/json")
        response["Content-Disposition"] = 'inline; filename="asyncapi.json"'
        return response
