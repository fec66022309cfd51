"""Symbol to channel-layer group names (feeds/core/groups.py)."""

from __future__ import annotations

import itertools
import re

import pytest

from feeds.core.groups import (
    GROUP_PREFIX,
    SERVERS_CONTROL_GROUP,
    TICKER_CONTROL_GROUP,
    group_for_symbol,
)

# channels.layers.BaseChannelLayer: group_name_regex and len(name) < MAX_NAME_LENGTH (100).
CHANNELS_GROUP_NAME = re.compile(r"^[a-zA-Z\d\-_.]+$")
MAX_NAME_LENGTH = 100

# Symbols the Instrument model allows: ^[A-Z0-9.\-/_]{1,20}$, plus what a client may type.
ODD_SYMBOLS = [
    "AAPL",
    "EUR/USD",
    "BRK.B",
    "BTC-USD",
    "A_B",
    "_",
    "/",
    ".",
    "-",
    "ES=F",
    "^GSPC",
    "A B",
    "X" * 20,
    "/" * 20,
    "_" * 20,
    "/_" * 10,
    "./-_" * 5,
    "aapl",
]


def is_valid_group_name(name: str) -> bool:
    return bool(CHANNELS_GROUP_NAME.match(name)) and len(name) < MAX_NAME_LENGTH


@pytest.mark.parametrize("symbol", ODD_SYMBOLS)
def test_group_name_is_a_valid_channels_group_name_under_100_chars(symbol):
    name = group_for_symbol(symbol)
    assert is_valid_group_name(name), name
    assert name.startswith(GROUP_PREFIX)


@pytest.mark.parametrize("symbol", ODD_SYMBOLS)
def test_group_name_is_accepted_by_the_channels_layer_itself(symbol):
    from channels.layers import BaseChannelLayer

    assert BaseChannelLayer().require_valid_group_name(group_for_symbol(symbol))


def test_the_longest_all_escaped_symbol_fits_with_room_to_spare():
    assert len(group_for_symbol("/" * 20)) == len(GROUP_PREFIX) + 60 < MAX_NAME_LENGTH


def test_plain_symbols_are_kept_readable():
    assert group_for_symbol("BRK.B") == "q.BRK.B"
    assert group_for_symbol("BTC-USD") == "q.BTC-USD"
    assert group_for_symbol("EUR/USD") == "q.EUR_2FUSD"
    assert group_for_symbol("A_B") == "q.A_5FB"


TRICKY = [
    "A/B",
    "A_2FB",
    "A_B",
    "A_5FB",
    "A_5F2FB",
    "AB",
    "A.B",
    "A-B",
    "A__B",
    "A//B",
    "A_2F",
    "A/",
    "_2F",
    "/",
    "_",
    "__",
    "_5F",
    "2F",
    "A",
    "a",
    "A/B/",
    "A_2FB_2F",
]


def test_group_names_are_injective_over_tricky_symbols():
    names = [group_for_symbol(s) for s in TRICKY]
    assert len(set(names)) == len(set(TRICKY)), sorted(zip(names, TRICKY, strict=True))


def test_group_names_are_injective_over_every_short_symbol_of_an_escape_heavy_alphabet():
    # Every string of 1 to 4 characters over the characters that make escapes look
    # alike: a collision would need two of these to map to one name.
    alphabet = "A2F5_/.-"
    symbols = [
        "".join(chars) for n in range(1, 5) for chars in itertools.product(alphabet, repeat=n)
    ]
    names = {group_for_symbol(s) for s in symbols}
    assert len(names) == len(symbols)
    assert all(is_valid_group_name(name) for name in names)


@pytest.mark.parametrize("name", [TICKER_CONTROL_GROUP, SERVERS_CONTROL_GROUP])
def test_control_groups_are_valid_and_cannot_be_a_symbol_group(name):
    assert is_valid_group_name(name)
    assert not name.startswith(GROUP_PREFIX)
