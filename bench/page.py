"""Is the ticker page smooth at 1,000 updates/s? Measured inside a real browser.

    .venv/bin/python -m bench.page [--symbols 100] [--rate 10] [--seconds 10]

Starts one daphne (embedded ticker, in-memory layer, a temporary database)
with ``--symbols`` bench instruments quoting ``--rate`` times a second each,
signs a user in to the ticker page in headless Chromium with all of them on
its watchlist, and measures inside the page for ``--seconds``:

- quote messages received per second (counted by a listener on the page's
  own WebSocket, which parses each frame a second time);
- animation frames per second and the longest gap between two frames;
- long tasks (PerformanceObserver ``longtask``: main-thread work over 50 ms);
- display lag: every 100 ms, over the rows on screen, how long the oldest
  quote a row does not show yet has been waiting (0 when every row shows its
  newest); rows scrolled out of view are not repainted, so not counted;
- receive to paint: for every quote painted, from its ``message`` event to
  the frame that wrote it (a MutationObserver on the row's ``data-seq``);
- quote age at paint: the painted quote's ``ts`` (generation) to that frame,
  next to the same age on arrival at a plain Python WebSocket client
  subscribed to the same symbols at the same time: the difference is the
  page's own delay, main-thread queueing included;
- per frame, counts that do not depend on how busy the machine is: DOM
  writes (a MutationObserver over the page's ``#ticker``), style recalcs and
  layouts (CDP ``Performance.getMetrics`` deltas), and ms of script, layout,
  style per frame;
- the reference: before the ticker page opens, the same browser shows a page
  that does nothing but ``requestAnimationFrame`` for ``--seconds``: the
  practical frame-rate limit of this browser on this machine now. The page's
  frame rate and p99 frame gap are also given as ratios of the reference's;
- with ``--trace``, then ``TRACE_S`` seconds of a Chromium trace
  (``devtools.timeline``): ms per frame in script, style, layout, paint, raster.

Prints the figures and writes them to ``bench/results/page-<UTC stamp>.json``.
docs/TICKER.md says how to read them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from websockets.sync.client import connect as sync_connect

from bench import procs
from bench.results import RESULTS_DIR, machine
from bench.servers import Helper, base_env, probe

ROOT = Path(__file__).resolve().parent.parent
USER, PASSWORD = "pagebench", "page-bench-pass-1"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
START_TIMEOUT_S = 60.0
WARMUP_S = 3.0  # after every row shows a quote: let the JIT and the history settle
TRACE_S = 3.0  # the optional trace runs after the measurement, so it cannot disturb it
# Renderer work per frame that does not depend on how busy the machine is
# (Performance.getMetrics, counts and durations since the page opened).
CDP_COUNTS = ("LayoutCount", "RecalcStyleCount")
CDP_DURATIONS = ("ScriptDuration", "LayoutDuration", "RecalcStyleDuration", "TaskDuration")
TRACE_CATEGORIES = ["devtools.timeline", "disabled-by-default-devtools.timeline", "blink", "cc"]
TRACE_EVENTS = (  # where a frame's time goes, as the DevTools Performance panel names it
    "FunctionCall", "EventDispatch", "TimerFire", "FireAnimationFrame", "UpdateLayoutTree",
    "Layout", "PrePaint", "Paint", "Layerize", "Commit", "RasterTask", "ParseHTML",
)

# The practical limit: a page that does nothing but ask for animation frames,
# measured in the same browser, same run, as the ticker page.
REFERENCE_HTML = """<!doctype html><title>frames</title><script>
  const gaps = []; let last = 0;
  const frame = (t) => { if (last) gaps.push(t - last); last = t; requestAnimationFrame(frame); };
  requestAnimationFrame(frame);
  window.__frames = {
    start() { gaps.length = 0; this.t0 = performance.now(); },
    stop() { return { seconds: (performance.now() - this.t0) / 1000, gaps: [...gaps] }; },
  };
