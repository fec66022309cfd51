"""The REST API of PROTOCOL.md, one view per operation.

Every view but ``TokenCreateApi`` needs an authenticated user (token or
session, from the ``REST_FRAMEWORK`` defaults): anonymous calls are
``401 {"detail": ...}``. Symbols in URLs and query strings are matched
case-insensitively (upper-cased, as the wire protocol answers them) and may
contain ``/``. Latest quotes come from the quote store, never the database;
the database only says which symbols exist.

Entitlements (PROTOCOL.md "Entitlements"): an instrument the user may not
see does not exist for them. Lists leave it out, a detail URL is 404 and a
``?symbols=`` list naming it is 400 ``unknown symbol(s)``, exactly as for a
symbol that names no instrument, so the API never tells which exist.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth import authenticate
from django.db.models import Q, QuerySet
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.parsers import FormParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from feeds import auth, services
from feeds.core.protocol import is_symbol, quote_fields
from feeds.edges.api import schema
from feeds.edges.api.pagination import InstrumentPagination
from feeds.edges.api.parsers import SafeJSONParser
from feeds.edges.api.serializers import (
    InstrumentFilterSerializer,
    InstrumentOutputSerializer,
    TokenInputSerializer,
)
from feeds.entitlements import visible_instruments, visible_symbols_among
from feeds.models import Instrument
from feeds.publish.build import get_store

logger = logging.getLogger(__name__)

# Twisted drops request heads over 16 KiB (docs/STACK.md, "Request heads"), so daphne never
# delivers this many; the cap bounds the work under any other server.
MAX_QUOTE_SYMBOLS = 10_000


class BadCredentials(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "Unable to log in with the provided credentials."
    default_code = "invalid_credentials"


class UnknownSymbols(exceptions.APIException):
    """400 naming every unknown symbol of a ``?symbols=`` list."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "unknown_symbol"

    def __init__(self, symbols: list[str]) -> None:
        super().__init__({"detail": f"unknown symbol(s): {', '.join(symbols)}", "symbols": symbols})


def normalize_symbol(raw: str) -> str:
    return raw.strip().upper()


def _instrument_or_404(raw_symbol: str, user: Any) -> Instrument:
    """The instrument of ``raw_symbol`` if ``user`` may see it; otherwise 404, as if unknown."""
    symbol = normalize_symbol(raw_symbol)
    if is_symbol(symbol):
        instrument = visible_instruments(Instrument.objects.filter(symbol=symbol), user).first()
        if instrument is not None:
            return instrument
    raise Http404(f"unknown symbol: {symbol}")


def _latest_quotes(symbols: list[str]) -> dict[str, tuple[int, str]]:
    # The store is async (shared with the consumers); DRF views are sync.
    return async_to_sync(get_store().latest)(symbols)


class LoginLocked(exceptions.Throttled):
    """429 with ``Retry-After``: this username or address is locked out (``feeds.auth``)."""

    default_code = "locked_out"


class NoTokenToRevoke(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = (
        "This request carries no API token: send it as 'Authorization: Token ...', "
        "or ?all=1 to revoke every token of yours."
    )
    default_code = "no_token"


class TokenIssuedSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="shown this once; the server keeps only its hash")
    expiry = serializers.DateTimeField(help_text="when the token stops working")


class TokensRevokedSerializer(serializers.Serializer):
    revoked = serializers.IntegerField(help_text="how many tokens were revoked")


class TicketSerializer(serializers.Serializer):
    ticket = serializers.CharField(help_text="?ticket= on /ws/quotes/ or /sse/quotes/, once")
    expires_in = serializers.FloatField(help_text="seconds within which to use it")


