"""REST hides instruments and quotes a user is not entitled to, as if they did not exist."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from rest_framework.test import APIClient

from feeds.core.engine import Quote
from feeds.core.protocol import encode_quote
from feeds.publish.build import get_store, reset_store

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("entitlements_on")]


@pytest.fixture(autouse=True)
def _quoted(instruments, settings):
    """Every instrument has a latest quote in a fresh store."""
    settings.STATIC_ROOT = None
    reset_store()
    ts = 1_764_000_000_000_000
    quotes = [
        (symbol, 1, encode_quote(Quote(symbol, 1.0, 1.1, 1, 1, 1.05, 1, 10, ts), 1))
        for symbol in instruments
    ]
    async_to_sync(get_store().save)(quotes)
    yield
    reset_store()


@pytest.fixture
def api(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {user.token}")
    return client


def listed(api: APIClient, url: str) -> list[str]:
    response = api.get(url)
    assert response.status_code == 200, response.content
    body = response.json()
    return [row["symbol"] for row in (body["results"] if isinstance(body, dict) else body)]


def test_the_instrument_list_leaves_out_what_the_user_may_not_see(api):
    assert listed(api, "/api/instruments/") == ["AAPL", "EUR/USD", "MSFT"]
    assert listed(api, "/api/instruments/?search=j") == []


@pytest.mark.parametrize(
    "url", ["/api/instruments/JPM/", "/api/quotes/JPM/", "/api/quotes/btc-usd/"]
)
def test_a_detail_url_of_a_hidden_instrument_is_404_like_an_unknown_one(api, url):
    response = api.get(url)
    assert response.status_code == 404
    unknown = api.get(url.replace("JPM", "NOPE").replace("btc-usd", "nope"))
    assert unknown.json().keys() == response.json().keys()


def test_a_visible_instrument_detail_is_200(api):
    assert api.get("/api/instruments/EUR/USD/").json()["symbol"] == "EUR/USD"


def test_quotes_naming_a_hidden_symbol_are_400_unknown(api):
    response = api.get("/api/quotes/?symbols=AAPL,JPM,NOPE")
    assert response.status_code == 400
    assert response.json()["symbols"] == ["JPM", "NOPE"]


def test_all_quotes_are_only_the_visible_ones(api):
    assert listed(api, "/api/quotes/") == ["AAPL", "EUR/USD", "MSFT"]


def test_a_superuser_sees_every_instrument(api, instruments):
    from django.contrib.auth.models import User

    from feeds.auth import issue_token

    root = User.objects.create_superuser("root", password="root-pass-123")
    api.credentials(HTTP_AUTHORIZATION=f"Token {issue_token(root)[0]}")
    assert len(listed(api, "/api/instruments/")) == len(instruments)
    assert api.get("/api/instruments/JPM/").status_code == 200


def test_with_the_setting_off_everything_is_listed(api, instruments, settings):
    settings.FEED_ENTITLEMENTS = False
    assert len(listed(api, "/api/instruments/")) == len(instruments)
