"""The wire protocol (feeds/core/protocol.py) against PROTOCOL.md: parsing and building."""

from __future__ import annotations

import json

import pytest

from feeds.core import protocol
from feeds.core.engine import Quote
from feeds.core.parsing import check_since, parse_client_frame, readable_id
from feeds.core.protocol import (
    Auth,
    ErrorCode,
    ListSubscriptions,
    Ping,
    ProtocolError,
    State,
    Subscribe,
    Unsubscribe,
)
from tests.schema import QUOTE_FIELDS, check_message

BAD_JSON, BAD_REQUEST = ErrorCode.BAD_JSON, ErrorCode.BAD_REQUEST

# --- garbage in: one error code per frame --------------------------------------------

GARBAGE = [
    # not JSON at all
    ("", BAD_JSON),
    ("hello", BAD_JSON),
    ("{", BAD_JSON),
    ('{"op": "ping",}', BAD_JSON),
    ("{'op': 'ping'}", BAD_JSON),
    ('{"op": "ping"} trailing', BAD_JSON),
    # the non-standard constants Python's json would otherwise accept
    ("NaN", BAD_JSON),
    ("Infinity", BAD_JSON),
    ("-Infinity", BAD_JSON),
    ('{"op": "ping", "id": NaN}', BAD_JSON),
    ('{"op": "subscribe", "symbols": ["A"], "x": Infinity}', BAD_JSON),
    # JSON, but not an object
    ("[]", BAD_REQUEST),
    ('[{"op": "ping"}]', BAD_REQUEST),
    ('"ping"', BAD_REQUEST),
    ("null", BAD_REQUEST),
    ("42", BAD_REQUEST),
    ("true", BAD_REQUEST),
    # the op
    ("{}", BAD_REQUEST),
    ('{"id": 1}', BAD_REQUEST),
    ('{"op": "nope"}', BAD_REQUEST),
    ('{"op": "PING"}', BAD_REQUEST),
    ('{"op": ""}', BAD_REQUEST),
    ('{"op": "' + "x" * 1000 + '"}', BAD_REQUEST),
    ('{"op": 1}', BAD_REQUEST),
    ('{"op": null}', BAD_REQUEST),
    ('{"op": ["ping"]}', BAD_REQUEST),
    ('{"op": {"name": "ping"}}', BAD_REQUEST),
    # subscribe / unsubscribe symbols
    ('{"op": "subscribe"}', BAD_REQUEST),
    ('{"op": "subscribe", "symbols": []}', BAD_REQUEST),
    ('{"op": "subscribe", "symbols": null}', BAD_REQUEST),
    ('{"op": "subscribe", "symbols": "AAPL"}', BAD_REQUEST),
    ('{"op": "subscribe", "symbols": {"AAPL": 1}}', BAD_REQUEST),
    ('{"op": "subscribe", "symbols": ["AAPL", 1]}', BAD_REQUEST),
    ('{"op": "subscribe", "symbols": [null]}', BAD_REQUEST),
    ('{"op": "subscribe", "symbols": [["AAPL"]]}', BAD_REQUEST),
    ('{"op": "unsubscribe"}', BAD_REQUEST),
    ('{"op": "unsubscribe", "symbols": []}', BAD_REQUEST),
    ('{"op": "unsubscribe", "symbols": [true]}', BAD_REQUEST),
    # id of the wrong type
    ('{"op": "ping", "id": 1.5}', BAD_REQUEST),
    ('{"op": "ping", "id": 1.0}', BAD_REQUEST),
    ('{"op": "ping", "id": 1e3}', BAD_REQUEST),
    ('{"op": "ping", "id": [1]}', BAD_REQUEST),
    ('{"op": "ping", "id": true}', BAD_REQUEST),
    ('{"op": "ping", "id": false}', BAD_REQUEST),
    ('{"op": "ping", "id": {"n": 1}}', BAD_REQUEST),
    ('{"op": "subscribe", "symbols": ["A"], "id": 2.5}', BAD_REQUEST),
    # auth token
    ('{"op": "auth"}', BAD_REQUEST),
    ('{"op": "auth", "token": ""}', BAD_REQUEST),
    ('{"op": "auth", "token": null}', BAD_REQUEST),
    ('{"op": "auth", "token": 123}', BAD_REQUEST),
    ('{"op": "auth", "token": ["t"]}', BAD_REQUEST),
    # throttle_ms (PROTOCOL.md, "Throttle")
    ('{"op": "subscribe", "symbols": ["A"], "throttle_ms": -1}', BAD_REQUEST),
    ('{"op": "subscribe", "symbols": ["A"], "throttle_ms": 60001}', BAD_REQUEST),
    ('{"op": "subscribe", "symbols": ["A"], "throttle_ms": 2.5}', BAD_REQUEST),
    ('{"op": "subscribe", "symbols": ["A"], "throttle_ms": 250.0}', BAD_REQUEST),
    ('{"op": "subscribe", "symbols": ["A"], "throttle_ms": "250"}', BAD_REQUEST),
    ('{"op": "subscribe", "symbols": ["A"], "throttle_ms": true}', BAD_REQUEST),
    ('{"op": "subscribe", "symbols": ["A"], "throttle_ms": null}', BAD_REQUEST),
    ('{"op": "subscribe", "symbols": ["A"], "throttle_ms": [250]}', BAD_REQUEST),
    # since / epoch (PROTOCOL.md, "Resume after reconnect")
    ('{"op": "subscribe", "symbols": ["A"], "since": {"A": 1}}', BAD_REQUEST),
    ('{"op": "subscribe", "symbols": ["A"], "since": {"A": 1}, "epoch": 7}', BAD_REQUEST),
    ('{"op": "subscribe", "symbols": ["A"], "since": {"A": 1}, "epoch": null}', BAD_REQUEST),
    ('{"op": "subscribe", "symbols": ["A"], "since": [["A", 1]], "epoch": "e"}', BAD_REQUEST),
    ('{"op": "subscribe", "symbols": ["A"], "since": "A", "epoch": "e"}', BAD_REQUEST),
    ('{"op": "subscribe", "symbols": ["A"], "since": {"A": -1}, "epoch": "e"}', BAD_REQUEST),
    ('{"op": "subscribe", "symbols": ["A"], "since": {"A": 1.5}, "epoch": "e"}', BAD_REQUEST),
    ('{"op": "subscribe", "symbols": ["A"], "since": {"A": "1"}, "epoch": "e"}', BAD_REQUEST),
    ('{"op": "subscribe", "symbols": ["A"], "since": {"A": true}, "epoch": "e"}', BAD_REQUEST),
    ('{"op": "subscribe", "symbols": ["A"], "since": {"A": null}, "epoch": "e"}', BAD_REQUEST),
    ('{"op": "subscribe", "symbols": ["A"], "since": {"B": 1}, "epoch": "e"}', BAD_REQUEST),
    ('{"op": "subscribe", "symbols": ["A"], "since": {"A": 1, "a": 2}, "epoch": "e"}', BAD_REQUEST),
    ('{"op": "subscribe", "symbols": ["A"], "since": {"*": 1}, "epoch": "e"}', BAD_REQUEST),
    # nested past the parser's recursion limit
    ("[" * 100_000, BAD_REQUEST),
    ('{"a":' * 100_000, BAD_REQUEST),
    ('{"op": "ping", "x": ' + "[" * 100_000 + "]" * 100_000 + "}", BAD_REQUEST),
]


