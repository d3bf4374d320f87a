"""Policy checks between authentication and the upstream call: rate limits, then the budget pre-check.

The model allow-list is enforced by routing (`CompiledConfig.route`), the client-IP list and the
app-to-LLM link at authentication; what remains here is what costs state: requests and tokens per minute
(per app, and per user within the app) and budgets (see `budgets.py` for the reservation scheme).
"""

from __future__ import annotations

from decimal import Decimal

from .budgets import LOW_WATER_UNITS, BudgetTracker, LeaseSource, Reservation
from .errors import GatewayError
from .exchange import Exchange
from .providers.base import estimate_tokens
from .ratelimit import RateLimiter

__all__ = ["admit", "input_token_bound", "release_budget", "reservation_bound", "reserve_budget"]

_MILLION = Decimal(1_000_000)
_MESSAGE_OVERHEAD_TOKENS = 8
"""Tokens a vendor may add per message (role, separators) on top of its text; 8 exceeds OpenAI's 3-4."""


def input_token_bound(value: object) -> int:
    """A strict upper bound of a request's input tokens: the UTF-8 bytes of every string in it (no tokenizer
    makes more tokens than bytes) plus a per-message overhead."""
    if isinstance(value, str):
        return len(value.encode()) if not value.isascii() else len(value)
    if isinstance(value, dict):
        return _MESSAGE_OVERHEAD_TOKENS + sum(input_token_bound(item) for item in value.values())
    if isinstance(value, list):
        return sum(input_token_bound(item) for item in value)
    return 0


def reservation_bound(ex: Exchange) -> Decimal:
    """What the request can cost at most: its input bound at the prompt price plus `max_tokens` (else the
    model's output limit) at the completion price. Settlement replaces it with the real cost."""
    llm, call = ex.llm, ex.call
    if llm is None or call is None:
        return Decimal(0)
    price = ex.cfg.price(llm.config.vendor, ex.model)
    if price is None:
        return Decimal(0)
    data = call.data
    if ex.kind == "native":  # any vendor's shape, maybe not JSON at all: every byte may be a token
        prompt = len(call.raw) + _MESSAGE_OVERHEAD_TOKENS
    else:
        prompt = input_token_bound(
            data.get("messages") or data.get("prompt") or data.get("input") or data.get("contents") or ""
        )
        prompt += input_token_bound(data.get("system") or data.get("systemInstruction") or "")
        prompt += _MESSAGE_OVERHEAD_TOKENS
    completion = call.max_tokens if call.max_tokens is not None else price.max_output_tokens
    if ex.kind == "embeddings":
        completion = 0
    return (prompt * price.prompt_per_million + completion * price.completion_per_million) / _MILLION


async def admit(ex: Exchange, limiter: RateLimiter, budgets: BudgetTracker) -> None:
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
    source = budgets.source
    if limiter.leasing and source is not None:
        for key, limit, _, what in checks:
            if key.endswith(":rpm"):
                await _take_rate_lease(limiter, source, key, limit, what)
    for key, _, _, _ in checks:
        if key.endswith(":rpm"):
            limiter.add(key, 1)
    ex.rate_keys = tuple(token_keys)
    await reserve_budget(ex, budgets)


async def _take_rate_lease(limiter: RateLimiter, source: LeaseSource, key: str, limit: int, what: str) -> None:
    """One request of this minute's lease of an rpm limit; one round trip when it has none left, then 429 (or,
    the ledger unreachable, the local check that already passed decides: rate limits fail open)."""
    lease = limiter.rate_lease(key, limit)
    if not lease.take():
        if not await source.obtain_rate(lease, 1):
            return
        if not lease.take():
            raise GatewayError.rate_limited(
                f"rate limit reached: {limit} {what} across the namespace; retry later",
                limiter.seconds_to_next_window(),
            )
    if lease.granted - lease.used < max(1, limit // 16):
        source.top_up_rate(lease)


async def reserve_budget(ex: Exchange, budgets: BudgetTracker) -> None:
    """Reserve the upper-bound cost of calling `ex.llm` / `ex.model` on every applicable budget; 402 if one blocks.

    A leased budget whose lease cannot take the bound costs one lease round trip (bounded) before the answer."""
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
    estimate = reservation_bound(ex)
    beyond: frozenset[int] = frozenset()
    source = budgets.source
    if source is not None:
        short = budgets.short(states, estimate)
        if short:
            if not await source.obtain(short, estimate):
                beyond = frozenset(state.config.id for state, _ in short if source.unreachable_open(state))
    blocking = budgets.reserve(states, estimate, beyond)
    if blocking is not None:
        b = blocking.config
        raise GatewayError.budget_exceeded(
            f"{b.scope} budget exhausted: {b.limit} {b.currency} this period, {blocking.spent:.4f} spent and the "
            f"rest held by requests in flight across the namespace (this request could cost up to {estimate:.4f})"
        )
    ex.reservation = Reservation(states, estimate)
    if source is not None:
        for state in states:
            if state.leased and state.headroom < LOW_WATER_UNITS * estimate:
                source.top_up(state, estimate)


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
    return estimate_tokens(
        data.get("messages") or data.get("prompt") or data.get("input") or data.get("contents") or ""
    )
