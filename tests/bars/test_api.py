"""GET /api/bars/{symbol}/ (PROTOCOL.md "Bars"): shapes, intervals, limits, errors."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from feeds.auth import issue_token
from tests.bars.conftest import T0, add_bar

URL = "/api/bars/{}/"


@pytest.fixture(autouse=True)
def _quiet_settings(settings):
    settings.STATIC_ROOT = None  # WhiteNoise warns about a missing folder; no static files here
    settings.FEED_BARS_PERIOD_S = 60


@pytest.fixture
def client(transactional_db) -> APIClient:
    user = User.objects.create_user("barreader", password="bar-pass-123")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {issue_token(user)[0]}")
    return api


@pytest.fixture
def aapl(instruments):
    aapl = instruments("AAPL")
    for minute in range(12):  # minutes 0..11 of the hour, minute 7 without trades
        if minute != 7:
            add_bar(aapl, minute, f"{100 + minute}.10", f"{100 + minute}.90", f"{99 + minute}.50",
                    f"{100 + minute}.40", volume=10 * (minute + 1), trades=minute + 1)
    return aapl


def test_one_minute_bars_come_oldest_first_with_numbers_on_the_tick_grid(client, aapl):
    response = client.get(URL.format("aapl"))
    assert response.status_code == 200
    body = response.json()
    assert (body["symbol"], body["interval"], body["interval_s"]) == ("AAPL", "1m", 60)
    assert len(body["bars"]) == 11
    assert body["bars"][0] == {
        "start": "2023-11-14T22:00:00Z", "open": 100.1, "high": 100.9, "low": 99.5, "close": 100.4,
        "volume": 10, "trades": 1, "complete": True,
    }
    starts = [bar["start"] for bar in body["bars"]]
    assert starts == sorted(starts)
    assert "2023-11-14T22:07:00Z" not in starts


def test_limit_keeps_the_newest_bars(client, aapl):
    bars = client.get(URL.format("AAPL"), {"limit": 3}).json()["bars"]
    assert [b["start"][11:16] for b in bars] == ["22:09", "22:10", "22:11"]


def test_five_minute_bars_are_rolled_up_on_the_clock(client, aapl):
    bars = client.get(URL.format("AAPL"), {"interval": "5m"}).json()["bars"]
    assert [b["start"][11:16] for b in bars] == ["22:00", "22:05", "22:10"]
    first, middle, last = bars
    ohlc = (first["open"], first["high"], first["low"], first["close"])
    assert ohlc == (100.1, 104.9, 99.5, 104.4)
    assert (first["volume"], first["trades"]) == (150, 15)
    assert (middle["volume"], middle["trades"]) == (60 + 70 + 90 + 100, 6 + 7 + 9 + 10)
    assert (last["open"], last["close"], last["volume"]) == (110.1, 111.4, 230)


def test_hourly_bars_with_a_limit_read_only_what_they_need(client, aapl):
    bars = client.get(URL.format("AAPL"), {"interval": "1h", "limit": 1}).json()["bars"]
    assert len(bars) == 1
    assert bars[0]["start"] == "2023-11-14T22:00:00Z"
    assert bars[0]["trades"] == sum(m + 1 for m in range(12) if m != 7)


def test_a_bar_whose_period_is_running_is_not_complete(client, instruments):
    import time

    aapl = instruments("AAPL")
    now_minute = int(time.time()) // 60 - T0 // 60
    add_bar(aapl, now_minute, "1", "1", "1", "1")
    add_bar(aapl, now_minute - 1, "1", "1", "1", "1")
    bars = client.get(URL.format("AAPL")).json()["bars"]
    assert [b["complete"] for b in bars] == [True, False]


def test_symbols_with_a_slash_work_plain_and_encoded(client, instruments):
    eur = instruments("EUR/USD", tick="0.00001", price="1.08000")
    add_bar(eur, 0, "1.08001", "1.08010", "1.07990", "1.08005")
    for path in ("/api/bars/EUR/USD/", "/api/bars/eur%2Fusd/"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.json()["bars"][0]["high"] == 1.0801


def test_an_instrument_without_bars_has_an_empty_list(client, instruments):
    instruments("MSFT")
    assert client.get(URL.format("MSFT")).json()["bars"] == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"interval": "2m"}, "interval"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "1e3"}, "limit"),
    ],
)
def test_a_bad_parameter_is_400_naming_it(client, aapl, query, field):
    response = client.get(URL.format("AAPL"), query)
    assert response.status_code == 400
    body = response.json()
    assert field in body
    assert isinstance(body["detail"], str)
    assert field in body["detail"]


def test_an_unknown_symbol_is_a_json_404(client, instruments):
    for symbol in ("NOPE", "%27%22%3Cb%3E"):
        response = client.get(URL.format(symbol))
        assert response.status_code == 404
        assert "unknown symbol" in response.json()["detail"]


def test_anonymous_callers_get_401(transactional_db, aapl):
    response = APIClient().get(URL.format("AAPL"))
    assert response.status_code == 401
    assert "detail" in response.json()


def test_with_entitlements_on_bars_of_an_instrument_the_user_may_not_see_are_404(
    client, aapl, settings
):
    from feeds.models import Entitlement

    settings.FEED_ENTITLEMENTS = True
    response = client.get(URL.format("AAPL"))
    assert response.status_code == 404
    assert "unknown symbol" in response.json()["detail"]
    Entitlement.objects.create(user=User.objects.get(username="barreader"), exchange="TEST")
    assert len(client.get(URL.format("AAPL")).json()["bars"]) == 11
