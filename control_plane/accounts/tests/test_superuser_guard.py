"""Only a super-administrator makes, changes or deletes super-administrators: an administrator of the global
objects may manage users, but must not be able to promote itself or take over a super-administrator's account."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from control_plane.accounts.models import NamespaceRole

pytestmark = pytest.mark.django_db
PASSWORD = "pw-Guard-123456!"


@pytest.fixture
def global_admin(django_user_model):
    user = django_user_model.objects.create_user("global-admin", password=PASSWORD, is_staff=True)
    NamespaceRole.objects.create(user=user, namespace="", role="admin")
    return user


def test_api_refuses_a_global_administrator_promoting_or_touching_super_administrators(global_admin, admin_user):
    client = APIClient()
    client.force_authenticate(global_admin)
    root_password = admin_user.password

    promoted = client.patch(f"/api/v1/users/{global_admin.pk}/", {"is_superuser": True}, format="json")
    created = client.post("/api/v1/users/", {"username": "new-root", "is_superuser": True}, format="json")
    taken_over = client.patch(f"/api/v1/users/{admin_user.pk}/", {"password": "pw-Taken-123456!"}, format="json")
    deleted = client.delete(f"/api/v1/users/{admin_user.pk}/")

    assert [r.status_code for r in (promoted, created, taken_over, deleted)] == [403] * 4
    assert promoted.json()["message"] == "Only a super-administrator may make, change or delete super-administrators."
    global_admin.refresh_from_db()
    admin_user.refresh_from_db()
    assert not global_admin.is_superuser and admin_user.password == root_password
    # Ordinary user management still works.
    assert client.patch(f"/api/v1/users/{global_admin.pk}/", {"first_name": "G"}, format="json").status_code == 200
    assert client.post("/api/v1/users/", {"username": "dev", "password": PASSWORD}, format="json").status_code == 201


def test_admin_refuses_a_global_administrator_promoting_or_touching_super_administrators(global_admin, admin_user):
    client = Client()
    client.force_login(global_admin)

    own = client.get(f"/admin/auth/user/{global_admin.pk}/change/")
    assert own.status_code == 200 and "is_superuser" not in own.context["adminform"].form.fields
    root_page = client.get(f"/admin/auth/user/{admin_user.pk}/change/")
    assert root_page.status_code == 200 and not root_page.context["has_change_permission"]
    assert client.get(f"/admin/auth/user/{admin_user.pk}/delete/").status_code == 403
    assert client.get(f"/admin/auth/user/{admin_user.pk}/password/").status_code == 403
