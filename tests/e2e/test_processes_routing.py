"""Load balancing through real processes (issue 14): an admin gives one model two deployments with weights 3:1
through the control plane's services; the bridge publishes it over NATS; a real `python -m edge_gateway` splits
400 requests 3:1 between two mock LLM processes (each one's own counter says what reached it). Then one
deployment's process dies mid-run: no client error, the other takes the traffic, `/ready` names the open
breaker."""

from __future__ import annotations

import pytest

from control_plane.applications.models import App
from control_plane.applications.services import app_update
from control_plane.llms.models import LLM
from control_plane.llms.services import llm_create, llm_update

from .cluster import MODEL, PYTHON, config_version, http, seed_namespace, wait_until
from .nats_server import free_port

pytestmark = [pytest.mark.timeout(240)]


def _served(mock_url: str) -> int:
    status, body, _ = http("GET", mock_url.removesuffix("/v1") + "/_mock/stats")
    assert status == 200, body
    return int(body["requests_total"])


def test_weights_from_the_control_plane_split_traffic_and_a_dead_deployment_costs_no_error(cluster):
    seed = seed_namespace("ns-lb", cluster.mock_url)
    first_url = cluster.mock_url
    port = free_port()
    second = cluster.start_process(
        [PYTHON, "-m", "fjordgate.mock_llm", "--port", str(port), "--log-size", "0"],
        ready_url=f"http://127.0.0.1:{port}/health",
        name="mock-llm-2",
    )
    second_url = f"http://127.0.0.1:{port}/v1"
    llm_update(llm=LLM.objects.get(pk=seed.llm_id), data={"weight": 3})
    other = llm_create(
        data={
            "name": "mock ns-lb east",
            "slug": "mock-ns-lb-east",
            "vendor": "mock",
            "api_endpoint": second_url,
            "default_model": MODEL,
            "namespace": "ns-lb",
            "max_retries": 0,
            "weight": 1,
            "breaker_cooldown_s": 60,
        }
    )
    app_update(app=App.objects.get(pk=seed.app_id), data={"llm_ids": [seed.llm_id, other.pk]})
    cluster.start_bridge()
    edge = cluster.start_edge(cluster.add_edge("lb1", "ns-lb"))
    version = config_version("ns-lb")
    wait_until(lambda: edge.ready().get("version", 0) >= version, message="edge config")

    statuses = [edge.chat(seed.key)[0] for _ in range(400)]
    assert statuses == [200] * 400
    first, east = _served(first_url), _served(second_url)
    assert first + east == 400
    assert abs(first / east - 3) <= 0.05 * 3, (first, east)

    second.stop()  # the east deployment's vendor goes away mid-run
    statuses = [edge.chat(seed.key)[0] for _ in range(40)]
    assert statuses == [200] * 40, "the other deployment was healthy: no client error"
    assert _served(first_url) == first + 40
    breakers = edge.ready()["open_breakers"]
    assert [(b["llm"], b["state"]) for b in breakers] == [("mock-ns-lb-east", "open")]
    status, metrics, _ = http("GET", f"{edge.url}/metrics")
    assert 'fjordgate_edge_deployment_state{llm="mock-ns-lb-east"} 1.0' in metrics
