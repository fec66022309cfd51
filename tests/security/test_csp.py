"""Content-Security-Policy: on every page, and nothing on our pages breaks it.

The header (django-csp, ``CONTENT_SECURITY_POLICY`` in settings) allows
scripts, styles and connections from the feed's own origin only, with no
inline script. Then headless Chromium walks the pages a user and an operator
use, logged in, and must report no violation: neither a
``securitypolicyviolation`` event nor a console message about the policy.
"""

from __future__ import annotations

import pytest
from django.test import Client

from tests.browser.conftest import chromium, context, log_in  # noqa: F401 - fixtures
from tests.timeouts import timeout

HEADER = "Content-Security-Policy"


def directives(response) -> dict[str, list[str]]:
    policy = response[HEADER]
    parsed = {}
    for part in policy.split(";"):
        name, *values = part.split()
        parsed[name] = values
    return parsed


@pytest.mark.django_db
def test_every_kind_of_page_carries_the_policy(admin_client, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    anonymous = Client()
    responses = {
        "login": anonymous.get("/accounts/login/"),
        "ticker": admin_client.get("/"),
        "admin": admin_client.get("/admin/"),
        "admin list": admin_client.get("/admin/feeds/instrument/"),
        "api": admin_client.get("/api/instruments/"),
        "not found": anonymous.get("/no/such/page/"),
    }
    for name, response in responses.items():
        assert HEADER in response, name
        policy = directives(response)
        assert policy["script-src"] == ["'self'"], name
        assert policy["style-src"] == ["'self'"], name
        assert policy["default-src"] == ["'none'"], name
        assert policy["frame-ancestors"] == ["'none'"], name
        assert "'unsafe-inline'" not in response[HEADER], name
        assert "'unsafe-eval'" not in response[HEADER], name
        assert policy["connect-src"][0] == "'self'", name
    # The ticker page may also reach its own WebSocket origin, and nothing else.
    assert directives(responses["ticker"])["connect-src"] == ["'self'", "ws://testserver"]


# --- in Chromium -----------------------------------------------------------------------

# Installed before any page script runs: records every violation the page reports.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  const where = `${e.sourceFile}:${e.lineNumber}`;
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI} at ${where}`);
});
"""
ADMIN_PAGES = [
    "/admin/",
    "/admin/feeds/instrument/",
    "/admin/feeds/instrument/?asset_class__exact=fx&q=usd",
    "/admin/feeds/instrument/add/",
    "/admin/feeds/entitlement/add/",
    "/admin/auth/user/",
    "/admin/auth/group/add/",
    "/admin/knox/authtoken/",
]


@pytest.mark.browser
@pytest.mark.live
def test_chromium_reports_no_violation_on_the_login_ticker_and_admin_pages(
    context, server, token  # noqa: F811 - fixtures
):
    page = context.new_page()
    page.add_init_script(RECORD_VIOLATIONS)
    console: list[str] = []
    page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
    seen: dict[str, list[str]] = {}

    def violations_on(name: str) -> None:
        seen[name] = page.evaluate("window.__cspViolations")

    # The login page, then the ticker page live over its WebSocket (connect-src).
    log_in(page, server.url)
    violations_on("login and ticker")
    assert page.locator("#rows tr").count() > 0
    # The admin, where Django's own scripts and widgets run.
    for path in ADMIN_PAGES:
        response = page.goto(f"{server.url}{path}")
        assert response is not None
        assert response.status == 200, path
        assert HEADER.lower() in response.headers, path
        page.wait_for_load_state("load")
        violations_on(path)
    # A change form, reached as an operator would: the first instrument of the list.
    page.goto(f"{server.url}/admin/feeds/instrument/")
    page.locator("#result_list tbody th a").first.click()
    page.wait_for_selector("#instrument_form", timeout=timeout(15) * 1000)
    violations_on("instrument change form")
    page.goto(f"{server.url}/admin/auth/user/")
    page.locator("#result_list tbody th a").first.click()
    page.wait_for_selector("#user_form", timeout=timeout(15) * 1000)
    violations_on("user change form")

    assert {name: found for name, found in seen.items() if found} == {}
    about_policy = [line for line in console if "Content Security Policy" in line]
    assert about_policy == []
