"""Small pieces on their own: KV (TTL, prefix list), rate windows, budgets, routing, settings, SSE splitting."""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal

import orjson
import pytest

from edge_gateway.budgets import BudgetTracker, Reservation
from edge_gateway.config_store import ConfigRejected, ConfigStore
from edge_gateway.errors import GatewayError
from edge_gateway.kv import EdgeKV
from edge_gateway.providers.sse import SSESplitter
from edge_gateway.ratelimit import RateLimiter
from edge_gateway.settings import load_settings
from fjordgate.env import ConfigError
from shared_sdk.snapshot import BudgetConfig

from .support import EDGE_SECRET, AppConfig, llm, make_snapshot


async def test_kv_ttl_prefix_and_isolation(tmp_path):
    kv = EdgeKV(str(tmp_path / "kv.sqlite3"))
    await kv.open()
    a, b = kv.for_plugin("a"), kv.for_plugin("b")
    await a.write("log:1", b"one")
    await a.write("log:2", b"two", ttl_s=0.05)
    await a.write("other", b"x")
    await b.write("log:9", b"theirs")
    assert await a.list("log:") == ["log:1", "log:2"]
    await asyncio.sleep(0.1)
    assert await a.read("log:2") is None and await a.list("log:") == ["log:1"]
    assert await a.delete("log:1") and not await a.delete("log:1")
    assert await b.read("log:9") == b"theirs" and await a.read("log:9") is None
    await kv.close()
    reopened = EdgeKV(str(tmp_path / "kv.sqlite3"))
    await reopened.open()
    assert await reopened.for_plugin("a").read("other") == b"x"  # survives a restart
    assert await reopened.purge_expired() == 1
    await reopened.close()


async def test_kv_buffered_changes_are_seen_at_once_and_stored_by_the_flush(tmp_path):
    kv = EdgeKV(str(tmp_path / "kv.sqlite3"), commit_delay_s=60)  # no timed flush during the test
    await kv.open()
    a = kv.for_plugin("a")
    for i in range(3):
        await a.write(f"k{i}", b"old")
    await kv.flush()
    await a.write("k1", b"new")  # overwrite a stored key
    assert await a.delete("k2")  # delete a stored key
    await a.write("k3", b"added")
    assert not await a.delete("missing")
    assert await a.list("k") == ["k0", "k1", "k3"]
    assert await a.read("k1") == b"new" and await a.read("k2") is None
    await kv.close()  # flushes
    reopened = EdgeKV(str(tmp_path / "kv.sqlite3"))
    await reopened.open()
    again = reopened.for_plugin("a")
    assert await again.list("k") == ["k0", "k1", "k3"]
    assert await again.read("k1") == b"new" and await again.read("k3") == b"added"
    await reopened.close()


async def test_kv_a_write_made_while_a_flush_is_storing_is_stored_by_the_timed_flush_too(tmp_path):
    """A plugin's write that arrives while the timed flush awaits the database thread is on disk a commit delay
    later, not only at the next write or the next housekeeping (a minute later: a SIGKILL would lose it)."""
    import sqlite3

    path = str(tmp_path / "kv.sqlite3")
    kv = EdgeKV(path, commit_delay_s=0.01)
    await kv.open()
    a = kv.for_plugin("a")
    await a.write("first", b"1")
    while kv.pending:  # the timed flush took the buffer and now waits for the database thread
        await asyncio.sleep(0)
    assert kv._flush_task is not None and not kv._flush_task.done()
    await a.write("second", b"2")

    def stored() -> list[str]:
        with contextlib.closing(sqlite3.connect(path)) as db:  # another connection: only what was committed
            return [row[0] for row in db.execute("SELECT key FROM kv ORDER BY key")]

    for _ in range(100):
        if stored() == ["first", "second"]:
            break
        await asyncio.sleep(0.01)
    assert stored() == ["first", "second"]
    await kv.close()


def test_sliding_window_rejects_over_limit_and_tells_how_long():
    now = [1000.0]
    limiter = RateLimiter(clock=lambda: now[0])
    for _ in range(3):
        assert limiter.check("k", 3) == 0.0
        limiter.add("k", 1)
    wait = limiter.check("k", 3)
    assert 1.0 <= wait <= 60.0
    now[0] += 120
    assert limiter.check("k", 3) == 0.0


def test_budget_reservation_blocks_concurrent_overshoot_and_settles():
    tracker = BudgetTracker()
    tracker.load(
        [BudgetConfig(id=1, scope="app", target_id=1, limit=Decimal("1.00"), spent=Decimal("0.50"), period_start=10.0)]
    )
    states = tracker.applicable(1, None, None)
    assert tracker.reserve(states, Decimal("0.40")) is None
    assert tracker.reserve(states, Decimal("0.40")) is not None  # the in-flight reservation counts
    tracker.settle(Reservation(states, Decimal("0.40")), Decimal("0.10"), currency="USD")
    assert tracker.state(1).spent == Decimal("0.60") and tracker.state(1).reserved == 0
    tracker.update_spend(1, Decimal("0.55"), 10.0)
    assert tracker.state(1).spent == Decimal("0.60")  # max(control plane, local)
    tracker.update_spend(1, Decimal("0.01"), 20.0)
    assert tracker.state(1).spent == Decimal("0.01")  # new period