class TokenCreateApi(APIView):
    """POST /api/token/ ``{"username", "password"}`` → ``{"token": "...", "expiry": "..."}``.

    Each call issues a new token (one per device; earlier ones stay valid
    until they expire or are revoked). The server stores only its hash, so
    this answer is the only place the token ever appears. JSON or
    form-encoded body. Missing fields, bad credentials (or an inactive user)
    and any malformed or hostile body are 400 ``{"detail": ...}``; a username
    or address with too many failed logins is 429 with ``Retry-After``
    (``feeds.logins.LoginAttempts``), whatever the password. The only anonymous
    endpoint.
    """

    # No authentication at all: SessionAuthentication would demand a CSRF
    # token from a browser that happens to be logged in.
    authentication_classes = ()
    permission_classes = (AllowAny,)
    parser_classes = (SafeJSONParser, FormParser)

    @extend_schema(
        operation_id="token_create",
        request=TokenInputSerializer,
        responses={
            200: TokenIssuedSerializer,
            400: schema.ErrorSerializer,
            415: schema.ErrorSerializer,
            429: schema.ErrorSerializer,
        },
        auth=[],
    )
    def post(self, request: Request) -> Response:
        data = TokenInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        username = data.validated_data["username"]
        # The Django request: django-axes counts failures and flags lockouts on it.
        http_request = request._request
        user = authenticate(
            http_request, username=username, password=data.validated_data["password"]
        )
        if user is None:
            if getattr(http_request, "axes_locked_out", False):
                logger.info("token refused for username %r: locked out", username)
                raise LoginLocked(
                    wait=getattr(http_request, "feeds_retry_after", None),
                    detail="Too many failed logins: this account or address is locked.",
                )
            logger.info("token refused for username %r: bad credentials", username)
            raise BadCredentials()
        token, row = auth.issue_token(user)
        logger.info("API token issued to user %s (expires %s)", user.pk, row.expiry)
        return Response(
            TokenIssuedSerializer({"token": token, "expiry": row.expiry}).data
        )


class TokenRevokeApi(APIView):
    """POST /api/token/revoke/: revoke the token this request carries; ``?all=1``: every token.

    ``{"revoked": N}``. Feed connections opened with a revoked token close
    with 4401 (``feeds.auth``, "Revocation"). A request without a token (a
    session) must say ``?all=1``: otherwise 400, since it names no token.
    """

    @extend_schema(
        operation_id="token_revoke",
        request=None,
        parameters=[
            OpenApiParameter(
                "all", OpenApiTypes.BOOL, description="revoke every token of the user"
            )
        ],
        responses={200: TokensRevokedSerializer, 400: schema.ErrorSerializer, **schema.NEEDS_LOGIN},
    )
    def post(self, request: Request) -> Response:
        every = request.query_params.get("all", "").lower() in ("1", "true", "yes")
        user = request.user
        if every:
            revoked, _ = user.auth_token_set.all().delete()
        elif request.auth is not None and hasattr(request.auth, "digest"):
            revoked, _ = type(request.auth).objects.filter(digest=request.auth.digest).delete()
        else:
            raise NoTokenToRevoke()
        logger.info("user %s revoked %d API token(s)%s", user.pk, revoked, " (all)" * every)
        return Response(TokensRevokedSerializer({"revoked": revoked}).data)


class TicketCreateApi(APIView):
    """POST /api/ws-ticket/ → ``{"ticket": "...", "expires_in": 30}``.

    A one-time credential for ``?ticket=`` on ``/ws/quotes/`` or
    ``/sse/quotes/``: it admits one handshake within ``FEED_WS_TICKET_TTL_S``
    and never again, so no long-lived token goes into a URL. Authenticated by
    token or session (a session POST needs its CSRF token, as DRF checks).
    """

    @extend_schema(
        operation_id="ws_ticket_create",
        request=None,
        responses={200: TicketSerializer, **schema.NEEDS_LOGIN},
    )
    def post(self, request: Request) -> Response:
        ttl = float(settings.FEED_WS_TICKET_TTL_S)
        ticket = auth.issue_ticket(request.user)
        return Response({"ticket": ticket, "expires_in": int(ttl) if ttl.is_integer() else ttl})


