"""The admin as admins use it: forms, inlines and actions, through Django's test client."""

from __future__ import annotations

import re

import pytest

from control_plane.applications.models import App, Credential
from control_plane.applications.services import app_create, credential_create
from control_plane.catalog.services import tool_create
from control_plane.llms.models import LLM
from control_plane.llms.services import llm_create
from control_plane.plugins.models import Plugin
from control_plane.sync.models import ConfigChange
from shared_sdk.snapshot import hash_credential

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def _action(client, url, action, ids):
    return client.post(url, {"action": action, "_selected_action": [str(i) for i in ids]}, follow=True)


def test_every_changelist_renders(admin_client, admin_user):
    llm = llm_create(data={"name": "L", "slug": "l", "vendor": "mock", "api_endpoint": "http://m.local"})
    app = App.objects.create(name="a", owner=admin_user)
    credential_create(app=app)
    for url in (
        "/admin/applications/app/",
        "/admin/applications/credential/",
        "/admin/llms/llm/",
        "/admin/catalog/tool/",
        "/admin/catalog/datasource/",
        "/admin/catalog/modelprice/",
        "/admin/budgets/budget/",
        "/admin/plugins/plugin/",
        "/admin/kv/kventry/",
        "/admin/sync/configchange/",
        "/admin/hooks/objecthookregistration/",
        "/admin/auth/user/",
        "/admin/auth/group/",
        f"/admin/applications/app/{app.pk}/change/",
        f"/admin/llms/llm/{llm.pk}/change/",
        "/admin/applications/app/?approved__exact=0&q=a",
        "/admin/dashboard/",
    ):
        assert admin_client.get(url).status_code == 200, url


def test_approve_activate_and_deactivate_actions(admin_client, admin_user):
    app = App.objects.create(name="a", owner=admin_user, is_active=False)
    _action(admin_client, "/admin/applications/app/", "approve", [app.pk])
    app.refresh_from_db()
    assert app.approved and app.is_active and app.approved_at
    _action(admin_client, "/admin/applications/app/", "deactivate", [app.pk])
    app.refresh_from_db()
    assert not app.is_active


def test_create_key_action_shows_key_once_and_stores_only_hash(admin_client, admin_user):
    app = App.objects.create(name="a", owner=admin_user)
    page = _action(admin_client, "/admin/applications/app/", "create_key", [app.pk]).content.decode()
    key = re.search(r"<code>(fjg_[^<]+)</code>", page).group(1)
    credential = Credential.objects.get(app=app)
    assert credential.key_hash == hash_credential(key)
    assert key not in admin_client.get(f"/admin/applications/credential/{credential.pk}/change/").content.decode()
    assert key not in admin_client.get(f"/admin/applications/app/{app.pk}/change/").content.decode()


def test_rotate_and_revoke_actions(admin_client, admin_user):
    app = App.objects.create(name="a", owner=admin_user)
    old, old_key = credential_create(app=app)
    page = _action(admin_client, "/admin/applications/credential/", "rotate", [old.pk]).content.decode()
    new_key = re.search(r"<code>(fjg_[^<]+)</code>", page).group(1)
    assert new_key != old_key
    new = Credential.objects.get(key_hash=hash_credential(new_key))
    old.refresh_from_db()
    assert old.revoked_at is not None and new.rotated_from_id == old.pk
    _action(admin_client, "/admin/applications/credential/", "revoke", [new.pk])
    new.refresh_from_db()
    assert new.revoked_at is not None


def test_privacy_rule_is_a_form_error(admin_client, admin_user):
    llm = llm_create(
        data={"name": "L", "slug": "l", "vendor": "mock", "api_endpoint": "http://m.local", "privacy_score": 20}
    )
    tool = tool_create(data={"name": "T", "slug": "t", "privacy_score": 60})
    response = admin_client.post(
        "/admin/applications/app/add/",
        {
            "name": "bot",
            "namespace": "",
            "metadata": "{}",
            "allowed_ips": "[]",
            "is_active": "on",
            "llms": [llm.pk],
            "tools": [tool.pk],
            "credentials-TOTAL_FORMS": 0,
            "credentials-INITIAL_FORMS": 0,
            "plugin_resources-TOTAL_FORMS": 0,
            "plugin_resources-INITIAL_FORMS": 0,
        },
    )
    assert response.status_code == 200
    assert "privacy score 60, above the highest privacy score of the app&#x27;s LLMs (20)" in response.content.decode()
    assert not App.objects.exists()


