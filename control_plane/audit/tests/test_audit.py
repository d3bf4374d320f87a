"""Every write path leaves one audit entry: who, what, when, from where, a field diff with secrets redacted."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.db import transaction
from django.utils import timezone

from control_plane.applications.models import App
from control_plane.applications.services import app_create, app_update
from control_plane.audit.actor import acting_as
from control_plane.audit.models import AuditEntry
from control_plane.audit.services import audit_apply_retention
from control_plane.llms.models import LLM
from control_plane.llms.services import llm_create

pytestmark = pytest.mark.django_db

VENDOR_KEY = "sk-vendor-very-secret-123"


def _entries(object_type: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(object_type=object_type).order_by("id"))


def _llm(**extra):
    return llm_create(
        data={"name": "L", "slug": "l", "vendor": "mock", "api_endpoint": "http://mock.local/v1", **extra}
    )


def test_admin_form_write_is_attributed_to_the_user_with_the_vendor_key_redacted(admin_client, admin_user):
    response = admin_client.post(
        "/admin/llms/llm/add/",
        {
            "name": "L",
            "slug": "l",
            "vendor": "openai",
            "api_endpoint": "https://api.example/v1",
            "privacy_score": 0,
            "allowed_models": '["gpt-.*"]',
            "metadata": "{}",
            "fallbacks": "[]",
            "max_retries": 2,
            "connect_timeout_s": 5,
            "first_byte_timeout_s": 60,
            "is_active": "on",
            "api_key": VENDOR_KEY,
            "plugin_bindings-TOTAL_FORMS": 0,
            "plugin_bindings-INITIAL_FORMS": 0,
        },
        REMOTE_ADDR="10.1.2.3",
    )
    assert response.status_code == 302
    [entry] = _entries("llms.llm")
    assert (entry.action, entry.actor_kind, entry.actor_label, entry.source) == ("create", "user", "root", "admin")
    assert entry.actor_user_id == admin_user.pk and entry.remote_addr == "10.1.2.3"
    assert entry.object_id == str(LLM.objects.get(slug="l").pk) and entry.changes["slug"] == [None, "l"]
    assert entry.changes["api_key_encrypted"] == ["[redacted]", "[redacted]"]
    assert VENDOR_KEY not in json.dumps(entry.changes) and "gAAAA" not in json.dumps(entry.changes)


def test_api_write_with_a_token_is_attributed_to_the_token_and_diffs_only_changed_fields(admin_api, admin_user):
    created = admin_api.post("/api/v1/apps/", {"name": "bot", "namespace": "eu"}, format="json")
    assert created.status_code == 201
    changed = admin_api.patch(f"/api/v1/apps/{created.json()['id']}/", {"rate_limit_rpm": 60}, format="json")
    assert changed.status_code == 200
    create, update = _entries("applications.app")
    assert create.action == "create" and update.action == "update"
    assert update.actor_kind == "token" and update.source == "api" and update.actor_user_id == admin_user.pk
    assert update.namespace == "eu" and update.changes == {"rate_limit_rpm": [None, 60]}


def test_shell_and_job_writes_are_system_writes():
    app = app_create(data={"name": "from-shell"})
    with acting_as("system", "budget_rollover_periods", "job"):
        app_update(app=app, data={"name": "renamed"})
    create, update = _entries("applications.app")
    assert create.actor_kind == "system" and create.source in {"shell", "system"}
    assert (update.actor_label, update.source, update.changes["name"]) == (
        "budget_rollover_periods",
        "job",
        ["from-shell", "renamed"],
    )


def test_a_rolled_back_write_leaves_no_entry():
    with pytest.raises(RuntimeError), transaction.atomic():
        app_create(data={"name": "doomed"})
        raise RuntimeError("roll back")
    assert not App.objects.filter(name="doomed").exists() and _entries("applications.app") == []


def test_many_to_many_changes_and_deletes_are_recorded():
    llm = _llm()
    app = app_create(data={"name": "bot"})
    app.llms.add(llm)
    app.llms.remove(llm)
    app_pk = app.pk
    App.objects.get(pk=app_pk).delete()
    entries = _entries("applications.app")
    assert {"llms": {"added": [llm.pk]}} in [e.changes for e in entries]
    assert {"llms": {"removed": [llm.pk]}} in [e.changes for e in entries]
    deleted = entries[-1]
    assert deleted.action == "delete" and deleted.object_id == str(app_pk) and deleted.changes["name"] == ["bot", None]


def test_secret_keys_inside_json_config_are_redacted():
    app = app_create(data={"name": "bot", "metadata": {"owner": "ops", "api_key": "k-123", "nested": {"token": "t"}}})
    [entry] = _entries("applications.app")
    assert entry.changes["metadata"][1] == {"owner": "ops", "api_key": "[redacted]", "nested": {"token": "[redacted]"}}
    assert app.metadata["api_key"] == "k-123"  # the object itself is untouched


def test_the_api_lists_entries_by_namespace_for_staff_only(admin_api, user_api):
    app_create(data={"name": "a", "namespace": "eu"})
    app_create(data={"name": "b", "namespace": "us"})
    listed = admin_api.get("/api/v1/audit/", {"namespace": "eu", "object_type": "applications.app"}).json()
    assert [row["object_repr"] for row in listed["results"]] == ["a"]
    assert user_api.get("/api/v1/audit/").status_code == 403
    assert admin_api.delete(f"/api/v1/audit/{listed['results'][0]['id']}/").status_code == 405


def test_admin_shows_entries_read_only(admin_client):
    app_create(data={"name": "visible"})
    entry = AuditEntry.objects.get(object_type="applications.app")
    assert "visible" in admin_client.get("/admin/audit/auditentry/?q=visible").content.decode()
    page = admin_client.get(f"/admin/audit/auditentry/{entry.pk}/change/")
    assert page.status_code == 200 and "from-" not in page.content.decode() and "<table>" in page.content.decode()
    assert admin_client.post(f"/admin/audit/auditentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403


def test_retention_deletes_only_old_entries(monkeypatch):
    app_create(data={"name": "old"})
    app_create(data={"name": "new"})
    AuditEntry.objects.filter(object_repr="old").update(at=timezone.now() - dt.timedelta(days=40))
    monkeypatch.setenv("FJORDGATE_AUDIT_RETENTION_DAYS", "30")
    assert audit_apply_retention() == 1
    assert [e.object_repr for e in _entries("applications.app")] == ["new"]


def test_time_filters_refuse_offsets_the_database_cannot_store(admin_api):
    assert admin_api.get("/api/v1/audit/", {"since": "3103-05-16T19:38:03+17:04"}).status_code == 400
    assert admin_api.get("/api/v1/audit/", {"since": "2026-05-16T19:38:03+02:00"}).status_code == 200


def test_a_namespace_administrator_reads_only_the_entries_of_its_namespaces(django_user_model):
    from rest_framework.test import APIClient

    from control_plane.accounts.models import NamespaceRole
    from control_plane.accounts.tokens import api_token_create

    app_create(data={"name": "mine", "namespace": "team-a"})
    app_create(data={"name": "theirs", "namespace": "team-b"})
    admin_a = django_user_model.objects.create_user("admin-a", "a@example.com", "pw-admin-a-123456", is_staff=True)
    NamespaceRole.objects.create(user=admin_a, namespace="team-a", role="admin")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(owner=admin_a)[1]}")
    listed = client.get("/api/v1/audit/", {"object_type": "applications.app"})
    assert listed.status_code == 200
    assert [row["object_repr"] for row in listed.json()["results"]] == ["mine"]
    other = AuditEntry.objects.get(object_repr="theirs")
    assert client.get(f"/api/v1/audit/{other.pk}/").status_code == 404


def test_granting_changing_and_removing_a_namespace_role_is_recorded(django_user_model):
    from control_plane.accounts.roles import user_namespace_roles_set

    user = django_user_model.objects.create_user("carol", "c@example.com", "pw-carol-123456")
    with acting_as("system", "oidc sign-in", "web"):
        user_namespace_roles_set(user=user, roles={"team-a": "viewer"})
        user_namespace_roles_set(user=user, roles={"team-a": "admin"})
        user_namespace_roles_set(user=user, roles={})
    granted, promoted, removed = _entries("accounts.namespacerole")
    assert (granted.action, granted.namespace, granted.changes["role"]) == ("create", "team-a", [None, "viewer"])
    assert granted.changes["user_id"] == [None, user.pk] and granted.actor_label == "oidc sign-in"
    assert (promoted.action, promoted.changes) == ("update", {"role": ["viewer", "admin"]})
    assert (removed.action, removed.namespace, removed.changes["role"]) == ("delete", "team-a", ["admin", None])


def test_a_celery_task_write_is_the_task_s_as_a_system_job():
    from control_plane.config.celery import app as celery_app

    @celery_app.task(name="tests.audit.rename_app")
    def rename_app(app_id: int) -> None:
        app_update(app=App.objects.get(pk=app_id), data={"name": "renamed-by-job"})

    app = app_create(data={"name": "before-job"})
    rename_app.apply(args=(app.pk,)).get()  # eager: this process, with Celery's task signals
    app_update(app=App.objects.get(pk=app.pk), data={"name": "after-job"})

    _, by_job, after = _entries("applications.app")
    assert (by_job.actor_kind, by_job.actor_label, by_job.source) == ("system", "tests.audit.rename_app", "job")
    assert by_job.changes["name"] == ["before-job", "renamed-by-job"]
    assert after.source != "job"  # the task's attribution ended with the task
