"""The pure part of the SSE stream: query parameters, Last-Event-ID, events, resume by time.

In feeds/core/eventstream.py and feeds/deliver/resume.py.
"""

from __future__ import annotations

import json

import pytest

from feeds.core import protocol
from feeds.core.engine import Quote
from feeds.core.eventstream import Refusal, StreamParams, event, parse_params
from feeds.deliver.resume import LastEventId, parse_last_event_id, quote_ts, resume_from


def quote(symbol: str, seq: int, ts: int) -> str:
    return protocol.encode_quote(
        Quote(
            symbol=symbol,
            bid=1.0,
            ask=1.1,
            bid_size=1,
            ask_size=1,
            last=1.05,
            last_size=1,
            volume=9,
            ts=ts,
        ),
        seq,
    )


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (b"symbols=aapl,%20msft,AAPL", StreamParams(("AAPL", "MSFT"))),
        (b"symbols=EUR/USD&throttle_ms=250", StreamParams(("EUR/USD",), throttle_ms=250)),
        (b"symbols=*", StreamParams((), wildcard=True)),
        (b"symbols=AAPL,,&symbols=MSFT", StreamParams(("AAPL", "MSFT"))),
    ],
)
def test_query_strings_parse_into_stream_params(query, expected):
    assert parse_params(query) == expected


@pytest.mark.parametrize(
    ("query", "code"),
    [
        (b"", "bad_request"),
        (b"symbols=,", "bad_request"),
        (b"symbols=A%00B", "unknown_symbol"),
        (b"symbols=A&throttle_ms=60001", "bad_request"),
        (b"symbols=A&throttle_ms=1e3", "bad_request"),
    ],
)
def test_bad_query_strings_are_400_with_a_code(query, code):
    with pytest.raises(Refusal) as refused:
        parse_params(query)
    assert refused.value.status == 400
    assert json.loads(refused.value.body())["code"] == code


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("AAPL:1042", ("AAPL", 1042)),
        (" EUR/USD:7 ", ("EUR/USD", 7)),
        (None, None),
        ("", None),
        ("AAPL", None),
        ("AAPL:-1", None),
        ("aapl:1", None),
        ("AAPL:1:2", None),
        ("AAPL:" + "9" * 40, None),
    ],
)
def test_last_event_id_is_symbol_colon_seq_or_ignored(header, expected):
    resume = None if expected is None else LastEventId(*expected, ring=256)
    assert parse_last_event_id(header, 256) == resume


def test_a_quote_is_an_event_named_by_its_type_with_a_symbol_seq_id():
    text = quote("EUR/USD", 42, 5)
    assert event(text) == f"id: EUR/USD:42\nevent: quote\ndata: {text}\n\n"
    gap = protocol.with_prev_seq(text, 40)
    assert event(gap).startswith("id: EUR/USD:42\nevent: quote\ndata: ")
    snapshot = protocol.snapshot_from_quote(text, "e1")
    assert event(snapshot) == f"id: EUR/USD:42\nevent: snapshot\ndata: {snapshot}\n\n"


def test_other_messages_are_events_without_an_id():
    status = protocol.status("AAPL", protocol.State.HALTED)
    assert event(status) == f"event: status\ndata: {status}\n\n"
    assert event(protocol.heartbeat(1)) == 'event: heartbeat\ndata: {"type":"heartbeat","ts":1}\n\n'


def test_text_in_another_layout_still_becomes_one_data_line():
    assert event('{\n "symbol": "A", "seq": 3, "type": "quote"\n}') == (
        'id: A:3\nevent: quote\ndata: {"symbol":"A","seq":3,"type":"quote"}\n\n'
    )


def test_quote_ts_reads_the_stamp():
    assert quote_ts(quote("A", 1, 1764000000123456)) == 1764000000123456
    assert quote_ts(protocol.with_prev_seq(quote("A", 1, 77), 0)) == 77


RING = [quote("B", seq, ts) for seq, ts in ((10, 100), (11, 200), (12, 200 + 1), (13, 300))]


@pytest.mark.parametrize(
    ("cutoff", "first_seq"),
    [
        # The newest at or before the cutoff: the client may have it, a duplicate at most.
        (200, 11),
        (250, 12),
        (300, 13),
        (999, 13),  # quiet since: its last quote again
    ],
)
def test_resume_from_starts_at_the_newest_quote_not_after_the_cutoff(cutoff, first_seq):
    missed = resume_from(RING, cutoff)
    assert missed is not None
    assert protocol.quote_seq(missed[0]) == first_seq
    assert [protocol.quote_seq(t) for t in missed] == list(range(first_seq, 14))


def test_resume_from_gives_up_when_the_ring_no_longer_reaches_back():
    assert resume_from(RING, 99) is None
    whole = [quote("B", 1, 500), quote("B", 2, 600)]
    assert resume_from(whole, 99) == whole  # the ring holds the symbol's every quote
    assert resume_from([], 99) == []
