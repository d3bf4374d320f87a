"""Strict budgets across edges by quota leasing, through real processes: PostgreSQL, nats-server, the bridge,
two edges and the mock LLM with latency. 16 clients hammer both edges at once against a small budget, in plain,
streamed and native requests; what was answered costs at most the budget plus one request (docs/governance.md).
Then the bridge stops: a fail_closed budget refuses once the edge's lease is spent, a fail_open one serves."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
import uuid
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import Sum

from control_plane.analytics.models import BudgetUsageRecord
from control_plane.applications.models import App, Credential
from control_plane.budgets.services import budget_create
from control_plane.llms.models import LLM

from .cluster import MODEL, config_version, http, seed_namespace, wait_until

pytestmark = [pytest.mark.timeout(300)]

CLIENTS = 16
PER_CLIENT = 12


def _stream(url: str, key: str) -> int:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8, "stream": True}
    request = urllib.request.Request(
        f"{url}/v1/chat/completions",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"content-type": "application/json", "authorization": f"Bearer {key}"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=20) as response:
            text = response.read().decode()
            return 200 if "[DONE]" in text else 500
    except urllib.error.HTTPError as exc:
        return exc.code


def _native(url: str, key: str, slug: str) -> int:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}
    status, _, _ = http(
        "POST", f"{url}/llm/call/{slug}/chat/completions", body=body, headers={"authorization": f"Bearer {key}"}
    )
    return status


def _hammer(edges, key: str, slug: str) -> dict[int, int]:
    """16 clients over the edges, each sending plain, streamed and native requests in turn; status -> count."""
    counts: dict[int, int] = {}
    lock = threading.Lock()

    def client(index: int) -> None:
        url = edges[index % len(edges)].url
        for turn in range(PER_CLIENT):
            kind = (index + turn) % 3
            if kind == 0:
                status = http("POST", f"{url}/v1/chat/completions", body=_plain(), headers=_auth(key), timeout=20)[0]
            elif kind == 1:
                status = _stream(url, key)
            else:
                status = _native(url, key, slug)
            with lock:
                counts[status] = counts.get(status, 0) + 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return counts


def _plain() -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}


def _auth(key: str) -> dict:
    return {"authorization": f"Bearer {key}", "x-request-id": uuid.uuid4().hex}


def _spent(**where) -> Decimal:
    return BudgetUsageRecord.objects.filter(**where).aggregate(s=Sum("cost"))["s"] or Decimal(0)


def _target(scope: str, seed) -> dict:
    """The budget's target; a user (and the group it is in) is put on the app's key."""
    if scope == "app":
        return {"app": App.objects.get(pk=seed.app_id)}
    if scope == "llm":
        return {"llm": LLM.objects.get(pk=seed.llm_id)}
    user = get_user_model().objects.create_user(username=f"u-{uuid.uuid4().hex[:8]}")
    group = Group.objects.create(name=f"g-{uuid.uuid4().hex[:8]}")
    user.groups.add(group)
    Credential.objects.filter(app_id=seed.app_id).update(user=user)
    return {"user": user} if scope == "user" else {"group": group}


@pytest.mark.parametrize("scope", ["app", "user", "group", "llm"])
def test_sixteen_clients_on_two_edges_spend_at_most_the_budget(cluster, scope, capsys):
    cluster.start_mock("--latency-ms", "20")
    seed = seed_namespace("ns-l", cluster.mock_url)
    target = _target(scope, seed)
    limit = Decimal("0.25")
    budget_create(data={"scope": scope, **target, "limit": limit, "action": "block", "period": "monthly"})
    cluster.start_bridge()
    edges = [cluster.start_edge(cluster.add_edge(name, "ns-l")) for name in ("l1", "l2")]
    for edge in edges:
        wait_until(lambda e=edge: e.ready().get("version", 0) >= config_version("ns-l"), message="config")

    counts = _hammer(edges, seed.key, "mock-ns-l")
    answered = counts.get(200, 0)
    assert set(counts) <= {200, 402}, counts
    wait_until(lambda: BudgetUsageRecord.objects.filter(app_id=seed.app_id).count() >= sum(counts.values()), 30, "in")
    spent = _spent(app_id=seed.app_id)
    one = _spent(app_id=seed.app_id, cost__gt=0) / answered
    with capsys.disabled():
        print(f"\n{scope} budget {limit}: {answered} answered, {counts.get(402, 0)} refused, spent {spent}")
    assert counts.get(402, 0) > 0, "the budget ran out"
    assert spent <= limit + one, f"answered spend {spent} over the budget {limit} by more than one request"
    # strictness costs at most about one bound ($0.041 here) of headroom per edge plus one in the ledger at the end
    assert spent >= limit * Decimal("0.4"), "the budget is not left mostly unused"
    status = edges[0].ready()["governance"]
    assert status["leasing"] and status["ledger_reachable"] and status["lease_requests"] > 0


def test_without_the_bridge_fail_closed_refuses_after_the_lease_and_fail_open_serves(cluster):
    closed = seed_namespace("ns-c", cluster.mock_url)
    opened = seed_namespace("ns-o", cluster.mock_url)
    for seed, mode in ((closed, "fail_closed"), (opened, "fail_open")):
        budget_create(
            data={
                "scope": "app",
                "app": App.objects.get(pk=seed.app_id),
                "limit": Decimal("1"),
                "action": "block",
                "period": "monthly",
                "on_unreachable": mode,
            }
        )
    cluster.start_bridge()
    c1 = cluster.start_edge(cluster.add_edge("c1", "ns-c", EDGE_LEASE_TIMEOUT_S="0.3"))
    o1 = cluster.start_edge(cluster.add_edge("o1", "ns-o", EDGE_LEASE_TIMEOUT_S="0.3"))
    for edge, seed in ((c1, closed), (o1, opened)):
        wait_until(lambda e=edge, s=seed: e.ready().get("version", 0) >= config_version(s.namespace), message="cfg")
        assert edge.chat(seed.key)[0] == 200, "the first request obtains a lease"

    cluster.bridge.stop()
    served = 0
    while served < 400:  # the lease is a slice of the limit: some requests, then the end of what c1 holds
        status, body, _ = c1.chat(closed.key)
        if status == 402:
            assert body["error"]["code"] == "budget_exceeded"
            break
        assert status == 200, body
        served += 1
    assert 0 < served < 400, "c1 serves from its lease, then refuses"
    assert c1.ready()["governance"]["ledger_reachable"] is False
    metrics = http("GET", f"{c1.url}/metrics")[1]
    assert "fjordgate_edge_lease_ledger_reachable 0.0" in metrics and "fjordgate_edge_lease_failures_total" in metrics
    for _ in range(served + 10):
        assert o1.chat(opened.key)[0] == 200, "fail_open serves beyond the lease"
    assert o1.ready()["governance"]["served_fail_open"] > 0


def test_an_unpaced_burst_over_two_edges_admits_at_most_the_rpm_limit_plus_one(cluster):
    seed = seed_namespace("ns-r", cluster.mock_url)
    App.objects.filter(pk=seed.app_id).update(rate_limit_rpm=20)
    cluster.start_bridge()
    edges = [cluster.start_edge(cluster.add_edge(name, "ns-r")) for name in ("r1", "r2")]
    for edge in edges:
        wait_until(lambda e=edge: e.ready().get("version", 0) >= config_version("ns-r"), message="config")
    while time.time() % 60 > 40:  # the whole burst inside one fixed minute
        time.sleep(0.5)
    counts: dict[int, int] = {}
    lock = threading.Lock()

    def client(index: int) -> None:
        for _ in range(5):
            status = edges[index % 2].chat(seed.key)[0]
            with lock:
                counts[status] = counts.get(status, 0) + 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(counts) <= {200, 429}, counts
    assert 10 <= counts.get(200, 0) <= 21, f"{counts.get(200, 0)} admitted under a limit of 20 per minute"


def test_two_edges_of_two_workers_each_spend_at_most_the_budget(cluster, capsys):
    """`EDGE_WORKERS=2`: four lease holders (`<edge>/<worker>`) on two edges; the ledger sums each edge's worker
    leases against its spend, so the answered spend stays within the budget plus one request."""
    from control_plane.budgets.models import BudgetLease

    cluster.start_mock("--latency-ms", "20")
    seed = seed_namespace("ns-lw", cluster.mock_url)
    limit = Decimal("0.25")
    budget_create(data={"scope": "app", **_target("app", seed), "limit": limit, "action": "block", "period": "monthly"})
    cluster.start_bridge()
    edges = [cluster.start_edge(cluster.add_edge(name, "ns-lw", EDGE_WORKERS="2")) for name in ("w1", "w2")]

    def all_workers_configured(edge) -> bool:
        seen = {}
        for _ in range(30):
            ready = edge.ready()
            seen[ready.get("worker")] = ready.get("version", 0)
        return set(seen) == {"0", "1"} and min(seen.values()) >= config_version("ns-lw")

    for edge in edges:
        wait_until(lambda e=edge: all_workers_configured(e), 60, message="both workers configured")

    counts = _hammer(edges, seed.key, "mock-ns-lw")
    answered = counts.get(200, 0)
    assert set(counts) <= {200, 402}, counts
    wait_until(lambda: BudgetUsageRecord.objects.filter(app_id=seed.app_id).count() >= sum(counts.values()), 30, "in")
    spent = _spent(app_id=seed.app_id)
    one = _spent(app_id=seed.app_id, cost__gt=0) / answered
    holders = set(BudgetLease.objects.values_list("edge_id", flat=True))
    with capsys.disabled():
        print(f"\n2x2 workers, budget {limit}: {answered} answered, {counts.get(402, 0)} refused, spent {spent}")
        print(f"lease holders: {sorted(holders)}")
    assert counts.get(402, 0) > 0, "the budget ran out"
    assert spent <= limit + one, f"answered spend {spent} over the budget {limit} by more than one request"
    assert holders <= {"w1/0", "w1/1", "w2/0", "w2/1"} and len(holders) >= 3, holders
    assert set(BudgetUsageRecord.objects.filter(app_id=seed.app_id).values_list("edge_id", flat=True)) <= {"w1", "w2"}
