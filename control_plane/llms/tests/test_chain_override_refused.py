"""A plugin chain's config override is checked as the plugin's own config is: an override whose merged config the
plugin's schema refuses, or with which its `initialize` raises, is refused on the override's field, in the API (a
DRF validation error under `plugin_chain`) and the admin (a form error on the inline row), with the plugin's message.

Before, only the schema was checked, and its error came back on `config`, a field the LLM does not have; an override
that made `initialize` raise (`ip-filter` with `deny: ["not-a-network"]`) was taken with 201, and the edges and the
studio, which load such a binding as an instance of its own (`ip-filter@<llm>`, merged config), failed to load it at
every call on that LLM: the edges listed it under `plugins_not_loaded`, the reason only in their logs."""

from __future__ import annotations

import pytest

from control_plane.llms.models import LLM, LLMPluginBinding
from control_plane.plugins.models import Plugin
from control_plane.plugins.services import plugin_register

pytestmark = pytest.mark.django_db

GOOD = {"deny": ["10.0.0.0/8"]}
BAD = {"deny": ["not-a-network"]}
REFUSED = "the plugin failed to initialize with this config"

LLM_BODY = {"name": "L", "slug": "l", "vendor": "mock", "api_endpoint": "http://mock.local/v1", "namespace": "eu"}


def _register(*, isolated: bool = False) -> None:
    plugin_register(data={"slug": "ip-filter", "entry_point": "ip-filter", "isolated": isolated, "config": GOOD})
    plugin_register(data={"slug": "request-tagger", "entry_point": "request-tagger"})


def _chain_errors(response) -> list:
    assert response.status_code == 400, response.json()
    return response.json()["extra"]["fields"]["plugin_chain"]


@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "isolated"])
def test_api_refuses_an_override_the_plugins_initialize_refuses(admin_api, isolated):
    _register(isolated=isolated)
    response = admin_api.post(
        "/api/v1/llms/",
        {**LLM_BODY, "plugin_chain": [{"plugin": "ip-filter", "config_override": BAD}]},
        format="json",
    )
    ((field, (message,)),) = _chain_errors(response)[0].items()
    assert field == "config_override"
    assert REFUSED in message and "ip-filter: bad network" in message and "not-a-network" in message
    assert response.json()["message"].startswith("plugin_chain: config_override: ")
    assert not LLM.objects.exists() and not LLMPluginBinding.objects.exists()  # nothing half-made


def test_api_refuses_the_changed_chain_and_keeps_the_working_one(admin_api):
    _register()
    created = admin_api.post(
        "/api/v1/llms/",
        {**LLM_BODY, "plugin_chain": [{"plugin": "ip-filter", "config_override": {"deny": ["192.168.0.0/16"]}}]},
        format="json",
    )
    assert created.status_code == 201, created.json()
    changed = admin_api.patch(
        f"/api/v1/llms/{created.json()['id']}/",
        {
            "name": "renamed",
            "plugin_chain": [
                {"plugin": "request-tagger", "order_index": 0},
                {"plugin": "ip-filter", "order_index": 1, "config_override": BAD},
            ],
        },
        format="json",
    )
    first, second = _chain_errors(changed)
    assert first == {} and "ip-filter: bad network" in second["config_override"][0]
    llm = LLM.objects.get()
    assert llm.name == "L"  # the whole change is refused, not only its chain
    assert [(b.plugin.slug, b.config_override) for b in llm.plugin_bindings.all()] == [
        ("ip-filter", {"deny": ["192.168.0.0/16"]})
    ]


def test_api_puts_a_schema_refusal_of_an_override_on_the_override(admin_api):
    _register()
    response = admin_api.post(
        "/api/v1/llms/",
        {**LLM_BODY, "plugin_chain": [{"plugin": "ip-filter", "config_override": {"status_code": 200}}]},
        format="json",
    )
    (item,) = _chain_errors(response)
    assert "200 is less than the minimum of 400" in str(item["config_override"])
    assert not LLM.objects.exists()


def test_an_override_of_an_inactive_binding_is_tried_when_it_is_activated(admin_api):
    """As an inactive plugin: it runs nowhere, so it is tried when it is switched on."""
    _register()
    created = admin_api.post(
        "/api/v1/llms/",
        {**LLM_BODY, "plugin_chain": [{"plugin": "ip-filter", "is_active": False, "config_override": BAD}]},
        format="json",
    )
    assert created.status_code == 201, created.json()
    activated = admin_api.patch(
        f"/api/v1/llms/{created.json()['id']}/",
        {"plugin_chain": [{"plugin": "ip-filter", "is_active": True, "config_override": BAD}]},
        format="json",
    )
    assert "ip-filter: bad network" in _chain_errors(activated)[0]["config_override"][0]
    assert not LLMPluginBinding.objects.get().is_active


def test_a_plugin_is_not_activated_under_an_override_its_initialize_refuses(admin_api):
    """An inactive plugin is not tried, nor are its overrides; activating it tries both, or its `ip-filter@l`
    instance would fail to load at every call on `l`."""
    created = admin_api.post(
        "/api/v1/plugins/", {"slug": "ip-filter", "entry_point": "ip-filter", "active": False}, format="json"
    )
    assert created.status_code == 201, created.json()
    bound = admin_api.post(
        "/api/v1/llms/", {**LLM_BODY, "plugin_chain": [{"plugin": "ip-filter", "config_override": BAD}]}, format="json"
    )
    assert bound.status_code == 201, bound.json()
    activated = admin_api.patch(f"/api/v1/plugins/{created.json()['id']}/", {"active": True}, format="json")
    assert activated.status_code == 400, activated.json()
    (message,) = activated.json()["extra"]["fields"]["config"]
    assert message.startswith("with LLM 'l''s config_override, " + REFUSED) and "ip-filter: bad network" in message
    assert not Plugin.objects.get(slug="ip-filter").active


def test_admin_inline_refuses_an_override_the_plugins_initialize_refuses(admin_client):
    _register()
    form = {
        "name": "L",
        "slug": "l",
        "vendor": "openai",
        "api_endpoint": "https://api.example/v1",
        "privacy_score": 0,
        "allowed_models": "[]",
        "metadata": "{}",
        "fallbacks": "[]",
        "max_retries": 2,
        "connect_timeout_s": 5,
        "first_byte_timeout_s": 60,
        "is_active": "on",
        "namespace": "eu",
        "plugin_bindings-TOTAL_FORMS": 1,
        "plugin_bindings-INITIAL_FORMS": 0,
        "plugin_bindings-0-plugin": Plugin.objects.get(slug="ip-filter").pk,
        "plugin_bindings-0-order_index": 0,
        "plugin_bindings-0-is_active": "on",
        "plugin_bindings-0-config_override": '{"deny": ["not-a-network"]}',
    }
    response = admin_client.post("/admin/llms/llm/add/", form)
    assert response.status_code == 200  # the form again, with the row's error
    page = response.content.decode()
    assert REFUSED in page and "ip-filter: bad network" in page
    assert response.context["inline_admin_formsets"][0].formset.forms[0].errors["config_override"]
    assert not LLM.objects.exists()
