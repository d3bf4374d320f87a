"""Permission matrix through the REST API: every role x object type x operation against `matrix.TABLE`.

One test per role builds the objects once (in namespaces A, B and "" through a superuser's session), then
tries every operation as that role and reports every cell that disagrees with the table.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from control_plane.accounts.models import NamespaceRole

from .matrix import ROLE_GRANTS, A, B, cases, expected
from .world import URLS, World, make_user

pytestmark = pytest.mark.django_db

UPDATES: dict[str, dict[str, Any]] = {
    "app": {"description": "changed"},
    "llm": {"privacy_score": 40},
    "tool": {"description": "changed"},
    "datasource": {"description": "changed"},
    "budget": {"limit": "2"},
    "plugin": {"description": "changed"},
    "schedule": {"enabled": False},
    "user": {"first_name": "Changed"},
    "price": {"prompt_per_million": "2", "vendor": "v", "completion_per_million": "1"},
    "role": {"role": "operator"},
}
NOT_IN_API = {("edge", "create"), ("edge", "delete")}  # edges register themselves over NATS


def _ids(response) -> set:
    if response.status_code != 200:
        return set()
    body = response.json()
    rows = body["results"] if isinstance(body, dict) else body
    return {row["id"] for row in rows}


def _attempt(client: APIClient, world: World, kind: str, ns: str, op: str, existing: Any) -> tuple[bool, int]:
    """Try one operation; (allowed?, status). A refusal must be a 403 or 404, never a 2xx or a 5xx."""
    url = URLS[kind]
    if op == "list":
        response = client.get(url, {"limit": 1000})
        return existing in _ids(response), response.status_code
    if op == "view":
        response = client.get(f"{url}{existing}/")
    elif op == "create":
        response = client.post(url, world.payload(kind, ns), format="json")
    elif op == "update":
        if kind == "edge":
            response = client.post(f"{url}{existing}/reload/")
        elif kind == "key":
            response = client.post(f"{url}{existing}/rotate/", {}, format="json")
        else:
            response = client.patch(f"{url}{existing}/", UPDATES[kind], format="json")
    else:
        response = client.delete(f"{url}{world.make(kind, ns)}/")
    assert response.status_code in (200, 201, 202, 204, 403, 404), (kind, ns, op, response.content)
    return response.status_code < 300, response.status_code


@pytest.mark.parametrize("role", list(ROLE_GRANTS))
def test_api_permission_matrix(role, admin_user):
    root = APIClient()
    root.force_authenticate(admin_user)
    world = World(root)
    existing = {(kind, ns): world.make(kind, ns) for kind, ns, op in cases() if op == "list"}

    client = APIClient()
    client.force_authenticate(make_user(role))

    wrong = []
    for kind, ns, op in cases():
        if (kind, op) in NOT_IN_API:
            continue
        allowed, status = _attempt(client, world, kind, ns, op, existing[kind, ns])
        if allowed != expected(role, kind, ns, op):
            wrong.append(f"{kind} in {ns or '(global)'}: {op} gave {status}, table says {expected(role, kind, ns, op)}")
    assert not wrong, "\n".join(wrong)


def test_moving_an_object_to_a_namespace_you_do_not_administer_is_refused_with_a_reason(admin_user):
    root = APIClient()
    root.force_authenticate(admin_user)
    app_id = root.post(URLS["app"], {"name": "mover", "namespace": A}, format="json").json()["id"]
    user = get_user_model().objects.create_user("admin-a", password="pw-Matrix-123456!", is_staff=True)
    NamespaceRole.objects.create(user=user, namespace=A, role="admin")
    client = APIClient()
    client.force_authenticate(user)

    response = client.patch(f"{URLS['app']}{app_id}/", {"namespace": B}, format="json")

    assert response.status_code == 403
    assert response.json()["message"] == f"You may not change apps in namespace {B!r}."
    assert root.get(f"{URLS['app']}{app_id}/").json()["namespace"] == A
