"""The admin guides: a "Create key" button on the app page (the key shown once, never cached), namespaces picked
from the known ones with a "New…" entry (still validated by the namespace rule)."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from control_plane.applications.models import App, Credential
from control_plane.applications.services import app_create
from control_plane.llms.models import LLM
from shared_sdk.snapshot import hash_credential

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(admin_user) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


def test_create_key_button_shows_the_key_once(staff, admin_user):
    app = app_create(data={"name": "bot"})
    page = staff.get(f"/admin/applications/app/{app.pk}/change/").content.decode()
    assert f'action="/admin/applications/app/{app.pk}/create-key/"' in page and ">Create key<" in page
    assert staff.get(f"/admin/applications/app/{app.pk}/create-key/").status_code == 405
    shown = staff.post(f"/admin/applications/app/{app.pk}/create-key/", {"name": "ci"})
    assert shown.status_code == 200 and "no-cache" in shown["Cache-Control"]
    key = re.search(r'<code id="new-key"[^>]*>(fjg_[^<]+)</code>', shown.content.decode()).group(1)
    credential = Credential.objects.get(app=app)
    assert credential.name == "ci" and credential.key_hash == hash_credential(key)
    assert key not in staff.get(f"/admin/applications/app/{app.pk}/change/").content.decode()
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(admin_user)
    assert strict.post(f"/admin/applications/app/{app.pk}/create-key/").status_code == 403


def test_namespace_is_picked_from_known_ones_or_new_and_still_validated(staff):
    LLM.objects.create(name="a", slug="a", vendor="mock", api_endpoint="http://127.0.0.1:1/v1", namespace="team-a")
    page = staff.get("/admin/applications/app/add/").content.decode()
    assert '<option value="team-a">team-a</option>' in page and '<option value="__new__">New…</option>' in page
    base = {"name": "bot", "description": "", "is_active": "on", "metadata": "{}", "allowed_ips": "[]"}
    base |= {"credentials-TOTAL_FORMS": 0, "credentials-INITIAL_FORMS": 0}
    base |= {"plugin_resources-TOTAL_FORMS": 0, "plugin_resources-INITIAL_FORMS": 0}
    assert (
        staff.post("/admin/applications/app/add/", {**base, "namespace_0": "team-a", "namespace_1": ""}).status_code
        == 302
    )
    assert App.objects.get(name="bot").namespace == "team-a"
    created = staff.post(
        "/admin/applications/app/add/", {**base, "name": "b2", "namespace_0": "__new__", "namespace_1": "team-b"}
    )
    assert created.status_code == 302 and App.objects.get(name="b2").namespace == "team-b"
    bad = staff.post(
        "/admin/applications/app/add/", {**base, "name": "b3", "namespace_0": "__new__", "namespace_1": "Bad NS!"}
    )
    assert bad.status_code == 200 and "errorlist" in bad.content.decode() and not App.objects.filter(name="b3").exists()
