"""Accounting: the pipeline's one last step, and what it returns must be durable before the response ends.

Every accepted request (one that passed authentication) is accounted exactly once, whatever ended it: a
normal response, an error, a short-circuit, or a client that went away mid-stream. `account` settles the
budget reservation and the tpm leases' token bounds, adds the tokens to the TPM windows, and puts one
`AnalyticsRecord`, one `BudgetUsage` and one `ProxyLog` (each only if a sink takes it: the NATS shipper takes
proxy logs only with `EDGE_LOG_BODIES`, and without them the control plane stores each request's proxy log from its
analytics record) on the telemetry queue, sharing one `record_id` (each kind has its own table, unique on it).
No I/O here: it returns the durable sinks' futures, and the pipeline holds the response's last message until
they resolved (`until_durable`), so a client that got an answer never loses its records to a crash.
"""

from __future__ import annotations

import asyncio
import logging
import time
from decimal import Decimal
from typing import Any

from shared_sdk import AnalyticsRecord, BudgetUsage, ProxyLog
from shared_sdk.messages import PluginContextInfo
from shared_sdk.snapshot import ModelPriceConfig

from .exchange import Exchange
from .ids import new_id
from .providers.base import Usage
from .runtime import EdgeRuntime
from .telemetry_queue import log_failed_write

__all__ = ["DURABLE_WAIT_S", "account", "cost_of", "until_durable"]

log = logging.getLogger("fjordgate.edge.telemetry")

DURABLE_WAIT_S = 2.0
"""How long a response's end waits for its records to be durable; a stalled disk delays answers no longer."""
_MILLION = Decimal(1_000_000)
_ZERO = Decimal("0")


def cost_of(usage: Usage, price: ModelPriceConfig | None) -> Decimal:
    """Cost in the price's currency. Prompt tokens read from / written to a cache are billed at their own rates."""
    if price is None:
        return _ZERO
    plain_prompt = max(0, usage.prompt_tokens - usage.cache_read_tokens - usage.cache_write_tokens)
    total = (
        plain_prompt * price.prompt_per_million
        + usage.completion_tokens * price.completion_per_million
        + usage.cache_read_tokens * price.cache_read_per_million
        + usage.cache_write_tokens * price.cache_write_per_million
    )
    return total / _MILLION


def account(ex: Exchange, rt: EdgeRuntime) -> list[asyncio.Future[None]]:
    """Account the request once; returns the writes that must be durable before the response may end.

    A no-op (nothing to wait for) for requests never accepted or already accounted.
    """
    if ex.accounted or ex.app is None:
        return []
    ex.accounted = True
    price, cost = _charge(ex)
    currency = price.currency if price is not None else "USD"
    if ex.reservation is not None:
        rt.budgets.settle(ex.reservation, cost, ex.timestamp, currency)
    tokens = ex.usage.total_tokens if not ex.short_circuited else 0
    for key in ex.rate_keys:
        rt.limiter.add(key, tokens)
    if ex.token_holds:
        _settle_token_leases(ex, tokens)
    info = ex.ctx.info()
    if ex.client_disconnected:
        info.metadata = {**info.metadata, "client_disconnected": True}
    pending: list[asyncio.Future[None]] = []
    record_id = new_id()
    telemetry = rt.telemetry
    put, wants = telemetry.put, telemetry.wants
    if wants(AnalyticsRecord):
        put(_analytics(ex, rt, record_id, cost, currency, info), pending)
    if wants(BudgetUsage):  # a record no sink takes is not built (`TelemetryQueue.wants`)
        put(_budget_usage(ex, record_id, cost, currency, info), pending)
    if wants(ProxyLog):
        put(_proxy_log(ex, rt, record_id, info), pending)
    return pending


def _settle_token_leases(ex: Exchange, tokens: int) -> None:
    """Swap the token bounds the request took from tpm leases (`policy.admit`) for the tokens it used; a stream
    the client left before the vendor's count came keeps its whole bound (what the vendor may have produced)."""
    unknown = ex.client_disconnected and ex.streamed and not ex.usage.reported
    for lease, taken in ex.token_holds:
        lease.settle(taken, taken if unknown else tokens)
    ex.token_holds = ()


def _charge(ex: Exchange) -> tuple[ModelPriceConfig | None, Decimal]:
    """The price the request is billed at (none for a short-circuit) and its cost.

    When the client left mid-stream the vendor's count never came, and it may have produced more than was
    relayed: billing the reservation (a strict upper bound of what it can charge) keeps budgets strict."""
    llm = ex.llm
    price = ex.cfg.price(llm.config.vendor, ex.model) if llm is not None and not ex.short_circuited else None
    cost = cost_of(ex.usage, price)
    if ex.client_disconnected and ex.streamed and not ex.usage.reported and ex.reservation is not None:
        cost = max(cost, ex.reservation.amount)
    return price, cost


