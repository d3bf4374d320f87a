"""A budget counts only prices in its own currency, at the edge as in the control plane. A request priced in USD
under a blocking EUR budget (configuration older than the control plane's rule, or a snapshot from an older
control plane) is refused before the vendor is called, in the caller's format, naming the budget and both
currencies; a notify budget in EUR does not count it. Before, USD costs were reserved and spent on the EUR limit
as if they were euros, while the control plane counted none of them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import anthropic
import httpx
import openai
import pytest

from shared_sdk import AnalyticsRecord

from .support import CLIENT_KEY, OTHER_KEY, AppConfig, BudgetConfig, make_snapshot, run_edge

HI = [{"role": "user", "content": "hi"}]


def _upstream_calls(upstream: str) -> int:
    return len(httpx.get(f"{upstream}/_mock/requests", timeout=5).json()["data"])


def _both_apps_on_the_llm(upstream: str, budgets: list[BudgetConfig]) -> Any:
    apps = [AppConfig(id=1, name="app-one", llm_ids=[1]), AppConfig(id=2, name="app-two", llm_ids=[1])]
    return make_snapshot(upstream, apps=apps, budgets=budgets)


def test_a_blocking_budget_in_another_currency_refuses_before_the_call(upstream: str, tmp_path: Any) -> None:
    eur = BudgetConfig(id=1, scope="app", target_id=1, limit=Decimal("100"), currency="EUR")
    with run_edge(_both_apps_on_the_llm(upstream, [eur]), tmp_path) as edge:
        before = _upstream_calls(upstream)
        client = openai.OpenAI(base_url=f"{edge.url}/v1", api_key=CLIENT_KEY, max_retries=0)
        with pytest.raises(openai.APIStatusError) as refused:
            client.chat.completions.create(model="mock-gpt", max_tokens=10, messages=HI)  # type: ignore[arg-type]
        assert refused.value.status_code == 402
        error = refused.value.response.json()["error"]
        assert error["code"] == "budget_exceeded"
        assert "app budget in EUR" in error["message"] and "priced in USD" in error["message"]

        claude = anthropic.Anthropic(base_url=edge.url, api_key=CLIENT_KEY, max_retries=0)
        with pytest.raises(anthropic.APIStatusError) as also_refused:
            claude.messages.create(model="mock-gpt", max_tokens=10, messages=HI)  # type: ignore[arg-type]
        anthropic_error = also_refused.value.response.json()["error"]  # Anthropic has no 402: its billing_error
        assert (also_refused.value.status_code, anthropic_error["type"]) == (400, "billing_error")
        assert "app budget in EUR" in anthropic_error["message"] and "priced in USD" in anthropic_error["message"]

        assert _upstream_calls(upstream) == before  # the vendor was never called
        state = edge.edge.runtime.budgets.state(1)
        assert state is not None
        assert (state.spent, state.reserved, state.lease_used, state.own_spent) == (0, 0, 0, 0)

        # another app on the same LLM, without the EUR budget, is served as before
        other = openai.OpenAI(base_url=f"{edge.url}/v1", api_key=OTHER_KEY, max_retries=0)
        reply = other.chat.completions.create(model="mock-gpt", max_tokens=10, messages=HI)  # type: ignore[arg-type]
        assert reply.choices[0].message.content == "Echo: hi"
        assert _upstream_calls(upstream) == before + 1


def test_a_notify_budget_in_another_currency_does_not_count_the_request(upstream: str, tmp_path: Any) -> None:
    budgets = [
        BudgetConfig(id=1, scope="app", target_id=1, limit=Decimal("100"), currency="EUR", action="notify"),
        BudgetConfig(id=2, scope="app", target_id=1, limit=Decimal("100"), currency="USD"),
    ]
    with run_edge(_both_apps_on_the_llm(upstream, budgets), tmp_path) as edge:
        client = openai.OpenAI(base_url=f"{edge.url}/v1", api_key=CLIENT_KEY, max_retries=0)
        reply = client.chat.completions.create(model="mock-gpt", max_tokens=10, messages=HI)  # type: ignore[arg-type]
        assert reply.choices[0].message.content == "Echo: hi"
        (record,) = edge.sink.wait_for(AnalyticsRecord, 1)
        assert record.currency == "USD" and Decimal(str(record.cost)) > 0
        tracker = edge.edge.runtime.budgets
        eur, usd = tracker.state(1), tracker.state(2)
        assert eur is not None and usd is not None
        assert (eur.spent, eur.reserved, eur.lease_used, eur.own_spent) == (0, 0, 0, 0)
        assert usd.spent == usd.own_spent == Decimal(str(record.cost)) and usd.reserved == 0
