"""The OpenAPI description of the REST API (drf-spectacular), kept beside the views.

The views are plain ``APIView``s with explicit serializers, which
drf-spectacular cannot guess; each view method carries one of the decorators
below, or (the token, ticket and bar views) an ``extend_schema`` of its own
beside it, built from the pieces here. ``manage.py spectacular`` prints the
schema; the API contract test (tests/security/test_api_contract.py) runs
schemathesis against it. A logged-in user reads it at ``/api/schema/`` and
browses it with Swagger UI at ``/api/schema/docs/`` (``contracts.py``).
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers

from feeds.edges.api.serializers import InstrumentFilterSerializer, InstrumentOutputSerializer


class ErrorSerializer(serializers.Serializer):
    """Every error: ``{"detail": "..."}``, sometimes with per-field lists or ``symbols``."""

    detail = serializers.CharField()


class QuoteSerializer(serializers.Serializer):
    """A ``quote`` message of the wire protocol less ``type`` (documentation only)."""

    symbol = serializers.CharField()
    seq = serializers.IntegerField(min_value=1)
    bid = serializers.FloatField()
    ask = serializers.FloatField()
    bid_size = serializers.IntegerField(min_value=0)
    ask_size = serializers.IntegerField(min_value=0)
    last = serializers.FloatField()
    last_size = serializers.IntegerField(min_value=0)
    volume = serializers.IntegerField(min_value=0)
    ts = serializers.IntegerField(help_text="generation time, µs since the Unix epoch")


class InstrumentPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = InstrumentOutputSerializer(many=True)


SYMBOL = OpenApiParameter(
    "symbol", OpenApiTypes.STR, OpenApiParameter.PATH,
    description="case-insensitive; may contain / (plain or %2F)",
)
NEEDS_LOGIN = {401: ErrorSerializer, 403: ErrorSerializer}

instrument_list = extend_schema(
    operation_id="instrument_list",
    parameters=[
        InstrumentFilterSerializer,
        OpenApiParameter("page", OpenApiTypes.INT, description="1-based page number"),
        OpenApiParameter("page_size", OpenApiTypes.INT, description="1 to 1000, default 100"),
    ],
    responses={
        200: InstrumentPageSerializer,
        400: ErrorSerializer,
        404: ErrorSerializer,
        **NEEDS_LOGIN,
    },
)
instrument_detail = extend_schema(
    operation_id="instrument_detail",
    parameters=[SYMBOL],
    responses={200: InstrumentOutputSerializer, 404: ErrorSerializer, **NEEDS_LOGIN},
)
quote_list = extend_schema(
    operation_id="quote_list",
    parameters=[
        OpenApiParameter(
            "symbols", OpenApiTypes.STR,
            description="comma-separated symbols; absent: every active instrument",
        )
    ],
    responses={200: QuoteSerializer(many=True), 400: ErrorSerializer, **NEEDS_LOGIN},
)
quote_detail = extend_schema(
    operation_id="quote_detail",
    parameters=[SYMBOL],
    responses={200: QuoteSerializer, 404: ErrorSerializer, **NEEDS_LOGIN},
)
