"""POST /api/token/: the only anonymous endpoint, and one that must never 500."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

URL = "/api/token/"
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


def test_valid_credentials_get_the_users_token(anon: APIClient, user: User) -> None:
    response = anon.post(URL, CREDENTIALS, format="json")
    assert response.status_code == 200
    assert response.json() == {"token": Token.objects.get(user=user).key}


def test_the_same_token_is_handed_out_again(anon: APIClient, user: User) -> None:
    first = anon.post(URL, CREDENTIALS, format="json").json()["token"]
    second = anon.post(URL, CREDENTIALS, format="json").json()["token"]
    assert first == second
    assert Token.objects.filter(user=user).count() == 1


def test_an_existing_token_is_reused(anon: APIClient, token: Token) -> None:
    assert anon.post(URL, CREDENTIALS, format="json").json() == {"token": token.key}


def test_form_encoded_credentials_are_accepted(anon: APIClient, user: User) -> None:
    response = anon.post(URL, CREDENTIALS)  # multipart is not accepted; urlencode it
    assert response.status_code == 415
    response = post_raw(
        anon,
        b"username=alice&password=correct+horse+battery",
        "application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert response.json()["token"] == Token.objects.get(user=user).key


def test_wrong_password_is_400_with_detail(anon: APIClient, user: User) -> None:
    response = anon.post(URL, {**CREDENTIALS, "password": "wrong"}, format="json")
    body = assert_json_error(response, 400)
    assert "credentials" in body["detail"]
    assert not Token.objects.exists()


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
