"""Hook ordering and short-circuit rules, plugin failures and timeouts, streaming hooks, client disconnect."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from shared_sdk import AnalyticsRecord

from . import recording_plugins
from .support import CLIENT_KEY, PluginBinding, PluginConfig, llm, make_snapshot, run_edge

AUTH = {"authorization": f"Bearer {CLIENT_KEY}"}
REC = "edge_gateway.tests.recording_plugins:Recorder"
EVENTS = "edge_gateway.tests.recording_plugins:EventsRecorder"


def chat(edge, content="hi", **extra):
    return httpx.post(
        f"{edge.url}/v1/chat/completions",
        headers=AUTH,
        timeout=10,
        json={"model": "mock-gpt", "messages": [{"role": "user", "content": content}], **extra},
    )


def upstream_count(upstream: str) -> int:
    return len(httpx.get(f"{upstream}/_mock/requests").json()["data"])


def snapshot_with(upstream: str, *configs: dict, global_labels: tuple[str, ...] = ("g",), policies=None):
    """Global plugin(s) `g...` then the LLM's chain: one Recorder per config (label = config['label'])."""
    policies = policies or {}
    plugins, chain = [], []
    for order, label in enumerate(global_labels):
        plugins.append(
            PluginConfig(slug=label, name=label, import_path=REC, config={"label": label}, global_order=order)
        )
    for order, cfg in enumerate(configs):
        label = cfg["label"]
        plugins.append(
            PluginConfig(
                slug=label,
                name=label,
                import_path=REC,
                config=cfg,
                failure_policy=policies.get(label, "open"),
                timeout_ms=cfg.get("timeout_ms", 30_000),
            )
        )
        chain.append(PluginBinding(plugin_slug=label, order=order))
    return make_snapshot(
        upstream,
        llms=[llm(1, "mock-llm", f"{upstream}/v1", allowed_models=["mock-gpt"], plugin_chain=chain)],
        plugins=plugins,
    )


def chain_snapshot(upstream: str, *plugins: PluginConfig):
    """The mock LLM with `plugins` as its chain, in that order (no global plugin)."""
    chain = [PluginBinding(plugin_slug=p.slug, order=order) for order, p in enumerate(plugins)]
    return make_snapshot(
        upstream,
        llms=[llm(1, "mock-llm", f"{upstream}/v1", allowed_models=["mock-gpt"], plugin_chain=chain)],
        plugins=list(plugins),
    )


@pytest.fixture(autouse=True)
def _clear_calls():
    recording_plugins.CALLS.clear()


def calls(method: str) -> list[str]:
    return [label for label, m in recording_plugins.CALLS if m == method]


def test_request_hooks_in_order_response_hooks_in_reverse(upstream, tmp_path):
    snap = snapshot_with(upstream, {"label": "a"}, {"label": "b"})
    with run_edge(snap, tmp_path) as edge:
        reply = chat(edge)
    assert reply.status_code == 200
    assert calls("pre_auth") == ["g", "a", "b"] and calls("post_auth") == ["g", "a", "b"]
    assert calls("headers") == ["b", "a", "g"] and calls("body") == ["b", "a", "g"]
    assert reply.headers["x-a"] == reply.headers["x-b"] == reply.headers["x-g"] == "seen"


@pytest.mark.parametrize("mode", ["response", "error", "block", "stream"])
def test_short_circuit_skips_the_rest_and_the_upstream(upstream, tmp_path, mode):
    snap = snapshot_with(
        upstream, {"label": "a"}, {"label": "b", "short_circuit_at": "post_auth", "mode": mode}, {"label": "c"}
    )
    with run_edge(snap, tmp_path) as edge:
        before = upstream_count(upstream)
        reply = chat(edge, stream=(mode == "stream"))
        record = edge.sink.wait_for(AnalyticsRecord, 1)[0]
    assert upstream_count(upstream) == before
    assert calls("post_auth") == ["g", "a", "b"]  # c never ran
    response_calls = calls("chunk") if mode == "stream" else calls("body")
    assert "c" not in response_calls and response_calls[:3] == ["b", "a", "g"]
    expected = {"response": 200, "error": 451, "block": 403, "stream": 200}[mode]
    assert reply.status_code == expected and record.status_code == expected
    if mode == "response":
        assert reply.json()["choices"][0]["message"]["content"] == "short-circuited by b"
    if mode == "stream":
        assert "from " in reply.text and reply.text.rstrip().endswith("data: [DONE]")


