"""``/api/watchlists/``: the user's named symbol lists (PROTOCOL.md "Watchlists").

``GET`` lists them, ``POST`` creates one; ``GET``, ``PUT`` (rename and/or
replace the symbols) and ``DELETE`` one by id. A user sees and changes only
their own: another user's id is 404, as if it did not exist. The rules and
the broadcast that reaches the user's open feed connections are
``feeds.watchlists``'; this shell validates shapes and maps refusals to
``400 {"detail": ..., "<field>": [...]}`` (unknown symbols:
``{"detail": "unknown symbol(s): JPM", "symbols": ["JPM"]}``).
Authenticated by token or session (a session write needs its CSRF token).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, OpenApiTypes, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from feeds import watchlists
from feeds.edges.api import schema
from feeds.models import Watchlist

# A symbol longer than this is no symbol (the protocol's are 20); the cap keeps errors short.
MAX_SYMBOL_CHARS = 40
MAX_ID = 2**63 - 1  # a bigger id is none, and would overflow the database's integer


class WatchlistInputSerializer(serializers.Serializer):
    name = serializers.CharField(
        max_length=watchlists.MAX_NAME_CHARS, help_text="1 to 60 characters, unique per user"
    )
    symbols = serializers.ListField(
        child=serializers.CharField(max_length=MAX_SYMBOL_CHARS),
        allow_empty=True,
        help_text="in the order to keep; case-insensitive, each once, at most FEED_MAX_SYMBOLS",
    )

    def validate_symbols(self, value: list[str]) -> list[str]:
        limit = settings.FEED_MAX_SYMBOLS
        if len(value) > limit:
            raise serializers.ValidationError(f"A watchlist holds at most {limit} symbols.")
        return value


class WatchlistChangeSerializer(WatchlistInputSerializer):
    """A PUT: the fields it names are replaced, the others kept; at least one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False


class WatchlistOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    symbols = serializers.ListField(child=serializers.CharField())
    updated = serializers.DateTimeField(help_text="when it was last written, UTC")


class Refused(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid"

    def __init__(self, error: watchlists.WatchlistError) -> None:
        body: dict[str, Any] = {"detail": error.detail}
        if error.symbols is not None:
            body["symbols"] = error.symbols
        else:
            body[error.field] = [error.detail]
        super().__init__(body)


class NotYours(exceptions.NotFound):
    default_detail = "No such watchlist."


def _input(request: Request, *, partial: bool) -> dict[str, Any]:
    kind = WatchlistChangeSerializer if partial else WatchlistInputSerializer
    data = kind(data=request.data)
    data.is_valid(raise_exception=True)
    values: dict[str, Any] = dict(data.validated_data)
    if partial and not values:
        raise exceptions.ValidationError({"detail": "Give 'name', 'symbols' or both."})
    return values


def _own(request: Request, pk: int) -> Watchlist:
    row = watchlists.get(request.user, pk) if 0 < pk <= MAX_ID else None
    if row is None:
        raise NotYours()
    return row


ID = OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH)
REFUSED = {400: schema.ErrorSerializer, **schema.NEEDS_LOGIN}


class WatchlistListApi(APIView):
    """GET: the user's lists, oldest first; POST ``{"name", "symbols"}``: a new one (201)."""

    @extend_schema(
        operation_id="watchlist_list",
        responses={200: WatchlistOutputSerializer(many=True), **schema.NEEDS_LOGIN},
    )
    def get(self, request: Request) -> Response:
        return Response(watchlists.lists_of(request.user.pk))

    @extend_schema(
        operation_id="watchlist_create",
        request=WatchlistInputSerializer,
        responses={201: WatchlistOutputSerializer, 415: schema.ErrorSerializer, **REFUSED},
    )
    def post(self, request: Request) -> Response:
        values = _input(request, partial=False)
        try:
            row = watchlists.create(request.user, **values)
        except watchlists.WatchlistError as exc:
            raise Refused(exc) from None
        return Response(watchlists.as_dict(row), status=status.HTTP_201_CREATED)


class WatchlistDetailApi(APIView):
    """GET one list; PUT ``{"name"}``, ``{"symbols"}`` or both: replaces those; DELETE (204)."""

    @extend_schema(
        operation_id="watchlist_detail",
        parameters=[ID],
        responses={200: WatchlistOutputSerializer, 404: schema.ErrorSerializer,
                   **schema.NEEDS_LOGIN},
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(watchlists.as_dict(_own(request, pk)))

    @extend_schema(
        operation_id="watchlist_update",
        parameters=[ID],
        request=WatchlistChangeSerializer,
        responses={200: WatchlistOutputSerializer, 404: schema.ErrorSerializer,
                   415: schema.ErrorSerializer, **REFUSED},
    )
    def put(self, request: Request, pk: int) -> Response:
        row = _own(request, pk)
        values = _input(request, partial=True)
        try:
            row = watchlists.update(request.user, row, **values)
        except watchlists.WatchlistError as exc:
            raise Refused(exc) from None
        return Response(watchlists.as_dict(row))

    @extend_schema(
        operation_id="watchlist_delete",
        parameters=[ID],
        responses={204: None, 404: schema.ErrorSerializer, **schema.NEEDS_LOGIN},
    )
    def delete(self, request: Request, pk: int) -> Response:
        watchlists.delete(request.user, _own(request, pk))
        return Response(status=status.HTTP_204_NO_CONTENT)
