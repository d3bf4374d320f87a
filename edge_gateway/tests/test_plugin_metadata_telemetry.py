"""A request whose in-process plugin put a value msgpack cannot encode into `context_updates` is still recorded
for the control plane (the value as its text, as an isolated plugin's arrives), and the log names the key. Before,
the whole analytics record failed to encode and was dropped: the request went unrecorded (no usage, no cost for its
budgets), the log saying only "telemetry sink nats refused a record"."""

from __future__ import annotations

import asyncio
import logging

import httpx

from edge_gateway.telemetry.shipper import TelemetryShipper
from edge_gateway.telemetry.spool import Spool
from shared_sdk import BasePlugin, Context, EnrichedRequest, PluginResponse
from shared_sdk.sync_protocol import TelemetryBatch, decode

from .support import CLIENT_KEY, PluginConfig, make_snapshot, run_edge


class Tier:
    """A plugin's own class: msgpack does not know it."""

    def __str__(self) -> str:
        return "tier:gold"


class TierTagger(BasePlugin):
    name = "tier-tagger"

    async def handle_post_auth(self, ctx: Context, req: EnrichedRequest) -> PluginResponse:
        return PluginResponse(context_updates={"tier": Tier(), "team": "blue"})


def test_a_request_with_unencodable_plugin_metadata_is_still_recorded(upstream, tmp_path, caplog):
    plugin = PluginConfig(
        slug="tier-tagger",
        name="tier-tagger",
        import_path="edge_gateway.tests.test_plugin_metadata_telemetry:TierTagger",
        global_order=0,
    )
    spool = Spool(tmp_path / "spool.sqlite3", max_bytes=1024 * 1024)
    shipper = TelemetryShipper(namespace="ns", edge_id="e1", spool=spool, proxy_logs=False)

    async def attach_shipper(edge) -> None:  # the NATS shipper a deployed edge has, without NATS: what it spools
        await spool.open()
        edge.edge.telemetry.add_durable_sink(shipper, name="nats")

    async def spooled() -> list:
        for _ in range(100):
            records = await spool.head_records()
            if records:
                return records
            await asyncio.sleep(0.02)
        return []

    with (
        caplog.at_level(logging.WARNING, logger="fjordgate.edge.telemetry"),
        run_edge(make_snapshot(upstream, plugins=[plugin]), tmp_path) as edge,
    ):
        edge.call(attach_shipper(edge))
        reply = httpx.post(
            f"{edge.url}/v1/chat/completions",
            headers={"authorization": f"Bearer {CLIENT_KEY}"},
            json={"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]},
            timeout=10,
        )
        records = edge.call(spooled())
        edge.call(spool.close())
    assert reply.status_code == 200
    assert records, "the request's analytics record never reached the spool"
    _, body = shipper._batch(records)
    (analytics,) = decode(body, TelemetryBatch).analytics
    assert analytics.request_id == reply.headers["x-request-id"]
    assert analytics.context.metadata == {"tier": "tier:gold", "team": "blue"}
    assert "metadata 'tier' not encodable" in caplog.text
