"""Budgets and analytics for the LLM calls studio plugins make (`StudioServicesImpl.call_llm`).

A studio plugin calls the vendor from the control plane, not through an edge, yet its calls cost the same money.
So they are accounted the way an edge accounts a request: before the call, the LLM's blocking budgets must take
the call's estimated cost (or it is refused with the edge's 402 message); after it, one analytics row and one
budget-usage row go in through the analytics ingest, from the pseudo-edge `studio`. The usage row is what makes
the spend count: the bridge sums usage rows per budget and period, whichever edge they came from.

A studio call has no app, so the LLM's budgets apply to it; a call made for a user (the portal's chat carries
`user_id`, and so does an agent plugin's call while it serves a chat turn) also answers to that user's budgets and their groups', as the same user's traffic does at an edge. Unlike the edge, there is no
reservation held while the call runs: studio calls are rare, and the next call sees the recorded spend.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from decimal import Decimal
from typing import Any, cast

from django.db.models import Q
from django.utils import timezone

from shared_sdk.messages import AnalyticsRecord, BudgetUsage, LLMMessage, PluginContextInfo
from shared_sdk.snapshot import BudgetConfig, BudgetPeriod, ConfigSnapshot, UserConfig
from shared_sdk.sync_protocol import TelemetryBatch

__all__ = [
    "STUDIO_EDGE_ID",
    "StudioLLMCall",
    "studio_llm_budget_refusal",
    "studio_llm_call_record",
    "studio_llm_prompt_estimate",
    "studio_llm_reserve",
]

STUDIO_EDGE_ID = "studio"
"""The `edge_id` of analytics and budget-usage rows of studio calls: where a call came from, in every report."""

DEFAULT_COMPLETION_ESTIMATE = 1024
"""Completion tokens assumed for the budget check when a call sets no `max_tokens` (the edge's figure)."""

_MILLION = Decimal(1_000_000)
_ZERO = Decimal("0")


@dataclasses.dataclass(frozen=True, slots=True)
class StudioLLMCall:
    """One studio call as accounting sees it: which LLM and model, on behalf of which plugin."""

    llm_id: int
    llm_slug: str
    vendor: str
    namespace: str
    model: str
    plugin_slug: str = ""
    user_id: int | None = None
    """The person the call is for (the portal's chat, or an agent serving that user's chat turn): their budgets
    and their groups' apply, and their usage reports show it."""
    source: str = STUDIO_EDGE_ID
    """What made the call (`studio` for plugins, `chat` for the portal's chat), in the analytics metadata."""
    request_id: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex)


def studio_llm_prompt_estimate(messages: list[LLMMessage]) -> int:
    """The edge's cheap estimate: four characters per token."""
    return (sum(len(m.content) for m in messages) + 3) // 4


def _price(vendor: str, model: str):
    """The vendor's price of `model`, else any vendor's (the edge's lookup order); None when unpriced."""
    from control_plane.catalog.models import ModelPrice

    return (
        ModelPrice.objects.filter(vendor=vendor, model=model).first()
        or ModelPrice.objects.filter(model=model).order_by("vendor").first()
    )


def _cost(price, prompt_tokens: int, completion_tokens: int) -> Decimal:
    if price is None:
        return _ZERO
    return (prompt_tokens * price.prompt_per_million + completion_tokens * price.completion_per_million) / _MILLION


def _budgets_of(call: StudioLLMCall) -> Q:
    """The budgets a call answers to: the LLM's; for a call on behalf of a user (the chat), also the user's own and
    their groups' budgets, as at the edge (a studio call has no app)."""
    from django.contrib.auth.models import Group

    from control_plane.budgets.models import Budget

    budgets = Q(scope=Budget.Scope.LLM, llm_id=call.llm_id)
    if call.user_id is not None:
        groups = Group.objects.filter(user__id=call.user_id).values("pk")
        budgets |= Q(scope=Budget.Scope.USER, user_id=call.user_id) | Q(scope=Budget.Scope.GROUP, group_id__in=groups)
    return budgets