def _short(raw: str) -> str:
    return raw if len(raw) <= 40 else f"{raw[:30]}...({len(raw)} chars)"


@pytest.mark.parametrize(("raw", "code"), GARBAGE, ids=[_short(r) for r, _ in GARBAGE])
def test_garbage_frame_is_a_protocol_error_with_its_code(raw, code):
    # Only ProtocolError may escape: anything else would crash the consumer.
    with pytest.raises(ProtocolError) as info:
        parse_client_frame(raw)
    assert info.value.code == code
    assert info.value.message
    check_message(json.loads(info.value.to_text()))


ID_ECHOES = [
    ('{"op": "nope", "id": 7}', 7),
    ('{"id": "abc"}', "abc"),
    ('{"op": "subscribe", "id": 3}', 3),
    ('{"op": "subscribe", "symbols": [1], "id": "s"}', "s"),
    ('{"op": "unsubscribe", "symbols": [], "id": -1}', -1),
    ('{"op": "auth", "token": "", "id": "a"}', "a"),
    ('{"op": "nope", "id": null}', None),
    ('{"op": "nope", "id": 1.5}', None),
]


@pytest.mark.parametrize(("raw", "request_id"), ID_ECHOES)
def test_a_protocol_error_carries_the_request_id_when_it_is_readable(raw, request_id):
    with pytest.raises(ProtocolError) as info:
        parse_client_frame(raw)
    assert info.value.request_id == request_id
    reply = json.loads(info.value.to_text())
    assert reply.get("id") == request_id
    assert ("id" in reply) == (request_id is not None)


