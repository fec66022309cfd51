"""Refresh the README's picture of the ticker page, docs/ticker.png.

    .venv/bin/python -m docs.pictures [--out docs/ticker.png] [--minutes 2]

Starts the feed (plain daphne, embedded default, a throw-away SQLite database
and a fixed price seed) on a free port and lets it run until ``--minutes``
one-minute bars are complete, so that the chart shows candles (up to three
minutes with the default; 0 does not wait). Then it signs in as ``demo`` in
the system Chromium through Playwright, as the browser tests do
(tests/browser/), waits until the default watchlist ticks, the status bar
has measured and every row's sparkline holds a few seconds, and writes the
screenshot. The tests never write into docs/; this command is the one way
the picture changes.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from tests.browser.conftest import CHROMIUM, FLAGS, VIEWPORT
from tests.servers import Server, free_port, manage

ROOT = Path(__file__).resolve().parents[1]
PICTURE = ROOT / "docs" / "ticker.png"
# Not passed on from this shell: the picture is of the embedded default.
EMBEDDED_ONLY = ("REDIS_URL", "DATABASE_URL", "FEED_TICKER")
USERNAME = "demo"  # run.py's demo user
BARS_FLUSH_S = 5  # FEED_BARS_FLUSH_S's default
SPARK_POINTS = 12  # at most one per 250 ms (feeds/static/feeds/history.js)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m docs.pictures", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--out", type=Path, default=PICTURE, help="the PNG to write")
    parser.add_argument(
        "--minutes", type=int, default=2, help="complete one-minute bars to wait for (0: none)"
    )
    return parser.parse_args()


def screenshot(url: str, out: Path, password: str) -> None:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            context = browser.new_context(viewport=VIEWPORT, color_scheme="light")
            context.set_default_timeout(30_000)
            page = context.new_page()
            page.goto(f"{url}/")
            page.wait_for_url("**/accounts/login/**")
            page.fill('input[name="username"]', USERNAME)
            page.fill('input[name="password"]', password)
            page.click('button[type="submit"]')
            page.wait_for_selector('#conn-state[data-state="live"]')
            row = page.locator('tr[data-symbol="AAPL"]')
            expect(row).to_have_attribute("data-seq", re.compile(r"\d"))
            expect(page.locator("#chart [data-chart=symbol]")).to_have_text("AAPL")
            # A status bar that has measured, and every row's sparkline a few seconds long.
            expect(page.locator('[data-stat="rate"]')).not_to_have_text("0")
            expect(page.locator('[data-stat="rtt"]')).to_have_text(re.compile(r"^\d+(\.\d)? ms$"))
            page.wait_for_function(
                "(n) => [...document.querySelectorAll('#rows td.spark polyline')]"
                ".every(line => line.getAttribute('points').split(' ').length >= n)",
                arg=SPARK_POINTS,
            )
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out))
        finally:
            browser.close()


def main() -> None:
    args = arguments()
    with tempfile.TemporaryDirectory(prefix="marketfeed-pictures-") as var:
        env = {k: v for k, v in os.environ.items() if k not in EMBEDDED_ONLY}
        env.update(MARKETFEED_VAR_DIR=var, PYTHONUNBUFFERED="1", FEED_SEED="7")
        manage(env, "migrate", "--noinput")
        # As run.py makes it: a random password, kept in the throw-away var directory.
        password_file = Path(var) / "demo-password"
        manage(env, "feeduser", USERNAME, "--password-file", str(password_file))
        password = password_file.read_text().strip()
        server = Server(env, free_port())
        server.start()
        try:
            if args.minutes:
                # Past the next N minute boundaries, plus one flush of the bar writer.
                ready = (time.time() // 60 + args.minutes) * 60 + BARS_FLUSH_S + 1
                print(f"waiting {ready - time.time():.0f} s for {args.minutes} complete bars")
                time.sleep(max(0.0, ready - time.time()))
            screenshot(server.url, args.out, password)
        finally:
            server.stop()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
