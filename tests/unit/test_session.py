"""The stream's rules, driven on a bare ``Session`` (feeds/deliver/session.py): no server, no loop.

Each test plays what a driver would: plan a request against what it "read"
(instruments, entitlements), ``begin``, hand in the store's answer with
``finish``, and deliver quotes as the hub would; it then reads what the
client would receive from the outbox. The same rules are proven through the
WebSocket and SSE shells in tests/consumer, tests/sse and the live tests.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from feeds.core import events, parsing, protocol
from feeds.core.engine import Quote
from feeds.core.limits import TokenBucket
from feeds.core.outbox import Outbox
from feeds.core.protocol import CloseCode, ErrorCode, ProtocolError, ReconnectReason, State
from feeds.deliver.plan import AddToWildcard, Close, Limits, RecheckEntitlements
from feeds.deliver.resume import LastEventId
from feeds.deliver.session import Phase, Session
from tests.unit.test_stream_throttle import Timers

EPOCH = "e1"
ACTIVE = {"AAPL": True, "MSFT": True, "EUR/USD": True, "HALTED": False}


def text(symbol: str, seq: int, ts: int | None = None) -> str:
    quote = Quote(
        symbol=symbol, bid=1.0, ask=1.1, bid_size=1, ask_size=1, last=1.05, last_size=1,
        volume=seq, ts=ts if ts is not None else seq * 1000,
    )
    return protocol.encode_quote(quote, seq)


class Client:
    """A session and what its client has been sent, message by message."""

    def __init__(self, limits: Limits | None = None, *, bucket: TokenBucket | None = None) -> None:
        self.timers = Timers()
        self.errors: list[ErrorCode] = []
        self.outbox = Outbox(send=self._never, on_ready=lambda box: None, batch_frames=False)
        self.limits = limits or Limits(max_symbols=10, heartbeat_s=15)
        self.session = Session(
            outbox=self.outbox, limits=lambda: self.limits, clock=self.timers.clock,
            call_at=self.timers.call_at, bucket=bucket, on_error=self.errors.append,
        )

    async def _never(self, text: str, shared: bool) -> None:
        raise AssertionError("the fake transport writes everything at once")

    def received(self) -> list[dict[str, Any]]:
        """Everything flushed since the last call, decoded."""
        sent: list[str] = []
        self.outbox._write = lambda texts, shared: sent.extend(texts) or True  # type: ignore[misc]
        self.outbox.flush()
        return [json.loads(t) for t in sent]

    def admit(self, user_key: str = "7", token_digest: str | None = "d1") -> dict[str, Any]:
        self.session.admit(user="alice", user_key=user_key, token_digest=token_digest, epoch=EPOCH)
        (welcome,) = self.received()
        return welcome

    def subscribe(
        self,
        symbols: list[str],
        *,
        latest: dict[str, tuple[int, str]] | None = None,
        found: dict[str, list[str] | None] | None = None,
        visible: set[str] | None = None,
        covered: dict[str, bool] | None = None,
        held: list[tuple[str, int]] = (),
        **fields: Any,
    ) -> list[dict[str, Any]]:
        """One subscribe, the store answering ``latest``; ``held``: quotes arriving meanwhile."""
        request = parsing.parse_request({"op": "subscribe", "symbols": symbols, "id": 1, **fields})
        assert isinstance(request, protocol.Subscribe)
        known = {s: a for s, a in ACTIVE.items() if s in request.symbols}
        opening = self.session.plan_subscribe(
            request, active=known, visible=visible, covered=covered
        )
        self.session.begin(opening)
        for symbol, seq in held:
            self.session.deliver_quote(symbol, seq, text(symbol, seq))
        latest = latest if latest is not None else {s: (5, text(s, 5)) for s in opening.symbols}
        self.session.finish(opening, latest=latest, epoch=EPOCH, found=found or {})
        return self.received()

    def quote(self, symbol: str, seq: int) -> None:
        self.session.deliver_quote(symbol, seq, text(symbol, seq))


def kinds(messages: list[dict[str, Any]]) -> list[tuple[str, str | None, int | None]]:
    return [(m["type"], m.get("symbol"), m.get("seq")) for m in messages]


@pytest.fixture
def alice() -> Client:
    client = Client()
    client.admit()
    return client


def test_admission_welcomes_with_the_limits_and_epoch():
    client = Client(Limits(max_symbols=3, heartbeat_s=15))
    welcome = client.admit()
    assert welcome["type"] == "welcome"
    assert welcome["max_symbols"] == 3
    assert welcome["epoch"] == EPOCH
    assert client.session.phase is Phase.OPEN


def test_a_subscribe_is_answered_then_each_symbol_gets_its_snapshot(alice):
    assert kinds(alice.subscribe(["AAPL", "MSFT"])) == [
        ("subscribed", None, None), ("snapshot", "AAPL", 5), ("snapshot", "MSFT", 5),
    ]
    alice.quote("AAPL", 6)
    assert kinds(alice.received()) == [("quote", "AAPL", 6)]


def test_quotes_arriving_while_the_start_is_read_follow_the_snapshot_without_repeats(alice):
    messages = alice.subscribe(["AAPL"], held=[("AAPL", 4), ("AAPL", 5), ("AAPL", 6), ("AAPL", 7)])
    assert kinds(messages) == [
        ("subscribed", None, None),
        ("snapshot", "AAPL", 5),
        ("quote", "AAPL", 6),
        ("quote", "AAPL", 7),
    ]


def test_unknown_symbols_refuse_the_whole_subscribe_and_change_nothing(alice):
    with pytest.raises(ProtocolError) as refused:
        alice.subscribe(["AAPL", "NOPE", "ZZZ"])
    assert refused.value.code is ErrorCode.UNKNOWN_SYMBOL
    assert refused.value.symbols == ("NOPE", "ZZZ")
    assert alice.session.subs == {}


def test_a_symbol_outside_the_users_licence_is_not_entitled(alice):
    with pytest.raises(ProtocolError) as refused:
        alice.subscribe(["AAPL", "MSFT"], visible={"AAPL"})
    assert refused.value.code is ErrorCode.NOT_ENTITLED
    assert refused.value.symbols == ("MSFT",)


def test_too_many_symbols_names_the_new_ones(alice):
    alice.limits = Limits(max_symbols=2, heartbeat_s=15)
    alice.subscribe(["AAPL"])
    with pytest.raises(ProtocolError) as refused:
        alice.subscribe(["AAPL", "MSFT", "EUR/USD"])
    assert refused.value.code is ErrorCode.TOO_MANY_SYMBOLS
    assert refused.value.symbols == ("MSFT", "EUR/USD")
    assert list(alice.session.subs) == ["AAPL"]


def test_a_halted_instrument_gets_a_halted_status_and_no_snapshot(alice):
    messages = alice.subscribe(["HALTED"])
    assert kinds(messages) == [("subscribed", None, None), ("status", "HALTED", None)]
    assert messages[1]["state"] == "halted"


def test_a_quote_after_a_gap_carries_the_seq_the_client_had(alice):
    alice.subscribe(["AAPL"])
    alice.quote("AAPL", 8)
    (quote,) = alice.received()
    assert quote["seq"] == 8
    assert quote["prev_seq"] == 5


def test_stale_and_repeated_quotes_are_never_sent(alice):
    alice.subscribe(["AAPL"])
    for seq in (6, 6, 4, 7):
        alice.quote("AAPL", seq)
    assert kinds(alice.received()) == [("quote", "AAPL", 6), ("quote", "AAPL", 7)]


def test_unsubscribe_stops_quotes_for_that_symbol_and_tells_the_hub(alice):
    alice.subscribe(["AAPL", "MSFT"])
    request = protocol.Unsubscribe(symbols=("AAPL",), id=2)
    assert alice.session.unsubscribe(request, known={}) == ["AAPL"]
    alice.quote("AAPL", 6)
    alice.quote("MSFT", 6)
    assert kinds(alice.received()) == [("unsubscribed", None, None), ("quote", "MSFT", 6)]


def test_unsubscribing_an_unknown_symbol_is_unknown_symbol(alice):
    request = protocol.Unsubscribe(symbols=("NOPE",), id=2)
    with pytest.raises(ProtocolError) as refused:
        alice.session.unsubscribe(request, known={})
    assert refused.value.code is ErrorCode.UNKNOWN_SYMBOL


def test_a_wildcard_covers_what_the_user_may_see_and_lists_as_star(alice):
    covered = {"AAPL": True, "MSFT": True}
    messages = alice.subscribe(["*"], covered=covered)
    assert messages[0] == {"type": "subscribed", "symbols": ["AAPL", "MSFT"], "id": 1}
    alice.session.list_subscriptions(protocol.ListSubscriptions(id=3))
    assert alice.received()[0]["symbols"] == ["*", "AAPL", "MSFT"]


def test_a_new_listing_joins_a_wildcard_with_an_unsolicited_subscribed(alice):
    alice.subscribe(["*"], covered={"AAPL": True}, throttle_ms=250)
    action = alice.session.on_event(events.instruments_added(["AAPL", "MSFT"]))
    assert action == AddToWildcard(("MSFT",))
    opening = alice.session.plan_wildcard_add({"MSFT": True})
    assert opening is not None
    assert opening.throttle_ms == 250
    assert opening.request_id is None
    alice.session.begin(opening)
    alice.session.finish(opening, latest={"MSFT": (3, text("MSFT", 3))}, epoch=EPOCH, found={})
    assert kinds(alice.received()) == [("subscribed", None, None), ("snapshot", "MSFT", 3)]


def test_new_listings_past_max_symbols_are_named_in_an_error(alice):
    alice.limits = Limits(max_symbols=2, heartbeat_s=15)
    alice.subscribe(["*"], covered={"AAPL": True})
    opening = alice.session.plan_wildcard_add({"MSFT": True, "EUR/USD": True})
    assert opening is not None
    assert opening.symbols == ("MSFT",)
    (error,) = alice.received()
    assert error["code"] == "too_many_symbols"
    assert error["symbols"] == ["EUR/USD"]


def test_a_listing_means_nothing_without_a_wildcard(alice):
    alice.subscribe(["AAPL"])
    assert alice.session.on_event(events.instruments_added(["MSFT"])) is None


def test_since_in_the_same_epoch_replays_what_was_missed_and_says_recovered(alice):
    missed = [text("AAPL", n) for n in (4, 5)]
    messages = alice.subscribe(
        ["AAPL", "MSFT"], since={"AAPL": 3, "MSFT": 1}, epoch=EPOCH,
        found={"AAPL": missed, "MSFT": None},
    )
    assert messages[0]["recovered"] == {"AAPL": True, "MSFT": False}
    assert kinds(messages[1:]) == [
        ("quote", "AAPL", 4), ("quote", "AAPL", 5), ("snapshot", "MSFT", 5)
    ]


def test_since_of_another_epoch_reads_no_ring_and_snapshots():
    client = Client()
    client.admit()
    request = parsing.parse_request(
        {"op": "subscribe", "symbols": ["AAPL"], "since": {"AAPL": 3}, "epoch": "old", "id": 1}
    )
    opening = client.session.plan_subscribe(request, active={"AAPL": True}, visible=None)
    assert opening.resume is not None
    assert opening.resume.reachable(opening.symbols, {"AAPL": (5, text("AAPL", 5))}, EPOCH) == {}


def test_last_event_id_resumes_the_named_symbol_exactly_and_the_others_by_time(alice):
    opening = alice.session.plan_subscribe(
        protocol.Subscribe(symbols=("AAPL", "MSFT")),
        active={"AAPL": True, "MSFT": True},
        visible=None,
    )
    resume = LastEventId("AAPL", 4, ring=256)
    latest = {"AAPL": (6, text("AAPL", 6, ts=60)), "MSFT": (9, text("MSFT", 9, ts=90))}
    assert resume.reachable(opening.symbols, latest, EPOCH) == {"AAPL": 3, "MSFT": 0}
    found = {
        "AAPL": [text("AAPL", n, ts=n * 10) for n in (4, 5, 6)],
        "MSFT": [text("MSFT", n, ts=n * 10 - 5) for n in range(1, 10)],
    }
    alice.session.begin(opening)
    alice.session.finish(
        dataclasses.replace(opening, resume=resume), latest=latest, epoch=EPOCH, found=found,
    )
    messages = alice.received()
    assert messages[0]["recovered"] == {"AAPL": True, "MSFT": True}
    # AAPL after 4 exactly; MSFT from its newest quote stamped at or before AAPL 4's (ts 40).
    assert kinds(messages[1:]) == [
        ("quote", "AAPL", 5), ("quote", "AAPL", 6),
        ("quote", "MSFT", 4), ("quote", "MSFT", 5), ("quote", "MSFT", 6),
        ("quote", "MSFT", 7), ("quote", "MSFT", 8), ("quote", "MSFT", 9),
    ]


def test_a_throttled_symbol_gets_the_newest_quote_once_per_interval(alice):
    alice.subscribe(["AAPL"], throttle_ms=1000)
    for seq in (6, 7, 8):
        alice.quote("AAPL", seq)
    assert alice.received() == []
    alice.timers.advance(1.0)
    (quote,) = alice.received()
    assert quote["seq"] == 8
    assert quote["prev_seq"] == 5


def test_a_halt_releases_the_held_quote_before_the_status(alice):
    alice.subscribe(["AAPL"], throttle_ms=1000)
    alice.quote("AAPL", 6)
    alice.session.deliver_status("AAPL", protocol.status("AAPL", State.HALTED))
    assert kinds(alice.received()) == [("quote", "AAPL", 6), ("status", "AAPL", None)]


def test_a_revoked_licence_drops_its_symbols_with_a_revoked_status(alice):
    alice.subscribe(["AAPL", "MSFT"])
    assert alice.session.drop_revoked(["MSFT", "EUR/USD"]) == ["MSFT"]
    alice.quote("MSFT", 6)
    messages = alice.received()
    assert messages == [{"type": "status", "symbol": "MSFT", "state": "revoked"}]


def test_a_licence_change_for_this_user_asks_for_a_recheck(alice):
    assert alice.session.on_event(events.entitlements_changed(["7"])) == RecheckEntitlements()
    assert alice.session.on_event(events.entitlements_changed(["8"])) is None


@pytest.mark.parametrize(
    "event",
    [events.auth_revoked(token_digests=["d1"]), events.auth_revoked(user_ids=["7"])],
)
def test_revoked_credentials_close_with_unauthorized_and_4401_once(alice, event):
    action = alice.session.on_event(event)
    assert isinstance(action, Close)
    assert action.code is CloseCode.UNAUTHORIZED
    assert json.loads(action.farewell or "") == {
        "type": "error", "code": "unauthorized", "message": "credentials revoked",
    }
    assert alice.session.on_event(event) is None
    assert alice.errors == [ErrorCode.UNAUTHORIZED]


def test_someone_elses_revocation_changes_nothing(alice):
    someone_else = events.auth_revoked(token_digests=["other"], user_ids=["8"])
    assert alice.session.on_event(someone_else) is None


def test_a_new_epoch_sends_fresh_snapshots_before_any_quote_of_it(alice):
    alice.subscribe(["AAPL"])
    symbols = alice.session.begin_resnapshot()
    assert symbols == ("AAPL",)
    for seq in (1, 2, 3):  # the new epoch's numbering, arriving while its snapshot is read
        alice.quote("AAPL", seq)
    alice.session.finish_resnapshot(symbols, latest={"AAPL": (2, text("AAPL", 2))}, epoch="e2")
    messages = alice.received()
    assert kinds(messages) == [("snapshot", "AAPL", 2), ("quote", "AAPL", 3)]
    assert messages[0]["epoch"] == "e2"


def test_without_a_store_a_resnapshot_lets_quotes_through(alice):
    alice.subscribe(["AAPL"])
    symbols = alice.session.begin_resnapshot()
    alice.quote("AAPL", 1)
    alice.session.resnapshot_failed(symbols)
    assert kinds(alice.received()) == [("quote", "AAPL", 1)]


def test_reconnect_is_announced_once_then_the_close_is_1001(alice):
    first = alice.session.announce_reconnect(5, ReconnectReason.MAX_AGE)
    assert json.loads(first or "") == {"type": "reconnect", "within_s": 5, "reason": "max_age"}
    assert alice.session.announce_reconnect(5, ReconnectReason.SHUTDOWN) is None
    assert alice.session.going_away() == Close(CloseCode.GOING_AWAY)
    assert alice.session.going_away() is None


def test_the_maximum_age_is_jittered_up_to_ten_percent_late():
    client = Client(Limits(max_symbols=1, heartbeat_s=15, max_connection_age_s=100))
    assert client.session.max_age_delay(0.0) == 100
    assert client.session.max_age_delay(0.999) == pytest.approx(109.99)
    assert Client().session.max_age_delay(0.5) is None


def test_requests_past_the_rate_limit_are_refused():
    client = Client(bucket=TokenBucket(rate=1, burst=2, now=0.0))
    assert [client.session.allow_request(0.0) for _ in range(3)] == [True, True, False]
    assert client.session.allow_request(1.0)


def test_a_closed_session_routes_nothing_and_asks_nothing(alice):
    alice.subscribe(["AAPL"])
    alice.session.close()
    alice.quote("AAPL", 6)
    assert alice.received() == []
    assert alice.session.on_event(events.auth_revoked(user_ids=["7"])) is None


def test_a_symbol_the_new_epoch_has_not_stored_yet_gets_its_first_quote_as_snapshot(alice):
    alice.subscribe(["AAPL"])
    symbols = alice.session.begin_resnapshot()
    alice.session.finish_resnapshot(symbols, latest={}, epoch="e2")
    alice.quote("AAPL", 1)
    alice.quote("AAPL", 2)
    messages = alice.received()
    assert kinds(messages) == [("snapshot", "AAPL", 1), ("quote", "AAPL", 2)]
    assert messages[0]["epoch"] == "e2"
