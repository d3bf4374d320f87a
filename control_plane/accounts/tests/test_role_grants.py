"""Namespace roles are granted and revoked by hand, in the admin (inline on the user page) and the API, by those
allowed to: a super-administrator anywhere, a namespace administrator only in its namespaces, nobody else. (Who may
grant where, for every role, is also a row of the permission matrix: `matrix.py`, kind `role`.)"""

from __future__ import annotations

import logging

import pytest
from django.test import Client
from rest_framework.test import APIClient

from control_plane.accounts.models import NamespaceRole
from control_plane.accounts.oidc import FjordgateOIDCBackend
from control_plane.audit.models import AuditEntry
from control_plane.config.tests.admin_form_data import form_data

from .matrix import A, B
from .world import make_user

pytestmark = pytest.mark.django_db
URL = "/api/v1/namespace-roles/"
RULE = "lowercase letters, digits and"


@pytest.fixture
def grantee(django_user_model):
    return django_user_model.objects.create_user("dev", "dev@example.com", "pw-Dev-123456!")


def _api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _roles(user) -> dict[str, tuple[str, str]]:
    return {r.namespace: (r.role, r.source) for r in NamespaceRole.objects.filter(user=user)}


def test_api_namespace_admin_grants_and_revokes_in_its_namespace_only(grantee, admin_user):
    admin_a = make_user("admin-A")
    client = _api(admin_a)

    granted = client.post(URL, {"user": grantee.pk, "namespace": A, "role": "admin"}, format="json")
    elsewhere = client.post(URL, {"user": grantee.pk, "namespace": B, "role": "viewer"}, format="json")
    global_role = client.post(URL, {"user": grantee.pk, "namespace": "", "role": "viewer"}, format="json")
    on_root = client.post(URL, {"user": admin_user.pk, "namespace": A, "role": "viewer"}, format="json")

    assert granted.status_code == 201, granted.content
    assert (elsewhere.status_code, elsewhere.json()["message"]) == (
        403,
        f"You may not change namespace roles in namespace {B!r}.",
    )
    assert global_role.status_code == 403
    assert on_root.status_code == 403
    assert on_root.json()["message"] == "Only a super-administrator may make, change or delete super-administrators."
    grantee.refresh_from_db()
    assert _roles(grantee) == {A: ("admin", "manual")} and grantee.is_staff  # the role lets them into the admin

    moved = client.patch(f"{URL}{granted.json()['id']}/", {"namespace": B}, format="json")
    assert moved.status_code == 403 and _roles(grantee) == {A: ("admin", "manual")}
    assert client.delete(f"{URL}{granted.json()['id']}/").status_code == 204
    assert _roles(grantee) == {}


def test_api_viewers_and_operators_cannot_grant_and_see_only_their_namespaces_roles(grantee, admin_user):
    other = type(grantee).objects.create_user("other")
    root = _api(admin_user)
    in_b = root.post(URL, {"user": grantee.pk, "namespace": B, "role": "viewer"}, format="json").json()
    in_a = root.post(URL, {"user": grantee.pk, "namespace": A, "role": "viewer"}, format="json").json()
    for role in ("viewer-A", "operator-A"):
        client = _api(make_user(role))
        refused = client.post(URL, {"user": other.pk, "namespace": A, "role": "admin"}, format="json")
        assert refused.status_code == 403, role
        assert client.patch(f"{URL}{in_a['id']}/", {"role": "admin"}, format="json").status_code == 403
        listed = {row["id"] for row in client.get(URL, {"user": grantee.pk}).json()["results"]}
        assert listed == {in_a["id"]} and in_b["id"] not in listed
    assert _roles(grantee) == {A: ("viewer", "manual"), B: ("viewer", "manual")} and _roles(other) == {}


def test_api_refuses_an_invalid_namespace_with_a_400_on_the_field(grantee, admin_user):
    response = _api(admin_user).post(URL, {"user": grantee.pk, "namespace": "Team A", "role": "viewer"}, format="json")
    assert response.status_code == 400
    assert any(RULE in e for e in response.json()["extra"]["fields"]["namespace"])
    assert not NamespaceRole.objects.exists()


def test_an_api_grant_is_audited_as_the_granting_user(grantee):
    admin_a = make_user("admin-A")
    _api(admin_a).post(URL, {"user": grantee.pk, "namespace": A, "role": "operator"}, format="json")
    [entry] = AuditEntry.objects.filter(object_type="accounts.namespacerole", changes__user_id=[None, grantee.pk])
    assert (entry.action, entry.namespace, entry.source) == ("create", A, "api")
    assert entry.actor_user_id == admin_a.pk and entry.changes["role"] == [None, "operator"]