def test_pre_auth_short_circuit_runs_only_earlier_response_hooks(upstream, tmp_path):
    snap = snapshot_with(upstream, {"label": "a", "short_circuit_at": "pre_auth", "mode": "error"}, {"label": "b"})
    with run_edge(snap, tmp_path) as edge:
        reply = httpx.post(
            f"{edge.url}/v1/chat/completions",
            json={"model": "mock-gpt", "messages": [{"role": "user", "content": "x"}]},
        )  # no key: pre-auth runs before authentication
    assert reply.status_code == 451
    assert calls("pre_auth") == ["g", "a"] and calls("post_auth") == []
    assert calls("body") == ["a", "g"]


def test_plugin_failure_open_is_skipped_closed_fails_the_request(upstream, tmp_path):
    snap = snapshot_with(upstream, {"label": "a", "fail_at": "post_auth"}, {"label": "b"})
    with run_edge(snap, tmp_path) as edge:
        assert chat(edge).status_code == 200
    assert calls("post_auth") == ["g", "a", "b"]
    recording_plugins.CALLS.clear()
    snap = snapshot_with(upstream, {"label": "a", "fail_at": "post_auth"}, {"label": "b"}, policies={"a": "closed"})
    with run_edge(snap, tmp_path) as edge:
        before = upstream_count(upstream)
        reply = chat(edge)
        assert upstream_count(upstream) == before
    assert reply.status_code == 500 and reply.json()["error"]["code"] == "plugin_exception"
    assert "RuntimeError" not in reply.text  # no internals leak to the client
    assert calls("post_auth") == ["g", "a"]


def test_slow_plugin_hits_its_timeout(upstream, tmp_path):
    snap = snapshot_with(upstream, {"label": "a", "sleep_s": 2, "timeout_ms": 100}, policies={"a": "closed"})
    with run_edge(snap, tmp_path) as edge:
        started = time.monotonic()
        reply = chat(edge)
    assert reply.status_code == 504 and reply.json()["error"]["code"] == "plugin_timeout"
    assert time.monotonic() - started < 1.5


def test_stream_hooks_see_every_chunk_may_rewrite_and_drop(upstream, tmp_path):
    snap = snapshot_with(
        upstream, {"label": "a", "upper_chunks": True}, {"label": "b", "drop_chunk_containing": "world"}
    )
    with run_edge(snap, tmp_path) as edge:
        reply = chat(edge, "hello world", stream=True, mock="chunks=3")
        edge.sink.wait_for(AnalyticsRecord, 1)
    assert reply.status_code == 200
    text = reply.text
    assert "ECHO" in text and "Echo" not in text  # rewritten by a
    assert "world" not in text  # the chunk carrying it was dropped by b
    chunk_calls = calls("chunk")
    assert chunk_calls[0] == "b" and chunk_calls.count("a") < chunk_calls.count("b")  # dropped chunks skip a
    assert calls("complete") == ["b", "a", "g"]


