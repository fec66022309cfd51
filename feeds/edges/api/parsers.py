"""Request body parsers that turn every malformed body into a 400, never a 500.

DRF's ``JSONParser`` only catches ``ValueError``: a deeply nested body raises
``RecursionError`` out of the decoder, and a lone surrogate (``"\\ud800"``)
decodes fine but then breaks the database driver or the JSON renderer further
down. Both end as HTTP 500 (docs/STACK.md, "Lone surrogates").
``SafeJSONParser`` raises ``ParseError`` for all of these, so the client gets
``400 {"detail": "..."}``.
"""

from __future__ import annotations

import math
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser, get_encoding
from rest_framework.utils import json


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    # 1e999 overflows to inf without passing through parse_constant.
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]} is out of range for a number")
    return value


def find_lone_surrogate(data: object) -> bool:
    """True when any string in ``data`` (keys included) holds a lone UTF-16 surrogate.

    Iterative rather than recursive: the decoder has already bounded the depth,
    but a second recursion here would be a second place to get it wrong.
    """
    stack: list[object] = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            # The ASCII check is the fast path; encode() is the real test,
            # since UTF-8 cannot carry a surrogate code point.
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


class SafeJSONParser(JSONParser):
    """A ``JSONParser`` whose every failure is a ``ParseError``.

    Rejected with ``ParseError`` (HTTP 400): bytes that are not valid in the
    request's charset, syntax errors, ``NaN`` / ``Infinity`` (also as an
    overflowing ``1e999``), integers too long to convert, nesting deeper
    than the interpreter's recursion limit, and lone surrogates anywhere in
    the document. The body size is already capped by Django's
    ``DATA_UPLOAD_MAX_MEMORY_SIZE`` before a parser sees it.
    """

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: dict[str, Any] | None = None,
    ) -> Any:
        encoding = get_encoding(parser_context or {})
        raw = stream.read() if stream is not None else b""
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as exc:
            raise ParseError(
                f"JSON parse error - the body is not valid {encoding}: {exc.reason} "
                f"at byte {exc.start}"
            ) from None
        try:
            data = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
        except RecursionError:
            raise ParseError("JSON parse error - the document is nested too deeply") from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        if find_lone_surrogate(data):
            raise ParseError(
                "JSON parse error - a string holds a lone surrogate (not valid Unicode)"
            )
        return data
