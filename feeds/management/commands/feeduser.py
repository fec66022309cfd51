"""``manage.py feeduser NAME [--password P] [--superuser]``: a user and its API token.

Creates the user if missing (with an unusable password unless ``--password``
is given; ``--password`` also resets an existing user's password),
``--superuser`` makes the user staff and superuser, and the user's DRF token
is created if it has none. The token is always the LAST line of stdout, so
scripts can take ``tail -n 1``; everything else this prints comes before it,
and warnings go to stderr.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from rest_framework.authtoken.models import Token

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = (
        "Create a feed user if missing and print its API token as the last line. "
        "Without --password a new user can only use the token, not log in."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument(
            "--password",
            help="Set this password (on an existing user too). Not checked against "
            "the password validators beyond a warning: this is an operator's tool.",
        )
        parser.add_argument(
            "--superuser", action="store_true", help="Make the user staff and superuser."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
        username = self._valid_username(user_model, options["username"])
        password: str | None = options["password"]
        if password is not None and not password:
            raise CommandError("--password must not be empty (leave it out for no password).")
        with transaction.atomic():
            user, created = self._user(user_model, username)
            changed: list[str] = []
            if password is not None:
                self._warn_weak(password, user)
                user.set_password(password)
                changed.append("password")
            if options["superuser"] and not (user.is_staff and user.is_superuser):
                user.is_staff = user.is_superuser = True
                changed += ["is_staff", "is_superuser"]
            if changed:
                user.save(update_fields=changed)
            token, token_created = Token.objects.get_or_create(user=user)
        self.stdout.write(f"{'Created' if created else 'Found'} user {username}.")
        if "password" in changed:
            self.stdout.write("Password set.")
        if options["superuser"]:
            self.stdout.write("The user is a superuser.")
        self.stdout.write(f"{'Created' if token_created else 'Existing'} API token:")
        logger.info("feeduser: %s (created=%s, token created=%s)", username, created, token_created)
        # The token alone on the last line: scripts read it with tail -n 1.
        self.stdout.write(token.key)

    def _valid_username(self, user_model: type[AbstractBaseUser], raw: str) -> str:
        username = user_model.normalize_username(raw)
        field = user_model._meta.get_field(user_model.USERNAME_FIELD)
        try:
            # The model field's own checks: blank, max_length and the
            # username validator (letters, digits and @ . + - _).
            field.clean(username, None)
        except ValidationError as exc:
            raise CommandError(f"Invalid username {raw!r}: {' '.join(exc.messages)}") from None
        return username

    def _user(self, user_model: Any, username: str) -> tuple[Any, bool]:
        try:
            return user_model._default_manager.get_by_natural_key(username), False
        except user_model.DoesNotExist:
            # create_user with no password stores an unusable one.
            return user_model._default_manager.create_user(username, password=None), True

    def _warn_weak(self, password: str, user: Any) -> None:
        try:
            validate_password(password, user)
        except ValidationError as exc:
            self.stderr.write(f"Warning: weak password: {' '.join(exc.messages)}")
