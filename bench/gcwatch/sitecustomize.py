"""Garbage-collection accounting for the processes a benchmark starts.

A directory put on ``PYTHONPATH`` by ``bench/gcwatch.py`` (with
``BENCH_GC_DIR`` set), so that every Python process started from it loads
this file first: a ``gc.callbacks`` hook adds up the thread CPU time of each
collection by generation, and notes every collection that held the process
longer than 20 ms of wall clock. Twice a second a thread writes the figures
to ``$BENCH_GC_DIR/gc-<pid>.json``; the benchmark reads them at the edges of
its phases. Without ``BENCH_GC_DIR`` it does nothing.
"""

import os

if os.environ.get("BENCH_GC_DIR"):
    import gc
    import json
    import sys
    import threading
    import time

    _out = os.path.join(os.environ["BENCH_GC_DIR"], f"gc-{os.getpid()}.json")
    _cpu = [0.0, 0.0, 0.0]
    _count = [0, 0, 0]
    _long: list = []  # [wall clock at the end, generation, wall ms, cpu ms]
    _started = [0.0, 0.0]

    def _hook(phase, info):
        if phase == "start":
            _started[0], _started[1] = time.perf_counter(), time.thread_time()
            return
        wall = time.perf_counter() - _started[0]
        cpu = time.thread_time() - _started[1]
        generation = info["generation"]
        _cpu[generation] += cpu
        _count[generation] += 1
        if wall > 0.02:
            _long.append([time.time(), generation, round(wall * 1000, 1), round(cpu * 1000, 1)])

    def _write():
        while True:
            time.sleep(0.5)
            try:
                with open(_out + ".tmp", "w") as out:
                    json.dump({"argv": sys.argv[:3], "cpu_s": _cpu, "collections": _count,
                               "long": _long}, out)
                os.replace(_out + ".tmp", _out)
            except OSError:
                return

    gc.callbacks.append(_hook)
    threading.Thread(target=_write, name="bench-gcwatch", daemon=True).start()
