"""The bundled plugins running for real in an edge: IP filter, token auth, tagging + header injection,
PII redaction (request and stream), response cache (full and replayed as a stream), error recovery, logger."""

from __future__ import annotations

import time

import httpx
import orjson

from shared_sdk import AnalyticsRecord

from .support import CLIENT_KEY, AppConfig, PluginBinding, PluginConfig, llm, make_snapshot, run_edge

AUTH = {"authorization": f"Bearer {CLIENT_KEY}"}


def plugin(slug: str, module: str, config: dict | None = None, global_order: int | None = None) -> PluginConfig:
    return PluginConfig(
        slug=slug,
        name=slug,
        import_path=f"plugins.{module}.plugin:create_plugin",
        config=config or {},
        global_order=global_order,
    )


def chat(edge, content: str, headers=AUTH, **extra):
    return httpx.post(
        f"{edge.url}/v1/chat/completions",
        headers=headers,
        timeout=10,
        json={"model": "mock-gpt", "messages": [{"role": "user", "content": content}], **extra},
    )


def last_upstream(upstream: str) -> dict:
    return httpx.get(f"{upstream}/_mock/requests").json()["data"][-1]


def test_ip_filter_blocks_before_auth(upstream, tmp_path):
    snap = make_snapshot(upstream, plugins=[plugin("ip-filter", "ip_filter", {"deny": ["127.0.0.0/8"]}, 0)])
    with run_edge(snap, tmp_path) as edge:
        reply = chat(edge, "hi", headers={})
    assert reply.status_code == 403 and "not allowed" in reply.json()["error"]["message"]


def test_token_auth_uses_its_own_store_and_never_invents_an_app(upstream, tmp_path):
    tokens = [{"token": "tok-plugin-app1", "app_id": 1, "user_id": 7}, {"token": "tok-ghost-app", "app_id": 99}]
    snap = make_snapshot(upstream, plugins=[plugin("token-auth", "token_auth", {"tokens": tokens}, 0)])
    with run_edge(snap, tmp_path) as edge:
        ok = chat(edge, "hi", headers={"authorization": "Bearer tok-plugin-app1"})
        ghost = chat(edge, "hi", headers={"authorization": "Bearer tok-ghost-app"})
        wrong = chat(edge, "hi", headers={"authorization": "Bearer nope-nope"})
        record = edge.sink.wait_for(AnalyticsRecord, 1)[0]
    assert ok.status_code == 200 and record.app_id == 1 and record.user_id == 7
    assert ghost.status_code == 401 and wrong.status_code == 401
    assert "tok-plugin-app1" not in str(last_upstream(upstream)["headers"])


def test_tagging_and_header_injection(upstream, tmp_path):
    snap = make_snapshot(
        upstream, plugins=[plugin("tagger", "request_tagger", {"tags": ["team-a"], "headers": {"x-team": "alpha"}}, 0)]
    )
    with run_edge(snap, tmp_path) as edge:
        assert chat(edge, "hi").status_code == 200
        record = edge.sink.wait_for(AnalyticsRecord, 1)[0]
    assert last_upstream(upstream)["headers"]["x-team"] == "alpha"
    assert record.context.metadata["request_tagger.tags"] == ["team-a", "app:app-one"]


def test_pii_redacted_before_the_vendor_sees_it(upstream, tmp_path):
    snap = make_snapshot(upstream, plugins=[plugin("pii", "pii_redactor", {}, 0)])
    with run_edge(snap, tmp_path) as edge:
        reply = chat(edge, "mail jane.doe@example.com now")
    assert "jane.doe@example.com" not in str(last_upstream(upstream)["body"])
    assert "[REDACTED:email]" in reply.json()["choices"][0]["message"]["content"]