def test_a_lone_surrogate_inside_a_string_parses():
    escaped = parse_client_frame('{"op": "subscribe", "symbols": ["A\\ud800B"]}')
    assert escaped == Subscribe(("A\ud800B",))
    raw = parse_client_frame('{"op": "subscribe", "symbols": ["\udfff"], "id": "\ud800"}')
    assert raw == Subscribe(("\udfff",), "\ud800")


# --- good shapes ---------------------------------------------------------------------


def test_subscribe_upper_cases_strips_and_dedups_symbols_preserving_order():
    request = parse_client_frame(
        '{"op": "subscribe", "symbols": ["msft", " AAPL ", "MSFT", "eur/usd", "aapl\\t"]}'
    )
    assert request == Subscribe(("MSFT", "AAPL", "EUR/USD"))


@pytest.mark.parametrize("request_id", ["req-1", "", 0, 1, -5, 10**30])
def test_subscribe_keeps_a_string_or_integer_id(request_id):
    frame = json.dumps({"op": "subscribe", "symbols": ["AAPL"], "id": request_id})
    request = parse_client_frame(frame)
    assert request == Subscribe(("AAPL",), request_id)
    assert type(request.id) is type(request_id)


def test_a_null_id_is_no_id():
    assert parse_client_frame('{"op": "ping", "id": null}') == Ping(None)


def test_unknown_fields_in_a_request_are_ignored():
    request = parse_client_frame(
        '{"op": "subscribe", "symbols": ["AAPL"], "id": 1, "extra": {"deep": [1, 2]},'
        ' "token": 5, "v": 2}'
    )
    assert request == Subscribe(("AAPL",), 1)


def test_unsubscribe_parses_like_subscribe():
    request = parse_client_frame('{"op": "unsubscribe", "symbols": ["aapl", "AAPL"], "id": 2}')
    assert request == Unsubscribe(("AAPL",), 2)


def test_throttle_ms_defaults_to_every_tick_and_takes_the_whole_range():
    assert parse_client_frame('{"op": "subscribe", "symbols": ["A"]}').throttle_ms == 0
    for value in (0, 1, 250, 60_000):
        frame = json.dumps({"op": "subscribe", "symbols": ["A"], "throttle_ms": value})
        assert parse_client_frame(frame) == Subscribe(("A",), throttle_ms=value)


def test_a_bad_throttle_is_bad_request_naming_the_field_and_echoing_the_id():
    with pytest.raises(ProtocolError) as info:
        parse_client_frame('{"op": "subscribe", "symbols": ["A"], "throttle_ms": 1e9, "id": 4}')
    assert info.value.code == BAD_REQUEST
    assert info.value.request_id == 4
    assert "throttle_ms" in info.value.message


