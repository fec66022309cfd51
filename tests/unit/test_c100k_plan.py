"""The c100k split of connections over load processes and source addresses (bench/c100k_load.py).

Pure arithmetic, but it decides whether 100,000 connections fit at all: no
process over its open-file limit, no source address over its share of the
ephemeral ports, every connection dealt exactly once.
"""

from __future__ import annotations

import pytest

from bench.c100k import subscriptions
from bench.c100k_load import (
    FD_RESERVE,
    PlanError,
    deal,
    plan,
    ports_per_source,
    server_processes_needed,
    source_address,
)

PORTS = (32768, 60999)


def test_100k_at_20000_files_needs_six_processes_of_one_or_more_addresses() -> None:
    p = plan(100_000, nofile=20_000, port_range=PORTS)
    assert p.procs == 6
    assert sum(p.counts) == 100_000
    assert max(p.counts) - min(p.counts) <= 1
    assert max(p.counts) <= 20_000 - FD_RESERVE
    for count, sources in zip(p.counts, p.sources, strict=True):
        assert count / len(sources) <= ports_per_source(PORTS)


def test_addresses_are_never_shared_and_never_the_servers() -> None:
    p = plan(100_000, nofile=20_000, port_range=PORTS, procs=8, sources_per_proc=3)
    flat = [a for s in p.sources for a in s]
    assert len(flat) == len(set(flat)) == 24
    assert "127.0.0.1" not in flat
    assert flat[0] == "127.0.0.2"


def test_a_narrow_port_range_means_more_addresses_per_process() -> None:
    p = plan(100_000, nofile=20_000, port_range=(50000, 51999))
    per_source = ports_per_source((50000, 51999))
    assert all(c / len(s) <= per_source for c, s in zip(p.counts, p.sources, strict=True))
    assert len(p.sources[0]) > 1


def test_too_few_processes_or_files_is_refused_with_the_reason() -> None:
    with pytest.raises(PlanError, match="at least 6 load processes"):
        plan(100_000, nofile=20_000, port_range=PORTS, procs=4)
    with pytest.raises(PlanError, match="hard limit"):
        plan(10, nofile=100, port_range=PORTS)
    with pytest.raises(PlanError, match="empty"):
        plan(10, nofile=20_000, port_range=(5, 4))


def test_deal_gives_each_process_its_count_in_order() -> None:
    p = plan(11, nofile=FD_RESERVE + 4, port_range=PORTS)
    clients = [(str(i), []) for i in range(11)]
    shares = deal(clients, p)
    assert [len(s) for s in shares] == p.counts == [4, 4, 3]
    assert [c for s in shares for c in s] == clients


def test_server_processes_and_addresses() -> None:
    assert server_processes_needed(110_000, 20_000) == 6
    assert server_processes_needed(100_000, 10_000) == 11
    assert source_address(0) == "127.0.0.2"
    assert source_address(254) == "127.0.1.0"


def test_subscriptions_hold_the_common_symbol_and_one_to_five_in_all() -> None:
    symbols = [f"B{i:03d}" for i in range(100)]
    subs = subscriptions(1000, symbols, 5)
    assert all(s[0] == "B000" and 1 <= len(s) <= 5 and len(set(s)) == len(s) for s in subs)
    assert sum(len(s) for s in subs) == 3000
    assert subs == subscriptions(1000, symbols, 5)


def test_status_delays_are_per_change_and_count_only_their_own_state() -> None:
    from bench.c100k import _delays

    changes = [("halted", 100.0), ("trading", 105.0)]
    statuses = [
        (int(100.2e6), "B000", "halted"),
        (int(101.0e6), "B000", "halted"),
        (int(100.5e6), "B001", "halted"),  # another symbol
        (int(105.1e6), "B000", "trading"),
        (int(106.0e6), "B000", "halted"),  # late, after the resume was called: still the halt's
    ]
    halted, trading = _delays(changes, statuses, "B000", 3)
    assert halted["received"] == 3
    assert halted["all_received"]
    assert halted["max_s"] == 6.0
    assert halted["p50_s"] == 1.0
    assert trading["received"] == 1
    assert not trading["all_received"]