</script>"""

# Runs before the page's own scripts: wraps WebSocket to see every message,
# counts frames, observes long tasks, samples the display lag.
PROBE_JS = r"""
(() => {
  const probe = { running: false };
  const waiting = new Map(); // symbol -> [[seq, receivedAt, ts], ...] not yet on screen
  const reset = () => Object.assign(probe, {
    quotes: 0, frames: 0, lastFrame: 0, maxGap: 0, gaps: [], longTasks: [], domWrites: 0,
    lagSamples: [], paintDelays: [], ages: [], t0: performance.now(),
  });
  reset();
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (event) => {
        if (!probe.running) return;
        const now = performance.now();
        const data = JSON.parse(event.data);
        for (const m of Array.isArray(data) ? data : [data]) {
          if (m.type !== "quote" && m.type !== "snapshot") continue;
          probe.quotes += 1;
          let queue = waiting.get(m.symbol);
          if (!queue) waiting.set(m.symbol, (queue = []));
          queue.push([m.seq, now, m.ts]);
        }
      });
    }
  };
  const frame = (t) => {
    if (probe.running) {
      if (probe.lastFrame) {
        const gap = t - probe.lastFrame;
        probe.gaps.push(gap);
        if (gap > probe.maxGap) probe.maxGap = gap;
      }
      probe.lastFrame = t;
      probe.frames += 1;
    }
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
  new PerformanceObserver((list) => {
    if (!probe.running) return;
    for (const e of list.getEntries()) probe.longTasks.push(e.duration);
  }).observe({ type: "longtask" });
  // The page writes a row's data-seq when it paints the row: that is display time.
  const painted = (records) => {
    if (!probe.running) return;
    const now = performance.now();
    const wall = Date.now();
    for (const r of records) {
      const tr = r.target;
      const shown = Number(tr.dataset.seq);
      const queue = waiting.get(tr.dataset.symbol) ?? [];
      while (queue.length && queue[0][0] <= shown) {
        const [seq, receivedAt, ts] = queue.shift();
        if (seq === shown) {
          probe.paintDelays.push(now - receivedAt);
          probe.ages.push(wall - ts / 1000);
        }
      }
    }
  };
  // Only what is on screen is displayed: the page does not repaint rows off screen.
  const onScreen = new Set();
  const screen = new IntersectionObserver((entries) => {
    for (const e of entries) {
      if (e.isIntersecting) onScreen.add(e.target); else onScreen.delete(e.target);
    }
  });
  // Every DOM change the page makes (text, attributes, nodes), whatever its cause.
  const counted = (records) => { if (probe.running) probe.domWrites += records.length; };
  new MutationObserver(() => {
    const rows = document.getElementById("rows");
    if (!rows || rows.dataset.probed) return;
    rows.dataset.probed = "1";
    new MutationObserver(counted).observe(document.getElementById("ticker"),
      { subtree: true, childList: true, attributes: true, characterData: true });
    new MutationObserver(painted).observe(rows, { subtree: true, attributeFilter: ["data-seq"] });
    new MutationObserver(() => rows.querySelectorAll("tr").forEach((tr) => screen.observe(tr)))
      .observe(rows, { childList: true });
  }).observe(document, { childList: true, subtree: true });
  // Every 100 ms: how long the oldest quote not yet on screen has waited, worst row.
  setInterval(() => {
    if (!probe.running) return;
    const now = performance.now();
    let worst = 0;
    for (const [symbol, queue] of waiting) {
      const tr = document.querySelector(`#rows tr[data-symbol="${CSS.escape(symbol)}"]`);
      if (!tr || !onScreen.has(tr)) queue.length = 0;
      else if (queue.length) worst = Math.max(worst, now - queue[0][1]);
    }
    probe.lagSamples.push(worst);
  }, 100);
  window.__pageBench = {
    start() { reset(); waiting.clear(); probe.running = true; },
    samples() { return probe.lagSamples.length; },
    stop() {
      probe.running = false;
      const seconds = (performance.now() - probe.t0) / 1000;
      return { seconds, quotes: probe.quotes, frames: probe.frames, maxGap: probe.maxGap,
               domWrites: probe.domWrites,
               gaps: probe.gaps, longTasks: probe.longTasks, lag: probe.lagSamples,
               paintDelays: probe.paintDelays, ages: probe.ages, rows_on_screen: onScreen.size,
               status_rate: document.querySelector('[data-stat="rate"]')?.textContent ?? "" };
    },
  };
})();
"""


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summarise(raw: dict[str, Any]) -> dict[str, Any]:
    seconds = raw["seconds"]
    long_tasks = raw["longTasks"]
    return {
        "seconds": round(seconds, 2),
        "quotes_per_s": round(raw["quotes"] / seconds, 1),
        "page_status_bar_rate": raw["status_rate"],
        "rows_on_screen": raw["rows_on_screen"],
        "frames_per_s": round(raw["frames"] / seconds, 1),
        "frame_gap_ms": spread(raw["gaps"]),
        "dom_writes_per_frame": round(raw["domWrites"] / max(1, raw["frames"]), 1),
        # Per row repainted (one painted quote each), so not a matter of the frame rate.
        "dom_writes_per_row_painted": round(raw["domWrites"] / max(1, len(raw["paintDelays"])), 1),
        "frames_over_50ms": sum(1 for g in raw["gaps"] if g > 50),
        "long_tasks": {
            "count": len(long_tasks),
            "total_ms": round(sum(long_tasks), 1),
            "max_ms": round(max(long_tasks, default=0), 1),
        },
        "display_lag_ms": spread(raw["lag"]),
        "receive_to_paint_ms": spread(raw["paintDelays"]),
        "quote_age_at_paint_ms": spread(raw["ages"]),
    }


def spread(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(values, 0.5), 1),
        "p99": round(percentile(values, 0.99), 1),
        "max": round(max(values, default=0), 1),
    }


def measure_reference(browser: Any, seconds: float) -> dict[str, Any]:
    """Frames per second and frame gaps of a page that only animates: the limit."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_content(REFERENCE_HTML)
    page.wait_for_timeout(1000)
    page.evaluate("window.__frames.start()")
    page.wait_for_timeout(seconds * 1000)
    raw = page.evaluate("window.__frames.stop()")
    context.close()
    return {
        "frames_per_s": round((len(raw["gaps"]) + 1) / raw["seconds"], 1),
        "frame_gap_ms": spread(raw["gaps"]),
    }


