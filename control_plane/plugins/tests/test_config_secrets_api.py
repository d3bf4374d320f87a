"""A plugin's config may hold secrets (token-auth's client tokens, a service's API key): the API shows them only to
those who may change the plugin, as the audit trail redacts them; a viewer read them in the clear."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from control_plane.accounts.models import NamespaceRole
from control_plane.plugins.models import Plugin

pytestmark = pytest.mark.django_db
TOKEN = "tok-0123456789-client"
CONFIG = {"tokens": [{"token": TOKEN, "app_id": 1}], "service": {"api_key": "sk-live-42", "url": "https://x"}}


def _caller(namespace: str, role: str) -> APIClient:
    user = get_user_model().objects.create_user(f"{role}-{namespace or 'global'}", is_staff=True)
    NamespaceRole.objects.create(user=user, namespace=namespace, role=role)
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_a_viewer_sees_a_plugins_config_with_its_secrets_redacted(admin_user):
    plugin = Plugin.objects.create(
        slug="token-auth", name="Token auth", import_path="plugins.token_auth.plugin:TokenAuth", config=CONFIG
    )
    for client in (_caller("team-a", "viewer"), _caller("team-a", "admin"), _caller("", "viewer")):
        shown = client.get(f"/api/v1/plugins/{plugin.pk}/")
        assert shown.status_code == 200
        assert shown.json()["config"] == {
            "tokens": "[redacted]",
            "service": {"api_key": "[redacted]", "url": "https://x"},
        }
        assert TOKEN not in client.get("/api/v1/plugins/").content.decode()
    for client in (_caller("", "admin"), _caller("", "operator")):  # they may change it: the config as stored
        assert client.get(f"/api/v1/plugins/{plugin.pk}/").json()["config"] == CONFIG
    root = APIClient()
    root.force_authenticate(admin_user)
    assert root.get(f"/api/v1/plugins/{plugin.pk}/").json()["config"] == CONFIG