@pytest.mark.parametrize("burst", [True, False], ids=["one-read", "event-by-event"])
def test_an_events_hook_gets_each_reads_events_in_one_call_beside_per_event_hooks(upstream, tmp_path, burst):
    """A vendor that sends the whole answer in one write: the `on_before_write_events` plugin is called once for
    the events after the first (which goes out alone, for time to first byte), the per-event plugin after it in
    reverse order sees what it passed; the client reads the rewritten stream without the dropped event."""
    snap = chain_snapshot(
        upstream,
        PluginConfig(slug="a", name="a", import_path=REC, config={"label": "a"}),
        PluginConfig(slug="ev", name="ev", import_path=EVENTS, config={"label": "ev", "drop_containing": "world"}),
    )
    mock = "chunks=4; burst" if burst else "chunks=4"
    with run_edge(snap, tmp_path) as edge:
        reply = chat(edge, "hello big wide world", stream=True, mock=mock)
        edge.sink.wait_for(AnalyticsRecord, 1)
    assert reply.status_code == 200 and reply.text.rstrip().endswith("data: [DONE]")
    text = "".join(
        (json.loads(line[6:])["choices"] or [{}])[0].get("delta", {}).get("content") or ""
        for line in reply.text.splitlines()
        if line.startswith("data: {")
    )
    assert "ECHO" in text and "Echo" not in text and "world" not in text
    groups = [int(m.split(":")[1]) for label, m in recording_plugins.CALLS if label == "ev"]
    events = sum(groups)
    assert events >= 6  # role, 4 content events at most, finish, usage, [DONE]
    if burst:
        assert groups[0] == 1 and len(groups) == 2  # the first event alone, then the rest of the read at once
    assert calls("chunk") == ["a"] * (events - 1)  # a sees every event ev passed: all but the dropped one


async def _asgi_messages(app, body: bytes) -> list[dict]:
    """What the edge's ASGI app sends for one request, message by message (as uvicorn would deliver it)."""
    from bench.gate.workload import chat_scope

    messages: list[dict] = []
    done = asyncio.Event()
    delivered = False

    async def receive() -> dict:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        messages.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            done.set()

    await app(chat_scope(CLIENT_KEY, body), receive, send)
    return messages


@pytest.mark.parametrize("hooks", [True, False], ids=["chunk-hooks", "no-hooks"])
@pytest.mark.parametrize("burst", [True, False], ids=["one-read", "event-by-event"])
def test_the_read_that_ends_a_stream_goes_out_with_the_end_of_the_body(upstream, tmp_path, hooks, burst):
    """The events of the read holding `[DONE]` and the end of the body are one message, which uvicorn writes to the
    socket at once (chunk and terminator): one write per stream fewer. A whole answer in one read is then two
    messages: its first event alone (time to first byte), then the rest with the end."""
    events = PluginConfig(slug="ev", name="ev", import_path=EVENTS, config={"label": "ev"})
    snap = chain_snapshot(upstream, events) if hooks else snapshot_with(upstream, global_labels=())
    request = {"model": "mock-gpt", "messages": [{"role": "user", "content": "one two three"}], "stream": True}
    request["mock"] = "chunks=4; burst" if burst else "chunks=4"
    with run_edge(snap, tmp_path) as edge:
        messages = edge.call(_asgi_messages(edge.app, json.dumps(request).encode()))
    assert messages[0]["type"] == "http.response.start" and messages[0]["status"] == 200
    bodies = [m for m in messages[1:] if m["type"] == "http.response.body"]
    assert all(m["more_body"] for m in bodies[:-1]) and not bodies[-1]["more_body"]
    assert bodies[-1]["body"].endswith(b"data: [DONE]\n\n")
    text = b"".join(m["body"] for m in bodies)
    assert text.count(b"data: [DONE]") == 1 and b"echo" in text.lower()  # the recorder writes ECHO
    if burst:
        assert len(bodies) == 2 and bodies[0]["body"].count(b"data: ") == 1


def test_an_events_hook_answering_text_instead_of_bytes_ends_that_stream_with_an_error_event(upstream, tmp_path):
    snap = chain_snapshot(
        upstream, PluginConfig(slug="ev", name="ev", import_path=EVENTS, config={"answer_text": True})
    )
    with run_edge(snap, tmp_path) as edge:
        reply = chat(edge, "hello there", stream=True, mock="burst")
        record = edge.sink.wait_for(AnalyticsRecord, 1)[0]
        again = chat(edge, "and a plain answer")  # the edge serves on
    assert reply.status_code == 200
    last = [line for line in reply.text.splitlines() if line.startswith("data: ")][-1]
    assert json.loads(last[6:])["error"]["code"] == "plugin_failed"
    assert record.status_code == 500 and again.status_code == 200


