"""The ``watchlists`` op and a connection following its user's lists, without I/O."""

from __future__ import annotations

import json

import pytest

from feeds.core import events, parsing, protocol
from feeds.core.protocol import ErrorCode, ProtocolError
from feeds.deliver.follow import ReadWatchlists, WatchlistFollow
from tests.schema import check_message

LISTS = [
    {"id": 1, "name": "Main", "symbols": ["AAPL", "EUR/USD"], "updated": "2026-12-07T05:40:00Z"}
]


def test_the_op_parses_with_follow_on_by_default():
    assert parsing.parse_client_frame('{"op":"watchlists","id":5}') == protocol.Watchlists(5)
    request = parsing.parse_client_frame('{"op":"watchlists","follow":false}')
    assert request == protocol.Watchlists(None, follow=False)


@pytest.mark.parametrize("follow", ['"yes"', "1", "null", "[]"])
def test_follow_must_be_a_boolean(follow):
    with pytest.raises(ProtocolError) as caught:
        parsing.parse_client_frame('{"op":"watchlists","id":"w","follow":' + follow + "}")
    assert caught.value.code is ErrorCode.BAD_REQUEST
    assert caught.value.request_id == "w"


def test_the_message_is_the_documented_one():
    text = protocol.watchlists(LISTS, 5)
    assert json.loads(text) == {"type": "watchlists", "id": 5, "lists": LISTS}
    check_message(json.loads(text))
    check_message(json.loads(protocol.watchlists([])))


def changed(*users: str) -> events.Event:
    return events.watchlists_changed(users)


def test_nothing_is_followed_until_the_client_asks():
    follow = WatchlistFollow()
    assert follow.on_event(changed("7"), "7") is None


def test_a_request_is_answered_and_then_changes_of_its_user_are_followed():
    follow = WatchlistFollow()
    action = follow.request(protocol.Watchlists("w"))
    assert action == ReadWatchlists("w", answers_request=True)
    follow.reading(action)
    assert json.loads(follow.answer(action, LISTS))["id"] == "w"

    assert follow.on_event(changed("8"), "7") is None  # another user's
    assert follow.on_event(events.entitlements_changed(["7"]), "7") is None  # another event
    change = follow.on_event(changed("3", "7"), "7")
    assert change == ReadWatchlists()
    follow.reading(change)
    assert json.loads(follow.answer(change, LISTS)) == {"type": "watchlists", "lists": LISTS}


def test_changes_while_a_read_waits_need_no_read_of_their_own():
    follow = WatchlistFollow()
    follow.reading(follow.request(protocol.Watchlists()))
    first = follow.on_event(changed("7"), "7")
    assert first is not None
    assert follow.on_event(changed("7"), "7") is None  # the waiting read will see it
    follow.reading(first)
    # Once that read has started, a later change may not be in it: it gets its own.
    assert follow.on_event(changed("7"), "7") == ReadWatchlists()


def test_follow_false_answers_once_and_stops_following():
    follow = WatchlistFollow()
    follow.reading(follow.request(protocol.Watchlists()))
    pending = follow.on_event(changed("7"), "7")
    assert pending is not None
    stop = follow.request(protocol.Watchlists("s", follow=False))
    follow.reading(stop)
    assert json.loads(follow.answer(stop, []))["id"] == "s"
    # A change read already on its way is not sent after the client said stop.
    follow.reading(pending)
    assert follow.answer(pending, LISTS) is None
    assert follow.on_event(changed("7"), "7") is None
