"""Hostile values in the admin: each one is refused on its field, and nothing is half-saved."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.forms.models import model_to_dict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feeds.models import Instrument

pytestmark = pytest.mark.django_db

ADD = "/admin/feeds/instrument/add/"
VALID = {
    "symbol": "NVDA", "name": "NVIDIA", "exchange": "XNAS", "asset_class": "equity",
    "currency": "USD", "tick_size": "0.01", "lot_size": "100", "reference_price": "181.40",
    "volatility": "0.5", "quote_rate": "8", "active": "on",
}
ODD = st.sampled_from([
    "", " ", "\x00", "a\x00b", "NaN", "inf", "-inf", "1e999", "-0", "0", "-1", "1e-30",
    "9" * 40, "0." + "0" * 30 + "1",
    "１２",  # noqa: RUF001 (the point: fullwidth digits, which Decimal and int accept)
    "١٢", "\u202eRTL", "😀", "x" * 500, "AA PL", "eur/usd",
    "<script>", "' OR 1=1 --", "%00", "1,5", "1.5", "equity", "bonds",
])
values = ODD | st.text(max_size=30)


def form_errors(response) -> dict[str, list[str]]:
    return {f: list(e) for f, e in response.context["adminform"].form.errors.items()}


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(changes=st.dictionaries(st.sampled_from(sorted(VALID)), values, min_size=1, max_size=4))
def test_any_add_form_is_saved_valid_or_refused_with_messages(admin_client, changes):
    Instrument.objects.all().delete()
    response = admin_client.post(ADD, {**VALID, **changes})
    assert response.status_code in (200, 302)
    if response.status_code == 200:
        errors = form_errors(response)
        assert errors, "re-shown without saying why"
        assert set(errors) <= set(VALID), errors
        assert all(message.strip() for messages in errors.values() for message in messages)
        assert not Instrument.objects.exists(), "a refused form saved something"
    else:
        saved = Instrument.objects.get()
        saved.full_clean()  # what was saved obeys every rule
        assert saved.tick_size > 0
        assert saved.reference_price >= saved.tick_size


def test_a_refused_edit_leaves_the_instrument_exactly_as_it_was(admin_client):
    Instrument.objects.all().delete()
    assert admin_client.post(ADD, VALID).status_code == 302
    before = Instrument.objects.get()
    snapshot = model_to_dict(before)
    bad = {**VALID, "name": "Renamed", "tick_size": "0", "volatility": "-1", "currency": "usdx"}
    response = admin_client.post(f"/admin/feeds/instrument/{before.pk}/change/", bad)
    assert response.status_code == 200
    assert set(form_errors(response)) == {"tick_size", "volatility", "currency"}
    after = Instrument.objects.get()
    assert model_to_dict(after) == snapshot
    assert after.name == "NVIDIA"
    assert after.tick_size == Decimal("0.01")


def test_a_token_added_in_the_admin_is_shown_once_and_stored_hashed(
    admin_client, django_user_model
):
    """One user may hold several tokens (one per device); the admin shows a new one once."""
    from django.contrib.messages import get_messages
    from knox.models import AuthToken

    from feeds.auth import find_token, issue_token

    user = django_user_model.objects.create_user("carol", password="carol-pass-123")
    issue_token(user)
    response = admin_client.post("/admin/knox/authtoken/add/", {"user": user.pk})
    assert response.status_code == 302
    shown = [str(m) for m in get_messages(response.wsgi_request)]
    token = next(m.split()[-1] for m in shown if m.startswith("TOKEN "))
    assert AuthToken.objects.filter(user=user).count() == 2
    assert find_token(token).user == user
    assert not AuthToken.objects.filter(digest=token).exists()
    assert not AuthToken.objects.filter(token_key=token).exists()


def test_an_unknown_user_for_a_token_is_refused(admin_client):
    from knox.models import AuthToken

    count = AuthToken.objects.count()
    response = admin_client.post("/admin/knox/authtoken/add/", {"user": "99999"})
    assert response.status_code == 200
    assert form_errors(response)["user"]
    assert AuthToken.objects.count() == count