def test_llm_add_form_encrypts_key_and_push_config_action(admin_client):
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
            "api_key": "sk-admin-form-secret",
            "plugin_bindings-TOTAL_FORMS": 0,
            "plugin_bindings-INITIAL_FORMS": 0,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    llm = LLM.objects.get(slug="l")
    assert llm.api_key_encrypted and "sk-admin-form-secret" not in llm.api_key_encrypted
    before = ConfigChange.objects.count()
    _action(admin_client, "/admin/llms/llm/", "push_config", [llm.pk])
    assert ConfigChange.objects.count() == before + 1


def test_plugin_config_form_generated_from_schema_and_validated(admin_client, register_plugin):
    plugin = register_plugin("configured", "ConfiguredPlugin", config={"mode": "log"})
    assert plugin.config == {"mode": "log", "threshold": 3, "enabled": True}  # schema defaults filled in
    page = admin_client.get(f"/admin/plugins/plugin/{plugin.pk}/change/").content.decode()
    assert 'name="config__threshold"' in page and 'name="config__mode"' in page
    form = {
        "slug": "configured",
        "name": plugin.name,
        "version": plugin.version,
        "description": "",
        "import_path": plugin.import_path,
        "command": "[]",
        "failure_policy": "open",
        "timeout_ms": 30000,
        "namespace": "",
        "active": "on",
        "global_order": "",
        "raw_config": "{}",
        "config__mode": "block",
        "config__threshold": 42,
        "config__enabled": "on",
        "object_hooks-TOTAL_FORMS": 0,
        "object_hooks-INITIAL_FORMS": 0,
    }
    bad = admin_client.post(f"/admin/plugins/plugin/{plugin.pk}/change/", form)
    assert bad.status_code == 200 and "Ensure this value is less than or equal to 10" in bad.content.decode()
    good = admin_client.post(f"/admin/plugins/plugin/{plugin.pk}/change/", {**form, "config__threshold": 7})
    assert good.status_code == 302, good.content.decode()[:3000]
    plugin.refresh_from_db()
    assert plugin.config == {"mode": "block", "threshold": 7, "enabled": True}
    assert plugin.extra_scopes == []  # the empty scope-grant field saves as "no extra scopes"

    typo = admin_client.post(
        f"/admin/plugins/plugin/{plugin.pk}/change/", {**form, "config__threshold": 7, "extra_scopes": '["apps.raed"]'}
    )
    assert typo.status_code == 200 and "Unknown scope(s): apps.raed" in typo.content.decode()
    granted = admin_client.post(
        f"/admin/plugins/plugin/{plugin.pk}/change/", {**form, "config__threshold": 7, "extra_scopes": '["apps.read"]'}
    )
    assert granted.status_code == 302
    plugin.refresh_from_db()
    assert plugin.extra_scopes == ["apps.read"]


def test_plugin_config_validated_against_schema_in_api(admin_api):
    response = admin_api.post(
        "/api/v1/plugins/",
        {
            "slug": "cfg",
            "import_path": "control_plane.hooks.tests.plugins:ConfiguredPlugin",
            "config": {"threshold": 99},
        },
        format="json",
    )
    assert response.status_code == 400
    errors = response.json()["extra"]["fields"]["config"]
    assert any("'mode' is a required property" in e for e in errors)
    assert any("$.threshold" in e for e in errors)
    assert not Plugin.objects.exists()
    missing = admin_api.post(
        "/api/v1/plugins/", {"slug": "nope", "import_path": "plugins.no_such_module:X"}, format="json"
    )
    assert missing.status_code == 400 and "cannot import" in missing.json()["message"]


