"""The outbox and the snapshot an edge receives."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.conf import settings

from control_plane.applications.services import app_create, credential_create, credential_revoke
from control_plane.budgets.services import budget_create
from control_plane.catalog.services import model_price_upsert
from control_plane.llms.services import llm_create, llm_set_plugin_chain
from control_plane.sync.models import ConfigChange
from control_plane.sync.selectors import config_changes_unpublished, snapshot_build
from control_plane.sync.services import config_change_mark_published
from shared_sdk.snapshot import decode_snapshot, encode_snapshot, snapshot_checksum

pytestmark = pytest.mark.django_db


def test_snapshot_has_global_and_own_namespace_only(register_plugin):
    plugin = register_plugin("configured", "ConfiguredPlugin", config={"mode": "log"})
    glob = llm_create(
        data={
            "name": "G",
            "slug": "g",
            "vendor": "openai",
            "api_endpoint": "https://a.example",
            "api_key": "sk-global-123",
        }
    )
    llm_create(
        data={"name": "E", "slug": "e", "vendor": "mock", "api_endpoint": "https://b.example", "namespace": "eu"}
    )
    llm_create(
        data={"name": "U", "slug": "u", "vendor": "mock", "api_endpoint": "https://c.example", "namespace": "us"}
    )
    llm_set_plugin_chain(llm=glob, chain=[{"plugin": plugin, "config_override": {"mode": "block"}}])
    app = app_create(data={"name": "a", "namespace": "eu", "llm_ids": [glob.pk], "approved": True})
    _, key = credential_create(app=app)
    revoked, _ = credential_create(app=app)
    credential_revoke(credential=revoked)
    model_price_upsert(data={"vendor": "openai", "model": "gpt-4o", "prompt_per_million": "2.5"})
    budget_create(data={"scope": "app", "app": app, "limit": "10"})

    snap = snapshot_build(namespace="eu")
    assert sorted(x.slug for x in snap.llms) == ["e", "g"]
    g = next(x for x in snap.llms if x.slug == "g")
    assert Fernet(settings.FJORDGATE_EDGE_SECRET).decrypt(g.api_key_encrypted.encode()) == b"sk-global-123"
    assert g.plugin_chain[0].config == {"mode": "block", "threshold": 3, "enabled": True}
    assert [c.prefix for c in snap.credentials] == [key[:12]]
    assert snap.prices[0].prompt_per_million == snap.prices[0].prompt_per_million.__class__("2.5")
    assert snap.budgets[0].target_id == app.pk and snap.budgets[0].scope == "app"
    assert snap.checksum == snapshot_checksum(snap)
    assert decode_snapshot(encode_snapshot(snap)) == snap
    assert snapshot_build(namespace="eu").checksum == snap.checksum  # same version, same checksum
    assert [a.id for a in snapshot_build(namespace="us").apps] == []


def test_versions_increase_and_global_change_bumps_every_namespace():
    llm_create(
        data={"name": "E", "slug": "e", "vendor": "mock", "api_endpoint": "https://b.example", "namespace": "eu"}
    )
    eu_version = snapshot_build(namespace="eu").version
    us_version = snapshot_build(namespace="us").version
    model_price_upsert(data={"vendor": "mock", "model": "m"})  # global
    assert snapshot_build(namespace="eu").version > eu_version
    assert snapshot_build(namespace="us").version > us_version


def test_unpublished_changes_and_marking_them_published():
    llm_create(
        data={"name": "E", "slug": "e", "vendor": "mock", "api_endpoint": "https://b.example", "namespace": "eu"}
    )
    pending = list(config_changes_unpublished())
    assert pending and pending[-1].namespace == "eu"
    assert config_change_mark_published(namespace="eu", up_to_version=pending[-1].version) >= 1
    assert not config_changes_unpublished().filter(namespace="eu").exists()
    assert ConfigChange.objects.filter(namespace="eu", published_at__isnull=False).exists()


def test_failed_write_leaves_no_config_change():
    before = ConfigChange.objects.count()
    with pytest.raises(Exception):  # noqa: B017 - any validation error; the point is the rollback
        llm_create(
            data={
                "name": "bad",
                "slug": "bad",
                "vendor": "mock",
                "api_endpoint": "https://x.example",
                "fallbacks": [{"llm_slug": "missing"}],
            }
        )
    assert ConfigChange.objects.count() == before


def test_push_config_api(admin_api):
    response = admin_api.post("/api/v1/config-changes/push/", {"namespace": "eu"}, format="json")
    assert response.status_code == 201 and response.json()["namespace"] == "eu"
    assert "push requested by root" in response.json()["reason"]


def test_studio_only_plugins_stay_out_of_the_snapshot(register_plugin):
    """A plugin with no request-path capability (here: object hooks only) would be loaded at every edge for
    nothing; a plugin an edge calls (post-auth) ships, and so does any plugin an LLM chain names."""
    register_plugin("hooks-only", "RecordingPlugin")
    register_plugin("edge-side", "EdgeSidePlugin")

    slugs = [p.slug for p in snapshot_build(namespace="").plugins]

    assert "edge-side" in slugs
    assert "hooks-only" not in slugs


def test_a_models_input_limit_reaches_the_edges_and_bounds_are_at_least_one(admin_api):
    """`max_input_tokens` (the context window) travels in the snapshot, where the edge caps input reservations
    with it; an input or output limit below one token would reserve nothing: a DRF validation error naming the
    field, and a 0 stored before the output limit's validator existed reaches the edges as the default."""
    from control_plane.catalog.models import ModelPrice
    from shared_sdk.snapshot import DEFAULT_MAX_OUTPUT_TOKENS

    created = admin_api.post(
        "/api/v1/model-prices/",
        {"vendor": "openai", "model": "gpt-4o", "prompt_per_million": "2.5", "max_input_tokens": 128_000},
        format="json",
    )
    assert created.status_code == 201, created.json()
    assert created.json()["max_input_tokens"] == 128_000
    for field, value in [
        ("max_input_tokens", 0),
        ("max_output_tokens", 0),
        ("max_input_tokens", -5),
        ("max_input_tokens", 2**40),  # beyond the column: a validation error, not PostgreSQL's 500
        ("max_input_tokens", "lots"),
        ("max_output_tokens", None),
    ]:
        refused = admin_api.patch(f"/api/v1/model-prices/{created.json()['id']}/", {field: value}, format="json")
        assert refused.status_code == 400 and field in refused.json()["extra"]["fields"], (value, refused.json())
    cleared = admin_api.patch(
        f"/api/v1/model-prices/{created.json()['id']}/", {"max_input_tokens": None}, format="json"
    )
    assert cleared.status_code == 200 and cleared.json()["max_input_tokens"] is None
    admin_api.patch(f"/api/v1/model-prices/{created.json()['id']}/", {"max_input_tokens": 128_000}, format="json")
    ModelPrice.objects.create(vendor="openai", model="legacy", max_output_tokens=0)  # as an older release stored it

    snap = snapshot_build(namespace="eu")
    prices = {p.model: p for p in snap.prices}
    assert prices["gpt-4o"].max_input_tokens == 128_000
    assert prices["legacy"].max_output_tokens == DEFAULT_MAX_OUTPUT_TOKENS
    # a price without an input limit is encoded as before the field existed: an edge of an earlier release, which
    # hashes the fields it knows, still accepts the snapshot
    assert not prices["legacy"].max_input_tokens
    assert encode_snapshot(snap).count(b'"max_input_tokens"') == 1
    assert decode_snapshot(encode_snapshot(snap)) == snap
