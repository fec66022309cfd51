"""``manage.py feeduser NAME [--password P | --password-file PATH] [--superuser]``.

A user and a new API token for it.

Creates the user if missing (with an unusable password unless a password is
given; a password is also set on an existing user), ``--superuser`` makes
the user staff and superuser. ``--password-file PATH`` takes the password
from PATH, or, when PATH does not exist yet, generates a random one, writes
it there (mode 0600) and prints it this once: how ``run.py`` gives the demo
user a password that is in no source file.

Every run issues a NEW API token (tokens are stored hashed, so an earlier one
cannot be shown again); tokens printed before stay valid until they expire
(``FEED_TOKEN_TTL_DAYS``) or are revoked. The token is always the LAST line
of stdout, so scripts can take ``tail -n 1``; everything else this prints
comes before it, and warnings go to stderr.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from feeds.auth import issue_token

logger = logging.getLogger(__name__)

# 24 URL-safe characters: 144 random bits.
GENERATED_PASSWORD_BYTES = 18


class Command(BaseCommand):
    help = (
        "Create a feed user if missing and print a new API token as the last line. "
        "Without a password a new user can only use the token, not log in."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        given = parser.add_mutually_exclusive_group()
        given.add_argument(
            "--password",
            help="Set this password (on an existing user too). Not checked against "
            "the password validators beyond a warning: this is an operator's tool.",
        )
        given.add_argument(
            "--password-file",
            type=Path,
            metavar="PATH",
            help="Set the password kept in PATH; if PATH does not exist, generate a random "
            "password, write it to PATH (mode 0600) and print it once.",
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
        generated = False
        path: Path | None = options["password_file"]
        if path is not None:
            password, generated = self._password_from(path)
        with transaction.atomic():
            user, created = self._user(user_model, username)
            changed: list[str] = []
            if password is not None:
                if not generated:
                    self._warn_weak(password, user)
                user.set_password(password)
                changed.append("password")
            if options["superuser"] and not (user.is_staff and user.is_superuser):
                user.is_staff = user.is_superuser = True
                changed += ["is_staff", "is_superuser"]
            if changed:
                user.save(update_fields=changed)
            token, row = issue_token(user)
        self.stdout.write(f"{'Created' if created else 'Found'} user {username}.")
        if generated:
            self.stdout.write(f"Generated password (kept in {path}, shown only now): {password}")
        elif path is not None:
            self.stdout.write(f"Password set from {path}.")
        elif "password" in changed:
            self.stdout.write("Password set.")
        if options["superuser"]:
            self.stdout.write("The user is a superuser.")
        expires = f"expires {row.expiry:%Y-%m-%d %H:%M} UTC" if row.expiry else "no expiry"
        self.stdout.write(f"New API token ({expires}; earlier ones stay valid):")
        logger.info("feeduser: %s (created=%s): API token issued", username, created)
        # The token alone on the last line: scripts read it with tail -n 1.
        self.stdout.write(token)

    def _password_from(self, path: Path) -> tuple[str, bool]:
        """The password kept in ``path``, or a new one written there: (password, generated)."""
        try:
            password = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise CommandError(f"--password-file {path}: {exc.strerror or exc}") from None
        else:
            if not password:
                raise CommandError(f"--password-file {path} is empty.")
            if path.stat().st_mode & 0o077:
                self.stderr.write(f"Warning: {path} is readable by others; chmod 600 it.")
            return password, False
        password = secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Created 0600 from the start: never a moment with the password world-readable.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise CommandError(f"--password-file {path}: {exc.strerror or exc}") from None
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(password + "\n")
        return password, True

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
