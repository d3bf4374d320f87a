"""Object hooks through every write path: services, the API and the admin."""

from __future__ import annotations

import json
import logging

import pytest

from control_plane.config.exceptions import HookRejected
from control_plane.hooks.tests.plugins import RecordingPlugin
from control_plane.llms.models import LLM
from control_plane.llms.services import llm_create, llm_update

pytestmark = pytest.mark.django_db

VENDOR_KEY = "sk-live-VENDOR-SECRET-7f3a9c1e5b"
LLM_DATA = {"name": "gpt", "slug": "gpt", "vendor": "openai", "api_endpoint": "https://api.openai.example/v1"}


def test_before_hook_rejects_service_write_with_plugins_reason(register_plugin):
    register_plugin("rejector", "RejectExperimentalPlugin")
    with pytest.raises(HookRejected) as err:
        llm_create(data={**LLM_DATA, "name": "Experimental GPT"})
    assert err.value.message == "experimental models need sign-off"
    assert err.value.plugin == "rejector"
    assert not LLM.objects.exists()


def test_before_hook_rejects_api_write_with_400_and_reason(register_plugin, admin_api):
    register_plugin("rejector", "RejectExperimentalPlugin")
    response = admin_api.post("/api/v1/llms/", {**LLM_DATA, "name": "experimental"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"message": "experimental models need sign-off", "extra": {"plugin": "rejector"}}


def test_before_hook_rejection_is_a_form_error_in_admin(register_plugin, admin_user, client):
    register_plugin("rejector", "RejectExperimentalPlugin")
    client.force_login(admin_user)
    response = client.post(
        "/admin/llms/llm/add/",
        {
            **LLM_DATA,
            "name": "experimental",
            "privacy_score": 0,
            "allowed_models": "[]",
            "metadata": "{}",
            "fallbacks": "[]",
            "max_retries": 2,
            "connect_timeout_s": 5,
            "first_byte_timeout_s": 60,
            "is_active": "on",
            "plugin_bindings-TOTAL_FORMS": 0,
            "plugin_bindings-INITIAL_FORMS": 0,
        },
    )
    assert response.status_code == 200
    assert "Refused by plugin rejector: experimental models need sign-off" in response.content.decode()
    assert not LLM.objects.exists()


def test_before_hook_modifies_object_and_merges_plugin_metadata(register_plugin):
    register_plugin("owner", "TagOwnerPlugin")
    llm = llm_create(data={**LLM_DATA, "metadata": {"team": "core"}})
    assert llm.name == "GPT"
    assert llm.default_model == "gpt-4o-mini"
    assert llm.metadata == {"team": "core", "reviewed_by": "tag-owner"}


def test_hooks_run_in_priority_order_rejection_stops_chain(register_plugin):
    register_plugin("owner", "TagOwnerPlugin")  # priority 20
    register_plugin("rejector", "RejectExperimentalPlugin")  # priority 10: runs first and refuses
    with pytest.raises(HookRejected):
        llm_create(data={**LLM_DATA, "name": "experimental"})


def test_vendor_key_never_reaches_hooks_logs_or_api(
    register_plugin, admin_api, caplog, django_capture_on_commit_callbacks
):
    RecordingPlugin.received.clear()
    register_plugin("recorder", "RecordingPlugin")
    caplog.set_level(logging.DEBUG)
    with django_capture_on_commit_callbacks(execute=True):
        created = admin_api.post("/api/v1/llms/", {**LLM_DATA, "api_key": VENDOR_KEY}, format="json")
    assert created.status_code == 201, created.content
    llm_id = created.json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        updated = admin_api.patch(f"/api/v1/llms/{llm_id}/", {"privacy_score": 40}, format="json")
    listed = admin_api.get("/api/v1/llms/")
    snapshot = admin_api.get("/api/v1/config-changes/snapshot/")

    hook_types = [r.hook_type for r in RecordingPlugin.received]
    assert {"before_create", "after_create", "before_update", "after_update"} <= set(hook_types)
    for response in (created, updated, listed, snapshot):
        assert VENDOR_KEY not in response.content.decode()
    assert created.json()["has_api_key"] is True
    for request in RecordingPlugin.received:
        assert VENDOR_KEY not in request.object_json
        assert json.loads(request.object_json)["api_key"] == "[REDACTED]"
    assert VENDOR_KEY not in caplog.text
    # ... yet the key is stored (encrypted) and still works after an update that did not touch it
    from control_plane.llms.secrets import vendor_key_decrypt

    stored = LLM.objects.get(pk=llm_id).api_key_encrypted
    assert VENDOR_KEY not in stored
    assert vendor_key_decrypt(stored) == VENDOR_KEY


def test_after_hook_sees_the_saved_object(register_plugin, django_capture_on_commit_callbacks):
    RecordingPlugin.received.clear()
    register_plugin("recorder", "RecordingPlugin")
    with django_capture_on_commit_callbacks(execute=True):
        llm = llm_create(data=LLM_DATA)
        llm_update(llm=llm, data={"privacy_score": 70})
    after = [r for r in RecordingPlugin.received if r.hook_type == "after_update"]
    assert json.loads(after[0].object_json)["privacy_score"] == 70
    assert json.loads(after[0].object_json)["id"] == llm.pk


def test_inactive_plugin_is_not_asked(register_plugin):
    from control_plane.plugins.services import plugin_update

    plugin = register_plugin("rejector", "RejectExperimentalPlugin")
    plugin_update(plugin=plugin, data={"active": False})
    assert llm_create(data={**LLM_DATA, "name": "experimental"}).pk


def test_a_namespace_plugin_hooks_only_its_namespace_objects(register_plugin):
    """A namespace-A plugin (registered by A's operator) is never asked about B's objects nor global ones."""
    register_plugin("rejector-a", "RejectExperimentalPlugin", namespace="team-a")
    for ns in ("team-b", ""):
        assert llm_create(data={**LLM_DATA, "slug": f"x-{ns or 'global'}", "name": "experimental", "namespace": ns})
    with pytest.raises(HookRejected) as err:
        llm_create(data={**LLM_DATA, "slug": "x-a", "name": "experimental", "namespace": "team-a"})
    assert err.value.plugin == "rejector-a"
