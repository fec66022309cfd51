"""QuoteConsumer against PROTOCOL.md, in-process, with a real ticker and layer."""

from __future__ import annotations

import pytest

from feeds.core.protocol import CloseCode
from tests.consumer.conftest import deactivate

pytestmark = pytest.mark.django_db(transaction=True)


# --- authentication ------------------------------------------------------------------


async def test_header_token_is_welcomed_with_the_protocol_fields(connect, user):
    client = await connect(
        "/ws/quotes/", headers=[(b"authorization", f"Token {user.token}".encode())]
    )
    welcome = await client.recv()
    assert welcome["type"] == "welcome"
    assert welcome["user"] == "alice"
    assert welcome["heartbeat_s"] == 15
    assert welcome["max_symbols"] == 1000


async def test_query_string_token_is_welcomed(connect):
    client = await connect()
    assert (await client.recv())["type"] == "welcome"


async def test_bad_header_token_refuses_the_handshake(connect, user):
    await connect("/ws/quotes/", headers=[(b"authorization", b"Token nope")], expect_accept=False)


async def test_bad_query_token_refuses_even_with_a_good_header(connect, user):
    # Header wins: a good header with a bad query token is accepted...
    client = await connect(
        "/ws/quotes/?token=bad", headers=[(b"authorization", f"Token {user.token}".encode())]
    )
    assert (await client.recv())["type"] == "welcome"
    # ...and a bad query token alone is refused.
    await connect("/ws/quotes/?token=bad", expect_accept=False)


async def test_first_message_auth_welcomes_and_echoes_the_id(connect, user):
    client = await connect("/ws/quotes/")
    welcome = await client.request({"op": "auth", "token": user.token, "id": "a1"})
    assert welcome["type"] == "welcome"
    assert welcome["id"] == "a1"


async def test_failed_auth_message_is_unauthorized_then_4401(connect):
    client = await connect("/ws/quotes/")
    await client.send({"op": "auth", "token": "wrong", "id": 7})
    error = await client.recv()
    assert error["code"] == "unauthorized"
    assert error["id"] == 7
    assert await client.expect_close() == CloseCode.UNAUTHORIZED


async def test_any_other_op_before_auth_is_unauthorized_then_4401(connect):
    client = await connect("/ws/quotes/")
    await client.send({"op": "subscribe", "symbols": ["AAPL"], "id": 1})
    assert (await client.recv())["code"] == "unauthorized"
    assert await client.expect_close() == CloseCode.UNAUTHORIZED


async def test_no_auth_within_the_deadline_is_unauthorized_then_4401(connect, settings):
    settings.FEED_AUTH_TIMEOUT_S = 0.2
    client = await connect("/ws/quotes/")
    assert (await client.recv())["code"] == "unauthorized"
    assert await client.expect_close() == CloseCode.UNAUTHORIZED


async def test_auth_on_an_authenticated_connection_is_bad_request(alice, user):
    reply = await alice.request({"op": "auth", "token": user.token, "id": 3})
    assert reply["type"] == "error"
    assert reply["code"] == "bad_request"