def versus(page: dict[str, Any], reference: dict[str, Any]) -> dict[str, float]:
    """The page's frame rate and p99 gap as a ratio of the reference's: 1 is the limit."""
    return {
        "frames_per_s": round(page["frames_per_s"] / max(0.1, reference["frames_per_s"]), 2),
        "frame_gap_p99": round(
            page["frame_gap_ms"]["p99"] / max(0.1, reference["frame_gap_ms"]["p99"]), 2
        ),
    }


def cdp_metrics(cdp: Any) -> dict[str, float]:
    return {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}


def per_frame(before: dict[str, float], after: dict[str, float], frames: int) -> dict[str, float]:
    """Style recalcs and layouts per frame (counts), and ms per frame of script, layout, style."""
    frames = max(1, frames)
    out = {name: round((after[name] - before[name]) / frames, 2) for name in CDP_COUNTS}
    for name in CDP_DURATIONS:
        out[f"{name}_ms"] = round(1000 * (after[name] - before[name]) / frames, 2)
    return out


def trace(browser: Any, page: Any, seconds: float) -> dict[str, float]:
    """Trace the renderer for ``seconds``: ms per animation frame spent in each kind of event."""
    browser.start_tracing(page=page, categories=TRACE_CATEGORIES)
    page.evaluate("window.__pageBench.start()")
    page.wait_for_timeout(seconds * 1000)
    frames = page.evaluate("window.__pageBench.stop()")["frames"]
    doc = json.loads(browser.stop_tracing())
    events = doc["traceEvents"] if isinstance(doc, dict) else doc
    totals = dict.fromkeys(TRACE_EVENTS, 0.0)
    for e in events:
        if e.get("ph") == "X" and e.get("name") in totals:
            totals[e["name"]] += e.get("dur", 0) / 1000
    return {name: round(ms / max(1, frames), 2) for name, ms in totals.items()}


class AgeWatcher(threading.Thread):
    """A plain WebSocket client on the same feed: the age of each quote on arrival."""

    def __init__(self, ws_url: str, symbols: list[str]) -> None:
        super().__init__(daemon=True)
        self.ws_url, self.symbols = ws_url, symbols
        self.measuring = threading.Event()
        self.done = threading.Event()
        self.ages: list[float] = []

    def run(self) -> None:
        with sync_connect(self.ws_url, compression=None, max_size=None) as ws:
            ws.send(json.dumps({"op": "subscribe", "symbols": self.symbols, "id": 1}))
            while not self.done.is_set():
                try:
                    text = ws.recv(timeout=0.5)
                except TimeoutError:
                    continue
                if not self.measuring.is_set():
                    continue
                now_us = time.time() * 1e6
                data = json.loads(text)
                for m in data if isinstance(data, list) else [data]:
                    if m.get("type") == "quote":
                        self.ages.append((now_us - m["ts"]) / 1000)


