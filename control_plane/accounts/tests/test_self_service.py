"""Self-service apps (made by users who administer nothing) live in their owner's namespace."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_self_service_app_is_created_in_its_owners_namespace(admin_api, user_api, plain_user):
    changed = admin_api.patch(f"/api/v1/users/{plain_user.pk}/", {"app_namespace": "team-a"}, format="json")
    assert changed.status_code == 200 and changed.json()["app_namespace"] == "team-a"
    created = user_api.post("/api/v1/apps/", {"name": "mine"}, format="json")
    assert created.status_code == 201 and created.json()["namespace"] == "team-a"
