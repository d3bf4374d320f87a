"""Config down through real processes: an admin change reaches the namespace's two edges (and not the other
namespace's) and takes effect on the next request; an edge started while NATS is down serves its last snapshot
and says so in /ready and in its heartbeat."""

from __future__ import annotations

import asyncio

import nats
import pytest

from control_plane.analytics.models import AnalyticsEvent
from control_plane.applications.models import App
from control_plane.applications.services import app_update
from control_plane.llms.models import LLM
from control_plane.llms.services import llm_update
from shared_sdk.sync_protocol import EdgeHeartbeat, decode

from .cluster import config_version, seed_namespace, wait_until
from .nats_server import TcpForwarder

pytestmark = [pytest.mark.timeout(240)]


def _applied(edge, version: int) -> bool:
    return edge.ready().get("version", 0) >= version


def test_admin_change_reaches_both_edges_of_the_namespace_only_and_applies_on_the_next_request(cluster):
    a, b = seed_namespace("ns-a", cluster.mock_url), seed_namespace("ns-b", cluster.mock_url)
    cluster.start_bridge()
    a1, a2 = cluster.add_edge("a1", "ns-a"), cluster.add_edge("a2", "ns-a")
    b1 = cluster.add_edge("b1", "ns-b")
    for edge in (a1, a2, b1):
        cluster.start_edge(edge)
    for edge, seed in ((a1, a), (a2, a), (b1, b)):
        wait_until(lambda e=edge, s=seed: _applied(e, config_version(s.namespace)), message=f"{edge.name} config")
        assert edge.chat(seed.key)[0] == 200
    b_version = b1.ready()["version"]

    # an admin narrows the namespace's LLM to another model: the next request for mock-gpt is refused
    llm_update(llm=LLM.objects.get(pk=a.llm_id), data={"allowed_models": ["other-model"], "default_model": "other"})
    version = config_version("ns-a")
    wait_until(lambda: _applied(a1, version) and _applied(a2, version), timeout=15, message="both A edges applied")
    for edge in (a1, a2):
        status, body, _ = edge.chat(a.key)
        assert status in (403, 404), body
    # and deactivating the app locks its key out at both edges
    app_update(app=App.objects.get(pk=a.app_id), data={"is_active": False})
    version = config_version("ns-a")
    wait_until(lambda: _applied(a1, version) and _applied(a2, version), timeout=15, message="deactivation applied")
    for edge in (a1, a2):
        status, body, _ = edge.chat(a.key)
        assert status == 401 and body["error"]["code"] == "invalid_api_key", body

    # namespace B saw none of it
    assert b1.ready()["version"] == b_version
    assert b1.chat(b.key)[0] == 200
    assert a1.chat(b.key)[0] == 401, "a key of namespace B is unknown in namespace A"


def test_edge_started_with_nats_down_serves_from_its_last_snapshot_and_says_so(cluster):
    a = seed_namespace("ns-a", cluster.mock_url)
    cluster.start_bridge()
    a1 = cluster.start_edge(cluster.add_edge("a1", "ns-a"))
    wait_until(lambda: a1.ready().get("config_source") == "nats", message="config from NATS")
    version = a1.ready()["version"]
    a1.handle.stop()

    # restart the edge with its NATS unreachable (a forwarder that is not listening yet stands in for it, so this
    # test can watch the real server for the edge's first heartbeat once the forwarder opens)
    forwarder = TcpForwarder(cluster.nats.port)
    a1.env["NATS_URL"] = forwarder.url
    cluster.start_edge(a1)
    ready = a1.ready()
    assert (ready["config_source"], ready["nats_connected"], ready["version"]) == ("disk", False, version)
    assert a1.chat(a.key, request_id="served-from-disk")[0] == 200

    async def heartbeats_after_reconnect() -> list[EdgeHeartbeat]:
        nc = await nats.connect(cluster.nats.url)
        beats: list[EdgeHeartbeat] = []

        async def collect(message) -> None:
            beats.append(decode(message.data, EdgeHeartbeat))

        await nc.subscribe("fj.up.ns-a.a1.heartbeat", cb=collect)
        await nc.flush()
        forwarder.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while not any(b.config_source == "nats" for b in beats) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        await nc.close()
        return beats

    try:
        beats = asyncio.run(heartbeats_after_reconnect())
        assert beats and beats[0].config_source == "disk", [b.config_source for b in beats]
        assert beats[-1].config_source == "nats" and beats[-1].nats_connected
        wait_until(lambda: a1.ready().get("config_source") == "nats", message="back on NATS")
        wait_until(
            lambda: AnalyticsEvent.objects.filter(request_id="served-from-disk").count() == 1,
            timeout=20,
            message="the request served from disk reached analytics",
        )
    finally:
        a1.handle.stop()
        forwarder.stop()
