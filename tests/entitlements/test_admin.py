"""The entitlement admin: bad rows are refused with a clear message; inlines on users and groups."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from feeds.models import Entitlement

pytestmark = pytest.mark.django_db(transaction=True)

BOTH_OWNERS = "An entitlement is for a user or for a group: choose exactly one."
BOTH_SCOPES = "An entitlement names an exchange or an asset class: fill in exactly one."


@pytest.fixture
def operator(settings) -> Client:
    settings.STATIC_ROOT = None
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    root = User.objects.create_superuser("root", password="root-pass-123")
    http = Client()
    http.force_login(root)
    return http


@pytest.fixture
def bob() -> User:
    return User.objects.create_user("bob", password="bob-pass-123")


@pytest.fixture
def desk() -> Group:
    return Group.objects.create(name="desk")


def add(http: Client, **fields: object):
    form = {"user": "", "group": "", "exchange": "", "asset_class": "", **fields}
    return http.post("/admin/feeds/entitlement/add/", form)


@pytest.mark.parametrize(
    ("owners", "scope", "message"),
    [
        (("user", "group"), {"exchange": "XNAS"}, BOTH_OWNERS),
        ((), {"exchange": "XNAS"}, BOTH_OWNERS),
        (("user",), {"exchange": "XNAS", "asset_class": "fx"}, BOTH_SCOPES),
        (("group",), {}, BOTH_SCOPES),
        (("user",), {"exchange": "   "}, BOTH_SCOPES),
    ],
    ids=[
        "user-and-group",
        "neither-owner",
        "exchange-and-asset-class",
        "neither-scope",
        "blank-exchange",
    ],
)
def test_a_bad_row_is_refused_with_a_clear_message(operator, bob, desk, owners, scope, message):
    ids = {"user": bob.pk, "group": desk.pk}
    response = add(operator, **{o: ids[o] for o in owners}, **scope)
    assert response.status_code == 200  # the form again, not a redirect
    assert message in response.content.decode()
    assert not Entitlement.objects.exists()


def test_a_good_row_is_saved_with_its_exchange_upper_case(operator, bob):
    response = add(operator, user=bob.pk, exchange=" xnas ")
    assert response.status_code == 302
    assert Entitlement.objects.get().exchange == "XNAS"


def test_a_group_row_by_asset_class_is_saved(operator, desk):
    assert add(operator, group=desk.pk, asset_class="crypto").status_code == 302
    assert Entitlement.objects.get().group == desk


def inline_form(prefix: str, **fields: str) -> dict[str, str]:
    return {
        f"{prefix}-TOTAL_FORMS": "1", f"{prefix}-INITIAL_FORMS": "0",
        f"{prefix}-MIN_NUM_FORMS": "0", f"{prefix}-MAX_NUM_FORMS": "1000",
        **{f"{prefix}-0-{k}": v for k, v in fields.items()},
    }


def test_a_groups_page_edits_its_entitlements_inline(operator, desk):
    assert "entitlements" in operator.get(f"/admin/auth/group/{desk.pk}/change/").content.decode()
    form = {"name": "desk", **inline_form("entitlements", exchange="xnys", asset_class="")}
    response = operator.post(f"/admin/auth/group/{desk.pk}/change/", form)
    assert response.status_code == 302
    assert desk.entitlements.get().exchange == "XNYS"


def test_an_inline_row_with_both_scopes_is_refused(operator, desk):
    form = {"name": "desk", **inline_form("entitlements", exchange="XNYS", asset_class="fx")}
    response = operator.post(f"/admin/auth/group/{desk.pk}/change/", form)
    assert response.status_code == 200
    assert BOTH_SCOPES in response.content.decode()
    assert not desk.entitlements.exists()


def test_the_entitlement_list_finds_a_users_rows_by_name(operator, bob):
    Entitlement.objects.create(user=bob, exchange="XNAS")
    Entitlement.objects.create(user=User.objects.create_user("carol"), exchange="XNYS")
    page = operator.get("/admin/feeds/entitlement/?q=bob").content.decode()
    assert ">bob<" in page  # the user column of bob's row
    assert "carol" not in page
