"""An in-process async plugin that blocks the edge's event loop is named in the log and in /metrics."""

from __future__ import annotations

import logging
import time

import httpx

from shared_sdk import BasePlugin, Context, EnrichedRequest

from .support import CLIENT_KEY, PluginBinding, PluginConfig, llm, make_snapshot, run_edge


class LoopBlocker(BasePlugin):
    """The mistake: a synchronous sleep inside an async hook (a blocking HTTP client would do the same)."""

    name = "loop-blocker"

    async def handle_post_auth(self, ctx: Context, req: EnrichedRequest) -> None:
        time.sleep(1.0)


def test_a_plugin_blocking_the_loop_is_logged_and_metered(upstream, tmp_path, caplog):
    snap = make_snapshot(
        upstream,
        llms=[
            llm(
                1,
                "mock-llm",
                f"{upstream}/v1",
                allowed_models=["mock-gpt"],
                plugin_chain=[PluginBinding(plugin_slug="loop-blocker", order=0)],
            )
        ],
        plugins=[
            PluginConfig(slug="loop-blocker", name="loop-blocker", import_path=f"{__name__}:LoopBlocker", config={})
        ],
    )
    with caplog.at_level(logging.WARNING, logger="fjordgate.plugins.watchdog"), run_edge(snap, tmp_path) as edge:
        reply = httpx.post(
            f"{edge.url}/v1/chat/completions",
            headers={"authorization": f"Bearer {CLIENT_KEY}"},
            timeout=15,
            json={"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]},
        )
        metrics = httpx.get(f"{edge.url}/metrics", timeout=5).text
    assert reply.status_code == 200
    assert 'fjordgate_edge_loop_stalls_total{hook="handle_post_auth",plugin="loop-blocker"} 1.0' in metrics
    assert any(getattr(r, "plugin", "") == "loop-blocker" for r in caplog.records)
