"""An administrator of the global objects manages users, but not the accounts of role holders in namespaces it
does not administer: setting such an account's password (or e-mail, which OIDC signs in by) and signing in as it
made an administrator of "" an administrator of every namespace."""

from __future__ import annotations

import pytest
from django.http import HttpRequest
from django.test import Client
from rest_framework.test import APIClient

from control_plane.accounts.models import NamespaceRole

pytestmark = pytest.mark.django_db
PASSWORD = "pw-Guard-123456!"
REFUSAL = (
    "This user holds a role in namespace 'team-b': only an administrator there (or a super-administrator) may "
    "change or delete the account."
)


@pytest.fixture
def people(django_user_model):
    def user(name: str, **roles: str):
        made = django_user_model.objects.create_user(name, f"{name}@example.com", PASSWORD, is_staff=True)
        for namespace, role in roles.items():
            NamespaceRole.objects.create(user=made, namespace=namespace.replace("_", "-"), role=role)
        return made

    return {
        "global_admin": user("global-admin", **{"": "admin"}),
        "b_admin": user("b-admin", team_b="admin"),
        "b_viewer": user("b-viewer", team_b="viewer"),
        "both": user("both", **{"": "admin", "team_b": "admin"}),
        "plain": user("plain"),
    }


def _api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_api_refuses_a_global_administrator_taking_over_a_namespace_role_holder(people):
    api = _api(people["global_admin"])
    target = people["b_admin"]
    password, email = target.password, target.email
    attempts = [
        api.patch(f"/api/v1/users/{target.pk}/", {"password": "pw-Taken-123456!"}, format="json"),
        api.patch(f"/api/v1/users/{target.pk}/", {"email": "me@attacker.example"}, format="json"),
        api.patch(f"/api/v1/users/{people['b_viewer'].pk}/", {"is_active": False}, format="json"),
        api.delete(f"/api/v1/users/{target.pk}/"),
    ]
    assert [r.status_code for r in attempts] == [403] * 4
    assert attempts[0].json() == {"message": REFUSAL, "extra": {}}
    target.refresh_from_db()
    assert target.password == password and target.email == email and target.is_active
    assert not Client().login(request=HttpRequest(), username="b-admin", password="pw-Taken-123456!")
    # users without such roles, and its own account, it still manages; an administrator of both may change it
    assert api.patch(f"/api/v1/users/{people['plain'].pk}/", {"first_name": "P"}, format="json").status_code == 200
    own = api.patch(f"/api/v1/users/{people['global_admin'].pk}/", {"first_name": "G"}, format="json")
    assert own.status_code == 200
    both = _api(people["both"]).patch(f"/api/v1/users/{target.pk}/", {"first_name": "B"}, format="json")
    assert both.status_code == 200 and both.json()["first_name"] == "B"
    assert api.get(f"/api/v1/users/{target.pk}/").status_code == 200  # still readable: a global object


def test_admin_refuses_a_global_administrator_taking_over_a_namespace_role_holder(people):
    client = Client()
    client.force_login(people["global_admin"])
    target = people["b_admin"]
    password = target.password
    page = client.get(f"/admin/auth/user/{target.pk}/change/")
    assert page.status_code == 200
    assert "email" not in page.context["adminform"].form.fields  # grant-only: every user field read-only
    assert client.get(f"/admin/auth/user/{target.pk}/password/").status_code == 403
    forced = client.post(
        f"/admin/auth/user/{target.pk}/password/", {"password1": "pw-Taken-123456!", "password2": "pw-Taken-123456!"}
    )
    assert forced.status_code == 403
    assert client.get(f"/admin/auth/user/{target.pk}/delete/").status_code == 403
    bulk = client.post(
        "/admin/auth/user/", {"action": "delete_selected", "_selected_action": [target.pk], "post": "yes"}
    )
    assert bulk.status_code in (200, 403)
    target.refresh_from_db()  # still there
    assert target.password == password
    # a user without roles elsewhere is still the global administrator's to manage
    plain = client.get(f"/admin/auth/user/{people['plain'].pk}/password/")
    assert plain.status_code == 200
    both = Client()
    both.force_login(people["both"])
    assert both.get(f"/admin/auth/user/{target.pk}/password/").status_code == 200
