"""The visibility rule (feeds.entitlements): who sees which instruments."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser, Group, User

from feeds.entitlements import (
    instrument_visible,
    visible_instruments,
    visible_symbols,
    visible_symbols_sync,
)
from feeds.models import Entitlement, Instrument
from tests.consumer.conftest import make_user

pytestmark = pytest.mark.django_db(transaction=True)

EVERYTHING = {"AAPL", "MSFT", "JPM", "EUR/USD", "BTC-USD"}


@pytest.fixture
def bob(instruments):
    return make_user("bob")


def test_with_the_setting_off_everybody_sees_everything(bob, settings):
    settings.FEED_ENTITLEMENTS = False
    assert visible_symbols_sync(bob) is None
    visible = visible_instruments(Instrument.objects.all(), bob)
    assert set(visible.values_list("symbol", flat=True)) == EVERYTHING


def test_a_user_without_entitlements_sees_nothing(bob, entitlements_on):
    assert visible_symbols_sync(bob) == set()


def test_an_exchange_entitles_every_instrument_listed_there(bob, entitlements_on):
    Entitlement.objects.create(user=bob, exchange="XNAS")
    assert visible_symbols_sync(bob) == {"AAPL", "MSFT"}


def test_exchanges_match_case_insensitively(bob, entitlements_on):
    Entitlement.objects.create(user=bob, exchange="xnys")
    assert visible_symbols_sync(bob) == {"JPM"}


def test_an_asset_class_entitles_every_instrument_of_that_class(bob, entitlements_on):
    Entitlement.objects.create(user=bob, asset_class="equity")
    assert visible_symbols_sync(bob) == {"AAPL", "MSFT", "JPM"}


def test_grants_of_the_users_groups_add_up_with_their_own(bob, entitlements_on):
    crypto = Group.objects.create(name="crypto desk")
    Entitlement.objects.create(group=crypto, asset_class="crypto")
    Entitlement.objects.create(user=bob, exchange="FXALL")
    assert visible_symbols_sync(bob) == {"EUR/USD"}
    bob.groups.add(crypto)
    assert visible_symbols_sync(bob) == {"EUR/USD", "BTC-USD"}


def test_another_users_or_groups_grants_do_not_leak(bob, entitlements_on):
    carol = make_user("carol")
    desk = Group.objects.create(name="desk")
    carol.groups.add(desk)
    Entitlement.objects.create(user=carol, exchange="XNAS")
    Entitlement.objects.create(group=desk, asset_class="fx")
    assert visible_symbols_sync(bob) == set()


def test_a_superuser_sees_everything(instruments, entitlements_on):
    root = User.objects.create_superuser("root", password="root-pass-123")
    assert visible_symbols_sync(root) is None
    assert instrument_visible(root, instruments["JPM"])


def test_an_anonymous_user_sees_nothing(instruments, entitlements_on):
    assert visible_symbols_sync(AnonymousUser()) == set()


def test_instrument_visible_follows_the_same_rule(bob, instruments, entitlements_on):
    Entitlement.objects.create(user=bob, asset_class="fx")
    assert instrument_visible(bob, instruments["EUR/USD"])
    assert not instrument_visible(bob, instruments["AAPL"])


def test_the_visible_set_is_one_query_however_many_grants(
    bob, entitlements_on, django_assert_num_queries
):
    desk = Group.objects.create(name="desk")
    bob.groups.add(desk)
    for exchange in ("XNAS", "XNYS", "FXALL"):
        Entitlement.objects.create(group=desk, exchange=exchange)
    Entitlement.objects.create(user=bob, asset_class="crypto")
    with django_assert_num_queries(1):
        assert visible_symbols_sync(bob) == EVERYTHING


async def test_the_async_twin_gives_the_same_answer(bob, entitlements_on):
    from channels.db import database_sync_to_async

    await database_sync_to_async(Entitlement.objects.create)(user=bob, exchange="XNAS")
    assert await visible_symbols(bob) == {"AAPL", "MSFT"}
