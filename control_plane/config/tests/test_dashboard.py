"""The admin dashboard shows what the edges shipped up: requests, tokens and spend per app and per LLM."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal

import msgspec
import pytest

from control_plane.analytics.services import analytics_ingest_batches
from control_plane.applications.services import app_create
from control_plane.llms.services import llm_create
from shared_sdk.messages import AnalyticsRecord
from shared_sdk.sync_protocol import TelemetryBatch

pytestmark = pytest.mark.django_db


def _record(app_id: int, llm_id: int, tokens: int, cost: str, *, days_ago: float = 0) -> AnalyticsRecord:
    return AnalyticsRecord(
        record_id=uuid.uuid4().hex,
        request_id=uuid.uuid4().hex,
        app_id=app_id,
        llm_id=llm_id,
        model="mock-gpt",
        vendor="mock",
        status_code=200,
        prompt_tokens=tokens // 2,
        completion_tokens=tokens - tokens // 2,
        total_tokens=tokens,
        cost=Decimal(cost),
        currency="USD",
        timestamp=time.time() - days_ago * 86400,
    )


def test_dashboard_charts_usage_and_spend_per_app_and_per_llm(admin_client):
    llm = llm_create(data={"name": "Mock", "slug": "dash-mock", "vendor": "mock", "api_endpoint": "http://m.example"})
    alpha = app_create(data={"name": "alpha-app", "llm_ids": [llm.pk], "approved": True})
    beta = app_create(data={"name": "beta-app", "llm_ids": [llm.pk], "approved": True})
    records = [
        _record(alpha.pk, llm.pk, 100, "0.0125"),
        _record(alpha.pk, llm.pk, 50, "0.0100", days_ago=1),
        _record(beta.pk, llm.pk, 10, "0.0010"),
        _record(beta.pk, llm.pk, 4, "0.000007"),  # what one small request really costs
        _record(beta.pk, llm.pk, 999, "9.0000", days_ago=40),  # outside the default 14 days
    ]
    analytics_ingest_batches(
        [TelemetryBatch(batch_id="b1", edge_id="e1", namespace="", created_at=time.time(), analytics=records)]
    )

    page = admin_client.get("/admin/dashboard/").content.decode()

    assert "alpha-app: 2" in page and "beta-app: 2" in page  # requests
    assert "alpha-app: 150" in page and "beta-app: 14" in page  # tokens
    assert "alpha-app: 0.022500" in page and "beta-app: 0.001007" in page  # spend, exact decimals
    assert "dash-mock: 4" in page and "dash-mock: 164" in page  # the same traffic per LLM
    assert page.count("<polyline") == 3 * 2 + 3 * 1  # requests, tokens, spend: a line per app, then per LLM
    longer = admin_client.get("/admin/dashboard/?days=90").content.decode()
    assert "beta-app: 3" in longer and "beta-app: 9.001007" in longer


def test_dashboard_is_for_staff_only(client, django_user_model):
    user = django_user_model.objects.create_user("plain", password="pw-123456")
    client.force_login(user)
    response = client.get("/admin/dashboard/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_a_namespace_role_sees_only_the_usage_of_its_namespaces(client, django_user_model):
    from control_plane.accounts.models import NamespaceRole

    llm_a = llm_create(data={"name": "A", "slug": "llm-a", "vendor": "mock", "api_endpoint": "http://m.example"})
    llm_b = llm_create(
        data={"name": "B", "slug": "llm-b", "vendor": "mock", "api_endpoint": "http://m.example", "namespace": "team-b"}
    )
    ours = app_create(data={"name": "ours-app", "namespace": "team-a", "approved": True})
    theirs = app_create(data={"name": "theirs-app", "namespace": "team-b", "approved": True})
    analytics_ingest_batches(
        [
            TelemetryBatch(
                batch_id=f"b-{ns}", edge_id=f"e-{ns}", namespace=ns, created_at=time.time(), analytics=[record]
            )
            for ns, record in (
                ("team-a", _record(ours.pk, llm_a.pk, 10, "0.0010")),
                ("team-b", _record(theirs.pk, llm_b.pk, 777, "7.0000")),
            )
        ]
    )
    viewer = django_user_model.objects.create_user("viewer-a", password="pw-123456", is_staff=True)
    NamespaceRole.objects.create(user=viewer, namespace="team-a", role="viewer")
    client.force_login(viewer)

    page = client.get("/admin/dashboard/").content.decode()

    assert "ours-app: 1" in page and "llm-a: 10" in page
    assert "theirs-app" not in page and "llm-b" not in page and "777" not in page and "7.000000" not in page

    nobody = django_user_model.objects.create_user("staff-no-role", password="pw-123456", is_staff=True)
    client.force_login(nobody)
    assert client.get("/admin/dashboard/").status_code == 403


def test_small_spend_shows_its_maximum_and_rows_without_an_app_are_named(admin_client):
    """The spend chart's heading rounded to two decimals ("max 0.00" over a line of millionths), and the chat's and
    plugins' calls, which have no app, were labelled "unknown"."""
    llm = llm_create(data={"name": "Mock", "slug": "dash-mock", "vendor": "mock", "api_endpoint": "http://m.example"})
    record = _record(0, llm.pk, 84, "0.000127")
    analytics_ingest_batches(
        [
            TelemetryBatch(
                batch_id="b1",
                edge_id="e1",
                namespace="",
                created_at=time.time(),
                analytics=[msgspec.structs.replace(record, app_id=None)],
            )
        ]
    )
    page = admin_client.get("/admin/dashboard/").content.decode()
    assert "Cost per day (max 0.000127)" in page and "Requests per day (max 1)" in page
    assert "no app (chat, plugins): 1" in page and "unknown" not in page
