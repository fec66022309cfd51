"""bench.tickwork: the fixed ticker workload, back to back and with a sleep after each pass."""

from __future__ import annotations

import pytest

from bench import tickwork


@pytest.mark.parametrize("gap", ["0", "2"])
def test_it_publishes_one_quote_a_pass_and_reports_the_cpu_per_pass(gap, capsys, monkeypatch):
    monkeypatch.setenv("FEED_BACKFILL_DAYS", "0")
    assert tickwork.main(["25", "--gap-ms", gap]) == 0
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("tickwork: 25 passes, 25 quotes published, ")
    per_pass = int(line.split("published, ")[1].split(" µs")[0])
    assert per_pass > 0
    assert line.endswith(f"(gap {gap} ms)")


@pytest.mark.parametrize("argv", [["0"], ["10", "--gap-ms", "-1"], ["many"]])
def test_bad_arguments_are_refused_with_a_usage_line(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        tickwork.main(argv)
    assert stop.value.code == 2
    assert "usage: python -m bench.tickwork" in capsys.readouterr().err