def test_activate_and_deactivate_actions_write_through_services_for_llms_plugins_and_tools(
    admin_client, register_plugin
):
    """One shared action per admin: each flips its model's own on/off field through the service, so the edges
    hear of it (a config change) and a plugin's differently named `active` field is honoured."""
    llm = llm_create(data={"name": "L", "slug": "l", "vendor": "mock", "api_endpoint": "http://m.local"})
    plugin = register_plugin("configured", "ConfiguredPlugin", config={"mode": "log"})
    tool = tool_create(data={"name": "T", "slug": "t"})
    app_create(data={"name": "holder", "llm_ids": [llm.pk], "tool_ids": [tool.pk]})  # edges see tools via apps
    for url, model, pk, field in (
        ("/admin/llms/llm/", LLM, llm.pk, "is_active"),
        ("/admin/plugins/plugin/", Plugin, plugin.pk, "active"),
        ("/admin/catalog/tool/", type(tool), tool.pk, "is_active"),
    ):
        before = ConfigChange.objects.count()
        page = _action(admin_client, url, "deactivate", [pk]).content.decode()
        assert "Deactivated: 1" in page, url
        assert getattr(model.objects.get(pk=pk), field) is False, url
        _action(admin_client, url, "activate", [pk])
        assert getattr(model.objects.get(pk=pk), field) is True, url
        assert ConfigChange.objects.count() >= before + 2, f"{url}: the edges were not told"


def test_the_app_form_offers_and_takes_only_the_llms_a_namespace_administrator_may_see(django_user_model):
    """The app form listed every namespace's LLMs (names, for everyone holding a role) and attached them."""
    from django.test import Client

    from control_plane.accounts.models import NamespaceRole

    common = {"vendor": "mock", "api_endpoint": "http://m.local"}
    mine = llm_create(data={"name": "Team A GPT", "slug": "gpt-a", "namespace": "team-a", **common})
    theirs = llm_create(data={"name": "Team B secret GPT", "slug": "gpt-b", "namespace": "team-b", **common})
    user = django_user_model.objects.create_user("admin-a", password="pw-Admin-123456!", is_staff=True)
    NamespaceRole.objects.create(user=user, namespace="team-a", role="admin")
    client = Client()
    client.force_login(user)
    page = client.get("/admin/applications/app/add/")
    assert page.status_code == 200
    assert list(page.context["adminform"].form.fields["llms"].queryset) == [mine]
    assert "Team B secret GPT" not in page.content.decode()
    posted = client.post(
        "/admin/applications/app/add/",
        {"name": "a", "namespace": "team-a", "llms": [theirs.pk], "metadata": "{}", "allowed_ips": "[]",
         **{f"{p}-TOTAL_FORMS": "0" for p in ("credentials", "plugin_resources")},
         **{f"{p}-INITIAL_FORMS": "0" for p in ("credentials", "plugin_resources")}},
    )  # fmt: skip
    assert posted.status_code == 200 and not App.objects.exists()
    assert "llms" in posted.context["adminform"].form.errors
    # an app a super-administrator gave team-b's LLM keeps it when the team-a administrator saves it
    app = app_create(data={"name": "b", "namespace": "team-a", "llm_ids": [mine.pk, theirs.pk]})
    saved = client.post(
        f"/admin/applications/app/{app.pk}/change/",
        {"name": "renamed", "namespace": "team-a", "llms": [mine.pk], "metadata": "{}", "allowed_ips": "[]",
         "is_active": "on", **{f"{p}-TOTAL_FORMS": "0" for p in ("credentials", "plugin_resources")},
         **{f"{p}-INITIAL_FORMS": "0" for p in ("credentials", "plugin_resources")}},
    )  # fmt: skip
    app.refresh_from_db()
    assert saved.status_code == 302, saved.context["adminform"].form.errors if saved.context else saved
    assert app.name == "renamed" and sorted(app.llms.values_list("pk", flat=True)) == [mine.pk, theirs.pk]
