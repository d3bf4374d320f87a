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


def _service_account_json(**overrides: object) -> str:
    """A real service-account JSON key with a fresh RSA key (made here, at runtime)."""
    import json

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )
    info: dict[str, object] = {
        "type": "service_account",
        "project_id": "fjord-proj",
        "private_key": pem,
        "client_email": "edge@fjord-proj.iam.gserviceaccount.com",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    info.update(overrides)
    return json.dumps({k: v for k, v in info.items() if v is not None})


def test_vertex_needs_region_project_and_a_service_account_key(admin_api):
    base = {"name": "v", "slug": "v", "vendor": "vertex", "default_model": "gemini-2.5-flash"}
    meta = {"region": "europe-west4", "project": "fjord-proj"}
    no_region = admin_api.post("/api/v1/llms/", {**base, "metadata": {"project": "fjord-proj"}}, format="json")
    assert no_region.status_code == 400 and "us-central1" in str(no_region.json()["extra"]["fields"]["metadata"])
    aws_region = admin_api.post("/api/v1/llms/", {**base, "metadata": {**meta, "region": "eu-west-1"}}, format="json")
    assert aws_region.status_code == 400
    no_project = admin_api.post("/api/v1/llms/", {**base, "metadata": {"region": "europe-west4"}}, format="json")
    assert no_project.status_code == 400 and "metadata.project" in str(no_project.json()["extra"]["fields"])
    good_key = _service_account_json()
    secret_part = good_key.split("-----BEGIN PRIVATE KEY-----")[1][:40]
    for key, why in (
        ("sk-not-json", "not JSON"),
        (_service_account_json(client_email=None), "client_email missing"),
        (_service_account_json(token_uri=None), "token_uri missing"),
        (_service_account_json(private_key="-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n"), "PEM"),
        (_service_account_json(type="authorized_user"), "service_account"),
    ):
        refused = admin_api.post("/api/v1/llms/", {**base, "metadata": meta, "api_key": key}, format="json")
        assert refused.status_code == 400, key
        message = str(refused.json()["extra"]["fields"]["api_key"])
        assert "service-account JSON" in message and why in message
        assert "BEGIN PRIVATE KEY" not in refused.content.decode()
    created = admin_api.post("/api/v1/llms/", {**base, "metadata": meta, "api_key": good_key}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["api_endpoint"] == "https://europe-west4-aiplatform.googleapis.com"
    assert body["has_api_key"] is True and secret_part not in created.content.decode()
    assert vendor_key_decrypt(LLM.objects.get(slug="v").api_key_encrypted) == good_key
    moved = admin_api.patch(
        f"/api/v1/llms/{body['id']}/", {"metadata": {**meta, "region": "us-central1"}}, format="json"
    )
    assert moved.json()["api_endpoint"] == "https://us-central1-aiplatform.googleapis.com"
    (llm,) = snapshot_build(namespace="").llms
    assert llm.vendor == "vertex" and llm.metadata == {"region": "us-central1", "project": "fjord-proj"}
    assert secret_part not in llm.api_key_encrypted


def test_the_admin_form_shows_vertex_errors(client, admin_user):
    client.force_login(admin_user)
    form = {**LLM_FORM, **_inline([], 0), "vendor": "vertex", "api_endpoint": "", "slug": "vx"}
    refused = client.post("/admin/llms/llm/add/", form)
    assert refused.status_code == 200 and b"metadata.region" in refused.content
    with_meta = {**form, "metadata": '{"region": "us-central1", "project": "fjord-proj"}', "api_key": "not json"}
    refused = client.post("/admin/llms/llm/add/", with_meta)
    assert refused.status_code == 200 and b"service-account JSON key: the key is not JSON" in refused.content
