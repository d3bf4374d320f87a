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


ROLE_HOLDERS = {
    "viewer": {"team-a": "viewer"},
    "operator": {"team-a": "operator"},
    "admin-a": {"team-a": "admin"},
    "global": {"": "admin"},
}


def _role_holders_with_tokens(django_user_model, admin_user, holders: dict[str, dict[str, str]]):
    """Staff users with the given roles (and the superuser as "root"), each with an API token of their own."""
    people = {}
    for name, roles in holders.items():
        people[name] = django_user_model.objects.create_user(name, password=PASSWORD, is_staff=True)
        for namespace, role in roles.items():
            NamespaceRole.objects.create(user=people[name], namespace=namespace, role=role)
    people["root"] = admin_user
    tokens = {name: api_token_create(owner=user, name=f"{name}-ci")[0] for name, user in people.items()}
    return people, tokens


def test_tokens_are_listed_to_their_owner_and_to_global_administrators_only(django_user_model, admin_user):
    """Every role holder (an operator or viewer of one namespace) saw every user's tokens in the admin: names,
    owners, prefixes, last use. Now a user sees their own; super-administrators and administrators of the global
    objects (who manage users) see all; the API lists and opens only the caller's own."""
    from django.test import Client

    people, tokens = _role_holders_with_tokens(django_user_model, admin_user, ROLE_HOLDERS)

    listed = {}
    for name, user in people.items():
        client = Client()
        client.force_login(user)
        page = client.get("/admin/accounts/apitoken/")
        assert page.status_code == 200, name
        listed[name] = sorted(token.name for token in page.context["cl"].result_list)
        others = [t for owner, t in tokens.items() if owner != name]
        opened = [client.get(f"/admin/accounts/apitoken/{t.pk}/change/").status_code for t in others]
        assert set(opened) == ({200} if name in ("root", "global") else {302}), (name, opened)
    everyone = sorted(f"{name}-ci" for name in people)
    assert listed == {
        "viewer": ["viewer-ci"],
        "operator": ["operator-ci"],
        "admin-a": ["admin-a-ci"],
        "global": everyone,
        "root": everyone,
    }

    api = APIClient()
    api.force_authenticate(people["operator"])
    assert [row["name"] for row in api.get("/api/v1/auth/tokens/").json()["results"]] == ["operator-ci"]
    assert api.get(f"/api/v1/auth/tokens/{tokens['viewer'].pk}/").status_code == 404
    assert api.delete(f"/api/v1/auth/tokens/{tokens['viewer'].pk}/").status_code == 404
    tokens["viewer"].refresh_from_db()
    assert tokens["viewer"].revoked_at is None


def test_the_audit_trail_shows_a_tokens_entries_only_to_who_may_see_the_token(django_user_model):
    """The audit trail's entries of tokens (global objects: owner, name, prefix) were listed to every role holder,
    in the admin and in `GET /api/v1/audit/`, as the token list was."""
    from django.test import Client

    viewer = django_user_model.objects.create_user("viewer", password=PASSWORD, is_staff=True)
    NamespaceRole.objects.create(user=viewer, namespace="team-a", role="viewer")
    global_admin = django_user_model.objects.create_user("global", password=PASSWORD, is_staff=True)
    NamespaceRole.objects.create(user=global_admin, namespace="", role="admin")
    own = api_token_create(owner=viewer, name="viewer-ci")[0]
    other = api_token_create(owner=global_admin, name="deploy-bot")[0]

    def seen(user) -> tuple[set[str], set[str]]:
        api = APIClient()
        api.force_authenticate(user)
        rows = api.get("/api/v1/audit/", {"object_type": "accounts.apitoken"}).json()["results"]
        page = Client()
        page.force_login(user)
        listed = page.get("/admin/audit/auditentry/", {"object_type": "accounts.apitoken"}).context["cl"].result_list
        return {row["object_id"] for row in rows}, {entry.object_id for entry in listed}

    assert seen(viewer) == ({str(own.pk)}, {str(own.pk)})
    assert seen(global_admin) == ({str(own.pk), str(other.pk)}, {str(own.pk), str(other.pk)})


def test_every_role_holder_revokes_their_own_tokens_in_the_admin_and_nobody_elses(django_user_model, admin_user):
    """The admin listed a viewer or operator their own tokens but its "Revoke selected tokens" refused them ("You may
    not change 1 of the selected api tokens"): only the API could revoke them. Now every user revokes their own
    there; another user's token is no choice (not listed, so a crafted selection is not taken); the global
    administrators revoke anyone's, as before."""
    from django.contrib.admin import helpers
    from django.test import Client

    holders = {name: roles for name, roles in ROLE_HOLDERS.items() if name != "admin-a"}
    people, tokens = _role_holders_with_tokens(django_user_model, admin_user, holders)

    def revoke(name: str, *chosen: str):
        client = Client()
        client.force_login(people[name])
        selection = {"action": "revoke", helpers.ACTION_CHECKBOX_NAME: [tokens[c].pk for c in chosen]}
        response = client.post("/admin/accounts/apitoken/", selection, follow=True)
        assert response.status_code == 200, name
        return [str(m) for m in response.context["messages"]]

    def revoked() -> set[str]:
        return {token.owner.username for token in ApiToken.objects.filter(revoked_at__isnull=False)}

    revoke("viewer", "operator")  # not the viewer's: not in its list, so not taken
    assert revoked() == set()
    assert revoke("viewer", "viewer") == ["Revoked: 1"]
    assert revoke("operator", "operator", "root") == ["Revoked: 1"]  # the other user's is not taken
    assert revoked() == {"viewer", "operator"}
    assert revoke("global", "root") == ["Revoked: 1"]
    assert revoked() == {"viewer", "operator", "root"}


def test_bearer_scheme_authenticates_like_token_and_bad_headers_get_401(admin_ab):
    """Most HTTP clients send a token as `Authorization: Bearer`; it used to be ignored (401 "credentials were not
    provided", as if no header had been sent)."""
    App.objects.create(name="in-a", namespace="a")
    _, key = api_token_create(owner=admin_ab)
    for scheme in ("Bearer", "bearer", "Token"):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"{scheme} {key}")
        response = client.get("/api/v1/apps/")
        assert response.status_code == 200, (scheme, response.content)
        assert [row["name"] for row in response.json()["results"]] == ["in-a"]
    for header, message in (
        ("Bearer", "Invalid token header. No credentials provided."),
        (f"Bearer {key} extra", "Invalid token header. Token string should not contain spaces."),
        ("Bearer fjt_not-a-token", "Invalid token."),
    ):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=header)
        response = client.get("/api/v1/apps/")
        assert response.status_code == 401 and response.json()["message"] == message, (header, response.content)
    basic = APIClient()
    basic.credentials(HTTP_AUTHORIZATION="Basic YWI6bm9wZQ==")
    assert basic.get("/api/v1/apps/").status_code in (401, 403)
