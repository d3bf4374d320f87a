"""A studio plugin's LLM call is accounted like an edge's: LLM budgets can refuse it, and it lands in analytics
and in the budget spend the edges are told about, attributed to the pseudo-edge `studio`.

The vendor is the real mock LLM (`fjordgate.mock_llm`) in its own process, the plugin runs in the studio host
through `call_plugin`, and every row is read back from PostgreSQL.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from decimal import Decimal

import httpx
import pytest

from control_plane.analytics.models import AnalyticsEvent, BudgetUsageRecord
from control_plane.analytics.selectors import budget_spend_for_snapshot
from control_plane.analytics.services import analytics_ingest_batches
from control_plane.budgets.services import budget_create, budget_update
from control_plane.catalog.services import model_price_upsert
from control_plane.kv.services import kv_read
from control_plane.llms.services import llm_create
from control_plane.plugins.runtime import call_plugin
from control_plane.plugins.services import plugin_register
from control_plane.sync.selectors import snapshot_build
from fjordgate.embedded import free_port
from shared_sdk import PluginCallError
from shared_sdk.messages import BudgetUsage, Schedule
from shared_sdk.sync_protocol import TelemetryBatch

pytestmark = pytest.mark.django_db(transaction=True)  # the studio services read and write on their own threads

VENDOR_KEY = "sk-studio-vendor-key"
MODEL = "mock-gpt"
PROMPT_PRICE = Decimal("1000")  # per million tokens: a token costs 0.001, so costs show in four decimals
COMPLETION_PRICE = Decimal("2000")


@pytest.fixture
def mock_url(processes) -> str:
    port = free_port()
    processes(
        [sys.executable, "-m", "fjordgate.mock_llm", "--port", str(port), "--require-key", VENDOR_KEY],
        ready_url=f"http://127.0.0.1:{port}/health",
        name="mock-llm",
    )
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def llm(mock_url):
    model_price_upsert(
        data={
            "vendor": "openai",
            "model": MODEL,
            "prompt_per_million": PROMPT_PRICE,
            "completion_per_million": COMPLETION_PRICE,
        }
    )
    plugin_register(data={"slug": "llm-caller", "import_path": "control_plane.plugins.tests.plugins:LLMCaller"})
    return llm_create(
        data={
            "name": "Mock",
            "slug": "mock",
            "vendor": "openai",
            "api_endpoint": f"{mock_url}/v1",
            "api_key": VENDOR_KEY,
            "default_model": MODEL,
        }
    )


def _ask(llm, prompt: str = "Hello, world", max_tokens: int = 16) -> dict:
    """What a studio plugin gets back from `ctx.services.studio.call_llm`."""
    config = {"llm_id": llm.pk, "prompt": prompt, "max_tokens": max_tokens}
    call_plugin("llm-caller", "execute_scheduled_task", Schedule(id="job", config=config))
    answer = kv_read(plugin_slug="llm-caller", key="answer")
    assert answer is not None
    return json.loads(answer)


def _vendor_calls(mock_url: str) -> int:
    stats = httpx.get(f"{mock_url}/_mock/stats", timeout=5).json()
    return stats["by_path"].get("/v1/chat/completions", 0)


def _llm_budget(llm, limit: str, action: str = "block"):
    return budget_create(data={"scope": "llm", "llm": llm, "limit": Decimal(limit), "action": action})


def _edge_spent(llm, cost: str, edge_id: str = "edge-1") -> None:
    """Spend an edge reported for this LLM, ingested as the bridge ingests telemetry."""
    usage = BudgetUsage(llm_id=llm.pk, cost=Decimal(cost), tokens_used=10, timestamp=time.time())
    analytics_ingest_batches(
        [
            TelemetryBatch(
                batch_id=uuid.uuid4().hex,
                edge_id=edge_id,
                namespace="",
                created_at=time.time(),
                budget_usage=[usage],
            )
        ]
    )


def test_a_studio_call_is_recorded_as_studio_traffic_and_counts_against_the_llm_budget(llm, mock_url):
    budget = _llm_budget(llm, "5")
    answer = _ask(llm)
    assert answer["content"] == "Echo: Hello, world"
    assert answer["prompt_tokens"] > 0 and answer["completion_tokens"] > 0
    assert _vendor_calls(mock_url) == 1

    cost = (answer["prompt_tokens"] * PROMPT_PRICE + answer["completion_tokens"] * COMPLETION_PRICE) / 1_000_000
    row = AnalyticsEvent.objects.get()
    assert (row.edge_id, row.llm_id, row.llm_slug, row.vendor, row.model, row.status_code) == (
        "studio",
        llm.pk,
        "mock",
        "openai",
        MODEL,
        200,
    )
    assert (row.prompt_tokens, row.completion_tokens, row.cost) == (
        answer["prompt_tokens"],
        answer["completion_tokens"],
        cost,
    )
    assert row.context["metadata"] == {"source": "studio", "plugin": "llm-caller"}
    usage = BudgetUsageRecord.objects.get()
    assert (usage.edge_id, usage.llm_id, usage.cost, usage.request_id) == ("studio", llm.pk, cost, row.request_id)

    # The spend the bridge pushes to the edges for this budget now includes the studio's call.
    (spend,) = [s for s in budget_spend_for_snapshot(snapshot=snapshot_build(namespace="")) if s.budget_id == budget.pk]
    assert spend.by_edge == {"studio": cost}


def test_an_llm_budget_exhausted_by_edge_traffic_refuses_the_call_before_the_vendor_sees_it(llm, mock_url):
    _llm_budget(llm, "0.01")
    _edge_spent(llm, "0.01")
    with pytest.raises(PluginCallError) as err:
        _ask(llm)
    # The edge's 402 message, word for word.
    assert (
        "llm budget exhausted: 0.0100 of 0.010000 USD spent this period (this request could cost up to "
        in err.value.detail
    )
    assert _vendor_calls(mock_url) == 0
    refused = AnalyticsEvent.objects.get(edge_id="studio")
    assert (refused.status_code, refused.error_type, refused.cost, refused.total_tokens) == (
        402,
        "budget_exceeded",
        0,
        0,
    )


def test_the_studios_own_spend_exhausts_the_budget_and_notify_budgets_never_block(llm, mock_url):
    _llm_budget(llm, "1000", action="notify")
    budget = _llm_budget(llm, "5")
    _ask(llm)
    spent = BudgetUsageRecord.objects.get(edge_id="studio").cost
    budget_update(budget=budget, data={"limit": spent.quantize(Decimal("0.000001"))})  # whole tokens: exact
    with pytest.raises(PluginCallError) as err:
        _ask(llm)
    assert f"llm budget exhausted: {spent:.4f} of" in err.value.detail
    assert _vendor_calls(mock_url) == 1

    budget_update(budget=budget, data={"action": "notify"})  # the same exhausted budget, now only notifying
    assert _ask(llm, prompt="again")["content"] == "Echo: again"
    assert _vendor_calls(mock_url) == 2


def test_a_budget_held_by_edge_leases_refuses_the_studio_call_and_a_call_settles_its_hold(llm, mock_url):
    from control_plane.budgets.leasing import budget_lease_grant
    from control_plane.budgets.models import BudgetLease
    from shared_sdk.sync_protocol import LeaseAsk

    budget = _llm_budget(llm, "5")
    _ask(llm)
    (held,) = BudgetLease.objects.filter(edge_id="studio")
    spent = BudgetUsageRecord.objects.get(edge_id="studio").cost
    assert held.used == spent and held.granted == spent, "the hold was swapped for the real cost"

    ask = LeaseAsk(
        budget_id=budget.pk, period_start=budget.period_start.timestamp(), need=Decimal("5"), unit=Decimal("1")
    )
    budget_lease_grant(edge_id="e1", namespace="", asks=[ask])  # an edge holds all that is left
    with pytest.raises(PluginCallError) as err:
        _ask(llm)
    assert "held by requests in flight across the edges" in err.value.detail
    assert _vendor_calls(mock_url) == 1, "refused before the vendor saw it"


def test_a_studio_call_to_a_gemini_llm_speaks_generate_content(llm, mock_url):
    """Vendor `google` is accepted by the control plane and called in Gemini's own format."""
    gemini = llm_create(
        data={
            "name": "Gemini",
            "slug": "gemini",
            "vendor": "google",
            "api_endpoint": mock_url,
            "api_key": VENDOR_KEY,
            "default_model": "gemini-2.5-flash",
        }
    )
    answer = _ask(gemini, prompt="Hello, Gemini")
    assert answer["content"] == "Echo: Hello, Gemini"
    assert answer["prompt_tokens"] == 3 and answer["completion_tokens"] == 5
    stats = httpx.get(f"{mock_url}/_mock/stats", timeout=5).json()
    assert stats["by_path"].get("/v1beta/models/gemini-2.5-flash:generateContent") == 1