def _target_id(budget: Any) -> int:
    return int(
        {"llm": budget.llm_id, "user": budget.user_id, "group": budget.group_id, "app": budget.app_id}[budget.scope]
    )


def _group_members(budgets: list[Any]) -> list[UserConfig]:
    """Every member of the groups of group budgets: a group's spend is its members' usage, whoever made it."""
    from django.contrib.auth import get_user_model

    group_ids = {b.group_id for b in budgets if b.scope == "group"}
    if not group_ids:
        return []
    members: dict[int, list[int]] = {}
    rows = get_user_model().objects.filter(groups__in=group_ids).values_list("pk", "groups")
    for user_id, group_id in rows:
        members.setdefault(user_id, []).append(group_id)
    return [UserConfig(id=user_id, group_ids=ids) for user_id, ids in members.items()]


def studio_llm_budget_refusal(*, call: StudioLLMCall, prompt_tokens: int, max_tokens: int | None) -> str | None:
    """The edge's budget message when one of the LLM's blocking budgets cannot take this call, else None.

    Spend is what the edges do with it: the larger of the budget's own figure and the sum of the usage rows of
    its current period (`analytics.selectors.budget_spend_for_snapshot`, the bridge's own computation).
    """
    from control_plane.analytics.selectors import budget_spend_for_snapshot
    from control_plane.budgets.models import Budget
    from control_plane.budgets.periods import period_bounds

    now = timezone.now()
    budgets = list(Budget.objects.filter(_budgets_of(call), is_active=True).order_by("pk"))
    blocking = [b for b in budgets if b.action == Budget.Action.BLOCK]
    if not blocking:
        return None
    price = _price(call.vendor, call.model)
    for budget in blocking:  # a budget counts only prices in its own currency (docs/governance.md#currencies)
        if price is not None and budget.currency != price.currency:
            return (
                f"{budget.scope} budget in {budget.currency} cannot count this request: model {call.model} is priced "
                f"in {price.currency}, and a budget counts only prices in its own currency (an administrator must "
                "give the budget and the price the same currency)"
            )
    configs = []
    for budget in blocking:
        start, end, spent = budget.period_start, budget.period_end, budget.spent
        if end <= now:  # the roll-over job has not run yet: the period that holds `now` starts from zero
            start, end = period_bounds(budget.period, now, budget.anchor)
            spent = _ZERO
        configs.append(
            BudgetConfig(
                id=budget.pk,
                scope=cast(Any, budget.scope),
                target_id=_target_id(budget),
                limit=budget.limit,
                currency=budget.currency,
                period=cast(BudgetPeriod, budget.period),
                action="block",
                period_start=start.timestamp(),
                period_end=end.timestamp(),
                spent=spent,
            )
        )
    summed = {
        s.budget_id: s.spent
        for s in budget_spend_for_snapshot(
            snapshot=ConfigSnapshot(
                namespace=call.namespace, version=0, budgets=configs, users=_group_members(blocking)
            )
        )
    }
    completion = max_tokens if max_tokens is not None else DEFAULT_COMPLETION_ESTIMATE
    estimate = _cost(price, prompt_tokens, completion)
    for config in configs:
        spent = max(config.spent, summed.get(config.id, _ZERO))
        if spent + estimate > config.limit:
            return (
                f"{config.scope} budget exhausted: {spent:.4f} of {config.limit} {config.currency} spent this period "
                f"(this request could cost up to {estimate:.4f})"
            )
    return None


