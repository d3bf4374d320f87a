"""Fallbacks with Bifrost's semantics: every fallback attempt re-runs the fallback LLM's own plugin chain and is
checked again (app link, model allow-list, budget); when everything fails the caller gets the primary's error.
Also: a client that leaves during a non-streamed call cancels the upstream call and is accounted (499)."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import httpx
import openai
import pytest

from shared_sdk import AnalyticsRecord

from . import recording_plugins
from .support import (
    CLIENT_KEY,
    AppConfig,
    BudgetConfig,
    FallbackTarget,
    ModelPriceConfig,
    PluginBinding,
    PluginConfig,
    llm,
    make_snapshot,
    run_edge,
)

AUTH = {"authorization": f"Bearer {CLIENT_KEY}"}
REC = "edge_gateway.tests.recording_plugins:Recorder"
PII = "plugins.pii_redactor.plugin:create_plugin"
EMAIL = "jane.doe@example.com"


@pytest.fixture(autouse=True)
def _clear_calls():
    recording_plugins.CALLS.clear()


def calls(method: str) -> list[str]:
    return [label for label, m in recording_plugins.CALLS if m == method]


def hits(upstream: str) -> list[dict]:
    return httpx.get(f"{upstream}/_mock/requests").json()["data"]


def chat(edge, mock: str, content: str = "hi", **extra):
    return httpx.post(
        f"{edge.url}/v1/chat/completions",
        headers=AUTH,
        timeout=15,
        json={"model": "mock-gpt", "messages": [{"role": "user", "content": content}], "mock": mock, **extra},
    )


def snapshot(
    upstream: str,
    *,
    linked: tuple[int, ...] = (1, 2),
    fallback_model: str = "backup-model",
    backup_plugin: dict | None = None,
    primary_plugin: dict | None = None,
    budgets: list[BudgetConfig] | None = None,
):
    """Global recorder `g`; `primary` (chain: recorder `a`) falls back to `backup` (chain: recorder `b`, then
    the PII redactor). Both LLMs answer from the same mock upstream; neither retries."""
    b_config = {"label": "b", **(backup_plugin or {})}
    plugins = [
        PluginConfig(slug="g", name="g", import_path=REC, config={"label": "g"}, global_order=0),
        PluginConfig(slug="a", name="a", import_path=REC, config={"label": "a", **(primary_plugin or {})}),
        PluginConfig(slug="b", name="b", import_path=REC, config=b_config),
        PluginConfig(slug="pii", name="pii", import_path=PII, config={"redact_responses": False}),
    ]
    primary = llm(
        1,
        "primary",
        f"{upstream}/v1",
        allowed_models=["mock-gpt"],
        max_retries=0,
        fallbacks=[FallbackTarget(llm_slug="backup", model=fallback_model)],
        plugin_chain=[PluginBinding(plugin_slug="a", order=0)],
    )
    backup = llm(
        2,
        "backup",
        f"{upstream}/v1",
        default_model="backup-model",
        allowed_models=["backup-model"],
        max_retries=0,
        plugin_chain=[PluginBinding(plugin_slug="b", order=0), PluginBinding(plugin_slug="pii", order=1)],
    )
    prices = [
        ModelPriceConfig(
            vendor="mock", model=name, prompt_per_million=Decimal("1000"), completion_per_million=Decimal("2000")
        )
        for name in ("mock-gpt", "backup-model")
    ]
    return make_snapshot(
        upstream,
        llms=[primary, backup],
        apps=[AppConfig(id=1, name="one", llm_ids=list(linked))],
        plugins=plugins,
        prices=prices,
        budgets=budgets,
    )


def test_fallback_runs_the_fallback_llms_own_chain_on_the_clients_request(upstream, tmp_path):
    with run_edge(snapshot(upstream), tmp_path) as edge:
        reply = chat(edge, f"fail_times=1;key={uuid.uuid4().hex};status=503", content=f"mail {EMAIL}")
        record = edge.sink.wait_for(AnalyticsRecord, 1)[0]
    assert reply.status_code == 200
    first, second = hits(upstream)
    assert first["model"] == "mock-gpt" and EMAIL in first["body"]["messages"][0]["content"]
    # The backup's chain (with the redactor) ran for the fallback attempt, on the client's original request.
    assert second["model"] == "backup-model" and EMAIL not in second["body"]["messages"][0]["content"]
    assert calls("post_auth") == ["g", "a", "g", "b"]
    # Response hooks pair with request hooks per attempt: a and g saw the primary's error, b and g the answer.
    assert calls("body") == ["a", "g", "b", "g"]
    assert reply.headers["x-b"] == reply.headers["x-g"] == "seen" and "x-a" not in reply.headers
    assert record.llm_slug == "backup" and record.model == "backup-model" and record.status_code == 200


@pytest.mark.parametrize(
    "case",
    ["fallback_llm_not_linked_to_app", "fallback_model_not_allowed", "fallback_budget_exhausted"],
)
def test_fallback_that_the_app_may_not_use_is_skipped_and_the_primary_error_returned(upstream, tmp_path, case):
    options: dict = {
        "fallback_llm_not_linked_to_app": {"linked": (1,)},
        "fallback_model_not_allowed": {"fallback_model": "forbidden-model"},
        "fallback_budget_exhausted": {
            "budgets": [BudgetConfig(id=1, scope="llm", target_id=2, limit=Decimal("0.01"), spent=Decimal("0.02"))]
        },
    }[case]
    with run_edge(snapshot(upstream, **options), tmp_path) as edge:
        reply = chat(edge, "status=503")
        record = edge.sink.wait_for(AnalyticsRecord, 1)[0]
    assert reply.status_code == 502 and "503" in reply.json()["error"]["message"]
    assert [h["model"] for h in hits(upstream)] == ["mock-gpt"]  # the backup was never called
    if case == "fallback_budget_exhausted":
        # Policy comes after the chain (as for the primary): b ran, and its response hooks saw the refusal.
        assert calls("post_auth") == ["g", "a", "g", "b"] and calls("body") == ["a", "g", "b", "g"]
    else:
        assert calls("post_auth") == ["g", "a"]  # refused before the backup's chain
    assert record.llm_slug == "primary" and record.status_code == 502


def test_fallback_blocked_by_its_own_chain_gives_the_primary_error(upstream, tmp_path):
    snap = snapshot(upstream, backup_plugin={"short_circuit_at": "post_auth", "mode": "error"})
    with run_edge(snap, tmp_path) as edge:
        reply = chat(edge, "status=503")
    assert reply.status_code == 502 and reply.json()["error"]["code"] == "upstream_error"  # not b's 451
    assert [h["model"] for h in hits(upstream)] == ["mock-gpt"]
    assert calls("post_auth") == ["g", "a", "g", "b"]
    assert calls("body") == ["a", "g", "b", "g"]  # b's refusal still went through the response hooks that ran


@pytest.mark.parametrize(("mode", "status"), [("error", 200), ("block", 403)])
def test_a_short_circuit_error_falls_back_unless_it_forbids_it(upstream, tmp_path, mode, status):
    """`allow_fallbacks` unset (the plugin's error) lets the backup answer; a block sets it to false: no fallback."""
    snap = snapshot(upstream, primary_plugin={"short_circuit_at": "post_auth", "mode": mode})
    with run_edge(snap, tmp_path) as edge:
        before = len(hits(upstream))
        reply = chat(edge, "")
        record = edge.sink.wait_for(AnalyticsRecord, 1)[0]
    assert reply.status_code == status
    answered_by = [h["model"] for h in hits(upstream)[before:]]
    if mode == "error":
        assert answered_by == ["backup-model"] and record.llm_slug == "backup"
        assert calls("body") == ["a", "g", "b", "g"]  # a saw its own refusal, b the answer
    else:
        assert answered_by == [] and reply.json()["error"]["code"] == "blocked_by_plugin"


@pytest.mark.parametrize("stream", [False, True])
def test_a_responses_request_a_plugin_refuses_falls_back_and_is_stored(upstream, tmp_path, stream):
    """The same refusal for a `/v1/responses` request: the backup answers it as a Responses object (or event
    stream), and the edge keeps it for `previous_response_id` and retrieve. It used to reach the backup without
    the request's Responses session: the backup's build failed ('cannot take the request') and the client got the
    primary's refusal."""
    snap = snapshot(upstream, primary_plugin={"short_circuit_at": "post_auth", "mode": "error"})
    with run_edge(snap, tmp_path) as edge:
        client = openai.OpenAI(base_url=f"{edge.url}/v1", api_key=CLIENT_KEY, max_retries=0)
        before = len(hits(upstream))
        if stream:
            with client.responses.stream(model="mock-gpt", input="hello backup") as events:
                reply = events.get_final_response()
        else:
            reply = client.responses.create(model="mock-gpt", input="hello backup")
        record = edge.sink.wait_for(AnalyticsRecord, 1)[0]
        assert reply.output_text == "Echo: hello backup" and reply.status == "completed"
        assert [h["model"] for h in hits(upstream)[before:]] == ["backup-model"] and record.llm_slug == "backup"
        assert client.responses.retrieve(reply.id).output_text == "Echo: hello backup"
        client.responses.create(model="mock-gpt", input="and again", previous_response_id=reply.id)
        assert [m["content"] for m in hits(upstream)[-1]["body"]["messages"]] == [
            "hello backup",
            "Echo: hello backup",
            "and again",
        ]


# -- client disconnect during a non-streamed call ------------------------------------------------------------


@contextmanager
def silent_upstream() -> Iterator[tuple[str, threading.Event, threading.Event]]:
    """A TCP server that reads one request and never answers; reports when the caller closes the connection."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    received, closed = threading.Event(), threading.Event()

    def serve() -> None:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(30)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                received.set()
                while conn.recv(65536):
                    pass
            except OSError:
                pass
            closed.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}", received, closed
    finally:
        server.close()
        thread.join(5)


@pytest.mark.parametrize("client", ["h1", "aiohttp"])
def test_client_disconnect_during_a_non_streamed_call_cancels_the_upstream_and_is_accounted(
    mock_upstream, tmp_path, client
):
    with silent_upstream() as (base, received, closed):
        slow = llm(1, "silent", f"{base}/v1", allowed_models=["mock-gpt"], max_retries=0, first_byte_timeout_s=20.0)
        with run_edge(make_snapshot(mock_upstream, llms=[slow]), tmp_path, upstream_client=client) as edge:
            with pytest.raises(httpx.ReadTimeout):
                httpx.post(
                    f"{edge.url}/v1/chat/completions",
                    headers=AUTH,
                    json={"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]},
                    timeout=httpx.Timeout(5, read=0.5),  # the client gives up and closes its connection
                )
            left = time.monotonic()
            assert received.is_set()
            assert closed.wait(5), "the edge kept the upstream call open after its client left"
            record = edge.sink.wait_for(AnalyticsRecord, 1)[0]
            assert time.monotonic() - left < 5  # long before the 20 s first-byte timeout
    assert record.status_code == 499 and record.context.metadata.get("client_disconnected") is True
    assert record.app_id == 1 and not record.streamed
