from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from control_plane.applications.models import App, Credential
from control_plane.sync.selectors import snapshot_build
from shared_sdk.snapshot import hash_credential

KEY = "fjg_demo_key_0123456789abcdefghijklmnop"


@pytest.mark.django_db
def test_seed_demo_is_idempotent_and_edge_ready():
    outputs = []
    for _ in range(2):
        out = StringIO()
        call_command(
            "seed_demo",
            "--namespace",
            "demo",
            "--upstream-url",
            "http://127.0.0.1:9999/v1",
            "--api-key",
            KEY,
            "--json",
            stdout=out,
        )
        outputs.append(json.loads(out.getvalue()))
    assert outputs[0] == outputs[1]
    assert App.objects.count() == 1 and Credential.objects.count() == 1
    snap = snapshot_build(namespace="demo")
    assert [c.key_hash for c in snap.credentials] == [hash_credential(KEY)]
    app = snap.apps[0]
    assert app.approved and app.active and app.llm_ids == [snap.llms[0].id]
    assert snap.llms[0].default_model == "mock-gpt" and snap.llms[0].api_base == "http://127.0.0.1:9999/v1"
    assert any(p.model == "mock-gpt" for p in snap.prices)


@pytest.mark.django_db
def test_seed_demo_rejects_short_key_clearly():
    with pytest.raises(CommandError, match="at least 20 characters"):
        call_command("seed_demo", "--upstream-url", "http://127.0.0.1:9999/v1", "--api-key", "short")
