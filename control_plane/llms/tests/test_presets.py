"""Vendor presets: an admin picks a vendor and the base URL is the preset's (API, admin form, snapshot); the
settings a vendor needs (Bedrock's region and key pair, Azure's endpoint) are DRF / form errors when missing."""

from __future__ import annotations

import pytest

from control_plane.llms.models import LLM
from control_plane.llms.secrets import vendor_key_decrypt
from control_plane.sync.selectors import snapshot_build
from shared_sdk.vendors import VENDORS

from .test_admin_chain import LLM_FORM, _inline

pytestmark = pytest.mark.django_db

PRESETS = {
    "openai": "https://api.openai.com/v1",
    "mistral": "https://api.mistral.ai/v1",
    "groq": "https://api.groq.com/openai/v1",
    "together": "https://api.together.xyz/v1",
    "deepseek": "https://api.deepseek.com/v1",
    "openrouter": "https://openrouter.ai/api/v1",
    "ollama": "http://localhost:11434/v1",
    "vllm": "http://localhost:8000/v1",
}


def test_every_vendor_of_the_table_is_a_choice():
    assert set(VENDORS) <= set(LLM.Vendor.values)


@pytest.mark.parametrize(("vendor", "url"), PRESETS.items())
def test_the_api_fills_the_preset_endpoint(admin_api, vendor, url):
    data = {"name": vendor, "slug": f"my-{vendor}", "vendor": vendor, "default_model": "m"}
    if VENDORS[vendor].needs_key:
        data["api_key"] = "sk-test-key"
    created = admin_api.post("/api/v1/llms/", data, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["api_endpoint"] == url
    assert "sk-test-key" not in created.content.decode()
    (llm,) = snapshot_build(namespace="").llms
    assert llm.vendor == vendor and llm.api_base == url


def test_an_explicit_endpoint_wins_over_the_preset(admin_api):
    data = {"name": "g", "slug": "g", "vendor": "groq", "api_endpoint": "https://groq.proxy.example/v1"}
    created = admin_api.post("/api/v1/llms/", data, format="json")
    assert created.status_code == 201 and created.json()["api_endpoint"] == "https://groq.proxy.example/v1"


def test_an_unknown_vendor_is_a_validation_error(admin_api):
    refused = admin_api.post("/api/v1/llms/", {"name": "x", "slug": "x", "vendor": "skynet"}, format="json")
    assert refused.status_code == 400
    assert "vendor" in refused.json()["extra"]["fields"]
    assert "not a valid choice" in str(refused.json()["extra"]["fields"]["vendor"])


@pytest.mark.parametrize("vendor", ["azure", "mock"])
def test_a_vendor_without_preset_needs_an_endpoint(admin_api, vendor):
    refused = admin_api.post("/api/v1/llms/", {"name": "a", "slug": "a", "vendor": vendor}, format="json")
    assert refused.status_code == 400
    assert "no preset endpoint" in str(refused.json()["extra"]["fields"]["api_endpoint"])


def test_bedrock_needs_a_region_and_a_key_pair(admin_api):
    base = {"name": "b", "slug": "b", "vendor": "bedrock", "default_model": "anthropic.claude-3-haiku-20240307-v1:0"}
    no_region = admin_api.post("/api/v1/llms/", base, format="json")
    assert no_region.status_code == 400 and "region" in str(no_region.json()["extra"]["fields"]["metadata"])
    bad_region = admin_api.post("/api/v1/llms/", {**base, "metadata": {"region": "moon"}}, format="json")
    assert bad_region.status_code == 400
    with_region = {**base, "metadata": {"region": "eu-west-1"}}
    bad_key = admin_api.post("/api/v1/llms/", {**with_region, "api_key": "just-a-secret"}, format="json")
    assert bad_key.status_code == 400 and "ACCESS_KEY_ID:SECRET" in str(bad_key.json()["extra"]["fields"]["api_key"])
    created = admin_api.post("/api/v1/llms/", {**with_region, "api_key": "AKIAEXAMPLE:s3cr/t+key"}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["api_endpoint"] == "https://bedrock-runtime.eu-west-1.amazonaws.com"
    assert body["has_api_key"] is True and "s3cr/t+key" not in created.content.decode()
    stored = LLM.objects.get(slug="b")
    assert vendor_key_decrypt(stored.api_key_encrypted) == "AKIAEXAMPLE:s3cr/t+key"


def test_azure_deployments_must_map_names_to_names(admin_api):
    data = {"name": "z", "slug": "z", "vendor": "azure", "api_endpoint": "https://res.openai.azure.com"}
    refused = admin_api.post("/api/v1/llms/", {**data, "metadata": {"deployments": ["gpt-4o"]}}, format="json")
    assert refused.status_code == 400 and "deployments" in str(refused.json()["extra"]["fields"]["metadata"])
    meta = {"deployments": {"gpt-4o": "prod"}, "api_version": "2024-10-21"}
    assert admin_api.post("/api/v1/llms/", {**data, "metadata": meta}, format="json").status_code == 201


def test_the_admin_form_fills_the_preset_and_shows_errors(client, admin_user):
    client.force_login(admin_user)
    page = client.get("/admin/llms/llm/add/")
    assert b"Mistral: https://api.mistral.ai/v1" in page.content
    form = {**LLM_FORM, **_inline([], 0), "vendor": "mistral", "api_endpoint": ""}
    saved = client.post("/admin/llms/llm/add/", form)
    assert saved.status_code == 302, saved.content[:800]
    assert LLM.objects.get(slug="l").api_endpoint == "https://api.mistral.ai/v1"
    refused = client.post("/admin/llms/llm/add/", {**form, "slug": "az", "vendor": "azure"})
    assert refused.status_code == 200 and b"no preset endpoint" in refused.content
    refused = client.post("/admin/llms/llm/add/", {**form, "slug": "bd", "vendor": "bedrock"})
    assert refused.status_code == 200 and b"metadata.region" in refused.content


def test_switching_vendor_or_region_moves_a_preset_endpoint_but_not_a_typed_one(admin_api):
    created = admin_api.post(
        "/api/v1/llms/",
        {"name": "b", "slug": "b", "vendor": "bedrock", "metadata": {"region": "us-east-1"}},
        format="json",
    ).json()
    moved = admin_api.patch(f"/api/v1/llms/{created['id']}/", {"metadata": {"region": "ap-south-1"}}, format="json")
    assert moved.json()["api_endpoint"] == "https://bedrock-runtime.ap-south-1.amazonaws.com"
    groq = admin_api.post("/api/v1/llms/", {"name": "g", "slug": "g", "vendor": "groq"}, format="json").json()
    switched = admin_api.patch(f"/api/v1/llms/{groq['id']}/", {"vendor": "mistral"}, format="json")
    assert switched.json()["api_endpoint"] == "https://api.mistral.ai/v1"
    typed = admin_api.patch(
        f"/api/v1/llms/{groq['id']}/", {"vendor": "groq", "api_endpoint": "https://gw.example/v1"}, format="json"
    )
    assert typed.json()["api_endpoint"] == "https://gw.example/v1"
    kept = admin_api.patch(f"/api/v1/llms/{groq['id']}/", {"vendor": "deepseek"}, format="json")
    assert kept.json()["api_endpoint"] == "https://gw.example/v1"
