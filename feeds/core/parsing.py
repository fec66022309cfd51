"""Client frames parsed into typed requests (docs/PROTOCOL.md, "Requests"). Plain Python only.

``parse_client_frame`` turns one text frame into a ``Request`` of
``feeds.core.protocol``, or raises ``ProtocolError`` for anything the
contract calls an error: bad JSON, a frame nested too deep, an unknown
``op``, a bad field. ``readable_id`` recovers a request's ``id`` from a
frame that failed, so the error can still echo it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from itertools import accumulate
from typing import Any, TypeGuard

from feeds.core.protocol import (
    MAX_JSON_DEPTH,
    MAX_THROTTLE_MS,
    OPS,
    WILDCARD,
    Auth,
    ErrorCode,
    ListSubscriptions,
    Ping,
    ProtocolError,
    Request,
    RequestId,
    Subscribe,
    Unsubscribe,
    Watchlists,
)

# A JSON string, or an unterminated one running to the end of the text.
_STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"?', re.DOTALL)
_NOT_BRACKET_RE = re.compile(r"[^\[\]{}]+")
_BRACKET_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def too_deep(text: str) -> bool:
    """True when brackets outside strings nest deeper than ``MAX_JSON_DEPTH``, valid JSON or not."""
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return False  # the fast path: every real request
    brackets = _NOT_BRACKET_RE.sub("", _STRING_RE.sub("", text))
    # A stray closer only lowers the running count, and the decoder stops at it
    # anyway: the maximum is never below the depth the decoder would reach.
    return max(accumulate(map(_BRACKET_STEP.__getitem__, brackets)), default=0) > MAX_JSON_DEPTH


def parse_client_frame(text: str) -> Request:
    """Parse one client text frame; raise ``ProtocolError`` for anything invalid."""
    if too_deep(text):
        raise ProtocolError(
            ErrorCode.BAD_REQUEST, f"the JSON is nested more than {MAX_JSON_DEPTH} levels deep"
        )
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:  # not reached below MAX_JSON_DEPTH; kept as a guard
        raise ProtocolError(ErrorCode.BAD_REQUEST, "the JSON is nested too deeply") from None
    except ValueError as exc:
        raise ProtocolError(ErrorCode.BAD_JSON, f"not valid JSON: {exc}") from None
    return parse_request(data)


def parse_request(data: object) -> Request:
    """Validate a decoded request: a JSON text's, or a MessagePack frame's (wire_formats.py)."""
    if not isinstance(data, dict):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "a request is a JSON object")
    request_id = _request_id(data)
    op = data.get("op")
    if not isinstance(op, str) or op not in OPS:
        shown = op if isinstance(op, str) and len(op) <= 40 else type(op).__name__
        raise ProtocolError(
            ErrorCode.BAD_REQUEST,
            f"unknown op {shown!r}; expected one of {', '.join(OPS)}",
            request_id=request_id,
        )
    if op == "subscribe":
        return _subscribe(data, request_id)
    if op == "unsubscribe":
        symbols, wildcard = _symbols(data, request_id)
        return Unsubscribe(symbols, request_id, wildcard)
    if op == "list":
        return ListSubscriptions(request_id)
    if op == "ping":
        return Ping(request_id)
    if op == "watchlists":
        follow = data.get("follow", True)
        if not isinstance(follow, bool):
            raise _bad("'follow' must be true or false", request_id)
        return Watchlists(request_id, follow)
    token = data.get("token")
    if not isinstance(token, str) or not token:
        raise ProtocolError(
            ErrorCode.BAD_REQUEST, "auth needs a 'token' string", request_id=request_id
        )
    return Auth(token, request_id)


def readable_id(text: str) -> RequestId:
    """The ``id`` of a frame that failed for another reason, when it can be read at all."""
    if too_deep(text):
        return None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if isinstance(data, dict):
        value = data.get("id")
        if _is_id(value):
            return value
    return None


def _is_id(value: object) -> TypeGuard[str | int]:
    return isinstance(value, str | int) and not isinstance(value, bool)


def _request_id(data: dict[str, Any]) -> RequestId:
    if "id" not in data or data["id"] is None:
        return None
    value = data["id"]
    if not _is_id(value):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "'id' must be a string or an integer")
    return value


def _subscribe(data: dict[str, Any], request_id: RequestId) -> Subscribe:
    symbols, wildcard = _symbols(data, request_id)
    since, epoch = _since(data, request_id)
    if since is not None and not wildcard:
        check_since(since, symbols, request_id)
    return Subscribe(
        symbols,
        request_id,
        wildcard=wildcard,
        throttle_ms=_throttle_ms(data, request_id),
        since=since,
        epoch=epoch,
    )


def _bad(message: str, request_id: RequestId) -> ProtocolError:
    return ProtocolError(ErrorCode.BAD_REQUEST, message, request_id=request_id)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _throttle_ms(data: dict[str, Any], request_id: RequestId) -> int:
    value = data.get("throttle_ms", 0)
    if not _is_int(value) or not 0 <= value <= MAX_THROTTLE_MS:
        raise _bad(f"'throttle_ms' must be an integer from 0 to {MAX_THROTTLE_MS}", request_id)
    return value


def _since(data: dict[str, Any], request_id: RequestId) -> tuple[dict[str, int] | None, str | None]:
    """``since`` and ``epoch`` of a resume request, or (None, None) when it has no ``since``."""
    raw = data.get("since")
    if raw is None:
        return None, None
    if not isinstance(raw, dict):
        raise _bad("'since' must be an object of symbol -> seq", request_id)
    epoch = data.get("epoch")
    if not isinstance(epoch, str):
        raise _bad("'since' needs the 'epoch' (a string) its seqs belong to", request_id)
    since: dict[str, int] = {}
    for key, seq in raw.items():
        if not _is_int(seq) or seq < 0:
            raise _bad("every seq in 'since' must be an integer >= 0", request_id)
        symbol = key.strip().upper()
        if symbol in since:
            raise _bad(f"'since' names {symbol[:40]!r} twice", request_id)
        since[symbol] = seq
    return since, epoch


def check_since(since: dict[str, int], symbols: Iterable[str], request_id: RequestId) -> None:
    """Raise ``bad_request`` when ``since`` names a symbol the request does not subscribe."""
    wanted = set(symbols)
    stray = [s for s in since if s not in wanted]
    if stray:
        shown = ", ".join(s[:40] for s in stray[:10])
        raise _bad(f"'since' names symbols this request does not subscribe: {shown}", request_id)


def _symbols(data: dict[str, Any], request_id: RequestId) -> tuple[tuple[str, ...], bool]:
    """The named symbols (upper-case, deduplicated, in order) and whether ``"*"`` was among them."""
    raw = data.get("symbols")
    if not isinstance(raw, list) or not raw:
        raise ProtocolError(
            ErrorCode.BAD_REQUEST,
            "'symbols' must be a non-empty list of strings",
            request_id=request_id,
        )
    seen: dict[str, None] = {}
    for item in raw:
        if not isinstance(item, str):
            raise ProtocolError(
                ErrorCode.BAD_REQUEST, "every symbol must be a string", request_id=request_id
            )
        seen.setdefault(item.strip().upper(), None)
    wildcard = WILDCARD in seen
    seen.pop(WILDCARD, None)
    return tuple(seen), wildcard
