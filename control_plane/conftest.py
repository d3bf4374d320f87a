"""Fixtures shared by the control plane's own tests (the cross-component ones live in tests/conftest.py)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123456")


@pytest.fixture
def plain_user(django_user_model):
    return django_user_model.objects.create_user("alice", "alice@example.com", "pw-alice-123456")


@pytest.fixture
def admin_api(admin_user):
    from control_plane.accounts.tokens import api_token_create

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(owner=admin_user)[1]}")
    return client


@pytest.fixture
def user_api(plain_user):
    from control_plane.accounts.tokens import api_token_create

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(owner=plain_user)[1]}")
    return client


@pytest.fixture
def register_plugin(db):
    """Register an in-process test plugin through the service (describe + validate + hook registrations)."""
    from control_plane.plugins.services import plugin_register

    def register(slug: str, cls: str, **extra):
        return plugin_register(data={"slug": slug, "import_path": f"control_plane.hooks.tests.plugins:{cls}", **extra})

    return register


@pytest.fixture(autouse=True)
def _fresh_plugin_runtime():
    """Each test starts with no plugin loaded in the studio host (rows are rolled back between tests)."""
    yield
    from control_plane.plugins.runtime import shutdown_runtime

    shutdown_runtime()


@pytest.fixture
def redis_cache(redis_url, settings):
    """Django's cache on the test Redis (the stack's backend, `CACHES` in settings), emptied for the test."""
    from django.core.cache import cache

    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_url,
            "KEY_PREFIX": "fjordgate",
        }
    }
    cache.clear()
    yield redis_url
    cache.clear()
