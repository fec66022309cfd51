"""Refresh the README's pictures: the ticker page on a desktop and on a phone, and the admin.

    .venv/bin/python -m docs.pictures [--dir docs] [--minutes 2]

Starts the feed (plain daphne, embedded default, a throw-away SQLite database
and a fixed price seed) on a free port and lets it run until ``--minutes``
one-minute bars are complete, so that the chart shows candles (up to three
minutes with the default; 0 does not wait). Then, in the system Chromium
through Playwright, as the browser tests do (tests/browser/), it writes:

- ``ticker.png``: the page at 1280x760, signed in as ``demo``, once the default
  watchlist ticks, the status bar has measured and every row's sparkline holds
  a few seconds;
- ``ticker-phone.png``: the same page on a 390x844 touch screen, the same waits
  less the sparklines (a phone's rows have none);
- ``admin.png``: the admin's instrument changelist at 1440x900, signed in as an
  operator (a superuser made for the picture), its prices live.

The tests never write into docs/; this command is the one way the pictures change.
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
PHONE = {"width": 390, "height": 844}
ADMIN = {"width": 1440, "height": 900}
CHANGELIST = "/admin/feeds/instrument/"
# Not passed on from this shell: the picture is of the embedded default.
EMBEDDED_ONLY = ("REDIS_URL", "DATABASE_URL", "FEED_TICKER")
USERNAME = "demo"  # run.py's demo user
OPERATOR = "operator"  # a superuser, for the admin's picture
BARS_FLUSH_S = 5  # FEED_BARS_FLUSH_S's default
SPARK_POINTS = 12  # at most one per 250 ms (feeds/static/feeds/history.js)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m docs.pictures", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument(
        "--dir", type=Path, default=ROOT / "docs", help="where to write the PNGs (docs/)"
    )
    parser.add_argument(
        "--minutes", type=int, default=2, help="complete one-minute bars to wait for (0: none)"
    )
    return parser.parse_args()


def sign_in(page, url: str, password: str) -> None:
    """The ticker page of ``demo``, live, its first row charted and the status bar measured."""
    page.goto(f"{url}/")
    page.wait_for_url("**/accounts/login/**")
    page.fill('input[name="username"]', USERNAME)
    page.fill('input[name="password"]', password)
    page.click('button[type="submit"]')
    page.wait_for_selector('#conn-state[data-state="live"]')
    expect(page.locator('tr[data-symbol="AAPL"]')).to_have_attribute("data-seq", re.compile(r"\d"))
    expect(page.locator("#chart [data-chart=symbol]")).to_have_text("AAPL")
    # Its details came (the name, and the reference price that the change is from).
    expect(page.locator("#chart [data-chart=name]")).to_have_text("Apple Inc.")
    expect(page.locator('[data-stat="rate"]')).not_to_have_text("0")
    expect(page.locator('[data-stat="rtt"]')).to_have_text(re.compile(r"^\d+(\.\d)? ms$"))


def desktop(browser, url: str, out: Path, password: str) -> None:
    page = browser.new_context(viewport=VIEWPORT, color_scheme="light").new_page()
    page.set_default_timeout(30_000)
    sign_in(page, url, password)
    # Every row's sparkline a few seconds long.
    page.wait_for_function(
        "(n) => [...document.querySelectorAll('#rows td.spark polyline')]"
        ".every(line => line.getAttribute('points').split(' ').length >= n)",
        arg=SPARK_POINTS,
    )
    page.screenshot(path=str(out))
    page.context.close()


def phone(browser, url: str, out: Path, password: str) -> None:
    context = browser.new_context(
        viewport=PHONE, color_scheme="light", has_touch=True, is_mobile=True
    )
    page = context.new_page()
    page.set_default_timeout(30_000)
    sign_in(page, url, password)
    # The panel's details (the columns a phone's rows leave out) filled in.
    expect(page.locator('#chart [data-detail="ts"]')).to_have_text(re.compile(r"\d\d:\d\d"))
    page.screenshot(path=str(out))
    context.close()


def admin(browser, url: str, out: Path, password: str) -> None:
    page = browser.new_context(viewport=ADMIN, color_scheme="light").new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{url}/admin/login/?next={CHANGELIST}")
    page.fill("#id_username", OPERATOR)
    page.fill("#id_password", password)
    page.click('input[type="submit"]')
    page.wait_for_url(f"**{CHANGELIST}")
    expect(page.locator("#live-state")).to_have_attribute("data-state", "live")
    page.screenshot(path=str(out))
    page.context.close()


def screenshots(url: str, folder: Path, passwords: dict[str, str]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    shots = [
        (desktop, folder / "ticker.png", USERNAME),
        (phone, folder / "ticker-phone.png", USERNAME),
        (admin, folder / "admin.png", OPERATOR),
    ]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            for take, out, user in shots:
                take(browser, url, out, passwords[user])
        finally:
            browser.close()
    return [out for _, out, _ in shots]


def main() -> None:
    args = arguments()
    with tempfile.TemporaryDirectory(prefix="marketfeed-pictures-") as var:
        env = {k: v for k, v in os.environ.items() if k not in EMBEDDED_ONLY}
        env.update(MARKETFEED_VAR_DIR=var, PYTHONUNBUFFERED="1", FEED_SEED="7")
        manage(env, "migrate", "--noinput")
        # As run.py makes them: random passwords, kept in the throw-away var directory.
        passwords = {}
        for user, extra in ((USERNAME, ()), (OPERATOR, ("--superuser",))):
            password_file = Path(var) / f"{user}-password"
            manage(env, "feeduser", user, "--password-file", str(password_file), *extra)
            passwords[user] = password_file.read_text().strip()
        server = Server(env, free_port())
        server.start()
        try:
            if args.minutes:
                # Past the next N minute boundaries, plus one flush of the bar writer.
                ready = (time.time() // 60 + args.minutes) * 60 + BARS_FLUSH_S + 1
                print(f"waiting {ready - time.time():.0f} s for {args.minutes} complete bars")
                time.sleep(max(0.0, ready - time.time()))
            written = screenshots(server.url, args.dir, passwords)
        finally:
            server.stop()
    for out in written:
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