def start_server(work: Path, symbols: int, rate: float) -> tuple[Any, str, list[str], Helper, str]:
    env = base_env(work / "var")
    env.update(LOG_LEVEL="INFO", FEED_TICKER="embedded")
    helper = Helper(env, work / "djangoctl.log")
    setup = helper.call(cmd="setup", symbols=symbols, rate=rate, user=USER)
    names, token = setup["symbols"], setup["token"]
    procs.spawn(
        [sys.executable, "manage.py", "feeduser", USER, "--password", PASSWORD],
        env=env, log=work / "feeduser.log", pin=False, cwd=ROOT,
    ).wait()
    port = procs.free_port()
    log = work / "daphne.log"
    daphne = procs.spawn(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
         "marketfeed.asgi:application"],
        env=env, log=log, pin=False, cwd=ROOT,
    )
    procs.wait_for_log(log, "ticker started", daphne, START_TIMEOUT_S)
    ws_url = f"ws://127.0.0.1:{port}/ws/quotes/?token={token}"
    probe(ws_url, names[0])
    return daphne, f"http://127.0.0.1:{port}", names, helper, ws_url


def measure(
    url: str, names: list[str], seconds: float, ws_url: str, traced: bool = False
) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    watcher = AgeWatcher(ws_url, names)
    watcher.start()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        reference = measure_reference(browser, seconds)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.add_init_script(PROBE_JS)
        context.add_init_script(
            f"localStorage.setItem({json.dumps('marketfeed:watchlist:v1:' + USER)},"
            f" {json.dumps(json.dumps(names))});"
        )
        page = context.new_page()
        page.set_default_timeout(START_TIMEOUT_S * 1000)
        page.goto(f"{url}/")
        page.fill('input[name="username"]', USER)
        page.fill('input[name="password"]', PASSWORD)
        page.click('button[type="submit"]')
        page.wait_for_selector('#conn-state[data-state="live"]')
        # Every symbol subscribed (rows off screen are not painted, so count the status bar's).
        page.wait_for_function(
            "n => document.querySelector('[data-stat=symbols]').textContent === String(n)",
            arg=len(names),
        )
        page.wait_for_selector("#rows tr[data-seq]")
        page.wait_for_timeout(WARMUP_S * 1000)
        cdp = context.new_cdp_session(page)
        cdp.send("Performance.enable")
        watcher.measuring.set()
        before = cdp_metrics(cdp)
        page.evaluate("window.__pageBench.start()")
        page.wait_for_timeout(seconds * 1000)
        raw = page.evaluate("window.__pageBench.stop()")
        after = cdp_metrics(cdp)
        watcher.done.set()
        traced_ms = trace(browser, page, TRACE_S) if traced else None
        version = browser.version
        browser.close()
    watcher.join(timeout=5)
    figures = summarise(raw)
    return {
        "chromium": version,
        **figures,
        "per_frame": per_frame(before, after, raw["frames"]),
        "reference_page": reference,
        "versus_reference": versus(figures, reference),
        **({"trace_ms_per_frame": traced_ms} if traced_ms else {}),
        "quote_age_plain_client_ms": spread(watcher.ages),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.page", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--symbols", type=int, default=100, help="instruments, all on the watchlist"
    )
    parser.add_argument("--rate", type=float, default=10.0, help="quotes per second per instrument")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the measurement")
    parser.add_argument(
        "--trace", action="store_true", help=f"then trace {TRACE_S:g} s: ms per frame by event"
    )
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="marketfeed-bench-page-"))
    daphne = helper = None
    try:
        daphne, url, names, helper, ws_url = start_server(work, args.symbols, args.rate)
        figures = measure(url, names, args.seconds, ws_url, traced=args.trace)
    finally:
        if helper:
            helper.close()
        if daphne:
            procs.stop(daphne)
        shutil.rmtree(work, ignore_errors=True)
    now = dt.datetime.now(dt.UTC)
    doc = {
        "scenario": "page",
        "started_utc": now.isoformat(timespec="seconds"),
        "command": ".venv/bin/python -m bench.page "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "options": vars(args),
        "offered_quotes_per_s": args.symbols * args.rate,
        "machine": machine(),
        # Other work on the machine shows in the frame rate: say how busy it was.
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        **figures,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"page-{now.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps({k: v for k, v in doc.items() if k != "machine"}, indent=1))
    print(f"written to {path.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
