"""Only ``/healthz``, the login pages and static files answer an anonymous visitor.

Every URL pattern of the real URLconf is walked, so an endpoint added later
without authentication fails here. An anonymous request must be refused (401
or 403, JSON under /api/), sent to a login page, or find nothing (404/405).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

pytestmark = pytest.mark.django_db

LOGIN_PAGES = {"/accounts/login/", "/admin/login/"}
# What may answer without credentials, and why.
ANONYMOUS = {
    "/healthz": "load balancers probe it; says nothing but ok/unavailable",
    "/accounts/login/": "the login page",
    "/admin/login/": "the admin's login page",
    "/api/token/": "trades a username and password for a token (POST only)",
}
# django.contrib.auth.urls whole would bring these: anonymous password-reset
# pages (and a reset mail the server cannot send). feeds/urls.py mounts only
# login and logout.
PASSWORD_RESET = (
    "/accounts/password_reset/", "/accounts/password_reset/done/",
    "/accounts/reset/1/1/", "/accounts/reset/done/",
)


def _sample(pattern: object) -> str:
    """A concrete path a URL pattern matches: converters and groups filled in."""
    text = re.sub(
        r"\(\?P<\w+>([^)]*)\)",
        lambda m: m.group(1).split("|")[0] if "|" in m.group(1) else "AAPL",
        str(pattern),
    )
    text = re.sub(r"<(?:\w+:)?\w+>", "1", text)
    return text.strip("^$").replace("\\", "")


def every_path() -> list[str]:
    def walk(patterns, prefix: str):
        for p in patterns:
            here = prefix + _sample(p.pattern)
            if isinstance(p, URLResolver):
                yield from walk(p.url_patterns, here)
            elif isinstance(p, URLPattern):
                yield "/" + here

    return sorted(set(walk(get_resolver().url_patterns, "")))


def refused(response) -> bool:
    """Refused, or (after following redirects) shown a login page."""
    if response.status_code in (401, 403, 404, 405):
        return True
    return bool(response.redirect_chain) and response.request["PATH_INFO"] in LOGIN_PAGES


def test_the_walk_finds_the_endpoints():
    paths = every_path()
    for expected in (
        "/healthz", "/", "/api/quotes/", "/api/instruments/AAPL/", "/admin/feeds/instrument/"
    ):
        assert expected in paths


@pytest.mark.parametrize("path", PASSWORD_RESET)
def test_no_password_reset_or_change_page_is_served(path):
    assert Client().get(path).status_code == 404


@pytest.mark.parametrize("path", [path for path in every_path() if path not in ANONYMOUS])
def test_an_anonymous_request_is_refused_or_sent_to_log_in(path):
    http = Client()
    for method in ("get", "post"):
        response = getattr(http, method)(path, follow=True)
        assert refused(response), f"{method.upper()} {path} -> {response.status_code}"
        if path.startswith("/api/") and response.status_code in (401, 403):
            assert response.json()["detail"]


def test_the_api_refuses_anonymous_reads_with_401_json():
    response = Client().get("/api/quotes/?symbols=AAPL")
    assert response.status_code == 401
    assert "detail" in response.json()


def test_what_may_answer_anonymously_does(settings):
    http = Client()
    assert http.get("/healthz").status_code in (200, 503)
    assert http.get("/accounts/login/").status_code == 200
    assert http.get("/admin/login/").status_code == 200
    static = http.get("/static/feeds/ticker.js")
    assert static.status_code == 200
    static.close()
    refused_login = http.post(
        "/api/token/", {"username": "x", "password": "y"}, content_type="application/json"
    )
    assert refused_login.status_code == 400
    # The ticker page itself sends a visitor to log in.
    response = http.get("/")
    assert response.status_code == 302
    assert urlsplit(response["Location"]).path == "/accounts/login/"