async def test_routing_allow_list_and_links(tmp_path):
    from edge_gateway.services import services_factory  # noqa: F401
    from shared_sdk import Runtime
    from shared_sdk.host import PluginHost

    store = ConfigStore(host=PluginHost(Runtime.GATEWAY, lambda slug: None), edge_secret=EDGE_SECRET)
    snap = make_snapshot(
        "http://x",
        llms=[
            llm(1, "gpt", "http://x/v1", default_model="gpt-4o", allowed_models=["gpt-4o", "gpt-4\\.1.*"]),
            llm(2, "other", "http://x/v1", default_model="o3", allowed_models=["o3"]),
        ],
        apps=[AppConfig(id=1, name="a", llm_ids=[1])],
    )
    cfg = await store.apply(snap)
    app = cfg.apps[1]
    assert cfg.route("gpt-4.1-mini", app)[0].slug == "gpt"
    assert cfg.route("gpt/gpt-4o", app) == (cfg.llms_by_slug["gpt"], "gpt-4o")
    with pytest.raises(GatewayError) as forbidden:
        cfg.route("o3", app)
    assert forbidden.value.status_code == 403
    with pytest.raises(GatewayError) as missing:
        cfg.route("llama", app)
    assert missing.value.status_code == 404
    with pytest.raises(GatewayError) as not_allowed:
        cfg.route("gpt/gpt-3.5", app)
    assert not_allowed.value.status_code == 403
    assert cfg.llms_by_slug["gpt"].spec.api_key == "sk-vendor-secret"  # decrypted once, at apply
    import msgspec

    with pytest.raises(ConfigRejected):
        await store.apply(msgspec.structs.replace(snap, version=2))  # checksum no longer matches


def test_settings_name_the_bad_variable(tmp_path):
    with pytest.raises(ConfigError) as missing:
        load_settings({})
    assert missing.value.variable == "EDGE_SNAPSHOT_FILE"
    snap = tmp_path / "s.json"
    snap.write_text("{}")
    with pytest.raises(ConfigError) as bad_port:
        load_settings({"EDGE_SNAPSHOT_FILE": str(snap), "EDGE_PORT": "http"})
    assert bad_port.value.variable == "EDGE_PORT"
    assert load_settings({"EDGE_SNAPSHOT_FILE": str(snap), "EDGE_PORT": "9000"}).port == 9000
    with pytest.raises(ConfigError) as bad_deadline:
        load_settings({"EDGE_SNAPSHOT_FILE": str(snap), "EDGE_UPSTREAM_DEADLINE_S": "0"})
    assert bad_deadline.value.variable == "EDGE_UPSTREAM_DEADLINE_S"
    assert load_settings({"EDGE_SNAPSHOT_FILE": str(snap)}).upstream_deadline_s == 600.0
    for worst in ("nan", "inf", "-inf"):  # float() accepts them; a nan deadline would never expire
        with pytest.raises(ConfigError) as not_finite:
            load_settings({"EDGE_SNAPSHOT_FILE": str(snap), "EDGE_UPSTREAM_DEADLINE_S": worst})
        assert not_finite.value.variable == "EDGE_UPSTREAM_DEADLINE_S"


def test_sse_splitter_reassembles_events_cut_anywhere():
    splitter = SSESplitter()
    stream = b'data: {"a":1}\n\ndata: {"b":\r\n2}\r\n\r\ndata: [DONE]\n\n'
    events = [e for i in range(0, len(stream), 3) for e in splitter.feed(stream[i : i + 3])]
    assert events == [b'data: {"a":1}\n\n', b'data: {"b":\n2}\n\n', b"data: [DONE]\n\n"]


def test_metrics_exposition_has_prometheus_semantics():
    from prometheus_client.parser import text_string_to_metric_families

    from edge_gateway.metrics import EdgeMetrics

    m = EdgeMetrics()
    m.requests.labels("1", "gpt", "m", "200").inc()
    m.requests.labels("1", "gpt", "m", "200").inc(2)
    for seconds in (0.001, 0.004, 200.0):  # on a bucket bound, inside one, above the last
        m.latency.labels("1", "gpt", "m").observe(seconds)
    m.config_version.set(7)
    families = {f.name: f for f in text_string_to_metric_families(m.render().decode())}
    (requests,) = families["fjordgate_edge_requests"].samples
    assert requests.name == "fjordgate_edge_requests_total" and requests.value == 3
    assert requests.labels == {"app": "1", "llm": "gpt", "model": "m", "status": "200"}
    buckets = {
        s.labels["le"]: s.value
        for s in families["fjordgate_edge_request_duration_seconds"].samples
        if s.name.endswith("_bucket")
    }
    assert buckets["0.001"] == 1 and buckets["0.0025"] == 1 and buckets["0.005"] == 2
    assert buckets["120.0"] == 2 and buckets["+Inf"] == 3  # cumulative, +Inf counts everything
    samples = {s.name: s.value for s in families["fjordgate_edge_request_duration_seconds"].samples}
    assert samples["fjordgate_edge_request_duration_seconds_count"] == 3
    assert abs(samples["fjordgate_edge_request_duration_seconds_sum"] - 200.005) < 1e-9
    assert families["fjordgate_edge_config_version"].samples[0].value == 7


