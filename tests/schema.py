"""One checker for every server message a test sees: docs/asyncapi.json is its source.

The message schemas of the AsyncAPI document (JSON Schema draft 07) are the
one description of the wire; ``check_message`` validates against them and
keeps no copy of its own. On top of the document it holds the server to two
things a published schema leaves open on purpose:

- no field beyond those the document lists (the document lets clients ignore
  unknown fields, so that extensions stay additive; the server must document
  a field before it sends one);
- the rules between fields that JSON Schema cannot state, each written in the
  message's description: ``bid < ask``, ``prev_seq`` below ``seq - 1``,
  ``subscriptions`` sorted, and (when the caller passes tick sizes) prices on
  the tick grid.

``server_messages_checked`` routes every frame a live server sends a
``websockets`` client through the same check (tests/conftest.py turns it on
for every test).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator, validators
from jsonschema.exceptions import best_match

ASYNCAPI_PATH = Path(__file__).resolve().parents[1] / "docs" / "asyncapi.json"
# An integer on the wire is written as one: 5.0 is a number, not the seq 5 (JSON Schema
# would let it pass as an integer, since its value is whole).
_Validator = validators.extend(
    Draft7Validator,
    type_checker=Draft7Validator.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool)
    ),
)


@functools.cache
def asyncapi() -> dict[str, Any]:
    """The AsyncAPI document as published (do not change the returned value)."""
    with ASYNCAPI_PATH.open(encoding="utf-8") as f:
        doc: dict[str, Any] = json.load(f)
    return doc


def _consts(key: str) -> dict[str, str]:
    """Component message name by the constant its payload has under ``key`` (``type`` or ``op``)."""
    found = {}
    for name, message in asyncapi()["components"]["messages"].items():
        const = message["payload"]["properties"].get(key, {}).get("const")
        if const is not None:
            found[const] = name
    return found


def server_message_types() -> dict[str, str]:
    """``type`` of every server message -> its name under ``components/messages``."""
    return _consts("type")


def request_ops() -> dict[str, str]:
    """``op`` of every client request -> its name under ``components/messages``."""
    return _consts("op")


def payload_schema(name: str) -> dict[str, Any]:
    """The payload schema of ``components/messages/<name>`` as the document has it."""
    schema: dict[str, Any] = asyncapi()["components"]["messages"][name]["payload"]
    return schema


def component_schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = asyncapi()["components"]["schemas"][name]
    return schema


def _consts_of(schema: dict[str, Any]) -> frozenset[str]:
    return frozenset(option["const"] for option in schema["oneOf"])


ERROR_CODES = _consts_of(component_schema("ErrorCode"))
STATES = _consts_of(component_schema("State"))
QUOTE_FIELDS = frozenset(payload_schema("quote")["required"])


def _inline(node: Any, doc: dict[str, Any]) -> Any:
    """``node`` with every local ``$ref`` replaced by its target (the document has no cycles).

    Draft 07 ignores the siblings of a ``$ref``, so this validates the same; it
    only spares the validator a lookup per field per message.
    """
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            target: Any = doc
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            return _inline(target, doc)
        return {key: _inline(value, doc) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline(value, doc) for value in node]
    return node


@functools.cache
def _validators(strict: bool) -> dict[str, Any]:
    """A validator per component message. ``strict``: server payloads admit no other field."""
    doc = asyncapi()
    found = {}
    for name, message in doc["components"]["messages"].items():
        schema = _inline(message["payload"], doc)
        if strict and "type" in schema["properties"]:
            schema["additionalProperties"] = False
        found[name] = _Validator(schema)
    return found


def _validate(name: str, msg: dict[str, Any], *, strict: bool) -> None:
    validator = _validators(strict)[name]
    if validator.is_valid(msg):
        return
    error = best_match(validator.iter_errors(msg))
    where = "/".join(str(p) for p in error.absolute_path) or "(message)"
    raise AssertionError(
        f"{name} does not match docs/asyncapi.json at {where}: {error.message}: {msg}"
    )


def check_message(msg: Any, tick_sizes: dict[str, str] | None = None) -> dict[str, Any]:
    """Assert ``msg`` is a server message as docs/asyncapi.json describes it; return it."""
    assert isinstance(msg, dict), f"a server message is a JSON object: {msg!r}"
    kind = msg.get("type")
    types = server_message_types()
    assert kind in types, f"unknown message type: {msg}"
    _validate(types[kind], msg, strict=True)
    if kind in ("quote", "snapshot"):
        assert msg["bid"] < msg["ask"], f"bid not below ask: {msg}"
        if "prev_seq" in msg:  # a gap marker: the seq the client had, never one that follows on
            assert msg["prev_seq"] < msg["seq"] - 1, f"prev_seq marks no gap: {msg}"
        if tick_sizes and msg["symbol"] in tick_sizes:
            tick = Decimal(tick_sizes[msg["symbol"]])
            for f in ("bid", "ask", "last"):
                assert Decimal(repr(msg[f])) % tick == 0, f"{f} off the tick grid: {msg}"
    elif kind == "subscriptions":
        assert msg["symbols"] == sorted(msg["symbols"]), f"subscriptions not sorted: {msg}"
    return msg


def check_request(msg: Any) -> dict[str, Any]:
    """Assert ``msg`` is a valid client request per docs/asyncapi.json; return it."""
    assert isinstance(msg, dict), f"a request is a JSON object: {msg!r}"
    ops = request_ops()
    assert msg.get("op") in ops, f"unknown op: {msg}"
    _validate(ops[msg["op"]], msg, strict=False)
    return msg


# Frames already found valid: a live test's frame is seen by the hook and then by the test's
# own decode_frame, and every subscriber of a symbol gets the same quote text. Checking each
# text once keeps a reader that validates as fast as one that does not.
_VALID_TEXTS: collections.OrderedDict[str, None] = collections.OrderedDict()
_VALID_TEXTS_KEPT = 4096


def decode_frame(text: str) -> list[dict[str, Any]]:
    """A frame is one object or an array of objects (PROTOCOL.md, "Frames"), each checked."""
    data = json.loads(text)
    items = data if isinstance(data, list) else [data]
    if text in _VALID_TEXTS:
        _VALID_TEXTS.move_to_end(text)
        return items
    checked = [check_message(item) for item in items]
    _VALID_TEXTS[text] = None
    if len(_VALID_TEXTS) > _VALID_TEXTS_KEPT:
        _VALID_TEXTS.popitem(last=False)
    return checked


def decode_binary_frame(payload: bytes) -> list[dict[str, Any]]:
    """A MessagePack frame (PROTOCOL.md, "MessagePack frames"): a map, or an array of maps."""
    import msgpack

    data = msgpack.unpackb(payload, raw=False)
    items = data if isinstance(data, list) else [data]
    return [check_message(item) for item in items]


def frame_violations(data: str | bytes) -> list[str]:
    """What is wrong with one frame a server sent, per the document: nothing, or the reasons."""
    try:
        if isinstance(data, bytes) and data.lstrip()[:1] not in (b"{", b"["):
            decode_binary_frame(data)
        else:
            decode_frame(data.decode() if isinstance(data, bytes) else data)
    except (AssertionError, ValueError) as exc:  # ValueError: not JSON / MessagePack at all
        return [f"{type(exc).__name__}: {exc}"]
    return []


def _is_quote_stream(connection: Any) -> bool:
    request = getattr(connection, "request", None)
    return request is not None and request.path.startswith("/ws/quotes/")


@contextlib.contextmanager
def server_messages_checked() -> Iterator[list[str]]:
    """While active, every frame a ``websockets`` client receives on ``/ws/quotes/`` is checked.

    Yields the list of violations found so far. The frame is still handed to
    the caller as it came, so a test (or the Python client under test) sees
    what it would see without the check; the caller of this context asserts
    the list is empty at the end.
    """
    from websockets.asyncio.client import ClientConnection

    violations: list[str] = []
    original = ClientConnection.recv

    @functools.wraps(original)
    async def recv(self: ClientConnection, *args: Any, **kwargs: Any) -> str | bytes:
        data = await original(self, *args, **kwargs)
        if _is_quote_stream(self):
            for problem in frame_violations(data):
                violations.append(f"{self.request.path.split('?')[0]}: {problem}")
        return data

    ClientConnection.recv = recv  # type: ignore[method-assign]
    try:
        yield violations
    finally:
        ClientConnection.recv = original  # type: ignore[method-assign]