def test_pii_redacted_in_a_stream_even_when_split_across_chunks(upstream, tmp_path):
    snap = make_snapshot(upstream, plugins=[plugin("pii", "pii_redactor", {"redact_requests": False}, 0)])
    with run_edge(snap, tmp_path) as edge:
        reply = chat(edge, "reach me at jane.doe@example.com or 555-12-3456 ok", stream=True)
    assert "jane.doe@example.com" in str(last_upstream(upstream)["body"])  # requests untouched by config
    text = "".join(line for line in reply.text.splitlines() if line.startswith("data: {"))
    assert "jane" not in text and "example.com" not in text and "[REDACTED:email]" in text
    assert reply.text.rstrip().endswith("data: [DONE]")


def test_response_cache_short_circuits_and_replays_as_stream(upstream, tmp_path):
    snap = make_snapshot(upstream, plugins=[plugin("cache", "response_cache", {"ttl_s": 60}, 0)])
    with run_edge(snap, tmp_path) as edge:
        first = chat(edge, "cache me")
        second = chat(edge, "cache me")
        streamed = chat(edge, "cache me", stream=True)
        count = len(httpx.get(f"{upstream}/_mock/requests").json()["data"])
    assert count == 1
    assert second.headers.get("x-fjordgate-cache") == "hit" and second.json() == first.json()
    content = first.json()["choices"][0]["message"]["content"]
    assert streamed.status_code == 200 and content.replace(" ", "") in streamed.text.replace(" ", "")
    assert streamed.text.rstrip().endswith("data: [DONE]")


def test_error_recovery_answers_instead_of_failing(upstream, tmp_path):
    llms = [
        llm(
            1,
            "mock-llm",
            f"{upstream}/v1",
            allowed_models=["mock-gpt"],
            max_retries=0,
            plugin_chain=[PluginBinding(plugin_slug="recover", order=0)],
        )
    ]
    snap = make_snapshot(upstream, llms=llms, plugins=[plugin("recover", "error_recovery", {"message": "later"})])
    with run_edge(snap, tmp_path) as edge:
        reply = chat(edge, "hi", mock="status=503")
        not_recovered = chat(edge, "hi", mock="status=400")
    assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"] == "later"
    assert reply.headers["x-fjordgate-recovered"] == "502"
    assert not_recovered.status_code == 400


def test_request_logger_collects_and_serves_recent_entries(upstream, tmp_path):
    snap = make_snapshot(
        upstream,
        plugins=[plugin("request-logger", "request_logger", {})],
        apps=[AppConfig(id=1, name="app-one", llm_ids=[1]), AppConfig(id=2, name="two")],
    )
    with run_edge(snap, tmp_path) as edge:
        ids = [chat(edge, f"n{i}").headers["x-request-id"] for i in range(3)]
        edge.sink.wait_for(AnalyticsRecord, 3)
        edge.call(edge.edge.telemetry.flush())
        recent = httpx.get(f"{edge.url}/plugins/request-logger/recent?limit=2", headers=AUTH).json()["data"]
        unauth = httpx.get(f"{edge.url}/plugins/request-logger/recent")
    assert [e["request_id"] for e in recent] == ids[:0:-1]
    assert unauth.status_code == 401


def test_request_logger_entries_held_at_a_clean_stop_are_listed_after_a_restart(upstream, tmp_path):
    """The logger holds its entries for `window_s` (here a minute) before writing them: an edge that stops cleanly
    has its plugins write what they hold before its KV closes, so the next edge on the same state lists them."""
    snap = make_snapshot(upstream, plugins=[plugin("request-logger", "request_logger", {"window_s": 60})])
    state = str(tmp_path / "state")
    with run_edge(snap, tmp_path, state_dir=state) as edge:
        ids = [chat(edge, f"n{i}").headers["x-request-id"] for i in range(3)]
        edge.sink.wait_for(AnalyticsRecord, 3)
        edge.call(edge.edge.telemetry.flush())  # the collector has them: held, not written
    with run_edge(snap, tmp_path, state_dir=state) as edge:
        recent = httpx.get(f"{edge.url}/plugins/request-logger/recent?limit=10", headers=AUTH).json()["data"]
    assert sorted(e["request_id"] for e in recent) == sorted(ids)


