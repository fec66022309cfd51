"""One checker for every server message a test sees (PROTOCOL.md, "Server → client")."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

ERROR_CODES = {
    "bad_json", "bad_request", "unknown_symbol", "too_many_symbols", "rate_limited",
    "unauthorized", "too_many_connections", "message_too_large",
    "not_entitled",  # PROTOCOL.md "Entitlements"
}
QUOTE_FIELDS = {
    "type", "symbol", "seq", "bid", "ask", "bid_size", "ask_size", "last", "last_size",
    "volume", "ts",
}
FIELDS: dict[str, set[str]] = {
    "welcome": {"type", "user", "heartbeat_s", "max_symbols", "protocol", "epoch"},
    "subscribed": {"type", "symbols"},
    "unsubscribed": {"type", "symbols"},
    "subscriptions": {"type", "symbols"},
    "pong": {"type", "ts"},
    "heartbeat": {"type", "ts"},
    "status": {"type", "symbol", "state"},
    "error": {"type", "code", "message"},
    "quote": QUOTE_FIELDS,
    "snapshot": QUOTE_FIELDS | {"epoch"},
}
OPTIONAL = {"id", "symbols"}
# --- stream semantics (issue 7): optional fields of one message type ---
OPTIONAL_BY_TYPE: dict[str, set[str]] = {"quote": {"prev_seq"}, "subscribed": {"recovered"}}
# --- end stream semantics ---
# --- make-before-break: the server asks the client to move (PROTOCOL.md "reconnect") ---
FIELDS["reconnect"] = {"type", "within_s", "reason"}
# --- end make-before-break ---


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_message(msg: Any, tick_sizes: dict[str, str] | None = None) -> dict[str, Any]:
    """Assert ``msg`` is a well-formed server message; return it."""
    assert isinstance(msg, dict), msg
    kind = msg.get("type")
    assert kind in FIELDS, f"unknown message type: {msg}"
    required = FIELDS[kind]
    missing = required - msg.keys()
    assert not missing, f"{kind} lacks {missing}: {msg}"
    extra = msg.keys() - required - OPTIONAL - OPTIONAL_BY_TYPE.get(kind, set())
    assert not extra, f"{kind} has unexpected fields {extra}: {msg}"
    if "id" in msg:
        assert isinstance(msg["id"], str | int) and not isinstance(msg["id"], bool)
    if kind in ("quote", "snapshot"):
        assert isinstance(msg["symbol"], str)
        assert _int(msg["seq"]) and msg["seq"] >= 1
        for f in ("bid", "ask", "last"):
            assert isinstance(msg[f], int | float) and msg[f] > 0, msg
        assert msg["bid"] < msg["ask"], msg
        for f in ("bid_size", "ask_size", "last_size", "volume"):
            assert _int(msg[f]) and msg[f] >= 0, msg
        assert _int(msg["ts"]) and msg["ts"] > 1_600_000_000_000_000, msg
        if "prev_seq" in msg:  # a gap marker: the seq the client had, never one that follows on
            assert _int(msg["prev_seq"]) and 0 <= msg["prev_seq"] < msg["seq"] - 1, msg
        if tick_sizes and msg["symbol"] in tick_sizes:
            tick = Decimal(tick_sizes[msg["symbol"]])
            for f in ("bid", "ask", "last"):
                assert Decimal(repr(msg[f])) % tick == 0, f"{f} off the tick grid: {msg}"
    elif kind == "error":
        assert msg["code"] in ERROR_CODES, msg
        assert isinstance(msg["message"], str) and msg["message"]
    elif kind == "status":
        assert msg["state"] in ("halted", "trading", "revoked"), msg  # revoked: "Entitlements"
    elif kind in ("subscribed", "unsubscribed", "subscriptions"):
        assert isinstance(msg["symbols"], list)
        assert all(isinstance(s, str) and s == s.upper() for s in msg["symbols"])
        if kind == "subscriptions":
            assert msg["symbols"] == sorted(msg["symbols"])
        if "recovered" in msg:
            assert isinstance(msg["recovered"], dict), msg
            assert all(isinstance(v, bool) for v in msg["recovered"].values()), msg
    elif kind == "reconnect":  # make-before-break
        assert msg["reason"] in ("shutdown", "max_age"), msg
        assert isinstance(msg["within_s"], int | float) and msg["within_s"] >= 0, msg
    elif kind == "welcome":
        assert msg["protocol"] == 1 and isinstance(msg["epoch"], str) and msg["epoch"]
    elif kind in ("pong", "heartbeat"):
        assert _int(msg["ts"])
    return msg


def decode_frame(text: str) -> list[dict[str, Any]]:
    """A frame is one object or an array of objects (PROTOCOL.md, "Frames")."""
    data = json.loads(text)
    items = data if isinstance(data, list) else [data]
    return [check_message(item) for item in items]