def test_stream_error_mid_way_ends_with_error_event_and_is_accounted(upstream, tmp_path):
    snap = snapshot_with(upstream, global_labels=())
    with run_edge(snap, tmp_path) as edge:
        reply = chat(edge, "one two three four five six", stream=True, mock="fail_after_chunks=2")
        record = edge.sink.wait_for(AnalyticsRecord, 1)[0]
    assert reply.status_code == 200
    assert '"error"' in reply.text.splitlines()[-2] or '"error"' in reply.text
    assert record.status_code == 502 and record.streamed


def test_client_disconnect_cancels_upstream_and_is_accounted(upstream, tmp_path):
    snap = snapshot_with(upstream, global_labels=())
    with run_edge(snap, tmp_path) as edge:
        with httpx.Client(timeout=10) as http:
            with http.stream(
                "POST",
                f"{edge.url}/v1/chat/completions",
                headers=AUTH,
                json={
                    "model": "mock-gpt",
                    "stream": True,
                    "mock": "chunk_delay_ms=200",
                    "messages": [{"role": "user", "content": "a b c d e f g h i j k l m n o p"}],
                },
            ) as reply:
                first = next(reply.iter_raw())
                assert first.startswith(b"data:")
        started = time.monotonic()
        record = edge.sink.wait_for(AnalyticsRecord, 1)[0]
        assert time.monotonic() - started < 2.5  # accounted as soon as the client left, not when the stream ended
    assert record.context.metadata.get("client_disconnected") is True
    assert record.streamed and record.app_id == 1


def test_anthropic_messages_run_through_the_same_hooks(upstream, tmp_path):
    snap = snapshot_with(upstream, {"label": "a"}, {"label": "b"})
    body = {"model": "mock-gpt", "max_tokens": 50, "messages": [{"role": "user", "content": "hooked"}]}
    with run_edge(snap, tmp_path) as edge:
        full = httpx.post(f"{edge.url}/v1/messages", headers={"x-api-key": CLIENT_KEY}, json=body, timeout=10)
        streamed = httpx.post(
            f"{edge.url}/v1/messages", headers={"x-api-key": CLIENT_KEY}, json={**body, "stream": True}, timeout=10
        )
    assert full.status_code == 200 and full.json()["content"][0]["text"] == "Echo: hooked"
    assert full.headers["x-a"] == full.headers["x-b"] == full.headers["x-g"] == "seen"
    assert streamed.status_code == 200 and streamed.headers["x-a"] == "seen"
    assert "event: message_start" in streamed.text and streamed.text.rstrip().endswith('{"type":"message_stop"}')
    assert calls("post_auth") == ["g", "a", "b", "g", "a", "b"]
    assert calls("body") == ["b", "a", "g"] and calls("chunk")[:3] == ["b", "a", "g"]
    assert calls("complete") == ["b", "a", "g"]


def test_a_plugin_error_on_messages_is_in_anthropic_shape(upstream, tmp_path):
    snap = snapshot_with(upstream, {"label": "a", "short_circuit_at": "post_auth", "mode": "error"})
    body = {"model": "mock-gpt", "max_tokens": 50, "messages": [{"role": "user", "content": "x"}]}
    with run_edge(snap, tmp_path) as edge:
        reply = httpx.post(f"{edge.url}/v1/messages", headers={"x-api-key": CLIENT_KEY}, json=body, timeout=10)
    assert reply.status_code == 451
    assert reply.json() == {"type": "error", "error": {"type": "invalid_request_error", "message": "stopped by a"}}


