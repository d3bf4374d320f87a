"""`Exchange`: the state of one request as it moves through the pipeline, and how it is accounted at the end.

Accounting happens exactly once per accepted request (`finish`), whatever ended it: a normal response, an
error, a short-circuit, or a client that went away mid-stream. It settles the budget reservation, adds the
tokens to the TPM windows, and hands three records to the telemetry queue (no I/O here).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from shared_sdk import AnalyticsRecord, BudgetUsage, Context, ProxyLog

from .accounting import cost_of
from .budgets import Reservation
from .ids import new_id
from .providers import OpenAIRequest, Usage

if TYPE_CHECKING:
    from .config_store import CompiledApp, CompiledConfig, CompiledLLM
    from .pipeline import EdgeRuntime

__all__ = ["Exchange"]

_ZERO = Decimal("0")


@dataclass(slots=True)
class Exchange:
    request_id: str
    started: float
    """`time.perf_counter()` at arrival."""
    timestamp: float
    cfg: CompiledConfig
    ctx: Context
    kind: str
    method: str
    path: str
    call: OpenAIRequest | None = None
    request_bytes: int = 0
    app: CompiledApp | None = None
    user_id: int | None = None
    llm: CompiledLLM | None = None
    model: str = ""
    status_code: int = 0
    error_type: str = ""
    usage: Usage = field(default_factory=Usage)
    streamed: bool = False
    ttft_s: float | None = None
    upstream_s: float = 0.0
    response_bytes: int = 0
    response_body: bytes = b""
    reservation: Reservation | None = None
    rate_keys: tuple[str, ...] = ()
    short_circuited: bool = False
    client_disconnected: bool = False
    accounted: bool = False

    @property
    def accepted(self) -> bool:
        return self.app is not None

    def finish(self, rt: EdgeRuntime) -> None:
        """Account the request once (no-op for requests never accepted or already accounted)."""
        if self.accounted or self.app is None:
            return
        self.accounted = True
        usage = self.usage
        llm = self.llm
        vendor = llm.config.vendor if llm is not None else ""
        price = self.cfg.price(vendor, self.model) if llm is not None and not self.short_circuited else None
        cost = cost_of(usage, price) if price is not None else _ZERO
        currency = price.currency if price is not None else "USD"
        if self.reservation is not None:
            rt.budgets.settle(self.reservation, cost)
        tokens = usage.total_tokens if not self.short_circuited else 0
        for key in self.rate_keys:
            rt.limiter.add(key, tokens)
        ctx = self.ctx
        info = ctx.info()
        if self.client_disconnected:
            info.metadata = {**info.metadata, "client_disconnected": True}
        latency_ms = (time.perf_counter() - self.started) * 1000.0
        status = 499 if self.client_disconnected and not self.status_code else self.status_code
        app_id = self.app.id
        llm_id = llm.id if llm is not None else None
        settings = rt.settings
        queue = rt.telemetry
        # One id for the request's three records: each kind has its own table, unique on record_id.
        record_id = new_id()
        queue.put(
            AnalyticsRecord(
                record_id=record_id,
                request_id=self.request_id,
                app_id=app_id,
                user_id=self.user_id,
                llm_id=llm_id,
                llm_slug=llm.slug if llm is not None else "",
                vendor=vendor,
                model=self.model,
                status_code=status,
                prompt_tokens=usage.prompt_tokens if not self.short_circuited else 0,
                completion_tokens=usage.completion_tokens if not self.short_circuited else 0,
                cache_read_tokens=usage.cache_read_tokens,
                cache_write_tokens=usage.cache_write_tokens,
                total_tokens=tokens,
                cost=cost,
                currency=currency,
                latency_ms=latency_ms,
                ttft_ms=self.ttft_s * 1000.0 if self.ttft_s is not None else None,
                upstream_latency_ms=self.upstream_s * 1000.0,
                request_bytes=self.request_bytes,
                response_bytes=self.response_bytes,
                streamed=self.streamed,
                edge_id=settings.edge_id,
                namespace=self.cfg.snapshot.namespace,
                timestamp=self.timestamp,
                tool_calls=usage.tool_calls,
                choices=usage.choices,
                error_type=self.error_type,
                context=info,
            )
        )
        period_start = period_end = 0.0
        if self.reservation is not None and self.reservation.states:
            first = self.reservation.states[0]
            period_start, period_end = first.period_start, first.config.period_end
        queue.put(
            BudgetUsage(
                record_id=record_id,
                request_id=self.request_id,
                app_id=app_id,
                user_id=self.user_id,
                llm_id=llm_id,
                tokens_used=tokens,
                prompt_tokens=usage.prompt_tokens if not self.short_circuited else 0,
                completion_tokens=usage.completion_tokens if not self.short_circuited else 0,
                cost=cost,
                currency=currency,
                requests_count=1,
                period_start=period_start,
                period_end=period_end,
                timestamp=self.timestamp,
                context=info,
            )
        )
        log_kwargs: dict[str, Any] = {}
        if settings.log_bodies:
            log_kwargs = {
                "request_body": self.call.raw if self.call is not None else b"",
                "response_body": self.response_body,
            }
        queue.put(
            ProxyLog(
                record_id=record_id,
                request_id=self.request_id,
                app_id=app_id,
                user_id=self.user_id,
                llm_id=llm_id,
                vendor=vendor,
                method=self.method,
                path=self.path,
                response_code=status,
                edge_id=settings.edge_id,
                namespace=self.cfg.snapshot.namespace,
                timestamp=self.timestamp,
                context=info,
                **log_kwargs,
            )
        )
