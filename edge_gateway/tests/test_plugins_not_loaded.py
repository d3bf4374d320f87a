"""A plugin the edge cannot load (its `initialize` raises on its config, as `ip-filter` does on a network that does
not parse) is visible to the operator: `/ready` lists it under `plugins_not_loaded` (its key only: `/ready` is not
authenticated and an error may quote config), the log says why, and its failure policy decides the requests (fail
open: served without it; fail closed: its chains refuse with 503).

Before, the edge logged one line and served on: `/ready` said `ready` with nothing amiss, so a registration that
never ran (the control plane took it with 201, see `control_plane/plugins/tests/test_initialize_refused.py`; an
edge-only plugin is not tried there) showed only in each edge's log."""

from __future__ import annotations

import logging

import httpx
import pytest

from shared_sdk.snapshot import PluginConfig

from .support import CLIENT_KEY, make_snapshot, run_edge


def _snapshot(upstream: str, policy: str):
    plugins = [
        PluginConfig(
            slug="ip-filter",
            name="ip-filter",
            entry_point="ip-filter",
            config={"deny": ["not-a-network"]},
            failure_policy=policy,  # type: ignore[arg-type]
            global_order=0,
        ),
        PluginConfig(slug="request-tagger", name="request-tagger", entry_point="request-tagger", global_order=1),
    ]
    return make_snapshot(upstream, plugins=plugins)


@pytest.mark.parametrize(("policy", "status"), [("open", 200), ("closed", 503)])
def test_a_plugin_whose_initialize_raises_is_listed_by_ready(upstream, tmp_path, caplog, policy, status):
    with (
        caplog.at_level(logging.ERROR, logger="fjordgate.edge.config"),
        run_edge(_snapshot(upstream, policy), tmp_path) as edge,
    ):
        ready = httpx.get(f"{edge.url}/ready", timeout=10)
        reply = httpx.post(
            f"{edge.url}/v1/chat/completions",
            headers={"authorization": f"Bearer {CLIENT_KEY}"},
            json={"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]},
            timeout=10,
        )
    assert ready.status_code == 200 and ready.json()["plugins_not_loaded"] == ["ip-filter"]
    assert reply.status_code == status
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "plugin ip-filter not loaded" in logged and "ip-filter: bad network" in logged


@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "isolated"])
def test_why_a_plugin_was_not_loaded_is_a_fixed_phrase_for_the_heartbeat(upstream, tmp_path, isolated):
    """What the heartbeat carries to the control plane (`CompiledConfig.plugin_load_errors`): why each plugin was not
    loaded as a fixed phrase, never the plugin's message (`ip-filter: bad network 'not-a-network'` quotes config)."""
    plugins = [
        PluginConfig(
            slug="ip-filter",
            name="ip-filter",
            entry_point="ip-filter",
            config={"deny": ["not-a-network"]},
            global_order=0,
            isolated=isolated,
        ),
        PluginConfig(slug="absent", name="absent", import_path="edge_gateway.tests.no_such_module:Plugin"),
    ]
    with run_edge(make_snapshot(upstream, plugins=plugins), tmp_path) as edge:
        errors = dict(edge.edge.store.current.plugin_load_errors)
    assert errors == {"absent": "code not loadable", "ip-filter": "initialize raised"}
