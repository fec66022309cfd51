"""fan146 --rounds: the median of each round's own ratios, not a ratio of pooled figures."""

from __future__ import annotations

from bench.scenarios import median_ratios


def row(server: str, cpu: float, to_embedded: float | None, to_reference: float | None) -> dict:
    return {
        "server": server, "offered": 15_000, "cpu_per_delivery_us": cpu,
        "cpu_ratio_to_embedded": to_embedded, "cpu_ratio_to_reference": to_reference,
    }


def test_each_servers_median_is_taken_over_the_rounds():
    rounds = [
        [row("embedded", 8.8, 1.0, 1.27), row("redis-pubsub", 9.6, 1.09, 1.38),
         row("reference", 6.9, 1.27, 1.0)],
        [row("embedded", 8.8, 1.0, 0.95), row("redis-pubsub", 13.0, 1.47, 1.4),
         row("reference", 9.3, 1.05, 1.0)],
        [row("embedded", 9.0, 1.0, 1.1), row("redis-pubsub", 10.8, 1.2, 1.32),
         row("reference", 8.2, 1.1, 1.0)],
    ]
    medians = median_ratios(rounds)
    assert medians["redis-pubsub"] == {
        "cpu_per_delivery_us": 10.8, "cpu_ratio_to_embedded": 1.2, "cpu_ratio_to_reference": 1.38,
    }
    assert medians["embedded"]["cpu_ratio_to_reference"] == 1.1
    assert list(medians) == ["embedded", "redis-pubsub", "reference"]


def test_a_ratio_missing_in_a_round_is_left_out_of_its_median():
    rounds = [[row("redis-pubsub", 10.0, None, None)], [row("redis-pubsub", 12.0, 1.3, None)]]
    assert median_ratios(rounds)["redis-pubsub"] == {
        "cpu_per_delivery_us": 11.0, "cpu_ratio_to_embedded": 1.3, "cpu_ratio_to_reference": None,
    }
