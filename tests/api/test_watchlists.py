"""`/api/watchlists/`: named symbol lists kept on the server (PROTOCOL.md "Watchlists")."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from feeds import watchlists
from feeds.auth import issue_token
from feeds.core import events
from feeds.models import Instrument, Watchlist

pytestmark = pytest.mark.django_db

URL = "/api/watchlists/"


def detail(pk: object) -> str:
    return f"{URL}{pk}/"


def client_of(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {issue_token(user)[0]}")
    return client


def create(api: APIClient, name: str, symbols: list[str]) -> dict[str, Any]:
    response = api.post(URL, {"name": name, "symbols": symbols}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_create_list_read_update_delete_keeps_the_order(api, universe):
    made = create(api, "Tech", ["msft", "eur/usd", "AAPL"])
    assert made["name"] == "Tech"
    assert made["symbols"] == ["MSFT", "EUR/USD", "AAPL"]
    assert isinstance(made["id"], int)
    assert made["updated"].endswith("Z")

    other = create(api, "Crypto", ["BTC-USD"])
    listed = api.get(URL)
    assert listed.status_code == 200
    assert [(w["name"], w["symbols"]) for w in listed.json()] == [
        ("Tech", ["MSFT", "EUR/USD", "AAPL"]),
        ("Crypto", ["BTC-USD"]),
    ]

    assert api.get(detail(made["id"])).json()["symbols"] == ["MSFT", "EUR/USD", "AAPL"]

    moved = api.put(detail(made["id"]), {"symbols": ["AAPL", "MSFT"]}, format="json")
    assert moved.status_code == 200, moved.content
    assert moved.json()["symbols"] == ["AAPL", "MSFT"]
    assert moved.json()["name"] == "Tech"

    renamed = api.put(detail(made["id"]), {"name": "  Big   tech "}, format="json")
    assert renamed.json()["name"] == "Big tech"
    assert renamed.json()["symbols"] == ["AAPL", "MSFT"]

    both = api.put(detail(made["id"]), {"name": "T", "symbols": []}, format="json")
    assert both.json() == {**both.json(), "name": "T", "symbols": []}

    gone = api.delete(detail(other["id"]))
    assert gone.status_code == 204
    assert api.get(detail(other["id"])).status_code == 404
    assert [w["name"] for w in api.get(URL).json()] == ["T"]


def test_a_new_user_has_no_lists(api):
    response = api.get(URL)
    assert response.status_code == 200
    assert response.json() == []


def test_unknown_symbols_are_refused_naming_each(api, universe):
    response = api.post(URL, {"name": "X", "symbols": ["AAPL", "jpm", "NOPE!"]}, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "detail": "unknown symbol(s): JPM, NOPE!",
        "symbols": ["JPM", "NOPE!"],
    }
    assert not Watchlist.objects.exists()

    made = create(api, "Y", ["AAPL"])
    response = api.put(detail(made["id"]), {"symbols": ["JPM"]}, format="json")
    assert response.status_code == 400
    assert response.json() == {"detail": "unknown symbol(s): JPM", "symbols": ["JPM"]}
    assert api.get(detail(made["id"])).json()["symbols"] == ["AAPL"]


def test_hidden_symbols_are_unknown_with_entitlements_on(api, universe, settings):
    settings.FEED_ENTITLEMENTS = True
    response = api.post(URL, {"name": "X", "symbols": ["AAPL"]}, format="json")
    assert response.status_code == 400
    assert response.json()["symbols"] == ["AAPL"]


def test_another_users_list_does_not_exist_for_you(api, universe):
    bob = User.objects.create_user("bob", password="x")
    bobs = client_of(bob)
    theirs = create(bobs, "Bob's", ["AAPL"])

    for response in (
        api.get(detail(theirs["id"])),
        api.put(detail(theirs["id"]), {"name": "mine now"}, format="json"),
        api.delete(detail(theirs["id"])),
    ):
        assert response.status_code == 404
        assert response.json() == {"detail": "No such watchlist."}
    assert api.get(URL).json() == []
    assert bobs.get(detail(theirs["id"])).json()["name"] == "Bob's"
    # The same name is fine for another user.
    create(api, "Bob's", ["MSFT"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "detail"),
        (b"[1, 2]", "non_field_errors"),
        (b'{"symbols": ["AAPL"]}', "name"),
        (b'{"name": "X"}', "symbols"),
        (b'{"name": "X", "symbols": "AAPL"}', "symbols"),
        (b'{"name": "X", "symbols": [1]}', "symbols"),
        (b'{"name": "X", "symbols": [""]}', "symbols"),
        (b'{"name": "   ", "symbols": []}', "name"),
        (b'{"name": "' + b"n" * 61 + b'", "symbols": []}', "name"),
        (b'{"name": "X", "symbols": ["AAPL", "aapl"]}', "symbols"),
    ],
)
def test_bad_input_is_a_clear_400(api, universe, body, field):
    response = api.post(URL, body, content_type="application/json")
    assert response.status_code == 400, response.content
    data = response.json()
    assert isinstance(data["detail"], str)
    assert data["detail"]
    assert field in data
    assert not Watchlist.objects.exists()


def test_duplicates_are_named(api, universe):
    response = api.post(URL, {"name": "X", "symbols": ["AAPL", "MSFT", "aapl"]}, format="json")
    assert response.json() == {
        "detail": "symbol(s) given more than once: AAPL",
        "symbols": ["AAPL"],
    }


def test_a_put_must_change_something(api, universe):
    made = create(api, "X", ["AAPL"])
    response = api.put(detail(made["id"]), {}, format="json")
    assert response.status_code == 400
    assert "name" in response.json()["detail"]


def test_names_are_unique_per_user_case_insensitively(api, universe):
    create(api, "Main", [])
    response = api.post(URL, {"name": "MAIN", "symbols": []}, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "detail": "you already have a watchlist named 'MAIN'",
        "name": ["you already have a watchlist named 'MAIN'"],
    }
    second = create(api, "Other", [])
    assert api.put(detail(second["id"]), {"name": "main"}, format="json").status_code == 400
    # Renaming a list to its own name (another case) is fine.
    assert api.put(detail(second["id"]), {"name": "OTHER"}, format="json").status_code == 200


def test_limits_lists_per_user_and_symbols_per_list(api, universe, settings, monkeypatch):
    monkeypatch.setattr(watchlists, "MAX_LISTS", 2)
    create(api, "one", [])
    create(api, "two", [])
    response = api.post(URL, {"name": "three", "symbols": []}, format="json")
    assert response.status_code == 400
    assert response.json()["detail"] == "at most 2 watchlists per user"

    settings.FEED_MAX_SYMBOLS = 2
    first = api.get(URL).json()[0]
    response = api.put(
        detail(first["id"]), {"symbols": ["AAPL", "MSFT", "EUR/USD"]}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["detail"] == "symbols: A watchlist holds at most 2 symbols."
    ok = api.put(detail(first["id"]), {"symbols": ["AAPL", "MSFT"]}, format="json")
    assert ok.status_code == 200


def test_ids_that_cannot_exist_are_404(api):
    assert api.get(detail(0)).status_code == 404
    assert api.get(detail(10**30)).status_code == 404
    assert api.get(f"{URL}abc/").status_code == 404


def test_token_and_session_authenticate_anonymous_is_401(user, universe, anon):
    assert anon.get(URL).status_code == 401
    assert anon.post(URL, {"name": "X", "symbols": []}, format="json").status_code == 401

    session = APIClient(enforce_csrf_checks=True)
    session.force_login(user)
    assert session.get(URL).status_code == 200
    # A session write without its CSRF token is refused, as everywhere in the API.
    refused = session.post(URL, {"name": "X", "symbols": []}, format="json")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]


def test_a_write_tells_the_servers_after_the_commit(
    api, user, universe, monkeypatch, django_capture_on_commit_callbacks
):
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(watchlists, "notify_servers", lambda event, what: sent.append(event))
    with django_capture_on_commit_callbacks(execute=True):
        made = create(api, "X", ["AAPL"])
        api.put(detail(made["id"]), {"symbols": ["MSFT"]}, format="json")
        api.post(URL, {"name": "Y", "symbols": ["JPM"]}, format="json")  # refused: nothing sent
        api.delete(detail(made["id"]))
    assert sent == [events.watchlists_changed([str(user.pk)])] * 3


def test_deleting_an_instrument_leaves_the_lists_readable(api, universe):
    made = create(api, "X", ["AAPL", "MSFT"])
    Instrument.objects.filter(symbol="MSFT").delete()
    assert api.get(detail(made["id"])).json()["symbols"] == ["AAPL", "MSFT"]