@pytest.mark.parametrize(
    ("symbols", "named", "wildcard"),
    [
        (["*"], (), True),
        ([" * ", "aapl"], ("AAPL",), True),
        (["MSFT", "*", "*", "msft"], ("MSFT",), True),
        (["AAPL"], ("AAPL",), False),
    ],
)
def test_a_star_among_the_symbols_is_the_wildcard_and_not_a_symbol(symbols, named, wildcard):
    for op, kind in (("subscribe", Subscribe), ("unsubscribe", Unsubscribe)):
        request = parse_client_frame(json.dumps({"op": op, "symbols": symbols}))
        assert isinstance(request, kind)
        assert request.symbols == named
        assert request.wildcard is wildcard


def test_since_is_normalised_like_symbols_and_keeps_the_epoch():
    request = parse_client_frame(
        '{"op": "subscribe", "symbols": ["aapl", "MSFT"], "since": {" aapl": 1042, "MSFT": 0},'
        ' "epoch": "k3v9q1", "id": 5}'
    )
    assert request == Subscribe(
        ("AAPL", "MSFT"), 5, since={"AAPL": 1042, "MSFT": 0}, epoch="k3v9q1"
    )


def test_since_may_name_symbols_the_wildcard_covers_for_the_consumer_to_check():
    request = parse_client_frame(
        '{"op": "subscribe", "symbols": ["*"], "since": {"B": 1}, "epoch": "e"}'
    )
    assert request.wildcard
    assert request.since == {"B": 1}
    with pytest.raises(ProtocolError) as info:
        check_since(request.since, ("A",), 3)
    assert info.value.code == BAD_REQUEST
    assert info.value.request_id == 3
    assert "B" in info.value.message


def test_an_epoch_without_since_is_ignored():
    request = parse_client_frame('{"op": "subscribe", "symbols": ["A"], "epoch": 5}')
    assert request == Subscribe(("A",))


def test_list_parses_with_and_without_an_id():
    assert parse_client_frame('{"op": "list", "id": 3}') == ListSubscriptions(3)
    assert parse_client_frame('{"op": "list"}') == ListSubscriptions(None)


def test_ping_parses_with_and_without_an_id():
    assert parse_client_frame('{"op": "ping", "id": "p"}') == Ping("p")
    assert parse_client_frame('{"op":"ping"}') == Ping(None)


def test_auth_needs_a_non_empty_token_string_and_keeps_it_verbatim():
    assert parse_client_frame('{"op": "auth", "token": " Tok en "}') == Auth(" Tok en ")
    assert parse_client_frame('{"op": "auth", "token": "t", "id": 9}') == Auth("t", 9)


SYMBOLS = [
    ("AAPL", True),
    ("EUR/USD", True),
    ("BRK.B", True),
    ("A_B", True),
    ("BTC-USD", True),
    ("X" * 20, True),
    ("", False),
    ("aapl", False),
    ("X" * 21, False),
    ("A B", False),
    ("AAPL\n", False),
    ("\u00c4PL", False),
    ("\ud800", False),
]


@pytest.mark.parametrize(("text", "valid"), SYMBOLS)
def test_is_symbol_follows_the_instrument_symbol_rule(text, valid):
    assert protocol.is_symbol(text) is valid


# --- readable_id ---------------------------------------------------------------------

READABLE_IDS = [
    ('{"op": "nope", "id": 7}', 7),
    ('{"id": "x"}', "x"),
    ('{"op": "ping", "id": 1, "x": NaN}', 1),  # readable even where parsing refuses
    ('{"id": 1.5}', None),
    ('{"id": true}', None),
    ('{"id": [1]}', None),
    ('{"id": null}', None),
    ("{}", None),
    ('[{"id": 1}]', None),
    ('"id"', None),
    ("not json", None),
    ("", None),
    ("[" * 100_000, None),
]


@pytest.mark.parametrize(
    ("raw", "expected"), READABLE_IDS, ids=[_short(r) for r, _ in READABLE_IDS]
)
def test_readable_id_is_the_string_or_integer_id_of_a_json_object_else_none(raw, expected):
    assert readable_id(raw) == expected


