"""Decoding the server's frames into typed values (marketfeed_client/messages.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import msgpack
import pytest

from marketfeed_client.messages import Gap, decode_frame, quote_from, server_error
from tests.client.fakes import quote, snapshot


def test_a_text_frame_is_one_object_or_a_batch_in_order():
    assert decode_frame('{"type":"heartbeat","ts":1}') == [{"type": "heartbeat", "ts": 1}]
    batch = json.dumps([quote("A", 1), quote("A", 2)])
    assert [m["seq"] for m in decode_frame(batch)] == [1, 2]


def test_a_binary_frame_is_messagepack_with_the_same_objects():
    data = msgpack.packb([quote("EUR/USD", 3), {"type": "heartbeat", "ts": 5}])
    assert decode_frame(data) == [quote("EUR/USD", 3), {"type": "heartbeat", "ts": 5}]


def test_elements_that_are_not_objects_are_dropped_not_fatal():
    assert decode_frame('[1, "x", {"type": "heartbeat", "ts": 1}, null]') == [
        {"type": "heartbeat", "ts": 1}
    ]


def test_bad_json_is_a_value_error():
    with pytest.raises(json.JSONDecodeError):
        decode_frame("{nope")


def test_a_quote_takes_the_connection_epoch_and_a_snapshot_its_own():
    live = quote_from(quote("AAPL", 7, prev_seq=5), "e1")
    assert (live.symbol, live.seq, live.epoch, live.snapshot, live.prev_seq) == (
        "AAPL",
        7,
        "e1",
        False,
        5,
    )
    assert live.bid < live.ask
    assert isinstance(live.volume, int)
    assert live.time == datetime.fromtimestamp(1_764_000_000.000007, tz=UTC)
    snap = quote_from(snapshot("AAPL", 7, epoch="e9"), "e1")
    assert (snap.epoch, snap.snapshot, snap.prev_seq) == ("e9", True, None)


def test_to_json_has_every_field_of_the_quote_plus_epoch_and_markers():
    line = json.loads(quote_from(quote("AAPL", 7), "e1").to_json())
    wire = {k: v for k, v in quote("AAPL", 7).items() if k != "type"}
    assert line == {**wire, "epoch": "e1", "snapshot": False, "prev_seq": None}


@pytest.mark.parametrize(
    "broken",
    [
        {k: v for k, v in quote("AAPL", 1).items() if k != "bid"},
        {**quote("AAPL", 1), "seq": "1"},
        {**quote("AAPL", 1), "seq": True},
        {**quote("AAPL", 1), "bid": "cheap"},
        {**quote("AAPL", 1), "prev_seq": 1.5},
    ],
)
def test_a_malformed_quote_raises(broken):
    with pytest.raises((KeyError, TypeError, ValueError)):
        quote_from(broken, "e1")


def test_an_error_message_becomes_a_server_error_with_its_symbols():
    error = server_error(
        {
            "type": "error",
            "code": "unknown_symbol",
            "message": "unknown symbol(s): NOPE",
            "symbols": ["NOPE"],
            "id": 1,
        }
    )
    assert (error.code, error.symbols, str(error)) == (
        "unknown_symbol",
        ("NOPE",),
        "unknown_symbol: unknown symbol(s): NOPE",
    )


def test_a_gap_counts_missed_quotes_only_within_an_epoch():
    assert Gap("A", 3, 7, "lost", "e1").missed == 3
    assert Gap("A", 3, 1, "epoch", "e2").missed is None
