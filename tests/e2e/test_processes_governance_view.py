"""What an operator sees and does, through real processes (PostgreSQL, NATS, the bridge, two edges, the mock LLM):
the budget's spend appears in the API per edge and in total as telemetry is ingested, a threshold alert is
e-mailed by the bridge, and each kind of revocation stops the affected requests at both edges (latency printed)."""

from __future__ import annotations

import statistics
import time
from decimal import Decimal

import pytest
from django.db.models import Sum

from control_plane.analytics.models import BudgetUsageRecord
from control_plane.applications.models import App
from control_plane.budgets.models import Budget, BudgetAlert
from control_plane.budgets.services import budget_create

from .cluster import config_version, seed_namespace, wait_until
from .revocation import KINDS, run_victim, seed_victims

pytestmark = [pytest.mark.timeout(300)]


@pytest.fixture
def admin_api(cluster, django_user_model):
    from rest_framework.test import APIClient

    from control_plane.accounts.tokens import api_token_create

    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123456")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(owner=admin)[1]}")
    return client


def _applied(edge, namespace: str) -> bool:
    return edge.ready().get("version", 0) >= config_version(namespace)


def test_spend_per_edge_and_threshold_alerts_reach_the_api_and_the_operators_mailbox(cluster, admin_api, capsys):
    a = seed_namespace("ns-a", cluster.mock_url)
    budget = budget_create(
        data={
            "name": "watched",
            "scope": "app",
            "app": App.objects.get(pk=a.app_id),
            "limit": Decimal("1"),
            "action": "notify",
            "alert_thresholds": [1, 2],
            "notify_email": "ops@example.com",
        }
    )
    mailbox = cluster.tmp / "mail"
    cluster.bridge_env.update(
        FJORDGATE_EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        FJORDGATE_EMAIL_FILE_PATH=str(mailbox),
    )
    cluster.start_bridge()
    a1, a2 = cluster.start_edge(cluster.add_edge("a1", "ns-a")), cluster.start_edge(cluster.add_edge("a2", "ns-a"))
    wait_until(lambda: _applied(a1, "ns-a") and _applied(a2, "ns-a"), message="config at both edges")
    for edge, count in ((a1, 3), (a2, 2)):
        for _ in range(count):
            assert edge.chat(a.key)[0] == 200

    wait_until(lambda: BudgetUsageRecord.objects.filter(app_id=a.app_id).count() == 5, 20, "usage ingested")
    ingested = time.monotonic()
    per_edge = {
        row["edge_id"]: row["s"].quantize(Decimal("0.000001"))
        for row in BudgetUsageRecord.objects.filter(app_id=a.app_id).values("edge_id").annotate(s=Sum("cost"))
    }
    total = sum(per_edge.values(), Decimal("0"))
    assert set(per_edge) == {"a1", "a2"} and total > 0

    def api_shows_it():
        row = admin_api.get(f"/api/v1/budgets/{budget.pk}/").json()
        return row if Decimal(row["spent"]) == total else None

    row = wait_until(api_shows_it, 10, "the API shows the ingested spend")
    visible = time.monotonic()
    assert {e["edge_id"]: Decimal(e["spent"]) for e in row["by_edge"]} == per_edge
    assert Decimal(row["remaining"]) == max(Decimal("0"), Decimal("1") - total)
    with capsys.disabled():
        print(f"\nspend ingested -> visible in the API: {(visible - ingested) * 1000:.0f} ms")

    # 1 % of $1 is crossed by the first requests, 2 % when total >= 0.02: each fires once, the e-mail goes out
    crossed = [t for t in (1, 2) if total * 100 >= Decimal(t)]
    wait_until(lambda: BudgetAlert.objects.filter(budget=budget).count() == len(crossed), 10, "alerts fired")
    mails = wait_until(lambda: list(mailbox.glob("*.log")) if mailbox.exists() else [], 10, "alert e-mails")
    text = "".join(path.read_text() for path in mails)
    assert "ops@example.com" in text and "reached 1% of its limit" in text
    assert Budget.objects.get(pk=budget.pk).spent == total


def test_each_revocation_stops_the_victim_at_both_edges(cluster, capsys):
    a = seed_namespace("ns-a", cluster.mock_url)
    victims = seed_victims("ns-a", cluster.mock_url, a.llm_id)
    assert [v.kind for v in victims] == list(KINDS)
    cluster.start_bridge()
    a1, a2 = cluster.start_edge(cluster.add_edge("a1", "ns-a")), cluster.start_edge(cluster.add_edge("a2", "ns-a"))
    wait_until(lambda: _applied(a1, "ns-a") and _applied(a2, "ns-a"), message="config at both edges")
    edges = {"a1": a1.url, "a2": a2.url}
    for victim in victims:
        run_victim(victim, edges)
        assert a1.chat(a.key)[0] == 200 and a2.chat(a.key)[0] == 200, f"{victim.kind}: bystanders keep working"
    latencies = [ms for v in victims for ms in v.latencies_ms.values()]
    with capsys.disabled():
        print()
        for victim in victims:
            timings = ", ".join(f"{edge} {ms:.0f} ms" for edge, ms in sorted(victim.latencies_ms.items()))
            print(f"revocation {victim.kind:<20} refused at {timings}")
        print(f"revocation p50 {statistics.median(latencies):.0f} ms, max {max(latencies):.0f} ms")
