"""Each limit of PROTOCOL.md is a setting, read from the environment, and the setting is obeyed.

tests/consumer/test_quote_consumer.py checks the defaults' behaviour; here
every limit is moved off its default and the connection must follow it.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from feeds.core.protocol import CloseCode
from tests.servers import ROOT
from tests.timeouts import timeout

pytestmark = pytest.mark.django_db(transaction=True)

LIMITS = {
    "FEED_MAX_CONNECTIONS_PER_USER": ("3", 3),
    "FEED_MAX_SYMBOLS": ("2", 2),
    "FEED_RATE_PER_S": ("2.5", 2.5),
    "FEED_RATE_BURST": ("3", 3),
    "FEED_MAX_FRAME_BYTES": ("2048", 2048),
    "FEED_AUTH_TIMEOUT_S": ("0.5", 0.5),
}


def settings_with(env: dict[str, str], code: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("FEED_")}
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); " + code],
        cwd=ROOT, env={**full, "DJANGO_SETTINGS_MODULE": "marketfeed.settings", **env},
        capture_output=True, text=True, timeout=timeout(60),
    )


def test_every_limit_is_read_from_the_environment(tmp_path):
    env = {name: raw for name, (raw, _) in LIMITS.items()} | {"MARKETFEED_VAR_DIR": str(tmp_path)}
    names = ", ".join(f"s.{name}" for name in LIMITS)
    result = settings_with(env, f"from django.conf import settings as s; print(repr(({names},)))")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == repr(tuple(value for _, value in LIMITS.values()))


def test_a_bad_limit_stops_start_up_naming_it(tmp_path):
    result = settings_with(
        {"FEED_MAX_FRAME_BYTES": "lots", "MARKETFEED_VAR_DIR": str(tmp_path)}, ""
    )
    assert result.returncode != 0
    assert "FEED_MAX_FRAME_BYTES='lots': expected a whole number" in result.stderr


async def test_connections_per_user_follow_the_setting(connect, settings):
    settings.FEED_MAX_CONNECTIONS_PER_USER = 2
    for _ in range(2):
        assert (await (await connect()).recv())["type"] == "welcome"
    third = await connect()
    assert (await third.recv())["code"] == "too_many_connections"
    assert await third.expect_close() == CloseCode.TOO_MANY_CONNECTIONS


async def test_symbols_per_connection_follow_the_setting(alice, settings, instruments):
    settings.FEED_MAX_SYMBOLS = 2
    reply = await alice.request({"op": "subscribe", "symbols": ["AAPL", "MSFT"], "id": 1})
    assert reply["type"] == "subscribed"
    refused = await alice.request({"op": "subscribe", "symbols": ["EUR/USD"], "id": 2})
    assert refused["code"] == "too_many_symbols"
    assert refused["symbols"] == ["EUR/USD"]


async def test_the_request_rate_follows_the_setting(connect, settings):
    settings.FEED_RATE_BURST, settings.FEED_RATE_PER_S = 3, 0.001
    client = await connect()
    assert (await client.recv())["type"] == "welcome"
    for i in range(5):
        await client.send({"op": "ping", "id": i})
    replies = [await client.recv() for _ in range(5)]
    assert [r["type"] for r in replies] == ["pong"] * 3 + ["error"] * 2
    assert [r["id"] for r in replies[3:]] == [3, 4]
    assert replies[3]["code"] == "rate_limited"


async def test_the_frame_size_follows_the_setting(alice, settings):
    settings.FEED_MAX_FRAME_BYTES = 2048
    ok = '{"op":"ping","id":1,"pad":"' + "x" * 1900 + '"}'
    await alice.send(ok)
    assert (await alice.recv())["type"] == "pong"
    # Counted in bytes, not characters: 700 euro signs are 2100 bytes.
    await alice.send('{"op":"ping","pad":"' + "€" * 700 + '"}')
    assert (await alice.recv())["code"] == "message_too_large"
    assert await alice.expect_close() == CloseCode.MESSAGE_TOO_BIG


async def test_the_auth_deadline_follows_the_setting(connect, settings, user):
    settings.FEED_AUTH_TIMEOUT_S = 0.3
    late = await connect("/ws/quotes/")
    assert (await late.recv(wait=5))["code"] == "unauthorized"
    assert await late.expect_close() == CloseCode.UNAUTHORIZED
    # In time, the same connection kind is welcomed.
    settings.FEED_AUTH_TIMEOUT_S = 30
    prompt = await connect("/ws/quotes/")
    assert (await prompt.request({"op": "auth", "token": user.token, "id": 1}))["type"] == "welcome"