def _sse(obj) -> bytes:
    import orjson

    return b"data: " + orjson.dumps(obj) + b"\n\n"


def test_stream_translator_counts_choices_and_tool_calls_with_and_without_vendor_usage():
    from edge_gateway.providers import OpenAIRequest
    from edge_gateway.providers.openai import OpenAIStreamTranslator

    def run(with_usage: bool, tools: bool = True):
        call = OpenAIRequest.from_data("chat", b"{}", {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
        tr = OpenAIStreamTranslator(call)
        events = [
            _sse({"choices": [{"index": 0, "delta": {"content": 'say "index":7'}}]}),  # text that looks like a key
            _sse({"choices": [{"index": 1, "delta": {"content": "two"}}]}),
            _sse(
                {
                    "choices": [
                        {
                            "index": 0,
                            "delta": {
                                "tool_calls": [
                                    {"index": 3, "id": "call_1", "function": {"name": "f", "arguments": "{}"}}
                                ]
                            },
                        }
                    ]
                }
            ),
        ]
        if not tools:
            events.pop()
        if with_usage:
            events.append(_sse({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 9}}))
        for event in [*events, b"data: [DONE]\n\n"]:
            tr.feed(event)
        tr.finish()
        return tr.usage

    for with_usage in (True, False):
        usage = run(with_usage)
        assert (usage.choices, usage.tool_calls) == (2, 1), with_usage
        without_tools = run(with_usage, tools=False)  # with usage: one search over the whole stream
        assert (without_tools.choices, without_tools.tool_calls) == (2, 0), with_usage
    assert run(True).completion_tokens == 9 and run(False).completion_tokens > 0


def test_input_token_bound_counts_every_strings_utf8_bytes_plus_eight_per_message_in_every_shape():
    from edge_gateway.policy import input_token_bound

    assert input_token_bound([{"role": "user", "content": "hello"}]) == 8 + 4 + 5
    # content parts (a list inside the message), non-ASCII text (bytes, not characters), a tool call's dict
    parts = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "héllo"}]},
        {"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": "{}"}}]},
    ]
    system = 8 + 6 + 9
    user = 8 + 4 + (8 + 4 + 6)
    assistant = 8 + 9 + (8 + 2 + (8 + 1 + 2))
    assert input_token_bound(parts) == system + user + assistant
    assert input_token_bound("naïve prompt") == len("naïve prompt".encode())
    assert input_token_bound(["one", "two"]) == 6, "embeddings' list of strings"
    assert input_token_bound([[1, 2, 3], [4, 5]]) == 5, "a prompt given as token ids: one token each"
    assert input_token_bound({"content": "x"}) == 9
    assert input_token_bound(None) == 0


def test_the_token_estimate_counts_every_strings_characters_in_any_nesting():
    """The estimate (4 characters a token, the tpm windows' input estimate and the usage of a vendor that sends
    none) sees every string, in flat messages, content parts, nested tool arguments and bare lists alike."""
    from edge_gateway.providers.base import estimate_tokens

    messages = [
        {"role": "system", "content": "abcd" * 3},
        {"role": "user", "content": [{"type": "text", "text": "xy"}, {"type": "image_url", "image_url": {"url": "u"}}]},
        {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": '{"a": 1}'}}], "n": 5},
        "loose",
        ["nested", ["deeper"]],
        7,
        None,
    ]
    strings = ["system", "abcd" * 3, "user", "text", "xy", "image_url", "u", "assistant", "f", '{"a": 1}', "loose"]
    chars = sum(map(len, strings)) + len("nested") + len("deeper")
    assert estimate_tokens(messages) == (chars + 3) // 4
    assert estimate_tokens({"contents": messages}) == (chars + 3) // 4
    assert estimate_tokens("") == 0 and estimate_tokens(None) == 0


def test_a_501_is_googles_unimplemented_for_gemini_clients() -> None:
    """google.rpc.Code names 501 UNIMPLEMENTED; the edge (and the mock's Gemini routes) said NOT_IMPLEMENTED, a
    status no Google client knows."""
    from edge_gateway.errors import gemini_error
    from fjordgate.mock_llm.gemini_format import error_document

    assert orjson.loads(gemini_error(501, "no")[1])["error"]["status"] == "UNIMPLEMENTED"
    assert orjson.loads(error_document(501, "no"))["error"]["status"] == "UNIMPLEMENTED"
