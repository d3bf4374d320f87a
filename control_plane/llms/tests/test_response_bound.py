"""An LLM's `max_response_bytes` (the largest vendor reply its edges read): set through the API, validated,
and carried to edges in the snapshot."""

from __future__ import annotations

import pytest

from control_plane.llms.models import LLM
from control_plane.sync.selectors import snapshot_build

from .test_admin_chain import LLM_FORM, _inline

pytestmark = pytest.mark.django_db

LLM_DATA = {"name": "Bounded", "slug": "bounded", "vendor": "openai", "api_endpoint": "https://api.example/v1"}


def test_the_bound_defaults_to_32_mib_and_reaches_the_snapshot(admin_api):
    created = admin_api.post("/api/v1/llms/", LLM_DATA, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["max_response_bytes"] == 32 * 1024 * 1024

    changed = admin_api.patch(f"/api/v1/llms/{created.json()['id']}/", {"max_response_bytes": 8 << 20}, format="json")
    assert changed.status_code == 200, changed.content
    (llm,) = snapshot_build(namespace="").llms
    assert llm.max_response_bytes == 8 << 20


@pytest.mark.parametrize("bad", [100, 2 << 30, -1, "lots"])
def test_a_bound_out_of_range_is_a_validation_error(admin_api, bad):
    refused = admin_api.post("/api/v1/llms/", {**LLM_DATA, "max_response_bytes": bad}, format="json")
    assert refused.status_code == 400
    assert "max_response_bytes" in refused.json()["extra"]["fields"]


def test_the_admin_form_takes_the_bound_and_refuses_a_bad_one(client, admin_user):
    client.force_login(admin_user)
    form = {**LLM_FORM, **_inline([], 0)}
    refused = client.post("/admin/llms/llm/add/", {**form, "max_response_bytes": "100"})
    assert refused.status_code == 200 and b"greater than or equal to 1024" in refused.content
    saved = client.post("/admin/llms/llm/add/", {**form, "max_response_bytes": str(4 << 20)})
    assert saved.status_code == 302, saved.content[:500]
    assert LLM.objects.get(slug="l").max_response_bytes == 4 << 20
