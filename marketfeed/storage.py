"""Static files for production: content-hashed names, compressed copies, imports rewritten.

With ``STATIC_MANIFEST=1`` (marketfeed/settings.py, docs/DEPLOY.md "Static
files") the page's CSS and JS are served from what ``manage.py collectstatic``
wrote to ``STATIC_ROOT``: ``feeds/ticker.b4a963d45301.js`` and a gzipped copy
of each, which whitenoise serves with a year's ``immutable`` cache header,
since a changed file gets a new name. The page's ES modules import one
another (``import { QuoteBook } from "./book.js";``); those imports are
rewritten to the hashed names too, so a release never mixes a cached module
with a new one.
"""

from __future__ import annotations

from typing import Any

from whitenoise.storage import CompressedManifestStaticFilesStorage


class ManifestStaticFilesStorage(CompressedManifestStaticFilesStorage):
    support_js_module_import_aggregation = True

    def stored_name(self, name: str) -> Any:
        if not self.hashed_files and not self.exists(self.manifest_name):
            # Instead of Django's "Missing staticfiles manifest entry" on every page.
            raise ValueError(
                f"STATIC_MANIFEST=1 serves only collected static files, and {self.location} has "
                f"no {self.manifest_name}: run `python manage.py collectstatic --noinput` first"
            )
        return super().stored_name(name)