async def test_session_cookie_authenticates_the_handshake(connect, user, client):
    from asgiref.sync import sync_to_async

    await sync_to_async(client.force_login)(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    ws = await connect("/ws/quotes/", headers=[(b"cookie", cookie)])
    assert (await ws.recv())["user"] == "alice"


async def test_expired_session_counts_as_no_credentials(connect, user):
    ws = await connect("/ws/quotes/", headers=[(b"cookie", b"sessionid=doesnotexist")])
    welcome = await ws.request({"op": "auth", "token": user.token, "id": 1})
    assert welcome["type"] == "welcome"


@pytest.mark.parametrize("origin", [b"http://evil.example", b"null", b"http://localhost.evil.example"])
async def test_foreign_origin_is_refused_whatever_the_credentials(connect, user, origin):
    await connect(headers=[(b"origin", origin)], expect_accept=False)


async def test_allowed_origin_and_missing_origin_are_accepted(connect):
    with_origin = await connect(headers=[(b"origin", b"http://localhost:8000")])
    assert (await with_origin.recv())["type"] == "welcome"
    without = await connect()
    assert (await without.recv())["type"] == "welcome"


async def test_user_over_the_connection_limit_gets_4429(connect, settings):
    settings.FEED_MAX_CONNECTIONS_PER_USER = 1
    first = await connect()
    assert (await first.recv())["type"] == "welcome"
    second = await connect()
    assert (await second.recv())["code"] == "too_many_connections"
    assert await second.expect_close() == CloseCode.TOO_MANY_CONNECTIONS


# --- subscriptions -------------------------------------------------------------------


async def test_subscribe_replies_then_snapshots_then_newer_quotes(alice, ticker):
    await ticker.advance(10)  # every instrument has a quote in the store
    reply = await alice.request(
        {"op": "subscribe", "symbols": ["aapl", "EUR/USD", "AAPL"], "id": 1}
    )
    assert reply == {"type": "subscribed", "id": 1, "symbols": ["AAPL", "EUR/USD"]}
    snaps = [await alice.recv(), await alice.recv()]
    assert [s["type"] for s in snaps] == ["snapshot", "snapshot"]
    assert {s["symbol"] for s in snaps} == {"AAPL", "EUR/USD"}
    assert all(s["epoch"] for s in snaps)
    last = {s["symbol"]: s["seq"] for s in snaps}
    await ticker.advance(10)
    for _ in range(4):
        quote = await alice.recv()
        assert quote["type"] == "quote"
        assert quote["seq"] == last[quote["symbol"]] + 1  # no gap for a client that keeps up
        last[quote["symbol"]] = quote["seq"]


async def test_new_epoch_sends_fresh_snapshots_before_its_quotes(alice, ticker):
    await ticker.advance(10)
    await alice.request({"op": "subscribe", "symbols": ["AAPL", "MSFT"], "id": 1})
    old = {(await alice.recv())["epoch"], (await alice.recv())["epoch"]}
    await ticker.advance(10)
    await alice.recv_until(lambda m: m["type"] == "quote")
    # The store is lost and numbering restarts under the connected client.
    ticker.store._latest.clear()
    ticker.store._epoch = "restart2"
    for book in ticker.books.values():
        book.seq = 0
    await ticker.advance(10)
    snap, before = await alice.recv_until(lambda m: m.get("epoch") == "restart2")
    assert len(old) == 1
    assert "restart2" not in old
    assert snap["type"] == "snapshot"
    assert all(m["type"] != "snapshot" for m in before)  # old-epoch quotes only, if any
    fresh = {snap["symbol"]: snap["seq"]}
    while len(fresh) < 2:
        msg = await alice.recv()
        assert msg["type"] == "snapshot", msg
        assert msg["epoch"] == "restart2", msg
        fresh[msg["symbol"]] = msg["seq"]
    assert max(fresh.values()) < 10  # the new numbering, not the old one
    await ticker.advance(10)
    quote, _ = await alice.recv_until(lambda m: m["type"] == "quote")
    assert quote["seq"] == fresh[quote["symbol"]] + 1


async def test_every_subscriber_gets_the_same_quote_text(connect, ticker):
    a, b = await connect(), await connect()
    for c in (a, b):
        await c.recv()
        await c.request({"op": "subscribe", "symbols": ["MSFT"], "id": 1})
    await ticker.advance(10)
    qa, _ = await a.recv_until(lambda m: m["type"] == "quote")
    qb, _ = await b.recv_until(lambda m: m["type"] == "quote" and m["seq"] == qa["seq"])
    assert qa == qb


async def test_unknown_symbol_is_atomic_and_names_every_unknown(alice, ticker):
    reply = await alice.request({"op": "subscribe", "symbols": ["AAPL", "NOPE", "ZZZ"], "id": 2})
    assert reply["code"] == "unknown_symbol"
    assert reply["symbols"] == ["NOPE", "ZZZ"]
    listed = await alice.request({"op": "list", "id": 3})
    assert listed["symbols"] == []


async def test_too_many_symbols_names_the_new_ones_and_changes_nothing(alice, ticker, settings):
    settings.FEED_MAX_SYMBOLS = 2
    await alice.request({"op": "subscribe", "symbols": ["AAPL"], "id": 1})
    reply = await alice.request(
        {"op": "subscribe", "symbols": ["AAPL", "MSFT", "BTC-USD"], "id": 2}
    )
    assert reply["code"] == "too_many_symbols"
    assert reply["symbols"] == ["MSFT", "BTC-USD"]
    assert (await alice.request({"op": "list", "id": 3}))["symbols"] == ["AAPL"]


async def test_unknown_symbol_wins_over_too_many(alice, ticker, settings):
    settings.FEED_MAX_SYMBOLS = 1
    reply = await alice.request({"op": "subscribe", "symbols": ["AAPL", "MSFT", "NOPE"], "id": 2})
    assert reply["code"] == "unknown_symbol"
    assert reply["symbols"] == ["NOPE"]


async def test_repeated_subscribe_is_idempotent_and_sends_a_fresh_snapshot(alice, ticker):
    await ticker.advance(10)
    await alice.request({"op": "subscribe", "symbols": ["AAPL"], "id": 1})
    first = await alice.recv()
    reply = await alice.request({"op": "subscribe", "symbols": ["AAPL"], "id": 2})
    assert reply["symbols"] == ["AAPL"]
    again, _ = await alice.recv_until(lambda m: m["type"] == "snapshot")
    assert again["seq"] >= first["seq"]
    assert (await alice.request({"op": "list", "id": 3}))["symbols"] == ["AAPL"]


async def test_unsubscribe_stops_quotes_for_that_symbol(alice, ticker):
    await alice.request({"op": "subscribe", "symbols": ["AAPL", "MSFT"], "id": 1})
    await ticker.advance(10)
    reply = await alice.request({"op": "unsubscribe", "symbols": ["aapl"], "id": 2})
    assert reply == {"type": "unsubscribed", "id": 2, "symbols": ["AAPL"]}
    for _ in range(5):
        await ticker.advance(10)
    # MSFT keeps flowing; an AAPL quote after the reply would be a breach.
    msft_seen = 0
    while msft_seen < 3:
        msg = await alice.recv()
        assert msg.get("symbol") != "AAPL", msg
        msft_seen += msg.get("symbol") == "MSFT"


async def test_unsubscribe_of_unknown_is_an_error_and_of_unsubscribed_is_not(alice, ticker):
    bad = await alice.request({"op": "unsubscribe", "symbols": ["NOPE"], "id": 1})
    assert bad["code"] == "unknown_symbol"
    assert bad["symbols"] == ["NOPE"]
    ok = await alice.request({"op": "unsubscribe", "symbols": ["MSFT"], "id": 2})
    assert ok == {"type": "unsubscribed", "id": 2, "symbols": ["MSFT"]}


async def test_list_is_sorted(alice, ticker):
    await alice.request({"op": "subscribe", "symbols": ["MSFT", "BTC-USD", "AAPL"], "id": 1})
    listed = await alice.request({"op": "list", "id": "L"})
    assert listed == {"type": "subscriptions", "id": "L", "symbols": ["AAPL", "BTC-USD", "MSFT"]}


async def test_ping_answers_pong_with_server_time_in_microseconds(alice):
    import time

    before = time.time_ns() // 1000
    pong = await alice.request({"op": "ping", "id": 9})
    assert pong["type"] == "pong"
    assert before <= pong["ts"] <= time.time_ns() // 1000


# --- halts -----------------------------------------------------------------------------


async def test_halted_instrument_subscribes_with_a_halted_status(alice, ticker):
    await deactivate("BTC-USD", False)
    await ticker.reload()
    await alice.request({"op": "subscribe", "symbols": ["BTC-USD"], "id": 1})
    assert await alice.recv() == {"type": "status", "symbol": "BTC-USD", "state": "halted"}


async def test_halt_and_resume_reach_subscribers_and_stop_quotes(alice, ticker):
    await alice.request({"op": "subscribe", "symbols": ["AAPL"], "id": 1})
    await deactivate("AAPL", False)
    await ticker.reload()
    halted, _ = await alice.recv_until(lambda m: m["type"] == "status")
    assert halted["state"] == "halted"
    assert "AAPL" not in ticker.books
    await deactivate("AAPL", True)
    await ticker.reload()
    trading, _ = await alice.recv_until(lambda m: m["type"] == "status")
    assert trading["state"] == "trading"
    await ticker.advance(10)
    quote, _ = await alice.recv_until(lambda m: m["type"] == "quote")
    assert quote["symbol"] == "AAPL"


# --- errors and limits -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "bad_json"),
        ("NaN", "bad_json"),
        ("[1, 2]", "bad_request"),
        ('{"op": "dance", "id": 1}', "bad_request"),
        ('{"op": "subscribe", "symbols": [], "id": 1}', "bad_request"),
        ('{"op": "subscribe", "id": 1}', "bad_request"),
        ('{"op": "subscribe", "symbols": [1], "id": 1}', "bad_request"),
        ("[" * 30_000 + "]" * 30_000, "bad_request"),
        ('{"op": "subscribe", "symbols": ["\\ud800"], "id": 1}', "unknown_symbol"),
    ],
)
async def test_bad_frames_get_an_error_and_the_connection_stays(alice, ticker, frame, code):
    await alice.send(frame)
    error = await alice.recv()
    assert error["type"] == "error"
    assert error["code"] == code
    if '"id": 1' in frame:
        assert error["id"] == 1
    assert (await alice.request({"op": "ping", "id": "still-here"}))["type"] == "pong"


