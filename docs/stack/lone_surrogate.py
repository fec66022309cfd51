"""DRF with hostile JSON bodies: with DRF's ``JSONParser`` and with the feed's.

    .venv/bin/python -m docs.stack.lone_surrogate

Configures a minimal Django of its own (``rest_framework.authtoken`` and an
in-memory SQLite database, nothing of marketfeed's settings), then posts,
through ``APIRequestFactory``, to DRF's stock ``ObtainAuthToken`` view: good
credentials, a username that is a lone surrogate (``"\\ud800"``, valid JSON)
and 50,000 nested brackets; and to a view whose serializer has a
``ChoiceField`` (its error message repeats the value): a lone surrogate.
Once with DRF's ``JSONParser``, once with
``feeds.edges.api.parsers.SafeJSONParser``, the feed's default parser. Prints
the status each answered with, or the exception that would have been a 500.
docs/STACK.md quotes its output.
"""

from __future__ import annotations

import json
import secrets

import django
from django.conf import settings

settings.configure(
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth",
                    "rest_framework", "rest_framework.authtoken"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    REST_FRAMEWORK={"UNAUTHENTICATED_USER": None},
)
django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from rest_framework import serializers  # noqa: E402
from rest_framework.authtoken.views import ObtainAuthToken  # noqa: E402
from rest_framework.parsers import JSONParser  # noqa: E402
from rest_framework.request import Request  # noqa: E402
from rest_framework.response import Response  # noqa: E402
from rest_framework.test import APIRequestFactory  # noqa: E402
from rest_framework.views import APIView  # noqa: E402

from feeds.edges.api.parsers import SafeJSONParser  # noqa: E402


class Interval(serializers.Serializer):  # type: ignore[type-arg]
    interval = serializers.ChoiceField(choices=["1m", "5m"])


class Echo(APIView):
    authentication_classes = ()
    permission_classes = ()

    def post(self, request: Request) -> Response:
        data = Interval(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(data.validated_data)


# A throw-away user in an in-memory database; no fixed password in the source all the same.
PASSWORD = secrets.token_urlsafe(18)
CASES = [
    ("obtain_auth_token", ObtainAuthToken, "good credentials",
     json.dumps({"username": "demo", "password": PASSWORD}).encode()),
    ("obtain_auth_token", ObtainAuthToken, 'username "\\ud800"',
     b'{"username": "\\ud800", "password": "x"}'),
    ("obtain_auth_token", ObtainAuthToken, "50,000 nested [", b"[" * 50_000),
    ("ChoiceField view", Echo, 'interval "\\ud800"', b'{"interval": "\\ud800"}'),
]


def answer(view_class: type[APIView], parser: type, body: bytes) -> str:
    view = view_class.as_view(parser_classes=[parser])
    request = APIRequestFactory().post("/api/token/", body, content_type="application/json")
    try:
        response = view(request)
        response.render()  # the JSON renderer runs here
    except Exception as exc:
        return f"raises {type(exc).__name__} (a 500): {str(exc)[:50]}"
    return f"{response.status_code} {response.content[:50].decode()}"


def main() -> None:
    call_command("migrate", verbosity=0)
    User.objects.create_user("demo", password=PASSWORD)
    for parser in (JSONParser, SafeJSONParser):
        print(f"with {parser.__module__}.{parser.__name__}")
        for view_name, view_class, label, body in CASES:
            print(f"   {view_name}, {label:18} -> {answer(view_class, parser, body)}")


if __name__ == "__main__":
    main()
