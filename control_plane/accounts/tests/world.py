"""Objects of every kind in namespaces A, B and "" for the permission-matrix tests, and the role users."""

from __future__ import annotations

import itertools
from typing import Any

from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from control_plane.accounts.models import NamespaceRole
from control_plane.edges.models import EdgeInstance

from .matrix import NAMESPACED_TARGETS, ROLE_GRANTS

SCHEDULER = "control_plane.plugins.tests.plugins:SlowScheduler"
URLS = {
    "app": "/api/v1/apps/",
    "key": "/api/v1/credentials/",
    "llm": "/api/v1/llms/",
    "tool": "/api/v1/tools/",
    "datasource": "/api/v1/datasources/",
    "budget": "/api/v1/budgets/",
    "plugin": "/api/v1/plugins/",
    "schedule": "/api/v1/schedules/",
    "edge": "/api/v1/edges/",
    "user": "/api/v1/users/",
    "price": "/api/v1/model-prices/",
    "role": "/api/v1/namespace-roles/",
}
_serial = itertools.count(1)


def _name(kind: str) -> str:
    return f"{kind}-{next(_serial)}"


class World:
    """Objects of every kind in every namespace, made by a superuser; `payload` builds create input."""

    def __init__(self, root: APIClient) -> None:
        self.root = root
        self.parents: dict[tuple[str, str], Any] = {}
        for ns in NAMESPACED_TARGETS:
            self.parents["app", ns] = self._post("app", {"name": _name("parent"), "namespace": ns})["id"]
            self.parents["plugin", ns] = self._post("plugin", self._plugin(ns))["slug"]

    def _post(self, kind: str, data: dict) -> dict:
        response = self.root.post(URLS[kind], data, format="json")
        assert response.status_code == 201, (kind, response.content)
        return response.json()

    @staticmethod
    def _plugin(ns: str) -> dict:
        return {"slug": _name("plug"), "import_path": SCHEDULER, "namespace": ns}

    def payload(self, kind: str, ns: str) -> dict:
        name = _name(kind)
        if kind == "app":
            return {"name": name, "namespace": ns}
        if kind == "key":
            return {"app": self.parents["app", ns], "name": name}
        if kind == "llm":
            return {
                "name": name,
                "slug": name,
                "vendor": "mock",
                "api_endpoint": "http://mock.local/v1",
                "namespace": ns,
            }
        if kind in ("tool", "datasource"):
            return {"name": name, "slug": name, "namespace": ns}
        if kind == "budget":
            return {"name": name, "scope": "app", "app": self.parents["app", ns], "limit": "1"}
        if kind == "plugin":
            return self._plugin(ns)
        if kind == "schedule":
            return {"plugin": self.parents["plugin", ns], "schedule_id": name, "name": name, "cron": "0 * * * *"}
        if kind == "user":
            return {"username": name, "password": "pw-Matrix-123456!"}
        if kind == "role":
            grantee = get_user_model().objects.create_user(_name("grantee"))
            return {"user": grantee.pk, "namespace": ns, "role": "viewer"}
        if kind == "price":
            return {"vendor": "v", "model": name, "prompt_per_million": "1", "completion_per_million": "1"}
        raise AssertionError(kind)

    def make(self, kind: str, ns: str) -> Any:
        """A fresh object; returns its id in the API."""
        if kind == "edge":
            return EdgeInstance.objects.create(edge_id=_name("edge"), namespace=ns, last_heartbeat=timezone.now()).pk
        return self._post(kind, self.payload(kind, ns))["id"]


def make_user(role: str):
    """A staff user with the grants `matrix.ROLE_GRANTS` gives `role`."""
    superuser, grants = ROLE_GRANTS[role]
    user = get_user_model().objects.create_user(f"u-{role}", password="pw-Matrix-123456!", is_staff=True)
    user.is_superuser = superuser
    user.save()
    for ns, grant in grants.items():
        NamespaceRole.objects.create(user=user, namespace=ns, role=grant)
    return user
