"""What a ``Session`` and its driver hand each other, and the rules a subscribe is checked by.

A session decides and its driver (``feeds.deliver.connection``) does the
I/O; between them pass plain values: the ``Limits`` in force, an
``Opening`` (symbols on their way in, with how they resume), and the
``Action`` a session asks for (a ``Close``, instruments to take into a
wildcard, licences to re-check). Plain Python.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from feeds.core import parsing, protocol
from feeds.core.protocol import CloseCode, ErrorCode, ProtocolError, RequestId
from feeds.deliver.resume import Resume, Since

# A max-age reconnect comes up to this fraction of the maximum age late, at
# random: connections opened together (after a deploy) then leave spread out.
MAX_AGE_JITTER = 0.1

Active = dict[str, bool]  # symbol -> trading (False: halted)
Visible = set[str] | None  # the symbols a user may see; None: every instrument


@dataclass(frozen=True, slots=True)
class Limits:
    max_symbols: int
    heartbeat_s: float
    max_connection_age_s: float = 0.0  # 0: no maximum
    reconnect_grace_s: float = 5.0


@dataclass(frozen=True, slots=True)
class Close:
    """End the stream: ``farewell`` (if any) straight to the client, then close with ``code``."""

    code: CloseCode
    farewell: str | None = None


@dataclass(frozen=True, slots=True)
class AddToWildcard:
    """Instruments newly listed: the driver finds which of them ``*`` covers for this user."""

    symbols: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RecheckEntitlements:
    """The user's licences may have shrunk: the driver reads what they may see now."""


Action = Close | AddToWildcard | RecheckEntitlements


@dataclass(frozen=True, slots=True)
class Opening:
    """Symbols on their way in: routed here, their starts being read."""

    symbols: tuple[str, ...]
    new: tuple[str, ...]  # those not routed here before: the hub must join their groups
    active: Active
    throttle_ms: int
    request_id: RequestId = None
    resume: Resume | None = None


def refuse_unknown(
    symbols: tuple[str, ...] | list[str], known: Active, request_id: RequestId
) -> None:
    """Raise ``unknown_symbol`` naming every symbol of the request that is not an instrument."""
    unknown = tuple(s for s in symbols if s not in known)
    if unknown:
        raise ProtocolError(
            ErrorCode.UNKNOWN_SYMBOL,
            "unknown symbol(s): " + ", ".join(unknown),
            request_id=request_id,
            symbols=unknown,
        )


def refuse_not_entitled(symbols: tuple[str, ...], visible: Visible, request_id: RequestId) -> None:
    """Raise ``not_entitled`` naming every symbol of the request ``visible`` leaves out."""
    if visible is None:
        return
    refused = tuple(s for s in symbols if s not in visible)
    if refused:
        shown = ", ".join(refused[:20]) + (", ..." if len(refused) > 20 else "")
        raise ProtocolError(
            ErrorCode.NOT_ENTITLED,
            "not entitled to: " + shown,
            request_id=request_id,
            symbols=refused,
        )


def check_subscribe(
    request: protocol.Subscribe,
    subscribed: Collection[str],
    limits: Limits,
    *,
    active: Active,
    visible: Visible,
    covered: Active | None,
) -> Opening:
    """The opening of a subscribe, or its error: unknown, not entitled, ``since``, too many.

    ``active``: the named symbols that are instruments; ``visible``: what the
    user may see; ``covered``: what ``*`` covers (read only for a wildcard).
    """
    symbols = request.symbols
    refuse_unknown(symbols, active, request.id)
    refuse_not_entitled(symbols, visible, request.id)
    if request.wildcard:
        covered = covered or {}
        symbols += tuple(sorted(s for s in covered if s not in active))
        active = covered | active
        if request.since is not None:
            parsing.check_since(request.since, symbols, request.id)
    new = tuple(s for s in symbols if s not in subscribed)
    limit = limits.max_symbols
    if len(subscribed) + len(new) > limit:
        raise ProtocolError(
            ErrorCode.TOO_MANY_SYMBOLS,
            f"at most {limit} symbols per connection; {len(subscribed)} already subscribed",
            request_id=request.id,
            symbols=new,
        )
    resume = Since(request.since, request.epoch) if request.since is not None else None
    return Opening(symbols, new, active, request.throttle_ms, request.id, resume)


def wildcard_addition(
    covered: Active, subscribed: Collection[str], limits: Limits, throttle_ms: int
) -> tuple[Opening | None, ProtocolError | None]:
    """New instruments ``*`` covers as an opening within ``max_symbols``; the error for the rest."""
    fresh = tuple(s for s in covered if s not in subscribed)
    room = max(0, limits.max_symbols - len(subscribed))
    refused = None
    if len(fresh) > room:
        refused = ProtocolError(
            ErrorCode.TOO_MANY_SYMBOLS,
            f"new instruments left out of '*': at most {room} more symbols",
            symbols=fresh[room:],
        )
        fresh = fresh[:room]
    return (Opening(fresh, fresh, covered, throttle_ms) if fresh else None), refused
