"""bench/gcwatch: a benchmark's processes account for their garbage collection."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from bench import gcwatch
from tests.timeouts import timeout

MAKES_GARBAGE = """
import gc, sys
class Node:
    def __init__(self):
        self.me = self
for _ in range(200_000):
    Node()
gc.collect()
sys.stdin.read()  # alive until the test has read the figures
"""


@pytest.fixture
def restored_environment():
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_a_process_started_after_enable_writes_its_collections(tmp_path, restored_environment):
    gcwatch.enable(tmp_path)
    child = subprocess.Popen([sys.executable, "-c", MAKES_GARBAGE], stdin=subprocess.PIPE)
    gcwatch.disable()
    assert "BENCH_GC_DIR" not in os.environ
    try:
        deadline = time.monotonic() + timeout(20)
        figures: dict = {}
        while time.monotonic() < deadline:
            figures = gcwatch.read(tmp_path, {"daphne1": child.pid})
            if figures and figures["daphne1"]["collections"][2] >= 1:
                break
            time.sleep(0.1)  # its writer thread writes twice a second
        assert figures, "the child wrote no figures"
    finally:
        child.communicate(b"")
    phase = gcwatch.between({}, figures, 0.0, time.time())
    mine = phase["daphne1"]
    assert mine["collections"][0] > 100  # 200,000 cycles: many young collections
    assert mine["cpu_s"][0] > 0
    total = gcwatch.servers_total(phase)
    assert total["cpu_s"] == round(sum(mine["cpu_s"]), 2)


def test_a_phase_counts_only_its_own_pauses():
    before = {"daphne1": {"cpu_s": [1.0, 0.5, 2.0], "collections": [10, 2, 1], "long": []}}
    after = {
        "daphne1": {
            "cpu_s": [1.5, 0.5, 3.0],
            "collections": [20, 3, 2],
            "long": [[99.0, 2, 900.0, 400.0], [105.0, 2, 60.0, 30.0], [111.0, 0, 25.0, 5.0]],
        },
        "runticker": {"cpu_s": [9.0, 9.0, 9.0], "collections": [1, 1, 1], "long": []},
    }
    phase = gcwatch.between(before, after, 100.0, 110.0)
    assert phase["daphne1"] == {
        "cpu_s": [0.5, 0.0, 1.0], "collections": [10, 1, 1], "over_20ms": 1,
        "longest_wall_ms": 60.0, "longest_cpu_ms": 30.0,
    }
    total = gcwatch.servers_total(phase)  # runticker is not a server process
    assert total == {
        "cpu_s": 1.5, "full_cpu_s": 1.0, "over_20ms": 1, "longest_wall_ms": 60.0,
        "longest_cpu_ms": 30.0,
    }
