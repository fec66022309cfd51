"""The REST API against its OpenAPI schema (drf-spectacular), fuzzed by schemathesis.

Requests come from the schema, hostile values included, and go to the real
Django application (WSGI, every middleware) with a real token. No response
may be a server error, whatever the input; a 4xx must be JSON with a
``detail``. The schema itself must cover every API endpoint of the URLconf.
"""

from __future__ import annotations

import json

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

pytestmark = pytest.mark.django_db

OPERATIONS = {
    ("POST", "/api/token/"),
    ("POST", "/api/token/revoke/"),
    ("POST", "/api/ws-ticket/"),
    ("GET", "/api/instruments/"),
    ("GET", "/api/instruments/{symbol}/"),
    ("GET", "/api/quotes/"),
    ("GET", "/api/quotes/{symbol}/"),
    ("GET", "/api/bars/{symbol}/"),
    ("GET", "/api/watchlists/"),
    ("POST", "/api/watchlists/"),
    ("GET", "/api/watchlists/{id}/"),
    ("PUT", "/api/watchlists/{id}/"),
    ("DELETE", "/api/watchlists/{id}/"),
}


def openapi_schema() -> dict:
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


@pytest.fixture
def api_schema(db, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    schema = schemathesis.openapi.from_dict(json.loads(json.dumps(openapi_schema())))
    schema.app = get_wsgi_application()
    return schema


@pytest.fixture
def token(db) -> str:
    from django.contrib.auth.models import User

    from feeds.auth import issue_token

    user = User.objects.create_user("contract", password="contract-pass-123")
    return issue_token(user)[0]


def test_the_schema_covers_every_api_endpoint():
    paths = openapi_schema()["paths"]
    found = {(method.upper(), path) for path, ops in paths.items() for method in ops}
    assert found == OPERATIONS


lazy = schemathesis.pytest.from_fixture("api_schema")


@lazy.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_input_makes_the_api_fail(case, token):
    response = case.call(headers={"Authorization": f"Token {token}"})
    case.validate_response(response, checks=[not_a_server_error])
    if 400 <= response.status_code < 500:
        body = response.json()
        assert isinstance(body, dict), body
        assert isinstance(body.get("detail"), str), body
