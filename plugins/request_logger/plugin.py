"""Request logger: a data collector that keeps a compact line per request in the edge's KV.

Each `AnalyticsRecord` becomes a JSON entry under `log:<timestamp>:<request id>` with a TTL (`retention_s`),
so the store stays bounded without a cleanup job, and `GET /plugins/request-logger/recent?limit=N`
(authenticated with an app key) lists the newest entries of the caller's app, using KV list-by-prefix.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import orjson

from shared_sdk import (
    AnalyticsRecord,
    BasePlugin,
    Context,
    DataCollectionResponse,
    EndpointRegistration,
    EndpointRequest,
    EndpointResponse,
)

NAME = "request-logger"

CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"retention_s": {"type": "number", "exclusiveMinimum": 0, "default": 86400}},
    "additionalProperties": False,
}


class RequestLogger(BasePlugin):
    name = NAME
    version = "1.0.0"
    description = "Keeps a per-request log line in the edge's store and serves the recent ones."

    def get_config_schema(self) -> dict[str, Any]:
        return CONFIG_SCHEMA

    async def initialize(self, ctx: Context, config: dict[str, Any]) -> None:
        self.config = config
        self.retention_s = float(config.get("retention_s", 86400))

    async def handle_analytics(self, ctx: Context, record: AnalyticsRecord) -> DataCollectionResponse:
        entry = {
            "request_id": record.request_id,
            "app_id": record.app_id,
            "user_id": record.user_id,
            "llm": record.llm_slug,
            "model": record.model,
            "status": record.status_code,
            "tokens": record.total_tokens,
            "cost": str(record.cost),
            "latency_ms": round(record.latency_ms, 3),
            "streamed": record.streamed,
            "timestamp": record.timestamp,
        }
        key = f"log:{record.app_id}:{record.timestamp:017.6f}:{record.request_id}"
        await ctx.services.kv.write(key, orjson.dumps(entry), ttl_s=self.retention_s)  # type: ignore[union-attr]
        return DataCollectionResponse(success=True, handled=True)

    def get_endpoint_registrations(self) -> list[EndpointRegistration]:
        return [
            EndpointRegistration(
                path="/recent", methods=["GET"], description="newest log entries of your app", require_auth=True
            )
        ]

    async def handle_endpoint_request(self, ctx: Context, req: EndpointRequest) -> EndpointResponse:
        try:
            limit = max(1, min(500, int(parse_qs(req.query_string).get("limit", ["50"])[0])))
        except ValueError:
            return EndpointResponse(status_code=400, body=b'{"error":{"message":"limit must be an integer"}}')
        app_id = req.app.id if req.app is not None else None
        kv = ctx.services.kv  # type: ignore[union-attr]
        keys = (await kv.list(f"log:{app_id}:"))[-limit:]
        entries = []
        for key in reversed(keys):
            value = await kv.read(key)
            if value is not None:
                entries.append(orjson.loads(value))
        return EndpointResponse(
            status_code=200,
            headers={"content-type": "application/json"},
            body=orjson.dumps({"object": "list", "data": entries}),
        )


def create_plugin() -> RequestLogger:
    return RequestLogger()