def test_request_logger_keeps_up_with_concurrent_traffic(upstream, tmp_path):
    """Every analytics record reaches the data collector while 32 clients keep the edge busy. A bounded telemetry
    lane drops its oldest records when its sink falls behind; handing records to a single collector through a task
    each (a loop iteration per record) fell behind exactly like this and lost most of them.

    The lane holds 10 records per client: the collector takes 16 records per loop turn, and on a loaded box one
    turn can finish every client's request, so a lane of a few turns' worth (200 for 480 requests once lost 20 in
    CI) measured the machine's load, not the collector. Whether the collector keeps up is counted in its own store,
    not through `/recent` (which lists 500 at most)."""
    import asyncio
    import sqlite3

    snap = make_snapshot(upstream, plugins=[plugin("request-logger", "request_logger", {})])
    clients, total = 32, 960
    with run_edge(snap, tmp_path, telemetry_queue_size=10 * clients, telemetry_batch_size=20) as edge:

        async def load() -> None:
            async with httpx.AsyncClient(timeout=30) as client:
                body = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]}

                async def worker(n: int) -> None:
                    for _ in range(n):
                        reply = await client.post(f"{edge.url}/v1/chat/completions", headers=AUTH, json=body)
                        assert reply.status_code == 200

                await asyncio.gather(*(worker(total // clients) for _ in range(clients)))

        asyncio.run(load())
        edge.sink.wait_for(AnalyticsRecord, total)
        edge.call(edge.edge.telemetry.flush())
        recent = httpx.get(f"{edge.url}/plugins/request-logger/recent?limit=500", headers=AUTH).json()["data"]
        logged, deadline = 0, time.monotonic() + 15
        while logged < total and time.monotonic() < deadline:  # the logger writes its window a second later
            time.sleep(0.2)
            edge.call(edge.edge.kv.flush())
            with sqlite3.connect(edge.edge.kv.path) as db:
                values = db.execute("SELECT value FROM kv WHERE plugin = 'request-logger' AND key LIKE 'logs:%'")
                logged = sum(len(orjson.loads(value)) for (value,) in values)
        dropped = [
            line
            for line in httpx.get(f"{edge.url}/metrics").text.splitlines()
            if line.startswith("fjordgate_edge_telemetry_dropped_total")
        ]
    assert logged == total
    assert len(recent) == 500
    assert dropped == []


def test_redactor_and_rewrite_read_the_same_text_to_the_sdk_whether_the_vendor_sends_at_once_or_event_by_event(
    upstream, tmp_path
):
    """Both text hooks on a stream, the stock OpenAI SDK reading it: a vendor writing the whole answer at once
    (one read) gets each run of text deltas sent on as one event, one hold-back pass and one rewrite for it; the
    text the SDK assembles is the same as when the vendor sends event by event, rewritten and redacted (a word
    and an address split over events of that one read included)."""
    import openai

    snap = make_snapshot(
        upstream,
        plugins=[
            plugin("pii", "pii_redactor", {"redact_requests": False}, 0),
            plugin("rw", "text_rewrite", {"replace": {"reach": "contact"}}, 1),
        ],
    )
    prompt = "please reach me at jane.doe@example.com or 555-12-3456 today, and reach out to the team"
    with run_edge(snap, tmp_path) as edge:
        client = openai.OpenAI(base_url=f"{edge.url}/v1", api_key=CLIENT_KEY, max_retries=0)

        def read(mock: str) -> str:
            stream = client.chat.completions.create(
                model="mock-gpt",
                messages=[{"role": "user", "content": prompt}],
                stream=True,
                extra_body={"mock": mock},
            )
            return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

        at_once, one_by_one = read("chunks=12; burst"), read("chunks=12")
    assert at_once == one_by_one
    assert "contact me at [REDACTED:email]" in at_once and "contact out to the team" in at_once
    assert "jane" not in at_once and "reach" not in at_once and "3456" not in at_once
