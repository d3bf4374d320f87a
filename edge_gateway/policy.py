"""Policy checks between authentication and the upstream call: rate limits, then the budget pre-check.

The model allow-list is enforced by routing (`CompiledConfig.route`), the client-IP list and the
app-to-LLM link at authentication; what remains here is what costs state: requests and tokens per minute
(per app, and per user within the app) and budgets (see `budgets.py` for the reservation scheme).
"""

from __future__ import annotations

from decimal import Decimal

from .budgets import BudgetTracker, Reservation
from .errors import GatewayError
from .exchange import Exchange
from .providers.base import estimate_tokens
from .ratelimit import RateLimiter

__all__ = ["DEFAULT_COMPLETION_ESTIMATE", "admit", "estimate_cost", "release_budget", "reserve_budget"]

DEFAULT_COMPLETION_ESTIMATE = 1024
"""Completion tokens assumed for the budget pre-check when a request sets no `max_tokens`."""
_MILLION = Decimal(1_000_000)


def estimate_cost(ex: Exchange, prompt_tokens: int) -> Decimal:
    llm = ex.llm
    if llm is None or ex.call is None:
        return Decimal(0)
    price = ex.cfg.price(llm.config.vendor, ex.model)
    if price is None:
        return Decimal(0)
    completion = ex.call.max_tokens if ex.call.max_tokens is not None else DEFAULT_COMPLETION_ESTIMATE
    return (prompt_tokens * price.prompt_per_million + completion * price.completion_per_million) / _MILLION


def admit(ex: Exchange, limiter: RateLimiter, budgets: BudgetTracker) -> None:
    """Raise 429 (with Retry-After) or 402, or record the request against its limits and budgets.

    Rate limits are about the client's request and count once; the budget check is about the LLM that will
    answer, so a fallback attempt calls `release_budget` then `reserve_budget` for its own LLM and model.
    """
    app = ex.app
    assert app is not None
    cfg = app.config
    prompt_estimate = -1
    checks: list[tuple[str, int, int, str]] = []
    if cfg.rate_limit_rpm:
        checks.append((f"app:{app.id}:rpm", cfg.rate_limit_rpm, 1, "requests per minute for this app"))
    if cfg.user_rate_limit_rpm and ex.user_id is not None:
        checks.append(
            (f"user:{app.id}:{ex.user_id}:rpm", cfg.user_rate_limit_rpm, 1, "requests per minute for this user")
        )
    token_keys: list[str] = []
    if cfg.rate_limit_tpm or (cfg.user_rate_limit_tpm and ex.user_id is not None):
        prompt_estimate = _prompt_estimate(ex)
        if cfg.rate_limit_tpm:
            key = f"app:{app.id}:tpm"
            token_keys.append(key)
            checks.append(
                (key, cfg.rate_limit_tpm, min(prompt_estimate, cfg.rate_limit_tpm), "tokens per minute for this app")
            )
        if cfg.user_rate_limit_tpm and ex.user_id is not None:
            key = f"user:{app.id}:{ex.user_id}:tpm"
            token_keys.append(key)
            checks.append(
                (
                    key,
                    cfg.user_rate_limit_tpm,
                    min(prompt_estimate, cfg.user_rate_limit_tpm),
                    "tokens per minute for this user",
                )
            )
    for key, limit, amount, what in checks:
        wait = limiter.check(key, limit, amount)
        if wait:
            raise GatewayError.rate_limited(f"rate limit reached: {limit} {what}; retry later", wait)
    for key, _, _, _ in checks:
        if key.endswith(":rpm"):
            limiter.add(key, 1)
    ex.rate_keys = tuple(token_keys)
    reserve_budget(ex, budgets, prompt_estimate)


def reserve_budget(ex: Exchange, budgets: BudgetTracker, prompt_estimate: int = -1) -> None:
    """Reserve the estimated cost of calling `ex.llm` / `ex.model` on every applicable budget; 402 if one blocks."""
    app = ex.app
    assert app is not None
    user = ex.cfg.users.get(ex.user_id) if ex.user_id is not None else None
    states = budgets.applicable(
        app.id,
        ex.user_id,
        ex.llm.id if ex.llm is not None else None,
        list(user.group_ids) if user is not None else None,
    )
    if not states:
        return
    if prompt_estimate < 0:
        prompt_estimate = _prompt_estimate(ex)
    estimate = estimate_cost(ex, prompt_estimate)
    blocking = budgets.reserve(states, estimate)
    if blocking is not None:
        b = blocking.config
        raise GatewayError.budget_exceeded(
            f"{b.scope} budget exhausted: {blocking.spent:.4f} of {b.limit} {b.currency} spent this period "
            f"(this request could cost up to {estimate:.4f})"
        )
    ex.reservation = Reservation(states, estimate)


def release_budget(ex: Exchange, budgets: BudgetTracker) -> None:
    """Give back what the request holds (an attempt that failed costs nothing), before a fallback re-reserves."""
    if ex.reservation is not None:
        budgets.settle(ex.reservation, Decimal(0))
        ex.reservation = None


def _prompt_estimate(ex: Exchange) -> int:
    call = ex.call
    if call is None:
        return 0
    data = call.data
    return estimate_tokens(data.get("messages") or data.get("prompt") or data.get("input") or "")
