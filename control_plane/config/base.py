"""Settings shared by every control-plane process; `settings.py` and `test_settings.py` add the database.

Everything an operator may change comes from the environment through `fjordgate.env`, so a bad value stops the
process with one line naming the variable (see the configuration reference in README.md).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fjordgate.env import ConfigError, env_bool, env_float, env_int, env_list, env_str, env_url
from shared_sdk.host.sources import DEFAULT_IMPORT_ROOTS, PluginSources

from .https import https_settings

BASE_DIR = Path(__file__).resolve().parent.parent.parent
STATE_DIR = Path(env_str("FJORDGATE_STATE_DIR", str(BASE_DIR / ".fjordgate")) or "")

DEBUG = env_bool("FJORDGATE_DEBUG", False)
SECRET_KEY = env_str("DJANGO_SECRET_KEY", required=True)
_HTTPS = https_settings(
    allowed_hosts=env_list("FJORDGATE_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"]),
    csrf_trusted_origins=env_list("FJORDGATE_CSRF_TRUSTED_ORIGINS", []),
)
# Secure cookies, HSTS and the TLS-ending proxy's header, from FJORDGATE_PUBLIC_URL and friends (`https.py`):
# all off for http://127.0.0.1 (`fjordgate up`).
ALLOWED_HOSTS: list[str] = _HTTPS["ALLOWED_HOSTS"]
CSRF_TRUSTED_ORIGINS: list[str] = _HTTPS["CSRF_TRUSTED_ORIGINS"]
SESSION_COOKIE_SECURE: bool = _HTTPS["SESSION_COOKIE_SECURE"]
CSRF_COOKIE_SECURE: bool = _HTTPS["CSRF_COOKIE_SECURE"]
SECURE_HSTS_SECONDS: int = _HTTPS["SECURE_HSTS_SECONDS"]
SECURE_HSTS_INCLUDE_SUBDOMAINS: bool = _HTTPS["SECURE_HSTS_INCLUDE_SUBDOMAINS"]
SECURE_HSTS_PRELOAD: bool = _HTTPS["SECURE_HSTS_PRELOAD"]
SECURE_PROXY_SSL_HEADER: tuple[str, str] | None = _HTTPS["SECURE_PROXY_SSL_HEADER"]
SECURE_SSL_REDIRECT: bool = _HTTPS["SECURE_SSL_REDIRECT"]

# Fernet keys (comma-separated, newest first, so keys rotate without re-encrypting at once): vendor API keys at
# rest. The edge secret encrypts vendor keys inside config snapshots; only edges of the namespace can read them.
FJORDGATE_SECRET_KEYS = env_list("FJORDGATE_SECRET_KEY")
FJORDGATE_EDGE_SECRET = env_str("FJORDGATE_EDGE_SECRET")
# Upper bound of one object-hook call (Tyk uses 5 s); a plugin's own timeout applies when shorter.
FJORDGATE_OBJECT_HOOK_TIMEOUT_S = env_float("FJORDGATE_OBJECT_HOOK_TIMEOUT_S", 5.0, minimum=0.1)
# The portal's chat: how long one reply (an LLM's stream or an agent's whole run) may take before it is cut off,
# so a stream never holds the server for ever; and the longest message a user may send.
FJORDGATE_CHAT_TIMEOUT_S = env_float("FJORDGATE_CHAT_TIMEOUT_S", 120.0, minimum=1.0)
# Plugin page RPC calls (admin and portal) a user may make per plugin and minute; 0 = no limit (`plugins.rpc_limit`).
FJORDGATE_PLUGIN_RPC_PER_MINUTE = env_int("FJORDGATE_PLUGIN_RPC_PER_MINUTE", 60, minimum=0, maximum=100_000)
# An LLM chat offers the user's catalogue tools (their OpenAPI operations) to the LLM: at most this many rounds of
# tool calls per reply (0: no tools offered), each call bounded in time and in the size of the answer it reads.
FJORDGATE_CHAT_TOOL_ROUNDS = env_int("FJORDGATE_CHAT_TOOL_ROUNDS", 5, minimum=0, maximum=50)
FJORDGATE_CHAT_TOOL_TIMEOUT_S = env_float("FJORDGATE_CHAT_TOOL_TIMEOUT_S", 15.0, minimum=0.1)
FJORDGATE_CHAT_TOOL_MAX_BYTES = env_int("FJORDGATE_CHAT_TOOL_MAX_BYTES", 32_768, minimum=256, maximum=10_000_000)
FJORDGATE_CHAT_MAX_MESSAGE_CHARS = env_int("FJORDGATE_CHAT_MAX_MESSAGE_CHARS", 20_000, minimum=1, maximum=1_000_000)
# Datasources (`control_plane.retrieval`): the largest document one upload may add, the chunk size it is cut into,
# and how much context a chat turn gets (the best `TOP_K` chunks scoring at least `MIN_SCORE`, cosine in [-1, 1]).
# `PGVECTOR` off computes cosine in Python even where the pgvector extension is installed.
FJORDGATE_RETRIEVAL_MAX_DOCUMENT_CHARS = env_int(
    "FJORDGATE_RETRIEVAL_MAX_DOCUMENT_CHARS", 200_000, minimum=1, maximum=10_000_000
)
FJORDGATE_RETRIEVAL_CHUNK_CHARS = env_int("FJORDGATE_RETRIEVAL_CHUNK_CHARS", 1_200, minimum=50, maximum=20_000)
FJORDGATE_RETRIEVAL_TOP_K = env_int("FJORDGATE_RETRIEVAL_TOP_K", 4, minimum=1, maximum=50)
FJORDGATE_RETRIEVAL_MIN_SCORE = env_float("FJORDGATE_RETRIEVAL_MIN_SCORE", 0.3, minimum=-1.0)
FJORDGATE_RETRIEVAL_PGVECTOR = env_bool("FJORDGATE_RETRIEVAL_PGVECTOR", True)
# Where plugin code may come from besides installed `fjordgate.plugins` entry points (docs/plugins/host.md):
# module prefixes an import path may name, and directories whose programs an isolated plugin's command may run.
FJORDGATE_PLUGIN_IMPORT_ROOTS = env_list("FJORDGATE_PLUGIN_IMPORT_ROOTS", list(DEFAULT_IMPORT_ROOTS))
FJORDGATE_PLUGIN_COMMAND_DIRS = env_list("FJORDGATE_PLUGIN_COMMAND_DIRS", [])
try:
    PluginSources(import_roots=tuple(FJORDGATE_PLUGIN_IMPORT_ROOTS))
except ValueError as _exc:
    raise ConfigError("FJORDGATE_PLUGIN_IMPORT_ROOTS", str(_exc)) from None
try:
    PluginSources(command_dirs=tuple(FJORDGATE_PLUGIN_COMMAND_DIRS))
except ValueError as _exc:
    raise ConfigError("FJORDGATE_PLUGIN_COMMAND_DIRS", str(_exc)) from None

NATS_URL = env_url("NATS_URL", ("nats", "tls", "ws", "wss"), "nats://127.0.0.1:4222")
NATS_USER = env_str("NATS_USER")
NATS_PASSWORD = env_str("NATS_PASSWORD")
NATS_TOKEN = env_str("NATS_TOKEN")
NATS_CREDS = env_str("NATS_CREDS")
# Copies of every stream and KV bucket the bridge creates: the number of nodes of a NATS cluster (3 in deploy/), so
# a node lost keeps every acknowledged message; 1 for a single server. JetStream allows at most 5.
NATS_REPLICAS = env_int("NATS_REPLICAS", 1, minimum=1, maximum=5)

# Budget alert e-mails (`budgets.alerts`) go through Django's mail settings, under Django's own names.

REDIS_URL = env_url("REDIS_URL", ("redis", "rediss", "unix"), "redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = REDIS_URL
# Django's cache (plugin RPC rate limits) lives in the same Redis, so every web process shares the counts.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "fjordgate",
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }
}
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # the Swagger UI's own files, served from here: the API docs page works offline
    "axes",  # failed password sign-ins counted per user and address: guessing is locked out (accounts/lockout.py)
    "control_plane.accounts",
    "control_plane.applications",
    "control_plane.llms",
    "control_plane.catalog",
    "control_plane.budgets",
    "control_plane.plugins",
    "control_plane.hooks",
    "control_plane.kv",
    "control_plane.schedules",
    "control_plane.edges",
    "control_plane.analytics",
    "control_plane.sync",
    "control_plane.audit",
    "control_plane.portal",
    "control_plane.chat",
    "control_plane.retrieval",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "control_plane.config.request_text.NulRefusingMiddleware",  # %00 in a URL: 400, not a failed query
    "whitenoise.middleware.WhiteNoiseMiddleware",  # the admin's static files under uvicorn, no separate server
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "control_plane.audit.actor.AuditRequestMiddleware",  # who writes: the request's user or token
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a locked-out sign-in into its 429
]

ROOT_URLCONF = "control_plane.config.urls"
ASGI_APPLICATION = "control_plane.config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "control_plane" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "control_plane.accounts.views.sso_context",
            ],
        },
    },
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT: Path | None = STATE_DIR / "static"
# Served by WhiteNoise; with no collectstatic run (development, tests) it finds files through the app finders.
WHITENOISE_USE_FINDERS = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "control_plane.accounts.tokens.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "control_plane.config.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "control_plane.config.pagination.BoundedLimitOffsetPagination",
    "PAGE_SIZE": env_int("FJORDGATE_API_PAGE_SIZE", 50, minimum=1, maximum=1000),
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
        "control_plane.config.api_filters.NamespaceFilterBackend",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "control_plane.config.exceptions.api_exception_handler",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Fjordgate control plane API",
    "DESCRIPTION": "Apps, keys, LLMs, budgets, plugins, schedules and edges of a Fjordgate deployment.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The Swagger UI at /api/v1/docs/ loads its scripts, CSS and icon from drf-spectacular-sidecar's static files
    # (WhiteNoise, as the admin's), not from a CDN: air-gapped installations get the page, not a blank one.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
}

LOG_LEVEL = (env_str("FJORDGATE_LOG_LEVEL", "INFO") or "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# Single sign-on (OpenID Connect; see control_plane/accounts/oidc.py). Off unless an issuer is set.
FJORDGATE_OIDC_ISSUER = env_str("FJORDGATE_OIDC_ISSUER", "") or ""
FJORDGATE_OIDC_GROUPS_CLAIM = env_str("FJORDGATE_OIDC_GROUPS_CLAIM", "groups") or "groups"
FJORDGATE_OIDC_GROUP_MAP = env_str("FJORDGATE_OIDC_GROUP_MAP", "") or ""
FJORDGATE_OIDC_PROVIDER_NAME = env_str("FJORDGATE_OIDC_PROVIDER_NAME", "single sign-on") or "single sign-on"
# false: only single sign-on signs people in (the admin's password form is gone; API tokens still work)
FJORDGATE_LOCAL_PASSWORDS = env_bool("FJORDGATE_LOCAL_PASSWORDS", True)
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
LOGIN_REDIRECT_URL = "/admin/"
LOGOUT_REDIRECT_URL = "/admin/login/"

# Mail: the portal's notifications (app requested -> staff, app approved -> owner) and budget alerts (the bridge
# sends them). Without a host no mail is sent (the admin's app list, the portal and the alert marks show the news),
# unless FJORDGATE_EMAIL_BACKEND names another Django backend (e.g. the file backend with FJORDGATE_EMAIL_FILE_PATH).
EMAIL_HOST = env_str("FJORDGATE_EMAIL_HOST", "") or ""
EMAIL_PORT = env_int("FJORDGATE_EMAIL_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER = env_str("FJORDGATE_EMAIL_USER", "") or ""
EMAIL_HOST_PASSWORD = env_str("FJORDGATE_EMAIL_PASSWORD", "") or ""
EMAIL_USE_TLS = env_bool("FJORDGATE_EMAIL_TLS", False)
DEFAULT_FROM_EMAIL = env_str("FJORDGATE_EMAIL_FROM", "fjordgate@localhost") or "fjordgate@localhost"
EMAIL_BACKEND = env_str("FJORDGATE_EMAIL_BACKEND", "") or (
    "django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST else "django.core.mail.backends.dummy.EmailBackend"
)
EMAIL_FILE_PATH = env_str("FJORDGATE_EMAIL_FILE_PATH")
EMAIL_TIMEOUT = env_float("FJORDGATE_EMAIL_TIMEOUT", 10.0, minimum=0.1)  # the bridge sends alerts: never wait for ever
OIDC_AUTHENTICATION_CALLBACK_URL = "oidc_authentication_callback"
if FJORDGATE_OIDC_ISSUER:
    from control_plane.accounts.oidc_settings import check_group_map

    OIDC_RP_CLIENT_ID = env_str("FJORDGATE_OIDC_CLIENT_ID", required=True)
    OIDC_RP_CLIENT_SECRET = env_str("FJORDGATE_OIDC_CLIENT_SECRET", required=True)
    OIDC_RP_SCOPES = env_str("FJORDGATE_OIDC_SCOPES", "openid email profile") or "openid email profile"
    check_group_map(FJORDGATE_OIDC_GROUP_MAP)
    AUTHENTICATION_BACKENDS = [
        "control_plane.accounts.oidc.FjordgateOIDCBackend",
        *(["django.contrib.auth.backends.ModelBackend"] if FJORDGATE_LOCAL_PASSWORDS else []),
    ]
elif not FJORDGATE_LOCAL_PASSWORDS:
    from fjordgate.env import ConfigError

    raise ConfigError("FJORDGATE_LOCAL_PASSWORDS", "false needs single sign-on: set FJORDGATE_OIDC_ISSUER")
# First: refuses a locked-out sign-in before any password is checked (django-axes, settings below).
# Model permissions from namespace roles (authenticates nobody): see control_plane/accounts/admin_access.py
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    *AUTHENTICATION_BACKENDS,
    "control_plane.accounts.admin_access.NamespaceRolePermissionBackend",
]
# Password guessing (admin, portal, POST /api/v1/auth/token/): after FJORDGATE_SIGNIN_FAILURE_LIMIT failed sign-ins
# for one username from one address, that pair is refused (429, even with the right password) for
# FJORDGATE_SIGNIN_LOCKOUT_MINUTES; a success resets the count. Per pair, not per username: a stranger cannot lock
# a user out from everywhere. `manage.py axes_reset_username <name>` unlocks early.
AXES_FAILURE_LIMIT = env_int("FJORDGATE_SIGNIN_FAILURE_LIMIT", 5, minimum=1, maximum=1000)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("FJORDGATE_SIGNIN_LOCKOUT_MINUTES", 15, minimum=1, maximum=7 * 24 * 60))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_DISABLE_ACCESS_LOG = True  # no row per successful sign-in (the audit trail says who changed what)
AXES_LOCKOUT_CALLABLE = "control_plane.accounts.lockout.lockout_response"
AXES_VERBOSE = False
