"""Settings for marketfeed, read from the environment.

With no environment at all this is the *embedded default*: SQLite under
``var/``, the in-memory channel layer, and the ticker running inside the server
process. ``REDIS_URL`` switches the channel layer and the quote store to Redis
(and moves the ticker out to ``manage.py runticker``); ``DATABASE_URL``
switches the database (PostgreSQL in production).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from marketfeed.config import caches, channel_layers, local_secret_key, logging_config
from marketfeed.env import (
    env_bool,
    env_float,
    env_int,
    env_list,
    env_redis_url,
    env_redis_urls,
    env_str,
)
from marketfeed.redis_sentinel import sentinel_settings

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("MARKETFEED_VAR_DIR", str(BASE_DIR / "var")))


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY") or local_secret_key(VAR_DIR)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# HTTPS=1 in production, where clients reach the feed over TLS (nginx or a load
# balancer terminates it, and daphne's --proxy-headers passes the scheme on):
# cookies only over https, plain http redirected, browsers told to stay on
# https (HSTS). `manage.py check --deploy` is clean with DEBUG=0, a SECRET_KEY,
# ALLOWED_HOSTS and HTTPS=1 (tests/security/test_deploy_settings.py).
HTTPS = env_bool("HTTPS", False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", HTTPS)
# A load balancer's health probe may come over plain http.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", HTTPS)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", HTTPS)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    # API tokens stored hashed, with an expiry, several per user (feeds/auth.py).
    "knox",
    # Failed-login counting and lockout (feeds/auth.py "Brute force").
    "axes",
    "drf_spectacular",
    # Swagger UI's files for /api/schema/docs/, served as our own static files (no CDN).
    "drf_spectacular_sidecar",
    # CSV import and export of instruments in the admin (feeds/edges/admin_import.py).
    "import_export",
    "channels",
    "feeds",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Content-Security-Policy on every response (CONTENT_SECURITY_POLICY below).
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Database away: 503 (JSON under /api/), not a traceback page.
    "feeds.edges.middleware.DatabaseUnavailableMiddleware",
    # Last, as django-axes asks: turns a locked-out login into a 429 with Retry-After.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "marketfeed.urls"
ASGI_APPLICATION = "marketfeed.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- database -----------------------------------------------------------------

_database_url = env_str("DATABASE_URL").strip()
if _database_url:
    try:
        DATABASES = {"default": dj_database_url.parse(_database_url, conn_max_age=60)}
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL: {exc}") from None
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "db.sqlite3",
            # WAL lets the ticker read while an admin save writes.
            # IMMEDIATE: a transaction takes the write lock when it begins, waiting up to
            # the timeout; a deferred one that read first is refused at once ("database is
            # locked") if another process wrote meanwhile (tests/faults/test_sqlite_writers.py).
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL;",
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
            },
            # Kept open as PostgreSQL's are: a new one per query (Django registers its
            # SQL functions on each) was 5 % of a worker's CPU in a connect burst.
            "CONN_MAX_AGE": 60,
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- channel layer and quote store ------------------------------------------------

REDIS_URL = env_redis_url("REDIS_URL")
# REDIS_SENTINELS=host:port,...: the layer, store, lease and cache on the master Sentinel names
# (marketfeed/redis_sentinel.py); REDIS_URL then reads redis://[auth@]<master name>/<db>.
REDIS_SENTINEL, REDIS_URL = sentinel_settings(REDIS_URL)
# Which channels-redis layer carries quotes between processes: "pubsub"
# (RedisPubSubChannelLayer, the default) or "core" (RedisChannelLayer).
# Measured (`python3 run.py bench layers`, docs/PERFORMANCE.md): pubsub took
# half the CPU per delivery of core and kept up where core fell behind; and
# core keeps group membership as Redis keys, which a restarted Redis forgets.
REDIS_LAYER = env_str("REDIS_LAYER", "pubsub").strip().lower()
if REDIS_LAYER not in ("pubsub", "core"):
    raise ImproperlyConfigured(f"REDIS_LAYER={REDIS_LAYER!r}: expected pubsub or core")
# The layer over several Redis servers (docs/DEPLOY.md "Sharding the bus"):
# channels-redis hashes each group and channel name to one of them. The quote
# store, the ticker lease and the cache stay on REDIS_URL. Every process must
# list the same URLs in the same order.
_layer_urls = env_redis_urls("REDIS_LAYER_URLS")
if _layer_urls and not REDIS_URL:
    raise ImproperlyConfigured(
        "REDIS_LAYER_URLS: set REDIS_URL as well (the quote store and the ticker lease live there)"
    )
REDIS_LAYER_URLS = _layer_urls or ([REDIS_URL] if REDIS_URL else [])
CHANNEL_LAYERS = channel_layers(REDIS_URL, REDIS_SENTINEL, REDIS_LAYER, _layer_urls)

# --- the feed -------------------------------------------------------------------

# Where the ticker runs: "embedded" (inside the server process), "external"
# (a separate `manage.py runticker`), or "off" (tests drive it by hand).
FEED_TICKER = env_str("FEED_TICKER", "external" if REDIS_URL else "embedded")
if FEED_TICKER not in ("embedded", "external", "off"):
    raise ImproperlyConfigured(f"FEED_TICKER={FEED_TICKER!r}: expected embedded, external or off")

FEED_MAX_SYMBOLS = env_int("FEED_MAX_SYMBOLS", 1000, minimum=1)
FEED_RATE_PER_S = env_float("FEED_RATE_PER_S", 20.0, minimum=0.001)
FEED_RATE_BURST = env_int("FEED_RATE_BURST", 40, minimum=1)
FEED_MAX_CONNECTIONS_PER_USER = env_int("FEED_MAX_CONNECTIONS_PER_USER", 50, minimum=1)
FEED_MAX_FRAME_BYTES = env_int("FEED_MAX_FRAME_BYTES", 65_536, minimum=1024)
FEED_AUTH_TIMEOUT_S = env_float("FEED_AUTH_TIMEOUT_S", 10.0, minimum=0.1)
# Revoked tokens are closed at once by a broadcast (feeds.auth); this re-check,
# two queries per process and interval, catches a broadcast lost to an outage.
FEED_AUTH_RECHECK_S = env_float("FEED_AUTH_RECHECK_S", 30.0, minimum=0.1)
FEED_HEARTBEAT_S = env_float("FEED_HEARTBEAT_S", 15.0, minimum=0.1)
# The cyclic collector's pace in a server process (feeds/deliver/collector.py):
# a short pass over the objects new since the last every FEED_GC_PASS_S, a
# full reclaim at the latest every FEED_GC_RECLAIM_S (sooner as connections close).
# FEED_GC_PASS_S=0 leaves Python's own pace alone.
FEED_GC_PASS_S = env_float("FEED_GC_PASS_S", 1.0, minimum=0.0)
FEED_GC_RECLAIM_S = env_float("FEED_GC_RECLAIM_S", 3600.0, minimum=1.0)
# WebSocket-level pings are daphne's job; these are passed to it by `runfeed`.
FEED_PING_INTERVAL_S = env_int("FEED_PING_INTERVAL_S", 20, minimum=1)
FEED_PING_TIMEOUT_S = env_int("FEED_PING_TIMEOUT_S", 30, minimum=1)
# Several messages ready for one client in the same loop turn go out as one
# JSON-array frame (PROTOCOL.md "Frames"); off sends one message per frame.
FEED_BATCH_FRAMES = env_bool("FEED_BATCH_FRAMES", True)
# Above this many bytes waiting in a connection's transport buffer, that
# client is "slow": its quotes are conflated (newest per symbol) until it drains.
FEED_WRITE_BUFFER_BYTES = env_int("FEED_WRITE_BUFFER_BYTES", 65_536, minimum=1024)
# Kernel send buffer per WebSocket (SO_SNDBUF; Linux doubles it). 0 leaves
# Linux's autotuning, which lets a stalled reader absorb up to ~4 MiB (tens of
# thousands of stale quotes) before back-pressure shows and conflation starts.
FEED_SOCKET_BUFFER_BYTES = env_int("FEED_SOCKET_BUFFER_BYTES", 65_536, minimum=0)
# permessage-deflate for clients that offer it (every browser does; PROTOCOL.md
# "Compression"; measured by `python3 run.py bench formats`, docs/PERFORMANCE.md).
# "off": never; "shared": each message compressed on its own, so a quote is
# compressed once per process for all its subscribers; "context": a deflate
# stream per connection, smaller frames for one compression per client and message.
FEED_WS_COMPRESSION = env_str("FEED_WS_COMPRESSION", "shared").strip().lower()
if FEED_WS_COMPRESSION not in ("off", "shared", "context"):
    raise ImproperlyConfigured(
        f"FEED_WS_COMPRESSION={FEED_WS_COMPRESSION!r}: expected off, shared or context"
    )
# Seed for the price engine; unset means a fresh random seed per start.
FEED_SEED = env_int("FEED_SEED", 0, minimum=0) if env_str("FEED_SEED") else None
# Simulated market seconds per real second: volatility is annualised, and at
# 1x a 25 % stock moves less than a tick per quote. 1 is realistic time.
FEED_TIME_SCALE = env_float("FEED_TIME_SCALE", 60.0, minimum=0.001, maximum=1e9)
# The runticker leader lease: a standby takes over this long after the leader
# died; the leader renews it every third of it.
FEED_LEASE_S = env_float("FEED_LEASE_S", 3.0, minimum=0.3, maximum=600)
# How often the ticker re-reads instruments even without a control message
# (changes made straight in the database or from another process of the
# embedded default, or a lost message): one cheap fingerprint query.
FEED_RELOAD_INTERVAL_S = env_float("FEED_RELOAD_INTERVAL_S", 0.5, minimum=0.05)
# --- resume and make-before-break (PROTOCOL.md "Resume after reconnect", "reconnect") ---
# The quote store keeps this many of the latest quotes per symbol, so a client
# that reconnects with `since` gets what it missed; 0 turns resume off.
FEED_RESUME_RING = env_int("FEED_RESUME_RING", 256, minimum=0, maximum=100_000)
# On SIGTERM every client gets `reconnect` and this many seconds to move to
# another server before the 1001 close; 0 closes at once.
FEED_RECONNECT_GRACE_S = env_float("FEED_RECONNECT_GRACE_S", 5.0, minimum=0, maximum=600)
# A connection older than this (plus up to 10 % random jitter) is asked to
# `reconnect` (reason max_age), e.g. to rebalance a fleet; 0 means no maximum.
FEED_MAX_CONNECTION_AGE_S = env_float(
    "FEED_MAX_CONNECTION_AGE_S", 0.0, minimum=0, maximum=30 * 86_400
)
# GET /metrics (Prometheus) answers staff users, and the bearer of this token
# when it is set (a scrape job: "Authorization: Bearer <token>").
FEED_METRICS_TOKEN = env_str("FEED_METRICS_TOKEN", "").strip()
if FEED_METRICS_TOKEN and len(FEED_METRICS_TOKEN) < 16:
    raise ImproperlyConfigured(
        "FEED_METRICS_TOKEN: at least 16 characters, or unset for staff-only metrics"
    )

# --- bars (PROTOCOL.md "Bars"; feeds/publish/bar_writer.py) ---
# The ticker stores the bars that changed every this many seconds, in one
# bulk upsert: the newest bar the API shows may be this far behind.
FEED_BARS_FLUSH_S = env_float("FEED_BARS_FLUSH_S", 5.0, minimum=0.05, maximum=3600)
# Bars older than this many days are deleted (0 keeps them forever).
FEED_BARS_RETENTION_DAYS = env_int("FEED_BARS_RETENTION_DAYS", 7, minimum=0, maximum=36_500)
# Test knob: seconds a "1m" bar covers (60 in real use). It must divide 60 so
# that longer bars still line up with the clock's minutes.
FEED_BARS_PERIOD_S = env_int("FEED_BARS_PERIOD_S", 60, minimum=1, maximum=60)
if 60 % FEED_BARS_PERIOD_S:
    raise ImproperlyConfigured(
        f"FEED_BARS_PERIOD_S={FEED_BARS_PERIOD_S}: expected a divisor of 60 (60 in real use)"
    )
# A starting ticker backfills this many days of bars for instruments with none in
# them (feeds/publish/backfill.py; at most FEED_BARS_RETENTION_DAYS); 0: off.
FEED_BACKFILL_DAYS = env_int("FEED_BACKFILL_DAYS", 3, minimum=0, maximum=30)

# --- entitlements (PROTOCOL.md "Entitlements"; feeds/entitlements.py) ---
# On: a user sees only the instruments of the exchanges and asset classes
# they (or one of their groups) are entitled to in the admin; superusers see
# everything. Off: everybody sees every instrument.
FEED_ENTITLEMENTS = env_bool("FEED_ENTITLEMENTS", False)

# --- credentials, brute force, tickets, CSP (docs/SECURITY.md; feeds/auth.py) ---
# Shared by every server process where it matters: failed-login counters and
# WebSocket tickets live here, so with Redis any process counts every attempt
# and redeems any ticket. The embedded default is one process: local memory.
CACHES = caches(REDIS_URL, REDIS_SENTINEL)

# API tokens (django-rest-knox): only a hash is stored; each expires this many days after issue.
FEED_TOKEN_TTL_DAYS = env_int("FEED_TOKEN_TTL_DAYS", 30, minimum=1, maximum=3650)
REST_KNOX = {
    "TOKEN_TTL": timedelta(days=FEED_TOKEN_TTL_DAYS),
    "AUTH_HEADER_PREFIX": "Token",  # clients keep sending "Authorization: Token <token>"
}
# A WebSocket / SSE ticket (POST /api/ws-ticket/) admits one handshake within this many seconds.
FEED_WS_TICKET_TTL_S = env_int("FEED_WS_TICKET_TTL_S", 30, minimum=1, maximum=600)

# Brute force: this many failed logins for one username within the window lock
# that username out for the window (429 with Retry-After), whatever the
# password; a higher bound per client address stops spraying many usernames
# without one attacked user locking out the others behind the same address.
FEED_LOGIN_FAILURES_PER_USER = env_int("FEED_LOGIN_FAILURES_PER_USER", 10, minimum=1)
FEED_LOGIN_FAILURES_PER_ADDRESS = env_int("FEED_LOGIN_FAILURES_PER_ADDRESS", 100, minimum=1)
FEED_LOGIN_WINDOW_S = env_float("FEED_LOGIN_WINDOW_S", 300.0, minimum=0.1, maximum=86_400)
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # refuses a locked-out login before any password check
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "feeds.logins.LoginAttempts"  # counts in CACHES["default"], two limits
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_FAILURE_LIMIT = FEED_LOGIN_FAILURES_PER_USER
AXES_COOLOFF_TIME = timedelta(seconds=FEED_LOGIN_WINDOW_S)
AXES_LOCKOUT_CALLABLE = "feeds.logins.lockout_response"
# REMOTE_ADDR: daphne sets it from X-Forwarded-For only behind the proxy (--proxy-headers).
AXES_CLIENT_IP_CALLABLE = "feeds.logins.client_address"
AXES_ENABLE_ADMIN = False  # the attempt tables are unused: counters are in the cache
AXES_VERBOSE = False

# Content-Security-Policy (django-csp): scripts, styles and connections from
# this origin only; no inline script or style anywhere. The ticker page adds
# its own ws(s):// origin to connect-src (feeds/edges/page.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'none'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "manifest-src": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'none'"],
        "object-src": ["'none'"],
    }
}

# --- the usual Django bits ----------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns when it is missing
# STATIC_MANIFEST=1, for production (docs/DEPLOY.md "Static files"): serve what
# `manage.py collectstatic --noinput` wrote to STATIC_ROOT at the release, under
# content-hashed names cached for a year (marketfeed/storage.py). Off, as in the
# embedded default and the tests: straight from the app folders, no step at all.
STATIC_MANIFEST = env_bool("STATIC_MANIFEST", False)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "marketfeed.storage.ManifestStaticFilesStorage"
        if STATIC_MANIFEST
        else "whitenoise.storage.CompressedStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = not STATIC_MANIFEST
WHITENOISE_AUTOREFRESH = DEBUG

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "ticker"
LOGOUT_REDIRECT_URL = "login"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first, so an anonymous API call gets 401 with WWW-Authenticate.
        "feeds.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["feeds.edges.api.parsers.SafeJSONParser"],
    "DEFAULT_PAGINATION_CLASS": "feeds.edges.api.pagination.InstrumentPagination",
    "EXCEPTION_HANDLER": "feeds.edges.api.errors.exception_handler",
    # The OpenAPI schema (`manage.py spectacular`); the API contract test runs against it.
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "marketfeed REST API",
    "DESCRIPTION": "The REST part of docs/PROTOCOL.md (Endpoints).",
    "VERSION": "1",
    # Served at /api/schema/ with Swagger UI at /api/schema/docs/ (feeds/edges/api/contracts.py,
    # logged-in users only); the schema does not list those pages themselves.
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # No validator badge: Swagger UI would fetch it from the validator's site.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
}

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOGGING = logging_config(LOG_LEVEL)