def _inline_forms(response) -> list:
    return [f for formset in response.context["inline_admin_formsets"] for f in formset.formset.forms]


def test_admin_inline_namespace_admin_edits_only_its_namespaces_rows(grantee):
    NamespaceRole.objects.create(user=grantee, namespace=B, role="admin")
    admin_a = make_user("admin-A")
    client = Client()
    client.force_login(admin_a)
    url = f"/admin/auth/user/{grantee.pk}/change/"

    page = client.get(url)
    assert page.status_code == 200 and page.context["has_change_permission"]
    assert not page.context["adminform"].form.fields, "every user field is read-only to a namespace administrator"
    [formset] = page.context["inline_admin_formsets"]
    assert list(formset.formset.queryset) == [], "the role in B is not shown"
    assert [v for v, _ in formset.formset.empty_form.fields["namespace"].choices] == [A]

    data = form_data(page.content.decode(), "user_form")
    data.update({"namespace_roles-TOTAL_FORMS": ["1"], "namespace_roles-0-namespace": [A]})
    data["namespace_roles-0-role"] = ["viewer"]
    assert client.post(url, data).status_code == 302
    refused = client.post(url, {**data, "namespace_roles-0-namespace": [B]})
    assert refused.status_code == 200 and "Select a valid choice" in refused.content.decode()

    grantee.refresh_from_db()
    assert _roles(grantee) == {A: ("viewer", "manual"), B: ("admin", "manual")} and grantee.is_staff
    [entry] = AuditEntry.objects.filter(
        object_type="accounts.namespacerole", namespace=A, changes__user_id=[None, grantee.pk]
    )
    assert (entry.actor_user_id, entry.source) == (admin_a.pk, "admin")
    assert client.get(f"/admin/auth/user/{grantee.pk}/password/").status_code == 403


def test_admin_inline_is_read_only_to_viewers_and_closed_on_super_administrators(grantee, admin_user):
    NamespaceRole.objects.create(user=grantee, namespace=A, role="operator")
    viewer = Client()
    viewer.force_login(make_user("viewer-A"))
    page = viewer.get(f"/admin/auth/user/{grantee.pk}/change/")
    [formset] = page.context["inline_admin_formsets"]
    assert [r.namespace for r in formset.formset.queryset] == [A] and not formset.has_change_permission
    assert not page.context["has_change_permission"]
    assert viewer.post(f"/admin/auth/user/{grantee.pk}/change/", {}).status_code == 403

    admin_a = Client()
    admin_a.force_login(make_user("admin-A"))
    assert not admin_a.get(f"/admin/auth/user/{admin_user.pk}/change/").context["has_change_permission"]


def test_admin_inline_shows_the_namespace_rule_as_a_form_error(grantee, admin_user):
    client = Client()
    client.force_login(admin_user)
    url = f"/admin/auth/user/{grantee.pk}/change/"
    data = form_data(client.get(url).content.decode(), "user_form")
    data.update({"namespace_roles-TOTAL_FORMS": ["1"], "namespace_roles-0-namespace": ["Team_A"]})
    data["namespace_roles-0-role"] = ["viewer"]
    response = client.post(url, data)
    assert response.status_code == 200 and RULE in response.content.decode()
    assert not NamespaceRole.objects.exists()


def test_sign_in_recomputes_its_own_roles_keeps_hand_grants_and_skips_invalid_namespaces(grantee, settings, caplog):
    settings.FJORDGATE_OIDC_ISSUER = "http://idp.example"
    settings.FJORDGATE_OIDC_GROUP_MAP = '{"team-a": "admin:team-a", "ops": "operator:Bad_NS", "old": "viewer:old"}'
    NamespaceRole.objects.create(user=grantee, namespace="old", role="viewer", source="sso")
    NamespaceRole.objects.create(user=grantee, namespace=B, role="viewer")  # by hand
    NamespaceRole.objects.create(user=grantee, namespace=A, role="viewer")  # by hand, but the claim grants in A
    claims = {"sub": "dev-1", "email": "dev@example.com", "groups": ["team-a", "ops"]}

    with caplog.at_level(logging.WARNING, logger="fjordgate.oidc"):
        FjordgateOIDCBackend().update_user(grantee, claims)

    assert _roles(grantee) == {A: ("admin", "sso"), B: ("viewer", "manual")}
    assert "'Bad_NS' is no valid namespace" in caplog.text
    FjordgateOIDCBackend().update_user(grantee, {**claims, "groups": []})
    grantee.refresh_from_db()
    assert _roles(grantee) == {B: ("viewer", "manual")} and grantee.is_staff  # the hand grant needs the admin
