"""The hot-route front (`edge_gateway.app._HotRoutes`): the LLM routes straight to the pipeline, the rest to
Starlette, requests in flight counted either way."""

from __future__ import annotations

from typing import Any

import pytest

from edge_gateway import app as edge_app
from edge_gateway.app import _HOT_PATHS, _HotRoutes, _routes, build_edge
from edge_gateway.settings import EdgeSettings

from .support import EDGE_SECRET


class _Pipeline:
    def __init__(self, in_flight: list[int], fail: bool = False) -> None:
        self.in_flight = in_flight
        self.fail = fail
        self.served: list[tuple[str, int]] = []

    async def serve(self, scope: dict[str, Any], receive: Any, send: Any, kind: str) -> None:
        self.served.append((kind, self.in_flight[0]))
        if self.fail:
            raise RuntimeError("boom")


class _Starlette:
    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.paths.append(scope["path"])


def _scope(method: str, path: str) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path}


async def test_a_hot_post_reaches_the_pipeline_counted_in_flight_and_everything_else_starlette():
    in_flight = [0]
    pipeline, starlette = _Pipeline(in_flight), _Starlette()
    front = _HotRoutes(starlette, pipeline, in_flight)
    await front(_scope("POST", "/v1/chat/completions"), None, None)
    await front(_scope("POST", "/v1/messages"), None, None)
    await front(_scope("GET", "/v1/chat/completions"), None, None)  # Starlette answers 405
    await front(_scope("POST", "/v1/models/x:generateContent"), None, None)
    assert pipeline.served == [("chat", 1), ("messages", 1)]
    assert starlette.paths == ["/v1/chat/completions", "/v1/models/x:generateContent"]
    assert in_flight == [0]


async def test_the_in_flight_count_drops_when_the_pipeline_raises():
    in_flight = [0]
    front = _HotRoutes(_Starlette(), _Pipeline(in_flight, fail=True), in_flight)
    with pytest.raises(RuntimeError):
        await front(_scope("POST", "/v1/embeddings"), None, None)
    assert in_flight == [0]


def test_each_hot_path_has_the_kind_of_its_starlette_route(tmp_path):
    """The front and the route list name the LLM routes apart: they must agree (a POST served either way is the
    same request)."""
    edge = build_edge(EdgeSettings(namespace="ns", edge_id="e", state_dir=str(tmp_path), edge_secret=EDGE_SECRET))
    by_path = {route.path: route for route in _routes(edge)}
    for path, kind in _HOT_PATHS.items():
        route = by_path[path]
        assert route.methods == {"POST"}
        endpoint = route.endpoint
        assert isinstance(endpoint, edge_app._InFlight) and endpoint.app.kind == kind
