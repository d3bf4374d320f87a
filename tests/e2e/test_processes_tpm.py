"""Tokens per minute and a budget's `reserved` across edges, through real processes: PostgreSQL, nats-server, the
bridge, two edges and the mock LLM (docs/governance.md). An app's tpm limit L admits at most L tokens plus one
request's in a fixed minute over all edges, bursts included; the API's `reserved` shows what an edge's lease
holds beyond what it spent."""

from __future__ import annotations

import threading
import time
import uuid
from decimal import Decimal

import pytest

from control_plane.applications.models import App
from control_plane.budgets.models import BudgetLease
from control_plane.budgets.services import budget_create

from .cluster import MODEL, config_version, http, seed_namespace, wait_until

pytestmark = [pytest.mark.timeout(300)]

CLIENTS = 16
PER_CLIENT = 5
TPM = 300


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


def test_an_unpaced_burst_over_two_edges_admits_at_most_the_tpm_limit_plus_one_request(cluster, capsys):
    cluster.start_mock("--latency-ms", "20")
    seed = seed_namespace("ns-t", cluster.mock_url)
    App.objects.filter(pk=seed.app_id).update(rate_limit_tpm=TPM)
    cluster.start_bridge()
    edges = [cluster.start_edge(cluster.add_edge(name, "ns-t")) for name in ("t1", "t2")]
    wait_until(lambda: all(_applied(edge, "ns-t") for edge in edges), message="config at both edges")
    while time.time() % 60 > 35:  # the whole burst inside one fixed minute
        time.sleep(0.5)
    counts: dict[int, int] = {}
    tokens: list[int] = []
    lock = threading.Lock()

    def client(index: int) -> None:
        for turn in range(PER_CLIENT):
            status, body, _ = http(
                "POST",
                f"{edges[index % 2].url}/v1/chat/completions",
                body={"model": MODEL, "messages": [{"role": "user", "content": f"hi {index} {turn}"}], "max_tokens": 8},
                headers={"authorization": f"Bearer {seed.key}", "x-request-id": uuid.uuid4().hex},
                timeout=20,
            )
            with lock:
                counts[status] = counts.get(status, 0) + 1
                if status == 200:
                    tokens.append(body["usage"]["total_tokens"])

    started = time.time()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert int(started // 60) == int(time.time() // 60), "the burst stayed inside one minute"
    with capsys.disabled():
        print(f"\ntpm {TPM} over 2 edges: {len(tokens)} answered, {sum(tokens)} tokens, {counts.get(429, 0)} refused")
    assert set(counts) <= {200, 429}, counts
    assert counts.get(429, 0) > 0, "the limit was reached"
    assert sum(tokens) <= TPM + max(tokens), f"{sum(tokens)} tokens admitted under {TPM} per minute"
    assert sum(tokens) >= TPM // 3, "the limit is not left mostly unused"
    assert all(edge.ready()["governance"]["ledger_reachable"] for edge in edges)


def test_reserved_in_the_api_is_what_an_edges_lease_holds_beyond_its_spend(cluster, admin_api):
    seed = seed_namespace("ns-v", cluster.mock_url)
    budget = budget_create(
        data={"scope": "app", "app": App.objects.get(pk=seed.app_id), "limit": Decimal("1"), "action": "block"}
    )
    cluster.start_bridge()
    edge = cluster.start_edge(cluster.add_edge("v1", "ns-v"))
    wait_until(lambda: _applied(edge, "ns-v"), message="config")
    assert edge.chat(seed.key)[0] == 200, "the first request obtains a lease"
    granted = BudgetLease.objects.get(budget=budget, edge_id="v1").granted
    assert granted > 0

    def settled():
        row = admin_api.get(f"/api/v1/budgets/{budget.pk}/").json()
        return row if Decimal(row["spent"]) > 0 else None

    row = wait_until(settled, 20, "the request's spend in the API")
    spent, reserved = Decimal(row["spent"]), Decimal(row["reserved"])
    assert reserved == granted - spent > 0, "the rest of the edge's slice is held, not free"
    assert Decimal(row["remaining"]) == Decimal(1) - granted
    assert [(e["edge_id"], Decimal(e["reserved"])) for e in row["by_edge"]] == [("v1", reserved)]