async def test_binary_frame_is_bad_request(alice):
    await alice.ws.send_to(bytes_data=b"\x00\x01")
    assert (await alice.recv())["code"] == "bad_request"


async def test_frame_over_the_limit_is_message_too_large_then_1009(alice):
    await alice.send('{"op":"ping","pad":"' + "x" * 70_000 + '"}')
    assert (await alice.recv())["code"] == "message_too_large"
    assert await alice.expect_close() == CloseCode.MESSAGE_TOO_BIG


async def test_requests_over_the_rate_get_rate_limited_each_with_its_id(alice, settings):
    # The bucket holds 40 (burst); the 41st to 45th ping at once are refused.
    for i in range(45):
        await alice.send({"op": "ping", "id": i})
    replies = [await alice.recv() for _ in range(45)]
    pongs = [r["id"] for r in replies if r["type"] == "pong"]
    limited = [r["id"] for r in replies if r["type"] == "error" and r["code"] == "rate_limited"]
    assert len(pongs) >= 40
    assert len(pongs) + len(limited) == 45
    assert limited
    assert set(limited).isdisjoint(pongs)


async def test_quiet_connection_gets_heartbeats(connect, settings):
    settings.FEED_HEARTBEAT_S = 0.3
    client = await connect()
    assert (await client.recv())["type"] == "welcome"
    assert (await client.recv())["type"] == "heartbeat"


async def test_admin_halt_reaches_subscribers_through_the_control_message(alice, instruments):
    """The on-commit control message alone (the poll is set an hour away) drives the halt."""
    from channels.db import database_sync_to_async

    from feeds import services
    from feeds.publish.build import build_ticker

    ticker = build_ticker()
    ticker.reload_interval_s = 3600
    await ticker.start()
    try:
        await alice.request({"op": "subscribe", "symbols": ["EUR/USD"], "id": 1})
        halt = database_sync_to_async(services.instrument_halt)
        await halt(instruments=[instruments["EUR/USD"]])
        status, _ = await alice.recv_until(lambda m: m["type"] == "status")
        assert status == {"type": "status", "symbol": "EUR/USD", "state": "halted"}
    finally:
        await ticker.stop()