def test_a_studio_call_to_a_vertex_llm_without_a_key_is_refused_before_any_vendor_call(llm, mock_url):
    """Azure, Vertex AI and Bedrock are spoken (`test_studio_cloud_vendors`); an LLM whose credentials cannot make a
    call is refused clearly, before its budget or the vendor is asked."""
    vertex = llm_create(
        data={
            "name": "Vertex",
            "slug": "vertex",
            "vendor": "vertex",
            "metadata": {"region": "us-central1", "project": "fjord-proj"},
            "api_endpoint": mock_url,
            "default_model": "gemini-2.5-flash",
        }
    )
    with pytest.raises(PluginCallError) as err:
        _ask(vertex)
    assert "LLM 'vertex' on Google Vertex AI (Gemini) needs a service-account JSON key" in err.value.detail
    assert httpx.get(f"{mock_url}/_mock/stats", timeout=5).json()["requests_total"] == 0
    assert not AnalyticsEvent.objects.exists()


def test_a_blocking_budget_in_another_currency_than_the_price_refuses_the_call_as_the_edge_does(llm, mock_url):
    """A EUR budget stored before the currency rule (the services refuse writing it now) over a USD price: the
    call is refused before the vendor is called, as at the edge, rather than holding USD on the EUR limit."""
    from django.utils import timezone

    from control_plane.budgets.models import Budget
    from control_plane.budgets.periods import period_bounds

    start, end = period_bounds("monthly", timezone.now(), None)
    euros = {"scope": "llm", "llm": llm, "limit": Decimal("100"), "period_start": start, "period_end": end}
    Budget.objects.create(**euros, currency="EUR", action="notify")
    assert _ask(llm)["content"]  # a notify budget in EUR neither blocks nor counts it
    served = _vendor_calls(mock_url)
    Budget.objects.create(**euros, currency="EUR")
    with pytest.raises(PluginCallError) as err:
        _ask(llm)
    assert "llm budget in EUR cannot count this request: model mock-gpt is priced in USD" in err.value.detail
    assert _vendor_calls(mock_url) == served
