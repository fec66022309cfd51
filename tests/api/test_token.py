"""POST /api/token/: the only anonymous endpoint, and one that must never 500.

Also POST /api/token/revoke/ and POST /api/ws-ticket/, the other token endpoints.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

URL = "/api/token/"
REVOKE = "/api/token/revoke/"
TICKET = "/api/ws-ticket/"
CREDENTIALS = {"username": "alice", "password": "correct horse battery"}


def post_raw(client: APIClient, body: bytes, content_type: str = "application/json"):
    return client.generic("POST", URL, body, content_type=content_type)


def assert_json_error(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body.get("detail"), str)
    assert body["detail"]
    return body


def works(token: str) -> bool:
    """Whether ``token`` authenticates an API call, as a client would find out."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client.get("/api/instruments/").status_code == 200


def test_valid_credentials_get_a_working_token_with_its_expiry(
    anon: APIClient, user: User, settings
) -> None:
    settings.FEED_TOKEN_TTL_DAYS = 30
    response = anon.post(URL, CREDENTIALS, format="json")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"token", "expiry"}
    assert works(body["token"])
    expiry = datetime.fromisoformat(body["expiry"].replace("Z", "+00:00"))
    assert timedelta(days=29) < expiry - timezone.now() <= timedelta(days=30)


def test_each_call_issues_another_token_and_the_earlier_ones_keep_working(
    anon: APIClient, user: User
) -> None:
    first = anon.post(URL, CREDENTIALS, format="json").json()["token"]
    second = anon.post(URL, CREDENTIALS, format="json").json()["token"]
    assert first != second
    assert works(first)
    assert works(second)
    assert AuthToken.objects.filter(user=user).count() == 2


def test_an_expired_token_stops_working(user: User) -> None:
    row, token = AuthToken.objects.create(user=user, expiry=timedelta(days=1))
    assert works(token)
    AuthToken.objects.filter(pk=row.pk).update(expiry=timezone.now() - timedelta(seconds=1))
    assert not works(token)


def test_a_token_of_a_disabled_user_stops_working(api: APIClient, user: User, token) -> None:
    assert works(token.key)
    user.is_active = False
    user.save()
    assert not works(token.key)


