"""An LLM's deployment fields (issue 14): `weight` (1..1000), `priority` (0..100), the optional circuit
breaker `breaker_cooldown_s` (1..3600 s) and the timeouts (connect 0.1..300 s, first byte 0.1..3600 s): defaults, validation in the API (DRF errors) and the admin form, and
carried to edges in the snapshot."""

from __future__ import annotations

import pytest

from control_plane.llms.models import LLM
from control_plane.sync.selectors import snapshot_build

from .test_admin_chain import LLM_FORM, _inline

pytestmark = pytest.mark.django_db

LLM_DATA = {"name": "East", "slug": "east", "vendor": "openai", "api_endpoint": "https://api.example/v1"}


def test_defaults_and_changes_reach_the_snapshot(admin_api):
    created = admin_api.post("/api/v1/llms/", LLM_DATA, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["weight"], body["priority"], body["breaker_cooldown_s"]) == (1, 0, None)
    (llm,) = snapshot_build(namespace="").llms
    assert (llm.weight, llm.priority, llm.breaker_cooldown_s) == (1, 0, None)

    changed = admin_api.patch(
        f"/api/v1/llms/{body['id']}/", {"weight": 3, "priority": 10, "breaker_cooldown_s": 5}, format="json"
    )
    assert changed.status_code == 200, changed.content
    (llm,) = snapshot_build(namespace="").llms
    assert (llm.weight, llm.priority, llm.breaker_cooldown_s) == (3, 10, 5.0)


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("weight", 0),
        ("weight", 1001),
        ("weight", "heavy"),
        ("priority", -1),
        ("priority", 101),
        ("breaker_cooldown_s", 0.5),
        ("breaker_cooldown_s", 7200),
        ("connect_timeout_s", 0.01),
        ("connect_timeout_s", 301),
        ("first_byte_timeout_s", 1e308),
        ("first_byte_timeout_s", "inf"),
        ("first_byte_timeout_s", "nan"),
    ],
)
def test_values_out_of_range_are_validation_errors(admin_api, field, bad):
    refused = admin_api.post("/api/v1/llms/", {**LLM_DATA, field: bad}, format="json")
    assert refused.status_code == 400, refused.content
    assert field in refused.json()["extra"]["fields"]
    assert not LLM.objects.exists()


def test_the_admin_form_takes_weight_and_priority_and_refuses_bad_ones(client, admin_user):
    client.force_login(admin_user)
    form = {**LLM_FORM, **_inline([], 0)}
    refused = client.post("/admin/llms/llm/add/", {**form, "weight": "0"})
    assert refused.status_code == 200 and b"greater than or equal to 1" in refused.content
    saved = client.post("/admin/llms/llm/add/", {**form, "weight": "7", "priority": "2"})
    assert saved.status_code == 302, saved.content[:500]
    llm = LLM.objects.get(slug="l")
    assert (llm.weight, llm.priority, llm.breaker_cooldown_s) == (7, 2, None)