def test_a_stream_the_client_abandons_is_billed_its_bound_not_nothing(upstream, tmp_path):
    from decimal import Decimal

    from shared_sdk import BudgetUsage
    from shared_sdk.snapshot import BudgetConfig

    from .support import make_snapshot

    budget = BudgetConfig(id=1, scope="app", target_id=1, limit=Decimal("100"), period_start=0.0, period_end=9e9)
    with run_edge(make_snapshot(upstream, budgets=[budget]), tmp_path) as edge:
        with httpx.Client(timeout=10) as http:
            with http.stream(
                "POST",
                f"{edge.url}/v1/chat/completions",
                headers=AUTH,
                json={
                    "model": "mock-gpt",
                    "stream": True,
                    "max_tokens": 100,
                    "mock": "chunk_delay_ms=200",
                    "messages": [{"role": "user", "content": "a b c d e f g h i j k l m n o p"}],
                },
            ) as reply:
                assert next(reply.iter_raw()).startswith(b"data:")
        usage = edge.sink.wait_for(BudgetUsage, 1)[0]
    # the bound: (8 per message + "user" 4 + the content's 31 bytes + 8) prompt tokens x $1000/M
    # + max_tokens 100 x $2000/M
    assert usage.cost == Decimal((8 + 4 + 31 + 8) * 1000 + 100 * 2000) / 1_000_000


def test_the_vendors_share_of_a_request_is_recorded_to_the_microsecond(upstream, tmp_path):
    """uvloop's `loop.time()` counts whole milliseconds, read once per loop turn: timed with it, a vendor that
    answered in 0.3 ms was recorded as 0 or 1 ms. Analytics and the latency histograms take this figure."""
    import uvloop

    with run_edge(make_snapshot(upstream), tmp_path, event_loop=uvloop.new_event_loop) as edge:
        for _ in range(5):
            assert chat(edge).status_code == 200
        assert chat(edge, mock="latency_ms=15").status_code == 200
        records = edge.sink.wait_for(AnalyticsRecord, 6)
    quick, slow = records[:5], records[5]
    assert all(0 < r.upstream_latency_ms < r.latency_ms for r in quick), [r.upstream_latency_ms for r in quick]
    assert any(r.upstream_latency_ms % 1 for r in quick)  # not a count of whole milliseconds
    assert 15 <= slow.upstream_latency_ms < slow.latency_ms


@pytest.mark.parametrize("scope", ["app", "user"])
def test_a_client_over_its_request_rate_costs_no_post_auth_plugin_call(upstream, tmp_path, scope):
    """A post-auth plugin may call out or redact a large body: a request its client may not make this minute is
    refused (429, with Retry-After) before the plugin runs, not after. The request that was admitted counted."""
    import msgspec

    from shared_sdk.snapshot import snapshot_checksum

    from .support import USER_KEY

    snap = snapshot_with(upstream, {"label": "a"})
    limit = {"rate_limit_rpm": 1} if scope == "app" else {"user_rate_limit_rpm": 1}
    snap = msgspec.structs.replace(snap, apps=[msgspec.structs.replace(snap.apps[0], **limit), *snap.apps[1:]])
    snap = msgspec.structs.replace(snap, checksum=snapshot_checksum(snap))
    key = CLIENT_KEY if scope == "app" else USER_KEY
    body = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]}
    with run_edge(snap, tmp_path) as edge:
        url, auth = f"{edge.url}/v1/chat/completions", {"authorization": f"Bearer {key}"}
        first = httpx.post(url, headers=auth, json=body, timeout=10)
        refused = [httpx.post(url, headers=auth, json=body, timeout=10) for _ in range(3)]
    assert first.status_code == 200, first.text
    assert [r.status_code for r in refused] == [429, 429, 429]
    assert refused[0].json()["error"]["code"] == "rate_limit_exceeded" and int(refused[0].headers["retry-after"]) >= 1
    assert calls("pre_auth") == ["g", "a"] * 4, "pre-auth hooks run before the caller is known"
    assert calls("post_auth") == ["g", "a"], "only the admitted request reached the post-auth plugins"
