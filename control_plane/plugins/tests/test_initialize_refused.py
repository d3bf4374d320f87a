"""A plugin whose `initialize` refuses its config is refused when it is registered or changed, in the API (a DRF
validation error on `config`) and the admin (a form error), with the plugin's own message.

Before, registering described the plugin (its manifest and schema) and validated the config against the schema,
but never initialized it: `ip-filter` with `deny: ["not-a-network"]` (a string, as the schema allows) was registered
with 201, then failed in the studio at every call and at every edge at load, the reason only in their logs."""

from __future__ import annotations

import pytest

from control_plane.plugins.models import Plugin

pytestmark = pytest.mark.django_db

BAD = {"deny": ["not-a-network"]}


@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "isolated"])
def test_api_refuses_a_config_the_plugins_initialize_refuses(admin_api, isolated):
    response = admin_api.post(
        "/api/v1/plugins/",
        {"slug": "ip-filter", "entry_point": "ip-filter", "isolated": isolated, "config": BAD},
        format="json",
    )
    assert response.status_code == 400, response.json()
    (message,) = response.json()["extra"]["fields"]["config"]
    assert "the plugin failed to initialize with this config" in message
    assert "ip-filter: bad network" in message and "not-a-network" in message
    assert not Plugin.objects.exists()


def test_api_refuses_the_change_and_keeps_the_working_config(admin_api):
    created = admin_api.post(
        "/api/v1/plugins/",
        {"slug": "ip-filter", "entry_point": "ip-filter", "config": {"deny": ["10.0.0.0/8"]}},
        format="json",
    )
    assert created.status_code == 201, created.json()
    changed = admin_api.patch(f"/api/v1/plugins/{created.json()['id']}/", {"config": BAD}, format="json")
    assert changed.status_code == 400, changed.json()
    assert "ip-filter: bad network" in changed.json()["extra"]["fields"]["config"][0]
    assert Plugin.objects.get(slug="ip-filter").config["deny"] == ["10.0.0.0/8"]


def test_an_inactive_registration_is_not_initialized(admin_api):
    """Inactive, the plugin runs nowhere; it is tried when it is activated."""
    created = admin_api.post(
        "/api/v1/plugins/",
        {"slug": "ip-filter", "entry_point": "ip-filter", "active": False, "config": BAD},
        format="json",
    )
    assert created.status_code == 201, created.json()
    activated = admin_api.patch(f"/api/v1/plugins/{created.json()['id']}/", {"active": True}, format="json")
    assert activated.status_code == 400 and "ip-filter: bad network" in str(activated.json())


def test_admin_form_refuses_a_config_the_plugins_initialize_refuses(admin_client):
    response = admin_client.post(
        "/admin/plugins/plugin/add/",
        {
            "slug": "ip-filter",
            "entry_point": "ip-filter",
            "command": "[]",
            "active": "on",
            "failure_policy": "open",
            "timeout_ms": 30000,
            "raw_config": '{"deny": ["not-a-network"]}',
            "extra_scopes": "[]",
            "objecthookregistration_set-TOTAL_FORMS": "0",
            "objecthookregistration_set-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200  # the form again, with its error
    page = response.content.decode()
    assert "the plugin failed to initialize with this config" in page and "ip-filter: bad network" in page
    assert not Plugin.objects.exists()
