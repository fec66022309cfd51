"""feeds.core.wire_formats: MessagePack conversion, ?format=, binary requests, deflate."""

from __future__ import annotations

import json
import subprocess
import sys
import zlib

import msgpack
import pytest

from feeds.core import parsing, protocol
from feeds.core.engine import Quote
from feeds.core.protocol import ErrorCode, Ping, ProtocolError, State, Subscribe
from feeds.core.wire_formats import (
    JSON,
    MSGPACK,
    choose,
    decode_msgpack,
    message_compressor,
    parse_frame,
    to_msgpack,
)

QUOTE = protocol.encode_quote(
    Quote(
        symbol="EUR/USD", bid=1.08123, ask=1.08125, bid_size=1_000_000, ask_size=2_000_000,
        last=1.08124, last_size=1000, volume=123_456_789_000, ts=1_764_000_000_123_456,
    ),
    seq=2**40,
)
MESSAGES = [
    QUOTE,
    protocol.snapshot_from_quote(QUOTE, "k3v9q1"),
    protocol.welcome(user="alice", heartbeat_s=15, max_symbols=1000, epoch="e", request_id=1),
    protocol.welcome(user="bob", heartbeat_s=0.5, max_symbols=5, epoch="e"),
    protocol.status("AAPL", State.HALTED),
    protocol.error(ErrorCode.UNKNOWN_SYMBOL, "unknown", request_id="x", symbols=("NOPE", "Ä")),
    protocol.pong(1_764_000_000_123_456, -3),
    "[" + ",".join([QUOTE, protocol.heartbeat(1)]) + "]",
]


@pytest.mark.parametrize("text", MESSAGES)
def test_msgpack_holds_the_json_message_with_the_same_values_and_kinds(text):
    decoded = msgpack.unpackb(to_msgpack(text))
    expected = json.loads(text)
    assert decoded == expected
    assert json.dumps(decoded, separators=(",", ":")) == json.dumps(expected, separators=(",", ":"))


def test_prices_are_float64_and_integers_stay_integers():
    decoded = msgpack.unpackb(to_msgpack(QUOTE))
    assert decoded["bid"] == 1.08123
    assert type(decoded["bid"]) is float
    assert decoded["seq"] == 2**40
    assert type(decoded["seq"]) is int
    assert to_msgpack(QUOTE).count(b"\xcb") == 3  # bid, ask, last: float 64, never float 32


def test_what_msgpack_cannot_carry_is_made_safe_not_fatal():
    huge = '{"type":"pong","id":' + str(2**70) + ',"ts":1}'
    assert msgpack.unpackb(to_msgpack(huge)) == {"type": "pong", "id": str(2**70), "ts": 1}
    lone = protocol.error(ErrorCode.UNKNOWN_SYMBOL, "unknown", symbols=("A\ud800",))
    assert msgpack.unpackb(to_msgpack(lone))["symbols"] == ["A\\ud800"]


@pytest.mark.parametrize(
    ("query", "name", "error"),
    [
        (b"", "json", False),
        (b"token=abc", "json", False),
        (b"format=json", "json", False),
        (b"token=abc&format=msgpack", "msgpack", False),
        (b"format=MSGPACK", "msgpack", False),
        (b"format=%6Dsgpack", "msgpack", False),
        (b"format=xml", "json", True),
        (b"format=", "json", True),
        (b"format=json&format=msgpack", "json", True),
        (b"format=" + b"x" * 5000, "json", True),
        (b"format=\xff\xfe", "json", True),
    ],
)
def test_the_format_comes_from_the_query_string(query, name, error):
    wire, problem = choose(query)
    assert wire.name == name
    assert (problem is not None) is error
    if problem:
        assert problem.endswith("json or msgpack")
        assert len(problem) < 100


def test_a_msgpack_request_is_the_same_request_as_its_json():
    obj = {"op": "subscribe", "symbols": ["aapl", "MSFT"], "id": 4, "extra": [1, {"x": None}]}
    packed = parse_frame(MSGPACK, None, msgpack.packb(obj))
    text = json.dumps(obj)
    assert packed == parse_frame(MSGPACK, text, None) == parsing.parse_client_frame(text)
    assert isinstance(packed, Subscribe)
    assert packed.symbols == ("AAPL", "MSFT")
    assert parse_frame(JSON, '{"op":"ping","id":1}', None) == Ping(1)


def test_a_binary_frame_on_a_json_connection_is_bad_request():
    with pytest.raises(ProtocolError) as err:
        parse_frame(JSON, None, msgpack.packb({"op": "ping"}))
    assert err.value.code is ErrorCode.BAD_REQUEST


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", ErrorCode.BAD_JSON),
        (b"\xc1", ErrorCode.BAD_JSON),
        (b"\x92\x01", ErrorCode.BAD_JSON),
        (b"\x80\x80", ErrorCode.BAD_JSON),
        (b"\x81\xc4\x02op\xa4ping", ErrorCode.BAD_JSON),  # a bin key
        (b"\x81\x01\x02", ErrorCode.BAD_JSON),  # an int key
        (b"\xdd\xff\xff\xff\xff", ErrorCode.BAD_JSON),  # claims 4 G elements in 5 bytes
        (b"\xa2\xff\xfe", ErrorCode.BAD_JSON),
        (b"\x91" * 60_000 + b"\x90", ErrorCode.BAD_REQUEST),
        (b"\x81\xa1a" * 20_000 + b"\xc0", ErrorCode.BAD_REQUEST),
    ],
)
def test_bad_msgpack_is_a_protocol_error_never_a_crash(data, code):
    with pytest.raises(ProtocolError) as err:
        decode_msgpack(data)
    assert err.value.code is code
    assert len(err.value.message) <= 200


def test_a_shallow_but_deep_enough_object_still_decodes():
    nested = msgpack.packb({"op": "ping", "x": [[[[[[[[[[1]]]]]]]]]]})
    assert parse_frame(MSGPACK, None, nested) == Ping(None)


@pytest.mark.parametrize("window_bits", [9, 12, 15])
def test_each_compressed_message_inflates_on_its_own(window_bits):
    compress = message_compressor(window_bits)
    payloads = [m.encode() for m in MESSAGES] * 3
    for payload in payloads:
        data = compress(payload)
        assert not data.endswith(b"\x00\x00\xff\xff")
        # A fresh inflater per message: what a client does under server_no_context_takeover.
        inflate = zlib.decompressobj(-window_bits)
        assert inflate.decompress(data + b"\x00\x00\xff\xff") == payload


def test_the_module_is_plain_python_and_msgpack():
    code = (
        "import sys, feeds.core.wire_formats; "
        "print(any(m.split('.')[0] in ('django', 'channels') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
