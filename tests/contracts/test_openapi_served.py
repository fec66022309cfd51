"""The REST API's OpenAPI schema and its Swagger UI, served to logged-in users, offline.

``/api/schema/`` is the schema the API contract test fuzzes
(tests/security/test_api_contract.py); ``/api/schema/docs/`` shows it with
Swagger UI from drf-spectacular-sidecar's static files. Nothing on the page
comes from another host, so it works on a machine without internet access.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

# Some of the API; tests/security/test_api_contract.py holds the schema to all of it.
API_PATHS = {
    "/api/token/", "/api/instruments/", "/api/instruments/{symbol}/", "/api/quotes/",
    "/api/quotes/{symbol}/", "/api/bars/{symbol}/",
}
CONTRACT_URLS = (
    "/api/schema/", "/api/schema/docs/", "/api/schema/docs/?script=", "/api/asyncapi.json",
)


@pytest.fixture
def user(django_user_model, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return django_user_model.objects.create_user("reader", password="reader-pass-123")


@pytest.fixture
def browser(user) -> Client:
    """A logged-in session, as the docs page's visitor has."""
    http = Client()
    http.force_login(user)
    return http


@pytest.fixture
def token(user) -> str:
    """An API token, got the way a script gets one."""
    response = Client().post(
        "/api/token/", {"username": "reader", "password": "reader-pass-123"},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    return response.json()["token"]


class References(HTMLParser):
    """Every URL a page loads or links to: src and href attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def references(html: str) -> list[str]:
    parser = References()
    parser.feed(html)
    return parser.urls


def body(response) -> bytes:
    data = b"".join(response.streaming_content) if response.streaming else response.content
    response.close()
    return data


def generated_paths() -> set[str]:
    from drf_spectacular.generators import SchemaGenerator

    return set(SchemaGenerator().get_schema(request=None, public=True)["paths"])


def test_the_schema_lists_the_api_for_a_session_user(browser):
    response = browser.get("/api/schema/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi+json")
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert set(schema["paths"]) == generated_paths()
    assert set(schema["paths"]) >= API_PATHS
    assert not {p for p in schema["paths"] if "schema" in p or "asyncapi" in p}
    assert "get" in schema["paths"]["/api/quotes/{symbol}/"]


def test_the_schema_answers_a_token_and_speaks_yaml_on_request(token):
    http = Client(headers={"Authorization": f"Token {token}"})
    assert set(http.get("/api/schema/").json()["paths"]) >= API_PATHS
    yaml = http.get("/api/schema/?format=yaml")
    assert yaml.status_code == 200
    assert yaml.content.startswith(b"openapi: 3.")


@pytest.mark.parametrize("url", CONTRACT_URLS)
def test_anonymous_visitors_get_the_apis_401(url):
    response = Client().get(url)
    assert response.status_code == 401
    assert response.json()["detail"]


def test_a_wrong_method_is_a_json_405_not_an_html_page(browser):
    response = browser.post("/api/schema/docs/")
    assert response.status_code == 405
    assert response.json()["detail"]


def test_the_docs_page_loads_only_from_this_server(browser):
    response = browser.get("/api/schema/docs/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    urls = references(html)
    assert urls, html
    assert not re.search(r"https?://", html), "the page names another host"
    for url in urls:
        parts = urlsplit(url)
        assert not parts.scheme, url
        assert not parts.netloc, url
    assets = [u for u in urls if u.startswith("/static/drf_spectacular_sidecar/swagger-ui-dist/")]
    assert {u.rsplit("/", 1)[1] for u in assets} >= {
        "swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js",
    }
    # The browser is told the same: scripts, styles and requests from this origin only.
    policy = response["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self';" in policy
    assert "connect-src 'self';" in policy


def test_every_asset_the_page_references_is_served(browser):
    html = browser.get("/api/schema/docs/").content.decode()
    for url in references(html):
        response = browser.get(url)
        assert response.status_code == 200, url
        assert body(response), url


def test_the_start_up_script_points_swagger_ui_at_the_local_schema(browser):
    html = browser.get("/api/schema/docs/").content.decode()
    (script,) = [u for u in references(html) if "script" in urlsplit(u).query]
    response = browser.get(script)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/javascript")
    text = response.content.decode()
    assert '"/api/schema/"' in text
    assert not re.search(r"https?://", text), "the script names another host"
    assert '"validatorUrl": null' in text  # no badge fetched from the validator's site
