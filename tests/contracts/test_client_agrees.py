"""The Python client (marketfeed_client) reads and sends what docs/asyncapi.json describes.

The client's code is read, not changed: which message types its dispatcher
handles, which fields each handler reads, which values it compares with,
which requests it sends. Each must exist in the document with the type the
client expects, so a change on either side that breaks the other fails here.
The document's own examples then go through the client's parsers.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import types
import typing
from collections.abc import Iterator
from typing import Any

import pytest

from marketfeed_client import client as client_module
from marketfeed_client import messages
from tests.schema import (
    ERROR_CODES,
    STATES,
    asyncapi,
    payload_schema,
    request_ops,
    server_message_types,
)

# Server messages the client has no handler for, and why it needs none.
NOT_HANDLED = {
    "heartbeat": "any frame resets the client's silence timer; a heartbeat carries nothing else",
    "unsubscribed": "the client never sends unsubscribe",
    "subscriptions": "the client never sends list",
    "pong": "the client never sends ping",
    "watchlists": "the client never sends the watchlists op (an opt-in extension)",
}
# What a reply answers: the client must send the request to need the reply.
REPLY_TO = {
    "unsubscribed": "unsubscribe", "subscriptions": "list", "pong": "ping",
    "watchlists": "watchlists",
}
JSON_TYPE = {int: "integer", float: "number", str: "string", bool: "boolean"}


def tree_of(obj: Any) -> ast.Module:
    return ast.parse(inspect.getsource(obj))


def functions(module: types.ModuleType) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    return {
        node.name: node
        for node in ast.walk(tree_of(module))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def is_type_of_msg(node: ast.AST) -> bool:
    """``kind`` (the dispatcher's name for it), ``msg.get("type")`` or ``msg["type"]``."""
    if isinstance(node, ast.Name):
        return node.id == "kind"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr == "get" and _const(node.args[0] if node.args else None) == "type"
    if isinstance(node, ast.Subscript):
        return _const(node.slice) == "type"
    return False


def _const(node: ast.AST | None) -> Any:
    return node.value if isinstance(node, ast.Constant) else None


def dispatch() -> dict[str, set[str]]:
    """Message type -> the client methods its branch of ``_on_message`` calls."""
    routes: dict[str, set[str]] = {}
    on_message = functions(client_module)["_on_message"]
    for branch in ast.walk(on_message):
        if not isinstance(branch, ast.If):
            continue
        kinds: set[str] = set()
        for cmp in ast.walk(branch.test):
            if isinstance(cmp, ast.Compare) and is_type_of_msg(cmp.left):
                right = cmp.comparators[0]
                if isinstance(cmp.ops[0], ast.Eq) and isinstance(_const(right), str):
                    kinds.add(_const(right))
                elif isinstance(cmp.ops[0], ast.In) and isinstance(right, ast.Name):
                    kinds |= set(getattr(client_module, right.id))
        called = {
            call.func.attr
            for stmt in branch.body
            for call in ast.walk(stmt)
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
        }
        for kind in kinds:
            routes.setdefault(kind, set()).update(called)
    return routes


def keys_read(func: ast.AST) -> set[str]:
    """Fields read from ``msg``: ``msg.get("k")`` and ``msg["k"]``."""
    found = set()
    for node in ast.walk(func):
        if (
            isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get" and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "msg" and isinstance(_const(node.args[0]), str)
        ):
            found.add(node.args[0].value)
        elif (
            isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name)
            and node.value.id == "msg" and isinstance(_const(node.slice), str)
        ):
            found.add(node.slice.value)
    return found


def helpers_called_with_msg(func: ast.AST) -> set[str]:
    """Functions of messages.py a handler hands ``msg`` to (quote_from, server_error)."""
    names = set()
    for node in ast.walk(func):
        if (
            isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and any(isinstance(a, ast.Name) and a.id == "msg" for a in node.args)
        ):
            names.add(node.func.id)
    return names & set(functions(messages))


def fields_read_per_type() -> Iterator[tuple[str, str, str]]:
    """(message type, field, where) for every field a handler of that type reads."""
    client_funcs, message_funcs = functions(client_module), functions(messages)
    for kind, methods in dispatch().items():
        for method in methods & set(client_funcs):
            func = client_funcs[method]
            for key in keys_read(func):
                yield kind, key, f"Client.{method}"
            for helper in helpers_called_with_msg(func):
                for key in keys_read(message_funcs[helper]):
                    yield kind, key, f"messages.{helper}"


def properties(kind: str) -> dict[str, Any]:
    return payload_schema(server_message_types()[kind])["properties"]


def json_type(schema: dict[str, Any]) -> str | None:
    """The JSON type a property schema names, through one ``$ref``."""
    if "$ref" in schema:
        node: Any = asyncapi()
        for part in schema["$ref"][2:].split("/"):
            node = node[part]
        return json_type(node)
    if "type" in schema:
        return schema["type"]
    if "oneOf" in schema:  # constants: the type of the constants
        (kind,) = {JSON_TYPE[type(option["const"])] for option in schema["oneOf"]}
        return kind
    return None