# --- server messages: round trips ------------------------------------------------------


def decoded(text: str) -> dict:
    msg = json.loads(text)
    check_message(msg)
    return msg


def test_welcome_has_exactly_the_protocol_fields():
    msg = decoded(
        protocol.welcome(user="alice", heartbeat_s=15.0, max_symbols=1000, epoch="k3v9q1")
    )
    assert msg == {
        "type": "welcome",
        "user": "alice",
        "heartbeat_s": 15,
        "max_symbols": 1000,
        "protocol": 1,
        "epoch": "k3v9q1",
    }
    assert type(msg["heartbeat_s"]) is int


def test_welcome_echoes_the_auth_request_id_and_keeps_a_fractional_heartbeat():
    msg = decoded(
        protocol.welcome(user="b", heartbeat_s=2.5, max_symbols=3, epoch="e", request_id="a1")
    )
    assert msg == {
        "type": "welcome",
        "user": "b",
        "heartbeat_s": 2.5,
        "max_symbols": 3,
        "protocol": 1,
        "epoch": "e",
        "id": "a1",
    }


@pytest.mark.parametrize("kind", ["subscribed", "unsubscribed"])
def test_subscribed_and_unsubscribed_list_the_symbols_in_request_order(kind):
    build = getattr(protocol, kind)
    assert decoded(build(("MSFT", "AAPL"), 1)) == {
        "type": kind,
        "id": 1,
        "symbols": ["MSFT", "AAPL"],
    }
    assert decoded(build(("EUR/USD",), None)) == {"type": kind, "symbols": ["EUR/USD"]}


def test_subscribed_carries_recovered_only_when_given():
    assert decoded(protocol.subscribed(("AAPL", "MSFT"), 1, {"AAPL": True, "MSFT": False})) == {
        "type": "subscribed",
        "id": 1,
        "symbols": ["AAPL", "MSFT"],
        "recovered": {"AAPL": True, "MSFT": False},
    }
    assert "recovered" not in decoded(protocol.subscribed(("AAPL",), 1))


def test_subscriptions_list_the_wildcard_first():
    listed = decoded(protocol.subscriptions(["MSFT", "AAPL", "*"], None))
    assert listed["symbols"] == ["*", "AAPL", "MSFT"]


def test_subscriptions_are_sorted():
    assert decoded(protocol.subscriptions(["MSFT", "AAPL", "EUR/USD"], 3)) == {
        "type": "subscriptions",
        "id": 3,
        "symbols": ["AAPL", "EUR/USD", "MSFT"],
    }
    assert decoded(protocol.subscriptions([], None)) == {"type": "subscriptions", "symbols": []}


def test_pong_carries_the_server_time_and_the_id():
    assert decoded(protocol.pong(1_764_000_000_123_456, 4)) == {
        "type": "pong",
        "id": 4,
        "ts": 1_764_000_000_123_456,
    }
    assert decoded(protocol.pong(5, None)) == {"type": "pong", "ts": 5}


def test_heartbeat_carries_only_type_and_ts():
    assert decoded(protocol.heartbeat(1_764_000_000_000_001)) == {
        "type": "heartbeat",
        "ts": 1_764_000_000_000_001,
    }


@pytest.mark.parametrize("state", [State.HALTED, State.TRADING])
def test_status_names_the_symbol_and_its_state(state):
    assert decoded(protocol.status("EUR/USD", state)) == {
        "type": "status",
        "symbol": "EUR/USD",
        "state": state.value,
    }


def test_error_without_id_or_symbols_has_only_type_code_and_message():
    assert decoded(protocol.error(ErrorCode.RATE_LIMITED, "slow down")) == {
        "type": "error",
        "code": "rate_limited",
        "message": "slow down",
    }