def test_revoke_ends_the_token_used_and_no_other(anon: APIClient, user: User) -> None:
    phone = anon.post(URL, CREDENTIALS, format="json").json()["token"]
    laptop = anon.post(URL, CREDENTIALS, format="json").json()["token"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {phone}")
    response = client.post(REVOKE)
    assert response.status_code == 200
    assert response.json() == {"revoked": 1}
    assert not works(phone)
    assert works(laptop)
    assert client.post(REVOKE).status_code == 401


def test_revoke_all_ends_every_token_of_the_user(anon: APIClient, user: User, token) -> None:
    other = anon.post(URL, CREDENTIALS, format="json").json()["token"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {other}")
    assert client.post(f"{REVOKE}?all=1").json() == {"revoked": 2}
    assert not works(other)
    assert not works(token.key)


def test_revoke_by_session_needs_all_and_its_csrf_token(user: User, token) -> None:
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(user)
    assert_json_error(browser.post(f"{REVOKE}?all=1"), 403)  # no CSRF token
    browser.cookies.load({"csrftoken": "a" * 32})
    csrf = {"HTTP_X_CSRFTOKEN": "a" * 32}
    assert_json_error(browser.post(REVOKE, **csrf), 400)  # names no token
    assert works(token.key)
    assert browser.post(f"{REVOKE}?all=1", **csrf).json() == {"revoked": 1}
    assert not works(token.key)


def test_revoke_and_ticket_need_authentication(anon: APIClient, db: None) -> None:
    assert_json_error(anon.post(REVOKE), 401)
    assert_json_error(anon.post(TICKET), 401)


def test_a_ticket_is_issued_by_token_with_its_lifetime(api: APIClient, settings) -> None:
    settings.FEED_WS_TICKET_TTL_S = 30
    response = api.post(TICKET)
    assert response.status_code == 200
    body = response.json()
    assert body["expires_in"] == 30
    assert isinstance(body["ticket"], str)
    assert len(body["ticket"]) >= 40
    assert api.post(TICKET).json()["ticket"] != body["ticket"]


def test_a_ticket_by_session_needs_its_csrf_token(user: User) -> None:
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(user)
    assert_json_error(browser.post(TICKET), 403)
    browser.cookies.load({"csrftoken": "b" * 32})
    assert browser.post(TICKET, HTTP_X_CSRFTOKEN="b" * 32).status_code == 200


def test_form_encoded_credentials_are_accepted(anon: APIClient, user: User) -> None:
    response = anon.post(URL, CREDENTIALS)  # multipart is not accepted; urlencode it
    assert response.status_code == 415
    response = post_raw(
        anon,
        b"username=alice&password=correct+horse+battery",
        "application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert works(response.json()["token"])


def test_wrong_password_is_400_with_detail(anon: APIClient, user: User) -> None:
    response = anon.post(URL, {**CREDENTIALS, "password": "wrong"}, format="json")
    body = assert_json_error(response, 400)
    assert "credentials" in body["detail"]
    assert not AuthToken.objects.exists()


def test_unknown_user_is_400_with_detail(anon: APIClient, db: None) -> None:
    response = anon.post(URL, {"username": "nobody", "password": "x"}, format="json")
    assert_json_error(response, 400)


def test_inactive_user_gets_no_token(anon: APIClient, user: User) -> None:
    user.is_active = False
    user.save()
    assert_json_error(anon.post(URL, CREDENTIALS, format="json"), 400)


def test_missing_fields_are_400_naming_them(anon: APIClient, db: None) -> None:
    body = assert_json_error(anon.post(URL, {}, format="json"), 400)
    assert "username" in body
    assert "password" in body
    assert "username" in body["detail"]


def test_an_empty_body_is_400(anon: APIClient, db: None) -> None:
    assert_json_error(post_raw(anon, b""), 400)


def test_a_logged_in_browser_needs_no_csrf_token(user: User) -> None:
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(URL, CREDENTIALS, format="json").status_code == 200


def test_get_is_405_json(anon: APIClient, db: None) -> None:
    assert_json_error(anon.get(URL), 405)


def test_a_body_in_another_media_type_is_415_json(anon: APIClient, db: None) -> None:
    assert_json_error(post_raw(anon, b"username=alice", "text/plain"), 415)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[" * 100_000, id="deeply-nested-array"),
        pytest.param(b'{"a":' * 50_000 + b"1" + b"}" * 50_000, id="deeply-nested-object"),
        pytest.param(b'{"username": "\\ud800", "password": "x"}', id="lone-surrogate-value"),
        pytest.param(b'{"\\udfff": 1, "username": "a", "password": "b"}', id="lone-surrogate-key"),
        pytest.param(b'{"username": "\xff\xfe", "password": "x"}', id="invalid-utf8"),
        pytest.param(b"\xc3\x28", id="invalid-utf8-sequence"),
        pytest.param(b'{"username": NaN, "password": "x"}', id="nan"),
        pytest.param(b'{"username": "a", "password": Infinity}', id="infinity"),
        pytest.param(b'{"username": "a", "password": 1e999}', id="overflowing-float"),
        pytest.param(b'{"username": ' + b"9" * 5000 + b', "password": "x"}', id="huge-integer"),
        pytest.param(b"not json at all", id="not-json"),
        pytest.param(b'{"username": "a", "password"', id="truncated"),
        pytest.param(b"[]", id="array-not-object"),
        pytest.param(b'"alice"', id="string-not-object"),
        pytest.param(b'{"username": ["alice"], "password": {"x": 1}}', id="wrong-types"),
        pytest.param(b'{"username": "al\\u0000ice", "password": "x"}', id="nul-character"),
        pytest.param(json.dumps({"username": "a" * 10_000, "password": "x"}).encode(), id="long"),
    ],
)
def test_hostile_json_is_400_never_500(anon: APIClient, db: None, body: bytes) -> None:
    assert_json_error(post_raw(anon, body), 400)


def test_an_unknown_charset_is_400(anon: APIClient, db: None) -> None:
    response = post_raw(anon, b"{}", "application/json; charset=bz2_codec")
    assert_json_error(response, 400)


def test_a_body_over_the_upload_limit_is_413(anon: APIClient, db: None, settings) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    body = json.dumps({"username": "a", "password": "x" * 2048}).encode()
    assert_json_error(post_raw(anon, body), 413)


def test_too_many_form_fields_is_400(anon: APIClient, db: None, settings) -> None:
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    body = "&".join(f"f{i}=1" for i in range(50)).encode()
    assert_json_error(post_raw(anon, body, "application/x-www-form-urlencoded"), 400)
