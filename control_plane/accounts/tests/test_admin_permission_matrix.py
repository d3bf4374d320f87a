"""Permission matrix through the Django admin: every role x object type x operation against `matrix.TABLE`.

Each cell is read from the pages the admin serves that role: the change list (list), the change page (view;
its save button for update), the delete page (delete), and the add page with the namespaces (or parent
objects) its form offers (create).
"""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from .matrix import OPERATIONS, ROLE_GRANTS, A, cases, expected
from .world import World, make_user

pytestmark = pytest.mark.django_db

PAGES = {
    "app": "applications/app",
    "key": "applications/credential",
    "llm": "llms/llm",
    "tool": "catalog/tool",
    "datasource": "catalog/datasource",
    "budget": "budgets/budget",
    "plugin": "plugins/plugin",
    "schedule": "schedules/pluginschedule",
    "edge": "edges/edgeinstance",
    "user": "auth/user",
    "price": "catalog/modelprice",
}
PARENT_FIELD = {"budget": ("app", "app"), "schedule": ("plugin", "plugin")}  # kind -> (form field, world parent)
# Not offered by the admin to anyone: keys are made by the app's action and revoked, not deleted; edges
# register themselves.
NOT_IN_ADMIN = {("key", "create"), ("key", "delete"), ("edge", "create")}
# Roles have no page of their own: they are granted inline on the user page (test_role_grants.py).
NOT_IN_ADMIN |= {("role", op) for op in OPERATIONS}


def _offers(response, kind: str, ns: str, world: World) -> bool:
    """Whether the add form lets this user create the object in `ns`."""
    form = response.context["adminform"].form
    if kind in PARENT_FIELD:
        field, parent = PARENT_FIELD[kind]
        wanted = world.parents[parent, ns]
        queryset = form.fields[field].queryset
        return queryset.filter(**({"slug": wanted} if parent == "plugin" else {"pk": wanted})).exists()
    if "namespace" in form.fields:
        choices = getattr(form.fields["namespace"], "choices", None)
        return choices is None or ns in {value for value, _ in choices}
    return True


def _attempt(client: Client, world: World, kind: str, ns: str, op: str, pk) -> tuple[bool, int]:
    base = f"/admin/{PAGES[kind]}/"
    if op == "list":
        response = client.get(base)
        shown = response.status_code == 200 and pk in {obj.pk for obj in response.context["cl"].result_list}
        return shown, response.status_code
    if op == "create":
        response = client.get(f"{base}add/")
        return response.status_code == 200 and _offers(response, kind, ns, world), response.status_code
    if op == "delete":
        response = client.get(f"{base}{pk}/delete/")
        return response.status_code == 200, response.status_code
    response = client.get(f"{base}{pk}/change/")
    if response.status_code != 200:
        return False, response.status_code
    updatable = bool(response.context["has_change_permission"])
    if kind == "user":  # a namespace administrator saves a user's page only to grant roles: no user field is editable
        updatable = updatable and bool(response.context["adminform"].form.fields)
    return (op == "view" or updatable), response.status_code


@pytest.mark.parametrize("role", list(ROLE_GRANTS))
def test_admin_permission_matrix(role, admin_user):
    root = APIClient()
    root.force_authenticate(admin_user)
    world = World(root)
    existing = {(kind, ns): world.make(kind, ns) for kind, ns, op in cases() if op == "list"}
    client = Client()
    client.force_login(make_user(role))

    wrong = []
    for kind, ns, op in cases():
        if (kind, op) in NOT_IN_ADMIN:
            continue
        allowed, status = _attempt(client, world, kind, ns, op, existing[kind, ns])
        assert status in (200, 302, 403), (kind, ns, op, status)
        if allowed != expected(role, kind, ns, op):
            wrong.append(f"{kind} in {ns or '(global)'}: {op} gave {status}, table says {expected(role, kind, ns, op)}")
    assert not wrong, "\n".join(wrong)


def test_admin_action_refuses_a_selection_holding_an_object_of_another_namespace():
    from django.contrib.admin import helpers

    from control_plane.llms.models import LLM
    from control_plane.llms.services import llm_create

    mine, other = (
        llm_create(
            data={"name": s, "slug": s, "vendor": "mock", "api_endpoint": "http://mock.local/v1", "namespace": ns}
        )
        for s, ns in (("mine", A), ("global", ""))
    )
    client = Client()
    client.force_login(make_user("admin-A"))

    response = client.post(
        "/admin/llms/llm/",
        {"action": "deactivate", helpers.ACTION_CHECKBOX_NAME: [mine.pk, other.pk]},
        follow=True,
    )

    assert "You may not change 1 of the selected LLMs; nothing was done." in response.content.decode()
    assert set(LLM.objects.values_list("is_active", flat=True)) == {True}
    client.post("/admin/llms/llm/", {"action": "deactivate", helpers.ACTION_CHECKBOX_NAME: [mine.pk]})
    assert LLM.objects.get(pk=mine.pk).is_active is False
