"""docs/asyncapi.json: a sound AsyncAPI 3.0 document that says what the server does.

The document is the one source of the message schemas (tests/schema.py
validates every message a test sees against it). These tests tie it to the
code and to PROTOCOL.md from the other side: the codes, states, ops and
limits the server defines are the ones the document lists, the server's
message builders produce messages the document accepts, the document's own
examples are valid, and a logged-in user can fetch it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from feeds.core import parsing, protocol
from feeds.core.engine import Quote
from tests.schema import (
    ASYNCAPI_PATH,
    ERROR_CODES,
    STATES,
    asyncapi,
    check_message,
    check_request,
    component_schema,
    payload_schema,
    request_ops,
    server_message_types,
)

PROTOCOL_MD = (Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md").read_text()
QUOTE = Quote(
    symbol="EUR/USD", bid=1.08523, ask=1.08525, bid_size=1_000_000, ask_size=2_000_000,
    last=1.08524, last_size=500_000, volume=12_500_000, ts=1_764_000_000_123_456,
)


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


def resolve(pointer: str) -> Any:
    assert pointer.startswith("#/"), pointer
    node: Any = asyncapi()
    for part in pointer[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


# --- a sound AsyncAPI 3.0 document -----------------------------------------------------


def test_it_is_an_asyncapi_3_document_of_protocol_1():
    doc = asyncapi()
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"]["version"] == str(protocol.PROTOCOL_VERSION)
    protocol_field = payload_schema("welcome")["properties"]["protocol"]
    assert protocol_field == {"const": protocol.PROTOCOL_VERSION}
    assert set(doc["channels"]) == {"quotes", "sseQuotes"}
    assert doc["channels"]["quotes"]["address"] == "/ws/quotes/"
    assert doc["channels"]["sseQuotes"]["address"] == "/sse/quotes/"


def test_every_reference_resolves_inside_the_document():
    for pointer in refs(asyncapi()):
        resolve(pointer)


def test_operations_name_messages_of_their_own_channel():
    for name, op in asyncapi()["operations"].items():
        assert op["action"] in ("send", "receive"), name
        channel = op["channel"]["$ref"]
        for message in op["messages"] + op.get("reply", {}).get("messages", []):
            assert message["$ref"].startswith(channel + "/messages/"), (name, message)


def test_requests_are_received_and_server_messages_sent_on_the_websocket():
    received, sent = set(), set()
    for op in asyncapi()["operations"].values():
        if op["channel"]["$ref"] != "#/channels/quotes":
            continue
        names = {m["$ref"].rsplit("/", 1)[1] for m in op["messages"]}
        replies = {m["$ref"].rsplit("/", 1)[1] for m in op.get("reply", {}).get("messages", [])}
        (received if op["action"] == "receive" else sent).update(names)
        sent.update(replies)
    assert received == set(request_ops().values())
    assert sent == set(server_message_types().values())


def test_the_sse_stream_sends_the_messages_of_protocol_md():
    operations = asyncapi()["operations"].values()
    (stream,) = [op for op in operations if op["channel"]["$ref"] == "#/channels/sseQuotes"]
    assert stream["action"] == "send"
    names = {m["$ref"].rsplit("/", 1)[1] for m in stream["messages"]}
    assert names == {"welcome", "subscribed", "snapshot", "quote", "status", "heartbeat", "error"}
    query = stream["bindings"]["http"]["query"]
    assert set(query["properties"]) >= {"symbols", "throttle_ms", "token", "ticket"}
    assert query["required"] == ["symbols"]


def test_the_websocket_query_parameters_are_documented():
    ws = asyncapi()["channels"]["quotes"]["bindings"]["ws"]
    assert set(ws["query"]["properties"]) >= {"token", "ticket", "format"}
    assert ws["query"]["properties"]["format"]["enum"] == ["json", "msgpack"]


# --- what the server defines is what the document lists ----------------------------------


def test_error_codes_states_ops_and_reasons_are_the_servers():
    assert set(protocol.ErrorCode) == ERROR_CODES
    assert set(protocol.State) == STATES
    assert set(protocol.OPS) == set(request_ops())
    reasons = {option["const"] for option in component_schema("ReconnectReason")["oneOf"]}
    assert set(protocol.ReconnectReason) == reasons


def test_close_codes_are_the_servers():
    documented = {c["code"] for c in asyncapi()["channels"]["quotes"]["x-close-codes"]}
    assert documented == {int(code) for code in protocol.CloseCode}
    description = asyncapi()["channels"]["quotes"]["description"]
    for code in documented:
        assert str(code) in description


def test_limits_match_the_core():
    assert component_schema("Symbol")["pattern"] == protocol.SYMBOL_PATTERN
    throttle = payload_schema("subscribe")["properties"]["throttle_ms"]
    assert throttle["maximum"] == protocol.MAX_THROTTLE_MS
    limits = asyncapi()["channels"]["quotes"]["x-limits"]
    assert limits["max_json_depth"] == protocol.MAX_JSON_DEPTH
    assert limits["throttle_ms_max"] == protocol.MAX_THROTTLE_MS


def test_protocol_md_names_every_message_code_and_close_code():
    compact = PROTOCOL_MD.replace(" ", "")
    for kind in server_message_types():
        assert f'"type":"{kind}"' in compact or f"`{kind}`" in PROTOCOL_MD, kind
    for op in request_ops():
        assert f'"op":"{op}"' in compact, op
    for code in ERROR_CODES:
        assert f"`{code}`" in PROTOCOL_MD, code
    for close in asyncapi()["channels"]["quotes"]["x-close-codes"]:
        assert re.search(rf"\b{close['code']}\b", PROTOCOL_MD), close


def test_protocol_md_points_to_the_document():
    head = PROTOCOL_MD.split("## ", 1)[0]
    assert "asyncapi.json" in head


# --- the document's examples, and the server's own messages, are valid --------------------


def examples() -> list[tuple[str, dict[str, Any]]]:
    return [
        (name, example["payload"])
        for name, message in asyncapi()["components"]["messages"].items()
        for example in message["examples"]
    ]


def test_every_message_has_an_example():
    assert {name for name, _ in examples()} == set(asyncapi()["components"]["messages"])


@pytest.mark.parametrize(
    ("name", "payload"), examples(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_example_is_valid(name, payload):
    if name in request_ops().values():
        check_request(payload)
        parsed = parsing.parse_request(json.loads(json.dumps(payload)))  # the server takes it
        assert parsed.id == payload.get("id")
    else:
        assert server_message_types()[payload["type"]] == name
        check_message(payload)


def test_the_servers_message_builders_follow_the_document():
    quote = protocol.encode_quote(QUOTE, 1042)
    texts = [
        protocol.welcome(user="alice", heartbeat_s=15, max_symbols=1000, epoch="k3v9q1"),
        protocol.welcome(user="alice", heartbeat_s=0.5, max_symbols=1, epoch="e", request_id="a"),
        protocol.subscribed(("AAPL", "EUR/USD"), 1),
        protocol.subscribed(("NEWCO",), None),
        protocol.subscribed(("AAPL",), 2, recovered={"AAPL": False}),
        protocol.unsubscribed(["AAPL"], 3),
        protocol.subscriptions(["MSFT", "*", "AAPL"], "x"),
        protocol.pong(1_764_000_000_000_000, 4),
        protocol.heartbeat(1_764_000_000_000_000),
        quote,
        protocol.with_prev_seq(quote, 1000),
        protocol.snapshot_from_quote(quote, "k3v9q1"),
        *(protocol.status("AAPL", state) for state in protocol.State),
        *(
            protocol.reconnect(within, reason)
            for within, reason in zip((5, 2.5), protocol.ReconnectReason, strict=True)
        ),
        *(
            protocol.error(code, "why", request_id=7, symbols=("AAPL",))
            for code in protocol.ErrorCode
        ),
        protocol.error(protocol.ErrorCode.BAD_JSON, "not JSON"),
    ]
    for text in texts:
        check_message(json.loads(text), tick_sizes={"EUR/USD": "0.00001"})


@pytest.mark.parametrize(
    "broken",
    [
        {"type": "heartbeat"},  # ts missing
        {"type": "heartbeat", "ts": 1, "extra": True},  # a field the document does not list
        {"type": "pong", "ts": 1.5},
        {"type": "pong", "ts": 1, "id": True},
        {"type": "status", "symbol": "AAPL", "state": "paused"},
        {"type": "error", "code": "oops", "message": "m"},
        {"type": "error", "code": "bad_json", "message": ""},
        {"type": "subscribed", "symbols": ["aapl"]},
        {"type": "subscribed", "symbols": ["AAPL"], "recovered": {"AAPL": 1}},
        {"type": "subscriptions", "symbols": ["MSFT", "AAPL"]},  # not sorted
        {"type": "welcome", "user": "a", "heartbeat_s": 1, "max_symbols": 1, "protocol": 2,
         "epoch": "e"},
        {"type": "reconnect", "within_s": -1, "reason": "shutdown"},
        {**json.loads(protocol.encode_quote(QUOTE, 5)), "seq": 5.0},
        {**json.loads(protocol.encode_quote(QUOTE, 5)), "bid": 2.0},  # above the ask
        {**json.loads(protocol.encode_quote(QUOTE, 5)), "prev_seq": 4},  # no gap
        {"type": "telepathy"},
        ["not", "an", "object"],
    ],
)
def test_check_message_refuses_what_the_document_does_not_allow(broken):
    with pytest.raises(AssertionError):
        check_message(broken)


@pytest.mark.parametrize(
    "broken",
    [
        {"op": "subscribe"},
        {"op": "subscribe", "symbols": []},
        {"op": "subscribe", "symbols": ["AAPL"], "throttle_ms": 60_001},
        {"op": "subscribe", "symbols": ["AAPL"], "since": {"AAPL": 1}},  # no epoch
        {"op": "ping", "id": 1.5},
        {"op": "auth"},
        {"op": "dance"},
    ],
)
def test_requests_the_server_refuses_are_invalid_in_the_document_too(broken):
    with pytest.raises(AssertionError):
        check_request(broken)
    with pytest.raises(protocol.ProtocolError):
        parsing.parse_request(broken)


# --- served ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_logged_in_user_fetches_the_document_as_it_is_in_the_repository(django_user_model):
    http = Client()
    http.force_login(django_user_model.objects.create_user("reader"))
    response = http.get("/api/asyncapi.json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.content == ASYNCAPI_PATH.read_bytes()
    assert response.json()["asyncapi"] == "3.0.0"
