"""A plugin's KV on an edge with two workers (`EDGE_WORKERS=2`, a real supervisor and its processes): one store for
the edge, so what a plugin wrote while one worker served a request is what it reads on the other."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.support.edge_metrics import requests_by_worker

from .support import CLIENT_KEY, PluginConfig, edge_workers, make_snapshot

pytestmark = [pytest.mark.timeout(120)]

AUTH = {"authorization": f"Bearer {CLIENT_KEY}"}
REQUESTS = 24


def _recent(url: str) -> set[str]:
    """The request ids the request logger lists, asked on a fresh connection (either worker answers)."""
    reply = httpx.get(f"{url}/plugins/request-logger/recent?limit=500", headers=AUTH, timeout=10)
    assert reply.status_code == 200, reply.text
    return {entry["request_id"] for entry in reply.json()["data"]}


def test_the_request_logger_lists_every_request_whichever_worker_served_it_or_is_asked(upstream, tmp_path):
    logger = PluginConfig(
        slug="request-logger",
        name="request-logger",
        import_path="plugins.request_logger.plugin:create_plugin",
        global_order=0,
    )
    with edge_workers(make_snapshot(upstream, plugins=[logger]), tmp_path) as url:
        sent: set[str] = set()
        for i in range(REQUESTS):  # a fresh connection each: the kernel spreads them over both workers
            reply = httpx.post(
                f"{url}/v1/chat/completions",
                headers=AUTH,
                json={"model": "mock-gpt", "messages": [{"role": "user", "content": f"hi {i}"}]},
                timeout=10,
            )
            assert reply.status_code == 200
            sent.add(reply.headers["x-request-id"])
        # Collectors get records within a second; a worker lists what it holds at once and writes its window (the
        # entries the other worker lists) a second later, which the KV stores within 50 ms.
        deadline = time.monotonic() + 20
        while not all(_recent(url) == sent for _ in range(8)):  # asked of both workers, each lists all of them
            assert time.monotonic() < deadline, f"missing: {sent - _recent(url)}"
            time.sleep(0.2)
        served = requests_by_worker(httpx.get(f"{url}/metrics", timeout=10).text)
        assert set(served) == {"0", "1"}, served  # both workers served some of the requests
