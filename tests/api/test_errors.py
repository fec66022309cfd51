"""Error bodies: always JSON with a "detail" string; unknown API URLs are JSON 404s."""

from __future__ import annotations

import io

import pytest
from django.test import RequestFactory
from rest_framework import exceptions
from rest_framework.test import APIClient

from feeds.edges.api.errors import exception_handler, handler404, handler500, summarize, with_detail
from feeds.edges.api.parsers import SafeJSONParser, find_lone_surrogate


@pytest.mark.parametrize(
    "path", ["/api/", "/api/nothing/here/", "/api/instrumentz/", "/api/nothing"]
)
def test_unknown_api_urls_are_404_json(anon: APIClient, db: None, path: str) -> None:
    response = anon.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"]


def test_a_get_missing_only_the_trailing_slash_is_redirected(anon: APIClient, db: None) -> None:
    response = anon.get("/api/instruments?page=2")
    assert response.status_code == 301
    assert response["Location"] == "/api/instruments/?page=2"


def test_a_post_missing_the_trailing_slash_is_404_pointing_at_it(anon: APIClient, db: None) -> None:
    response = anon.post("/api/token", {}, format="json")
    assert response.status_code == 404
    assert "/api/token/" in response.json()["detail"]


def test_validation_errors_keep_field_errors_and_gain_a_detail() -> None:
    exc = exceptions.ValidationError({"username": ["This field is required."]})
    response = exception_handler(exc, {})
    assert response is not None
    assert response.data == {
        "detail": "username: This field is required.",
        "username": ["This field is required."],
    }


def test_a_list_of_errors_becomes_detail_and_errors() -> None:
    response = exception_handler(exceptions.ValidationError(["bad", "worse"]), {})
    assert response is not None
    assert response.data == {"detail": "bad worse", "errors": ["bad", "worse"]}


def test_a_detail_list_is_turned_into_a_string() -> None:
    assert with_detail({"detail": ["one", "two"]}) == {"detail": "one two"}


def test_the_summary_names_nested_fields_and_stops_after_five() -> None:
    assert summarize({"a": {"b": ["x"]}, "non_field_errors": ["y"]}) == "a.b: x y"
    assert summarize({f"f{i}": ["e"] for i in range(9)}).endswith("...")
    assert summarize({}) == "Invalid request."


def test_unhandled_exceptions_are_left_to_django() -> None:
    assert exception_handler(RuntimeError("boom"), {}) is None


def test_handler404_is_json_under_api_and_html_elsewhere() -> None:
    factory = RequestFactory()
    api = handler404(factory.get("/api/x"), Exception("gone"))
    assert (api.status_code, api["Content-Type"]) == (404, "application/json")
    page = handler404(factory.get("/x"), Exception("gone"))
    assert page.status_code == 404
    assert page["Content-Type"].startswith("text/html")


def test_handler500_is_json_under_api_without_telling_why() -> None:
    response = handler500(RequestFactory().get("/api/quotes/"))
    assert response.status_code == 500
    assert response.content == b'{"detail": "Internal server error."}'


@pytest.mark.parametrize(
    ("data", "found"),
    [
        ({"a": ["b", {"c": "\ud800"}]}, True),
        ({"\udc00": 1}, True),
        ({"ok": ["é", "日本", 1, None, 2.5]}, False),
        ("\ud83d", True),
        ("😀", False),
    ],
)
def test_lone_surrogates_are_found_anywhere(data: object, found: bool) -> None:
    assert find_lone_surrogate(data) is found


def test_the_parser_returns_valid_json_unchanged() -> None:
    body = '{"a": [1, 2.5, "é", null, true], "b": {"c": "\\ud83d\\ude00"}}'.encode()
    assert SafeJSONParser().parse(io.BytesIO(body)) == {
        "a": [1, 2.5, "é", None, True],
        "b": {"c": "😀"},
    }


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"[" * 100_000, "nested too deeply"),
        (b'["\\ud800"]', "lone surrogate"),
        (b"\xff", "not valid utf-8"),
        (b"[NaN]", "NaN"),
        (b"[-Infinity]", "-Infinity"),
        (b"", "JSON parse error"),
    ],
)
def test_the_parser_turns_bad_input_into_parse_errors(body: bytes, words: str) -> None:
    with pytest.raises(exceptions.ParseError) as caught:
        SafeJSONParser().parse(io.BytesIO(body), parser_context={"encoding": "utf-8"})
    assert words in str(caught.value.detail)
