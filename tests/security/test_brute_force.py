"""Password guessing is cut off per username and per address (feeds/auth.py "Brute force").

Through every door that takes a password: ``POST /api/token/``, the login
form and the admin's. The window is a setting, small here, so that it can
pass within the test; the real default is 5 minutes.
"""

from __future__ import annotations

import io
import time

import pytest
from django.contrib.auth.models import User
from django.test import Client

pytestmark = pytest.mark.django_db

TOKEN_URL = "/api/token/"
WINDOW_S = 3.0
ADDRESS = "198.51.100.7"


@pytest.fixture(autouse=True)
def _limits(settings, fast_hashing):
    settings.FEED_LOGIN_FAILURES_PER_USER = 10
    settings.FEED_LOGIN_FAILURES_PER_ADDRESS = 100
    settings.FEED_LOGIN_WINDOW_S = WINDOW_S


@pytest.fixture
def users(db) -> dict[str, str]:
    passwords = {"alice": "alice-right-password", "bob": "bob-right-password"}
    for name, password in passwords.items():
        User.objects.create_user(name, password=password)
    User.objects.create_superuser("root", password="root-right-password")
    return passwords


def token_attempt(username: str, password: str, address: str = ADDRESS):
    return Client(REMOTE_ADDR=address).post(
        TOKEN_URL, {"username": username, "password": password}, content_type="application/json"
    )


def wait_out(seconds: float) -> None:
    """Let a lockout window pass: the window itself is what the test waits on."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 0.05))


def assert_locked(response) -> None:
    assert response.status_code == 429, response.content[:300]
    assert 1 <= int(response["Retry-After"]) <= max(1, round(WINDOW_S + 1))


def test_twenty_wrong_passwords_lock_the_username_while_another_user_logs_in(users):
    answers = [token_attempt("alice", f"guess-{n}") for n in range(10)]
    locked_at = time.monotonic()  # the tenth failure starts the lockout
    answers += [token_attempt("alice", f"guess-{n}") for n in range(10, 20)]
    assert [r.status_code for r in answers[:9]] == [400] * 9
    for response in answers[9:]:
        assert_locked(response)
        assert response.json()["detail"].startswith("Too many failed logins")
    # The right password is refused too, for the rest of the window...
    assert_locked(token_attempt("alice", users["alice"]))
    # ...while bob, behind the same address, logs in.
    assert token_attempt("bob", users["bob"]).status_code == 200
    assert time.monotonic() - locked_at < WINDOW_S, "the machine is too slow for this window"

    wait_out(locked_at + WINDOW_S - time.monotonic())
    response = token_attempt("alice", users["alice"])
    assert response.status_code == 200
    assert response.json()["token"]


def test_the_login_form_shows_a_page_not_a_traceback(users):
    browser = Client(REMOTE_ADDR=ADDRESS)
    for n in range(9):
        wrong = browser.post("/accounts/login/", {"username": "alice", "password": f"x{n}"})
        assert wrong.status_code == 200
        assert b"did not match" in wrong.content
    locked = browser.post("/accounts/login/", {"username": "alice", "password": "x9"})
    assert_locked(locked)
    assert locked["Content-Type"].startswith("text/html")
    assert b"Too many failed" in locked.content
    right = {"username": "alice", "password": users["alice"]}
    assert_locked(browser.post("/accounts/login/", right))
    assert "sessionid" not in browser.cookies

    other = Client(REMOTE_ADDR=ADDRESS)
    response = other.post("/accounts/login/", {"username": "bob", "password": users["bob"]})
    assert response.status_code == 302
    assert other.get("/").status_code == 200


def test_the_admin_login_is_locked_the_same_way(users):
    admin = Client(REMOTE_ADDR=ADDRESS)
    for n in range(10):
        admin.post("/admin/login/", {"username": "root", "password": f"x{n}", "next": "/admin/"})
    locked = admin.post(
        "/admin/login/", {"username": "root", "password": "root-right-password", "next": "/admin/"}
    )
    assert_locked(locked)
    assert b"Too many failed" in locked.content
    assert admin.get("/admin/").status_code == 302  # still not logged in


def test_failures_through_one_door_count_at_the_others(users):
    for n in range(5):
        token_attempt("alice", f"api-{n}")
    browser = Client(REMOTE_ADDR=ADDRESS)
    for n in range(5):
        browser.post("/accounts/login/", {"username": "alice", "password": f"form-{n}"})
    assert_locked(token_attempt("alice", users["alice"]))


def test_an_address_spraying_many_usernames_is_locked_but_others_are_not(users, settings):
    settings.FEED_LOGIN_FAILURES_PER_ADDRESS = 5
    for n in range(5):
        token_attempt(f"nobody{n}", "guess")
    # Every username is refused from that address, even with the right password...
    assert_locked(token_attempt("bob", users["bob"]))
    # ...and welcome from any other.
    assert token_attempt("bob", users["bob"], address="203.0.113.9").status_code == 200


def test_a_forged_forwarded_for_header_does_not_change_the_address(users, settings):
    settings.FEED_LOGIN_FAILURES_PER_ADDRESS = 5
    for n in range(5):
        Client(REMOTE_ADDR=ADDRESS, HTTP_X_FORWARDED_FOR=f"192.0.2.{n}").post(
            TOKEN_URL, {"username": f"nobody{n}", "password": "guess"},
            content_type="application/json",
        )
    assert_locked(token_attempt("bob", users["bob"]))


def test_guesses_during_a_lockout_do_not_prolong_it(users):
    for n in range(10):
        token_attempt("alice", f"guess-{n}")
    locked_at = time.monotonic()
    for n in range(10):
        assert_locked(token_attempt("alice", f"more-{n}"))
    wait_out(locked_at + WINDOW_S - time.monotonic())
    assert token_attempt("alice", users["alice"]).status_code == 200


def test_an_operator_lifts_a_lockout(users):
    from django.core.management import call_command

    for n in range(10):
        token_attempt("alice", f"guess-{n}")
    assert_locked(token_attempt("alice", users["alice"]))
    call_command("axes_reset_username", "alice", stdout=io.StringIO())
    assert token_attempt("alice", users["alice"]).status_code == 200
