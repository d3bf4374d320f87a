"""Settings for the test suite.

DATABASE_URL is optional here: when it is unset, the session fixture in tests/conftest.py starts an embedded
PostgreSQL (pgserver) and points `DATABASES["default"]` at it before the test database is created.
"""

import os
import sys

TEST_PLUGIN_IMPORT_ROOTS = (
    "plugins",
    "control_plane.hooks.tests.plugins",
    "control_plane.plugins.tests.plugins",
    "control_plane.budgets.tests.plugins",
    "control_plane.chat.tests.agents",
    "edge_gateway.tests",
    "shared_sdk.tests",
    "tests.schedules.sample_plugins",
)

os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key-not-for-production")
# Fixed Fernet keys so encrypted fixtures are reproducible; never used outside tests.
os.environ.setdefault("FJORDGATE_SECRET_KEY", "G0Fz8mJ3l1Xc4b8m0o8bQ4mV7Wc2pS3sK9dY1rT6uE0=")
os.environ.setdefault("FJORDGATE_EDGE_SECRET", "bXv8pV2dN6qW3zR9tY1uI5oP7aS4dF0gH2jK8lZ6xC4=")
# The test plugins live in test packages, and isolated ones run with this interpreter: allow exactly those (set in
# the environment, so edges and control-plane processes the tests start apply the same rules).
os.environ.setdefault("FJORDGATE_PLUGIN_IMPORT_ROOTS", ",".join(TEST_PLUGIN_IMPORT_ROOTS))
os.environ.setdefault("FJORDGATE_PLUGIN_COMMAND_DIRS", os.path.dirname(os.path.abspath(sys.executable)))

from .base import *  # noqa: E402,F403
from .database import database_settings  # noqa: E402

_url = os.environ.get("DATABASE_URL")
DATABASES = {
    "default": database_settings(_url)
    if _url
    else {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "fjordgate_unconfigured",  # replaced by the embedded-PostgreSQL fixture
    }
}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast user creation in tests
STATIC_ROOT = None  # no collectstatic in tests; WhiteNoise serves through the finders
# Django's cache is Redis in the stack (`base.CACHES`), but REDIS_URL's default (127.0.0.1:6379) may be a Redis
# that other processes on the machine share, where counts (plugin RPC rate limits) would leak between test runs.
# Tests that exercise the cache point it at the test Redis with the `redis_cache` fixture (control_plane/conftest.py);
# the rest get Django's no-op cache, unless REDIS_URL names one for the run.
if not os.environ.get("REDIS_URL"):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
