"""Data-collector plugins as a telemetry sink: each record goes to every plugin implementing its handler.

Runs in the telemetry drain task, so a slow collector delays only other records for collectors, never a
request. The plugins' failure policy and timeouts are applied by `HookChain.run_data_collection`.
"""

from __future__ import annotations

from typing import Any

from shared_sdk import AnalyticsRecord, BudgetUsage, Context, ProxyLog, Runtime

from .config_store import ConfigStore

__all__ = ["PluginCollectorSink"]

_METHOD: dict[type, str] = {
    AnalyticsRecord: "handle_analytics",
    BudgetUsage: "handle_budget_usage",
    ProxyLog: "handle_proxy_log",
}


class PluginCollectorSink:
    def __init__(self, store: ConfigStore, edge_id: str) -> None:
        self.store = store
        self.edge_id = edge_id

    async def submit_batch(self, records: list[Any]) -> None:
        cfg = self.store.current
        if cfg is None or cfg.collectors is None:
            return
        chain = cfg.collectors
        for record in records:
            method = _METHOD.get(type(record))
            if method is None or not chain.hooks(method):  # nobody collects this kind: no context to build
                continue
            ctx = Context(
                runtime=Runtime.GATEWAY,
                request_id=record.request_id,
                edge_id=self.edge_id,
                namespace=cfg.snapshot.namespace,
            )
            app = cfg.apps.get(record.app_id) if record.app_id is not None else None
            if app is not None:
                ctx.app = app.message
            await chain.run_data_collection(method, ctx, record)