def _instruments_matching(filters: dict[str, Any]) -> QuerySet[Instrument]:
    queryset = Instrument.objects.order_by("symbol")
    search = filters.get("search")
    if search:
        queryset = queryset.filter(Q(symbol__icontains=search) | Q(name__icontains=search))
    if filters.get("asset_class"):
        queryset = queryset.filter(asset_class=filters["asset_class"])
    if filters.get("active") is not None:
        queryset = queryset.filter(active=filters["active"])
    return queryset


class InstrumentListApi(APIView):
    """GET /api/instruments/: every instrument, by symbol, paginated.

    ``?search=`` matches symbol or name (case-insensitive substring),
    ``?asset_class=`` one of the asset classes, ``?active=true|false``; an
    invalid filter value is 400. Pages: ``InstrumentPagination``.
    """

    @schema.instrument_list
    def get(self, request: Request) -> Response:
        filters = InstrumentFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        queryset = visible_instruments(_instruments_matching(filters.validated_data), request.user)
        paginator = InstrumentPagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(InstrumentOutputSerializer(page, many=True).data)


class InstrumentDetailApi(APIView):
    """GET /api/instruments/{symbol}/: one instrument, or 404 for an unknown symbol."""

    @schema.instrument_detail
    def get(self, request: Request, symbol: str) -> Response:
        return Response(InstrumentOutputSerializer(_instrument_or_404(symbol, request.user)).data)


def _requested_symbols(values: Iterable[str]) -> list[str]:
    """``?symbols=A,B`` (possibly repeated) as upper-case symbols, in order, once each."""
    seen: dict[str, None] = {}
    for value in values:
        for item in value.split(","):
            symbol = normalize_symbol(item)
            if symbol:
                seen.setdefault(symbol, None)
    return list(seen)


class QuoteListApi(APIView):
    """GET /api/quotes/?symbols=A,B: the latest quote of each symbol, as a list.

    Each element is a ``quote`` message's fields less ``type``. With
    ``symbols`` the list follows the order asked (duplicates removed); without
    it, every active instrument by symbol. A known symbol with no quote yet
    (the ticker has not quoted it since the store started) is left out of the
    list rather than failing the request. An empty ``symbols``, more than
    ``MAX_QUOTE_SYMBOLS`` of them, or any unknown symbol is 400; the last
    names them all: ``{"detail": "unknown symbol(s): X, Y", "symbols": [...]}``.
    """

    @schema.quote_list
    def get(self, request: Request) -> Response:
        if "symbols" in request.query_params:
            symbols = self._known(
                _requested_symbols(request.query_params.getlist("symbols")), request.user
            )
        else:
            active = visible_instruments(services.instruments_active(), request.user)
            symbols = list(active.order_by("symbol").values_list("symbol", flat=True))
        latest = _latest_quotes(symbols)
        return Response([quote_fields(latest[s][1]) for s in symbols if s in latest])

    @staticmethod
    def _known(symbols: list[str], user: Any) -> list[str]:
        if not symbols:
            raise exceptions.ValidationError({"symbols": ["Give at least one symbol: A,B,..."]})
        if len(symbols) > MAX_QUOTE_SYMBOLS:
            raise exceptions.ValidationError(
                {"symbols": [f"At most {MAX_QUOTE_SYMBOLS} symbols per request."]}
            )
        known = visible_symbols_among(symbols, user)
        unknown = [s for s in symbols if s not in known]
        if unknown:
            raise UnknownSymbols(unknown)
        return symbols



class QuoteDetailApi(APIView):
    """GET /api/quotes/{symbol}/: the latest quote of one symbol.

    404 for an unknown symbol, and 404 saying so for a known symbol that has
    no quote yet.
    """

    @schema.quote_detail
    def get(self, request: Request, symbol: str) -> Response:
        instrument = _instrument_or_404(symbol, request.user)
        latest = _latest_quotes([instrument.symbol])
        if instrument.symbol not in latest:
            raise Http404(f"no quote yet for {instrument.symbol}")
        return Response(quote_fields(latest[instrument.symbol][1]))