def requests_sent() -> dict[str, set[str]]:
    """op -> the fields the client puts in it (literal, ``request[k] =``, ``request.update``)."""
    sent: dict[str, set[str]] = {}
    for func in functions(client_module).values():
        for node in ast.walk(func):
            if not isinstance(node, ast.Dict):
                continue
            keys = [_const(k) for k in node.keys]
            if "op" not in keys:
                continue
            op = _const(node.values[keys.index("op")])
            fields = sent.setdefault(op, set())
            fields.update(k for k in keys if isinstance(k, str))
            for other in ast.walk(func):
                if (
                    isinstance(other, ast.Subscript) and isinstance(other.ctx, ast.Store)
                    and isinstance(_const(other.slice), str)
                ):
                    fields.add(other.slice.value)
                elif (
                    isinstance(other, ast.Call) and isinstance(other.func, ast.Attribute)
                    and other.func.attr == "update"
                ):
                    fields.update(kw.arg for kw in other.keywords if kw.arg)
    return sent


# --- message types -----------------------------------------------------------------------


def test_the_client_parses_the_message_types_of_the_document():
    handled = set(dispatch())
    assert handled, "no dispatch found in the client's _on_message"
    assert handled <= set(server_message_types()), handled - set(server_message_types())
    assert handled | set(NOT_HANDLED) == set(server_message_types()), (
        "a server message type with neither a handler in the client nor a reason here: "
        f"{set(server_message_types()) - handled - set(NOT_HANDLED)}"
    )


def test_replies_the_client_ignores_answer_requests_it_never_sends():
    sent = set(requests_sent())
    for reply, request in REPLY_TO.items():
        assert reply in NOT_HANDLED
        assert request not in sent, f"the client sends {request} but ignores {reply}"


# --- fields and their types --------------------------------------------------------------


def test_every_field_the_client_reads_is_in_the_schema_of_its_message():
    seen = list(fields_read_per_type())
    assert {kind for kind, _, _ in seen} >= {"quote", "snapshot", "welcome", "error", "reconnect"}
    for kind, key, where in seen:
        if kind in ("quote", "snapshot"):  # one parser for both: a field of either
            known = set(properties("quote")) | set(properties("snapshot"))
        else:
            known = set(properties(kind))
        assert key in known, f"{where} reads {key!r} of a {kind}, which docs/asyncapi.json lacks"


@pytest.mark.parametrize(
    ("dataclass", "kinds"),
    [(messages.Quote, ("quote", "snapshot")), (messages.Status, ("status",))],
    ids=["Quote", "Status"],
)
def test_typed_fields_have_the_documents_json_types(dataclass, kinds):
    hints = typing.get_type_hints(dataclass)
    checked = 0
    for field in dataclasses.fields(dataclass):
        for kind in kinds:
            schema = properties(kind).get(field.name)
            if schema is None:
                continue
            hint = hints[field.name]
            optional = type(None) in typing.get_args(hint)
            (base,) = [t for t in (typing.get_args(hint) or (hint,)) if t is not type(None)]
            expected = json_type(schema)
            # A JSON integer is a fine float; the client widens prices to float.
            name = f"{dataclass.__name__}.{field.name}"
            assert JSON_TYPE[base] == expected or (base is float and expected == "integer"), (
                f"{name} is {base.__name__}, {kind}.{field.name} is {expected}"
            )
            required = field.name in payload_schema(server_message_types()[kind])["required"]
            assert optional or required or field.name == "epoch", (
                f"{name} is required but optional in {kind}"
            )
            checked += 1
    assert checked


def test_values_the_client_compares_with_are_documented():
    tree = tree_of(client_module)
    compared: dict[str, set[str]] = {"state": set(), "code": set()}
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and isinstance(node.left, ast.Attribute):
            value = _const(node.comparators[0])
            if node.left.attr in compared and isinstance(value, str):
                compared[node.left.attr].add(value)
    assert compared["state"] <= STATES, compared["state"] - STATES
    assert compared["code"] <= ERROR_CODES, compared["code"] - ERROR_CODES


def test_requests_the_client_sends_are_in_the_document():
    sent = requests_sent()
    assert set(sent) >= {"subscribe"}
    for op, fields in sent.items():
        assert op in request_ops(), op
        documented = set(payload_schema(request_ops()[op])["properties"])
        assert fields <= documented, f"the client's {op} sends {fields - documented}"


def test_the_clients_close_codes_are_the_documents():
    documented = {c["code"] for c in asyncapi()["channels"]["quotes"]["x-close-codes"]}
    local = {1006}  # no close frame: the client's own name for a lost connection
    assert {int(code) for code in messages.CloseCode} - local == documented


# --- the document's examples through the client's parsers ---------------------------------


def examples(name: str) -> list[dict[str, Any]]:
    return [e["payload"] for e in asyncapi()["components"]["messages"][name]["examples"]]


def test_the_client_parses_every_quote_and_snapshot_example():
    for payload in examples("quote") + examples("snapshot"):
        quote = messages.quote_from(payload, "connection-epoch")
        for field in dataclasses.fields(messages.Quote):
            if field.name in payload:
                assert getattr(quote, field.name) == payload[field.name], field.name
        assert quote.snapshot == (payload["type"] == "snapshot")
        assert quote.epoch == payload.get("epoch", "connection-epoch")


def test_the_client_reads_every_error_example():
    for payload in examples("error"):
        error = messages.server_error(payload)
        assert (error.code, error.message) == (payload["code"], payload["message"])
        assert error.symbols == tuple(payload.get("symbols", ()))


def test_a_frame_of_document_examples_decodes_in_the_client():
    import json

    batch = [*examples("welcome"), *examples("quote"), *examples("status")]
    assert messages.decode_frame(json.dumps(batch)) == batch
