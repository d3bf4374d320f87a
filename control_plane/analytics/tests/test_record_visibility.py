"""What the edges ship (budget usage, proxy logs, plugin payloads, the usage summaries) is shown in the admin only
for the namespaces the user may view, like the analytics events: a viewer of team-a listed team-b's calls (paths,
apps, users, spend) and the per-user usage of every namespace."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from control_plane.accounts.models import NamespaceRole
from control_plane.analytics.models import BudgetUsageRecord, EdgePayloadRecord, ProxyLogRecord
from control_plane.analytics.usage_summaries import SUMMARY_PREFIX, USAGE_SUMMARY_IMPORT_PATH
from control_plane.kv.services import kv_write
from control_plane.plugins.models import Plugin

pytestmark = pytest.mark.django_db
NAMESPACES = ("team-a", "team-b", "")


@pytest.fixture
def shipped():
    now = timezone.now()
    for i, ns in enumerate(NAMESPACES):
        common = {"record_id": f"r-{i}", "timestamp": now, "namespace": ns, "app_id": 100 + i}
        BudgetUsageRecord.objects.create(**common, cost=1)
        ProxyLogRecord.objects.create(**common, method="POST", path=f"/v1/{ns or 'global'}/chat/completions")
        EdgePayloadRecord.objects.create(
            record_id=f"p-{i}", plugin_slug="usage", edge_id=f"edge-{ns}", namespace=ns, payload=b"{}",
            edge_timestamp=now, received_timestamp=now,
        )  # fmt: skip
    Plugin.objects.create(slug="usage", name="usage", import_path=USAGE_SUMMARY_IMPORT_PATH)
    for ns in NAMESPACES:
        summary = {"namespace": ns, "edge_id": f"edge-{ns}", "window_end": now.timestamp(), "users": [
            {"app_id": 100, "user_id": 7, "requests": 1, "tokens": 10, "cost": "0.1", "currency": "USD"}]}  # fmt: skip
        kv_write(plugin_slug="usage", key=f"{SUMMARY_PREFIX}{ns or 'global'}", value=json.dumps(summary).encode())


@pytest.fixture
def viewer_a():
    user = get_user_model().objects.create_user("viewer-a", password="pw-Viewer-123456!", is_staff=True)
    NamespaceRole.objects.create(user=user, namespace="team-a", role="viewer")
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("model", [BudgetUsageRecord, ProxyLogRecord, EdgePayloadRecord], ids=lambda m: m.__name__)
def test_a_viewer_of_one_namespace_lists_only_its_and_the_global_records(shipped, viewer_a, model):
    url = f"/admin/analytics/{model._meta.model_name}/"
    listing = viewer_a.get(url)
    assert listing.status_code == 200
    assert sorted(row.namespace for row in listing.context["cl"].result_list) == ["", "team-a"]
    hidden = model.objects.get(namespace="team-b")
    assert viewer_a.get(f"{url}{hidden.pk}/change/").status_code in (302, 404)


def test_the_usage_summaries_show_only_the_viewable_namespaces(shipped, viewer_a, admin_client):
    page = viewer_a.get("/admin/analytics/edgepayloadrecord/usage-summaries/")
    assert page.status_code == 200
    assert sorted(row["namespace"] for row in page.context["rows"]) == ["", "team-a"]
    everything = admin_client.get("/admin/analytics/edgepayloadrecord/usage-summaries/")
    assert sorted(row["namespace"] for row in everything.context["rows"]) == ["", "team-a", "team-b"]
