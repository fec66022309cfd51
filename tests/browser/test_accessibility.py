"""axe-core in headless Chromium: no serious or critical violation on the pages people use.

The sign-in page, the ticker page (light and dark, desktop and phone) and the
admin's instrument changelist, each live, audited by axe-core's default rules
(WCAG 2.x A and AA, and its best practices). axe-core comes from the npm
registry, pinned with its integrity hash in tests/a11y/package-lock.json, and
is installed there by ``python3 run.py setup`` (``npm ci``); it is injected
into the page by these tests only and never served by the application.
Without it (no npm on this machine) the tests skip, saying so; under CI they
fail instead.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Error, expect

from tests.browser.conftest import PASSWORD, USERNAME, VIEWPORT, log_in
from tests.timeouts import timeout

pytestmark = [pytest.mark.browser, pytest.mark.live]

AXE = Path(__file__).resolve().parents[1] / "a11y" / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")
PHONE = {"width": 390, "height": 844}
ADMIN = {"width": 1440, "height": 900}
CHANGELIST = "/admin/feeds/instrument/"


@pytest.fixture(scope="module")
def axe_source() -> str:
    """axe.min.js as installed by ``run.py setup``; a skip (a failure under CI) without it."""
    if not AXE.exists():
        why = (
            f"axe-core is not installed ({AXE.relative_to(AXE.parents[4])} is missing): "
            "`python3 run.py setup` installs it with npm ci"
        )
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    return AXE.read_text()


@pytest.fixture
def new_page(chromium):
    """Pages in browser profiles of their own, closed after the test."""
    contexts = []

    def make(*, viewport=VIEWPORT, scheme="light", phone=False):
        # The CSP stays on (no bypass_csp): axe audits the page as users get it, and
        # bypass_csp would also let in the inline styles the CSP refuses. axe goes in
        # by evaluate() (audit() below), which the CSP does not govern, not by a tag.
        options = {"has_touch": True, "is_mobile": True} if phone else {}
        context = chromium.new_context(viewport=viewport, color_scheme=scheme, **options)
        context.set_default_timeout(timeout(15) * 1000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def audit(page, axe_source: str) -> list[dict]:
    """axe.run on the whole document: the serious and critical violations.

    The pages' Content-Security-Policy (script-src 'self') refuses an injected
    <script> (test_the_csp_refuses_an_injected_script_tag): axe's source is
    evaluated through the DevTools protocol instead, which the CSP does not govern.
    """
    page.evaluate(axe_source)
    violations = page.evaluate(
        """async () => {
            const result = await axe.run(document, { resultTypes: ["violations"] });
            return result.violations.map((v) => ({
                id: v.id, impact: v.impact, help: v.help,
                targets: v.nodes.map((n) => n.target.join(" ")),
                summary: v.nodes[0]?.failureSummary ?? "",
            }));
        }"""
    )
    return [v for v in violations if v["impact"] in BLOCKING]


def readable(violations: list[dict]) -> str:
    """One paragraph per violation: id, impact, what it means, where, and axe's first reason."""
    return "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']}\n  targets: {', '.join(v['targets'])}\n"
        f"  {v['summary'].strip().replace(chr(10), chr(10) + '  ')}"
        for v in violations
    )


def assert_accessible(page, axe_source: str) -> None:
    violations = audit(page, axe_source)
    assert not violations, f"axe-core on {page.url}:\n{readable(violations)}"


def ticking(page) -> None:
    """Signed in and live, the rows and the chart filled, the status bar measured."""
    expect(page.locator('tr[data-symbol="AAPL"]')).to_have_attribute("data-seq", re.compile(r"\d"))
    expect(page.locator('[data-stat="rtt"]')).to_have_text(re.compile(r"^\d+(\.\d)? ms$"))
    expect(page.locator("#chart canvas")).to_have_attribute("data-candles", re.compile(r"\d"))


def test_the_csp_refuses_an_injected_script_tag(new_page, server, axe_source):
    page = new_page()
    page.goto(f"{server.url}/accounts/login/")
    with pytest.raises(Error, match="Content Security Policy"):
        page.add_script_tag(content="window.injected = true")
    page.evaluate(axe_source)  # the way audit() injects axe works under it
    assert page.evaluate("() => typeof axe.run") == "function"


def test_the_sign_in_page_has_no_serious_violation(new_page, server, axe_source):
    page = new_page()
    page.goto(f"{server.url}/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert_accessible(page, axe_source)


@pytest.mark.parametrize(
    ("scheme", "phone"), [("light", False), ("dark", False), ("light", True), ("dark", True)],
    ids=["light", "dark", "phone-light", "phone-dark"],
)
def test_the_ticker_page_has_no_serious_violation(
    new_page, server, token, axe_source, scheme, phone
):
    page = new_page(viewport=PHONE if phone else VIEWPORT, scheme=scheme, phone=phone)
    log_in(page, server.url)
    ticking(page)
    # A screen reader's "next heading" lands on the page's title (axe: page-has-heading-one).
    expect(page.get_by_role("heading", level=1)).to_have_text("Live quotes")
    found = []
    # Once with a rising and once with a falling row selected: its change is in the up or
    # down colour on the selected row's background, the least contrast either has.
    for trend in ("up", "down"):
        rows = page.locator(f'#rows tr[data-trend="{trend}"]')
        if rows.count():
            row = page.locator(f'#rows tr[data-symbol="{rows.first.get_attribute("data-symbol")}"]')
            row.locator(".pick").click()
            expect(row).to_have_class(re.compile(r"\bselected\b"))
        found += [v for v in audit(page, axe_source) if v not in found]
    assert not found, f"axe-core on {page.url} ({scheme}):\n{readable(found)}"


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_instrument_changelist_has_no_serious_violation(
    new_page, server, token, axe_source, scheme
):
    page = new_page(viewport=ADMIN, scheme=scheme)
    page.goto(f"{server.url}/admin/login/?next={CHANGELIST}")  # as test_admin_ops.py signs in
    page.fill("#id_username", USERNAME)
    page.fill("#id_password", PASSWORD)
    page.click('input[type="submit"]')
    page.wait_for_url(f"**{CHANGELIST}")
    expect(page.locator("#live-state")).to_have_attribute("data-state", "live")
    assert_accessible(page, axe_source)