def test_error_with_id_and_symbols_echoes_both():
    text = protocol.error(
        ErrorCode.UNKNOWN_SYMBOL, "unknown symbol(s): X, Y", request_id=1, symbols=("X", "Y")
    )
    assert decoded(text) == {
        "type": "error",
        "code": "unknown_symbol",
        "message": "unknown symbol(s): X, Y",
        "id": 1,
        "symbols": ["X", "Y"],
    }


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_error_code_builds_a_valid_error(code):
    assert decoded(protocol.error(code, "m", request_id="r"))["code"] == code.value


def test_protocol_error_to_text_is_its_error_message():
    exc = ProtocolError(ErrorCode.TOO_MANY_SYMBOLS, "too many", request_id=2, symbols=("A",))
    assert exc.to_text() == protocol.error(
        ErrorCode.TOO_MANY_SYMBOLS, "too many", request_id=2, symbols=("A",)
    )


QUOTE = Quote(
    symbol="EUR/USD",
    bid=1.08523,
    ask=1.08525,
    bid_size=3000,
    ask_size=1000,
    last=1.08525,
    last_size=2000,
    volume=123_456_000,
    ts=1_764_000_000_123_456,
)
QUOTE_WIRE = {
    "type": "quote",
    "symbol": "EUR/USD",
    "seq": 1042,
    "bid": 1.08523,
    "ask": 1.08525,
    "bid_size": 3000,
    "ask_size": 1000,
    "last": 1.08525,
    "last_size": 2000,
    "volume": 123_456_000,
    "ts": 1_764_000_000_123_456,
}


def test_encode_quote_has_exactly_the_quote_fields_with_exact_prices():
    text = protocol.encode_quote(QUOTE, 1042)
    msg = json.loads(text)
    check_message(msg, tick_sizes={"EUR/USD": "0.00001"})
    assert msg == QUOTE_WIRE
    assert set(msg) == QUOTE_FIELDS
    assert '"bid":1.08523,' in text
    assert '"ask":1.08525,' in text


def test_snapshot_from_quote_is_the_quote_with_type_snapshot_and_the_epoch():
    msg = decoded(protocol.snapshot_from_quote(protocol.encode_quote(QUOTE, 1042), "k3v9q1"))
    assert msg == {**QUOTE_WIRE, "type": "snapshot", "epoch": "k3v9q1"}


def test_snapshot_from_a_quote_text_in_another_layout_is_the_same_snapshot():
    spaced = json.dumps(QUOTE_WIRE)  # ", " and ": " separators: not the fast path
    assert not spaced.startswith('{"type":"quote",')
    msg = decoded(protocol.snapshot_from_quote(spaced, "k3v9q1"))
    assert msg == {**QUOTE_WIRE, "type": "snapshot", "epoch": "k3v9q1"}


@pytest.mark.parametrize("epoch", ['we"ird\\', "é\u2028", ""])
def test_snapshot_epoch_is_escaped_as_a_json_string(epoch):
    msg = json.loads(protocol.snapshot_from_quote(protocol.encode_quote(QUOTE, 1), epoch))
    assert msg["epoch"] == epoch
    assert msg["type"] == "snapshot"


@pytest.mark.parametrize("prev", [0, 7, 1040])
def test_with_prev_seq_is_the_quote_plus_prev_seq_and_nothing_else(prev):
    text = protocol.encode_quote(QUOTE, 1042)
    marked = protocol.with_prev_seq(text, prev)
    assert marked.startswith(text[:-1])  # the shared text, spliced, not re-encoded
    assert decoded(marked) == {**QUOTE_WIRE, "prev_seq": prev}


@pytest.mark.parametrize("seq", [1, 9, 1042, 10**15])
def test_quote_seq_reads_the_seq_of_a_stored_quote(seq):
    assert protocol.quote_seq(protocol.encode_quote(QUOTE, seq)) == seq
    assert protocol.quote_seq(json.dumps({**QUOTE_WIRE, "seq": seq})) == seq  # another layout


def test_quote_fields_are_the_quote_less_type():
    fields = protocol.quote_fields(protocol.encode_quote(QUOTE, 1042))
    assert fields == {k: v for k, v in QUOTE_WIRE.items() if k != "type"}

