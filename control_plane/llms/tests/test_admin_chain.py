"""The LLM admin's plugin-chain inline saves through `llm_set_plugin_chain`, so edges hear about the change."""

from __future__ import annotations

import pytest

from control_plane.llms.models import LLMPluginBinding
from control_plane.llms.services import llm_create, llm_set_plugin_chain
from control_plane.sync.models import ConfigChange
from control_plane.sync.selectors import snapshot_build

pytestmark = pytest.mark.django_db

LLM_FORM = {
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
}


def _inline(rows: list[dict], initial: int) -> dict:
    data = {"plugin_bindings-TOTAL_FORMS": len(rows), "plugin_bindings-INITIAL_FORMS": initial}
    for index, row in enumerate(rows):
        for key, value in row.items():
            data[f"plugin_bindings-{index}-{key}"] = value
    return data


def test_chain_inline_goes_through_the_service_and_records_a_config_change(client, admin_user, register_plugin):
    first = register_plugin("first", "ConfiguredPlugin", config={"mode": "log"})
    second = register_plugin("second", "ConfiguredPlugin", config={"mode": "log"})
    llm = llm_create(
        data={
            **{k: v for k, v in LLM_FORM.items() if k in ("name", "slug", "vendor")},
            "namespace": "eu",
            "api_endpoint": "https://api.example/v1",
        }
    )
    (old,) = llm_set_plugin_chain(llm=llm, chain=[{"plugin": first, "config_override": {"threshold": 5}}])
    client.force_login(admin_user)
    before = set(ConfigChange.objects.values_list("pk", flat=True))

    rows = [
        {
            "id": old.pk,
            "llm": llm.pk,
            "plugin": first.pk,
            "order_index": 1,
            "config_override": '{"threshold": 5}',
            "is_active": "on",
            "DELETE": "on",
        },
        {
            "llm": llm.pk,
            "plugin": second.pk,
            "order_index": 0,
            "config_override": '{"mode": "block"}',
            "is_active": "on",
        },
    ]
    response = client.post(f"/admin/llms/llm/{llm.pk}/change/", {**LLM_FORM, **_inline(rows, initial=1)})
    assert response.status_code == 302, response.content.decode()[:3000]

    assert [(b.plugin.slug, b.config_override) for b in LLMPluginBinding.objects.filter(llm=llm)] == [
        ("second", {"mode": "block"})
    ]
    reasons = set(ConfigChange.objects.exclude(pk__in=before).values_list("namespace", "reason"))
    assert ("eu", "llm l plugin chain changed") in reasons  # recorded by llm_set_plugin_chain
    (chain,) = [c.plugin_chain for c in snapshot_build(namespace="eu").llms]
    assert [(b.plugin_slug, b.config["mode"]) for b in chain] == [("second", "block")]


def test_chain_inline_refuses_an_override_the_plugin_schema_rejects(client, admin_user, register_plugin):
    plugin = register_plugin("first", "ConfiguredPlugin", config={"mode": "log"})
    client.force_login(admin_user)
    rows = [{"plugin": plugin.pk, "order_index": 0, "config_override": '{"threshold": 99}', "is_active": "on"}]
    response = client.post("/admin/llms/llm/add/", {**LLM_FORM, **_inline(rows, initial=0)})
    assert response.status_code == 200 and "99 is greater than the maximum of 10" in response.content.decode()
    assert not LLMPluginBinding.objects.exists()