async def until_durable(pending: list[asyncio.Future[None]], timeout_s: float = DURABLE_WAIT_S) -> None:
    """Wait (bounded) for the writes `account` returned; failures and stragglers are logged, never raised.

    Not `asyncio.wait`: this runs once per request with a durable sink, and `asyncio.wait` (its sets, its
    coroutine checks, a running-loop lookup that is a getpid() syscall on Python 3.11) was the largest part of
    what the deployed edge paid per request beyond the snapshot edge. The records of one request (often of
    several) share one future, so this waits on the distinct ones with one waiter, one timer and one callback
    each. The sinks' futures are never cancelled here: a request cancelled while it waits (its client left)
    leaves them to the other requests that share them.
    """
    distinct = list(dict.fromkeys(pending))
    waiting = [future for future in distinct if not future.done()]
    if waiting:
        await _all_done(waiting, timeout_s)
    late = 0
    for future in distinct:
        if not future.done():
            late += 1
            future.add_done_callback(log_failed_write)
        elif not future.cancelled() and future.exception() is not None:
            log.error("telemetry record not durable before the response: %s", future.exception())
    if late:
        log.error("%d telemetry writes not on disk after %.1f s; response released", late, timeout_s)


async def _all_done(futures: list[asyncio.Future[None]], timeout_s: float) -> None:
    """Return once every future in `futures` is done or `timeout_s` passed (or raise CancelledError)."""
    loop = futures[0].get_loop()
    waiter: asyncio.Future[None] = loop.create_future()
    left = len(futures)

    def one_done(_: asyncio.Future[None]) -> None:
        nonlocal left
        left -= 1
        if not left and not waiter.done():
            waiter.set_result(None)

    for future in futures:
        future.add_done_callback(one_done)
    timer = loop.call_later(timeout_s, _time_up, waiter)
    try:
        await waiter
    finally:
        timer.cancel()
        for future in futures:
            future.remove_done_callback(one_done)


def _time_up(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _status(ex: Exchange) -> int:
    """499 (nginx's code) for a client that left before anything was sent."""
    return 499 if ex.client_disconnected and not ex.status_code else ex.status_code


def _analytics(
    ex: Exchange, rt: EdgeRuntime, record_id: str, cost: Decimal, currency: str, info: PluginContextInfo
) -> AnalyticsRecord:
    usage, llm, counted = ex.usage, ex.llm, not ex.short_circuited
    assert ex.app is not None
    return AnalyticsRecord(
        record_id=record_id,
        request_id=ex.request_id,
        app_id=ex.app.id,
        user_id=ex.user_id,
        llm_id=llm.id if llm is not None else None,
        llm_slug=llm.slug if llm is not None else "",
        vendor=llm.config.vendor if llm is not None else "",
        model=ex.model,
        status_code=_status(ex),
        prompt_tokens=usage.prompt_tokens if counted else 0,
        completion_tokens=usage.completion_tokens if counted else 0,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        total_tokens=usage.total_tokens if counted else 0,
        cost=cost,
        currency=currency,
        latency_ms=(time.perf_counter() - ex.started) * 1000.0,
        ttft_ms=ex.ttft_s * 1000.0 if ex.ttft_s is not None else None,
        upstream_latency_ms=ex.upstream_s * 1000.0,
        request_bytes=ex.request_bytes,
        response_bytes=ex.response_bytes,
        streamed=ex.streamed,
        edge_id=rt.settings.edge_id,
        namespace=ex.cfg.snapshot.namespace,
        timestamp=ex.timestamp,
        tool_calls=usage.tool_calls,
        choices=usage.choices,
        error_type=ex.error_type,
        context=info,
        method=ex.method,
        path=ex.path,
    )


def _budget_usage(ex: Exchange, record_id: str, cost: Decimal, currency: str, info: PluginContextInfo) -> BudgetUsage:
    usage, counted = ex.usage, not ex.short_circuited
    assert ex.app is not None
    period_start = period_end = 0.0
    if ex.reservation is not None and ex.reservation.states:
        first = ex.reservation.states[0]
        period_start, period_end = first.period_start, first.config.period_end
    return BudgetUsage(
        record_id=record_id,
        request_id=ex.request_id,
        app_id=ex.app.id,
        user_id=ex.user_id,
        llm_id=ex.llm.id if ex.llm is not None else None,
        tokens_used=usage.total_tokens if counted else 0,
        prompt_tokens=usage.prompt_tokens if counted else 0,
        completion_tokens=usage.completion_tokens if counted else 0,
        cost=cost,
        currency=currency,
        requests_count=1,
        period_start=period_start,
        period_end=period_end,
        timestamp=ex.timestamp,
        context=info,
    )


def _proxy_log(ex: Exchange, rt: EdgeRuntime, record_id: str, info: PluginContextInfo) -> ProxyLog:
    assert ex.app is not None
    bodies: dict[str, Any] = {}
    if rt.settings.log_bodies:
        bodies = {"request_body": ex.call.raw if ex.call is not None else b"", "response_body": ex.response_body}
    return ProxyLog(
        record_id=record_id,
        request_id=ex.request_id,
        app_id=ex.app.id,
        user_id=ex.user_id,
        llm_id=ex.llm.id if ex.llm is not None else None,
        vendor=ex.llm.config.vendor if ex.llm is not None else "",
        method=ex.method,
        path=ex.path,
        response_code=_status(ex),
        edge_id=rt.settings.edge_id,
        namespace=ex.cfg.snapshot.namespace,
        timestamp=ex.timestamp,
        context=info,
        **bodies,
    )
