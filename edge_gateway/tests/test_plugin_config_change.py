"""A plugin's config changed (or the plugin dropped) while requests are in flight: the requests that started under
the old config finish with the plugin instances they started with, which are stopped once they are done. Before,
the old instance was stopped as soon as the new config was in force, and an in-flight stream's next chunk hook
found it gone: a fail-closed plugin ended the stream with an error, a fail-open one (a PII redactor, say) was
skipped for the rest of it."""

from __future__ import annotations

import time
from typing import Any

import httpx
import msgspec
import pytest

from shared_sdk.snapshot import ConfigSnapshot, snapshot_checksum

from . import recording_plugins
from .support import CLIENT_KEY, make_snapshot, request_in_flight, run_edge
from .test_pipeline import snapshot_with

BODY = {
    "model": "mock-gpt",
    "stream": True,
    "mock": "chunk_delay_ms=60",
    "messages": [{"role": "user", "content": "one two three four five six seven eight"}],
}


def _version(snapshot: ConfigSnapshot, version: int) -> ConfigSnapshot:
    changed = msgspec.structs.replace(snapshot, version=version, checksum="")
    return msgspec.structs.replace(changed, checksum=snapshot_checksum(changed))


def _chunk_hooks() -> int:
    return sum(1 for label, m in recording_plugins.CALLS if label == "a" and m == "chunk")


def _shutdowns() -> list[str]:
    return [m for label, m in recording_plugins.CALLS if label == "a" and m.startswith("shutdown")]


@pytest.mark.parametrize("change", ["config", "dropped"])
def test_a_stream_in_flight_keeps_its_plugin_through_a_config_change(upstream: str, tmp_path: Any, change: str) -> None:
    recording_plugins.CALLS.clear()
    before = snapshot_with(upstream, {"label": "a", "upper_chunks": True}, policies={"a": "closed"})
    if change == "config":
        after = snapshot_with(upstream, {"label": "a", "upper_chunks": True, "v": 2}, policies={"a": "closed"})
    else:
        after = make_snapshot(upstream)
    with run_edge(before, tmp_path) as edge:
        events: list[bytes] = []
        with httpx.Client(timeout=20) as http:
            with http.stream(
                "POST", f"{edge.url}/v1/chat/completions", headers={"authorization": f"Bearer {CLIENT_KEY}"}, json=BODY
            ) as reply:
                assert reply.status_code == 200
                for line in reply.iter_lines():
                    events.append(line.encode())
                    if len(events) == 3:
                        edge.call(edge.edge.store.apply(_version(after, 2)))
                        hooked_at_change = _chunk_hooks()
                        assert _shutdowns() == []  # the stream still uses it
        data = [e[6:] for e in events if e.startswith(b"data: ")]
        assert data[-1] == b"[DONE]", events
        assert not any(b'"error"' in d for d in data), events
        assert _chunk_hooks() > hooked_at_change  # the chunks after the change went through the plugin
        deadline = time.monotonic() + 5
        while _shutdowns() != ["shutdown v1"]:  # stopped once the stream was done, the new one kept
            assert time.monotonic() < deadline, recording_plugins.CALLS
            time.sleep(0.02)


def test_replaced_instances_kept_for_requests_in_flight_are_bounded(upstream: str, tmp_path: Any, monkeypatch) -> None:
    """Config changes faster than a request ends: past RETIRED_MAX replaced instances the oldest is stopped at once
    (memory, and an isolated plugin's process each, do not grow with the rate of changes)."""
    from edge_gateway import config_store

    monkeypatch.setattr(config_store, "RETIRED_MAX", 2)
    recording_plugins.CALLS.clear()

    def version(v: int) -> ConfigSnapshot:
        return _version(snapshot_with(upstream, {"label": "a", "v": v}, policies={"a": "closed"}), v)

    with run_edge(version(1), tmp_path) as edge:
        with request_in_flight(edge, latency_ms=1500):  # under version 1
            for v in (2, 3, 4, 5):
                edge.call(edge.edge.store.apply(version(v)))
            assert _shutdowns() == ["shutdown v1", "shutdown v2"]  # v3 and v4 wait for the request, v5 serves
        deadline = time.monotonic() + 5
        while _shutdowns() != ["shutdown v1", "shutdown v2", "shutdown v3", "shutdown v4"]:
            assert time.monotonic() < deadline, _shutdowns()
            time.sleep(0.02)
