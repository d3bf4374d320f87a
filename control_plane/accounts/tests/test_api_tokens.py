"""Personal API tokens: shown once and stored hashed, narrowed to namespaces or reads, expired/revoked -> 401."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from control_plane.accounts.models import ApiToken, NamespaceRole
from control_plane.accounts.tokens import api_token_create, hash_key
from control_plane.applications.models import App

pytestmark = pytest.mark.django_db
PASSWORD = "pw-Tokens-123456!"


@pytest.fixture
def admin_ab():
    user = get_user_model().objects.create_user("ab", password=PASSWORD, is_staff=True)
    for ns in ("a", "b"):
        NamespaceRole.objects.create(user=user, namespace=ns, role="admin")
    return user


def _client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_token_from_password_is_shown_once_and_stored_hashed(admin_ab):
    response = APIClient().post("/api/v1/auth/token/", {"username": "ab", "password": PASSWORD, "name": "ci"})
    assert response.status_code == 201, response.content
    key = response.json()["key"]
    token = ApiToken.objects.get()
    assert token.key_hash == hash_key(key) and key not in str(list(ApiToken.objects.values()))
    listed = _client(key).get("/api/v1/auth/tokens/").json()["results"]
    assert [row["prefix"] for row in listed] == [key[:12]] and "key" not in listed[0]


def test_wrong_password_and_token_minting_tokens_are_refused(admin_ab):
    assert APIClient().post("/api/v1/auth/token/", {"username": "ab", "password": "nope"}).status_code == 401
    _, key = api_token_create(owner=admin_ab, namespaces=["a"])
    assert _client(key).post("/api/v1/auth/token/", {}).status_code in (401, 403)


def test_signed_in_session_gets_a_token(admin_ab):
    client = APIClient()
    client.force_login(admin_ab)
    response = client.post("/api/v1/auth/token/", {"read_only": True}, format="json")
    assert response.status_code == 201 and response.json()["read_only"] is True


def test_revoked_and_expired_tokens_get_401(admin_ab):
    _, key = api_token_create(owner=admin_ab)
    client = _client(key)
    assert client.get("/api/v1/apps/").status_code == 200
    token_id = client.get("/api/v1/auth/tokens/").json()["results"][0]["id"]
    assert client.delete(f"/api/v1/auth/tokens/{token_id}/").status_code == 204
    revoked = client.get("/api/v1/apps/")
    assert revoked.status_code == 401 and revoked.json()["message"] == "This token was revoked."

    token, key = api_token_create(owner=admin_ab, expires_at=timezone.now() + dt.timedelta(hours=1))
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert _client(key).get("/api/v1/apps/").json()["message"] == "This token has expired."


def test_token_narrows_owners_roles_to_its_namespaces_and_to_reads(admin_ab):
    App.objects.create(name="in-a", namespace="a")
    App.objects.create(name="in-b", namespace="b")
    _, only_a = api_token_create(owner=admin_ab, namespaces=["a"])
    _, reader = api_token_create(owner=admin_ab, read_only=True)

    names = {row["name"] for row in _client(only_a).get("/api/v1/apps/").json()["results"]}
    assert names == {"in-a"}
    assert _client(only_a).post("/api/v1/apps/", {"name": "x", "namespace": "b"}, format="json").status_code == 403
    assert _client(only_a).post("/api/v1/apps/", {"name": "x", "namespace": "a"}, format="json").status_code == 201

    assert {row["name"] for row in _client(reader).get("/api/v1/apps/").json()["results"]} >= {"in-a", "in-b"}
    refused = _client(reader).post("/api/v1/apps/", {"name": "y", "namespace": "a"}, format="json")
    assert refused.status_code == 403 and refused.json()["message"] == "This API token is read-only."