def studio_llm_reserve(
    *, call: StudioLLMCall, messages: list[LLMMessage], max_tokens: int | None
) -> tuple[str | None, Decimal]:
    """Check the call's blocking budgets (`_budgets_of`), then hold the call's upper-bound cost in the quota ledger as edge
    `studio` (docs/governance.md), so the edges are granted only what remains while the call runs.

    Returns (the edge's 402 message, or None; the amount held, to hand to `studio_llm_call_record`)."""
    from control_plane.budgets.leasing import budget_lease_reserve_exact
    from control_plane.budgets.models import Budget

    refusal = studio_llm_budget_refusal(
        call=call, prompt_tokens=studio_llm_prompt_estimate(messages), max_tokens=max_tokens
    )
    if refusal is not None:
        return refusal, _ZERO
    ids = list(
        Budget.objects.filter(_budgets_of(call), is_active=True, action=Budget.Action.BLOCK).values_list(
            "pk", flat=True
        )
    )
    price = _price(call.vendor, call.model)
    if not ids or price is None:
        return None, _ZERO
    prompt_bound = sum(len(m.content.encode()) + 8 for m in messages) + 8
    if price.max_input_tokens:  # a longer input is refused by the vendor, not billed
        prompt_bound = min(prompt_bound, price.max_input_tokens)
    completion = max_tokens if max_tokens is not None else price.max_output_tokens
    bound = _cost(price, prompt_bound, completion)
    refused = budget_lease_reserve_exact(edge_id=STUDIO_EDGE_ID, budget_ids=ids, amount=bound)
    if refused is not None:
        scope = Budget.objects.filter(pk=refused).values_list("scope", flat=True).first() or "llm"
        return (
            f"{scope} budget exhausted: what is left of it is held by requests in flight across the edges "
            f"(this request could cost up to {bound:.4f})"
        ), _ZERO
    return None, bound


def studio_llm_call_record(
    *,
    call: StudioLLMCall,
    status_code: int,
    reserved: Decimal = _ZERO,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    latency_ms: float = 0.0,
    error_type: str = "",
) -> Decimal:
    """Store the call as the edge would report it (one analytics row, one budget-usage row); returns its cost."""
    from control_plane.analytics.services import analytics_ingest_batches

    price = _price(call.vendor, call.model) if status_code < 400 else None
    cost = _cost(price, prompt_tokens, completion_tokens)
    if reserved:
        from control_plane.budgets.leasing import budget_lease_settle_exact
        from control_plane.budgets.models import Budget

        ids = list(Budget.objects.filter(_budgets_of(call)).values_list("pk", flat=True))
        budget_lease_settle_exact(edge_id=STUDIO_EDGE_ID, budget_ids=ids, reserved=reserved, cost=cost)
    currency = price.currency if price is not None else "USD"
    stamp = time.time()
    context = PluginContextInfo(
        request_id=call.request_id,
        vendor=call.vendor,
        llm_id=call.llm_id,
        llm_slug=call.llm_slug,
        user_id=call.user_id,
        metadata={"source": call.source, "plugin": call.plugin_slug},
    )
    common: dict[str, Any] = {
        "request_id": call.request_id,
        "llm_id": call.llm_id,
        "user_id": call.user_id,
        "timestamp": stamp,
        "context": context,
    }
    analytics = AnalyticsRecord(
        **common,
        llm_slug=call.llm_slug,
        vendor=call.vendor,
        model=call.model,
        status_code=status_code,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
        cost=cost,
        currency=currency,
        latency_ms=latency_ms,
        upstream_latency_ms=latency_ms,
        edge_id=STUDIO_EDGE_ID,
        namespace=call.namespace,
        error_type=error_type,
    )
    usage = BudgetUsage(
        **common,
        tokens_used=prompt_tokens + completion_tokens,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost=cost,
        currency=currency,
    )
    analytics_ingest_batches(
        [
            TelemetryBatch(
                batch_id=uuid.uuid4().hex,
                edge_id=STUDIO_EDGE_ID,
                namespace=call.namespace,
                created_at=stamp,
                analytics=[analytics],
                budget_usage=[usage],
            )
        ]
    )
    return cost
