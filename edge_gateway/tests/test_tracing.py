"""OpenTelemetry traces (`EDGE_OTEL_ENDPOINT`): a real edge exports its spans over OTLP/HTTP to a receiver that
decodes them with the OTLP protobuf definitions, as a collector would.

What an operator relies on: one server span per request named after the GenAI operation and model, a child per
plugin phase, a child per upstream attempt (a failover shows both, the failed one with `error.type`), and the
telemetry hand-off; no prompt text or key in any span; sampling follows the caller's `traceparent`, and an edge
sampling nothing sends nothing."""

from __future__ import annotations

import contextvars
import gzip
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from edge_gateway.settings import load_settings
from fjordgate.env import ConfigError

from .support import (
    CLIENT_KEY,
    VENDOR_KEY,
    AppConfig,
    FallbackTarget,
    ModelPriceConfig,
    PluginBinding,
    PluginConfig,
    llm,
    make_snapshot,
    run_edge,
)

REC = "edge_gateway.tests.recording_plugins:Recorder"
AUTH = {"authorization": f"Bearer {CLIENT_KEY}"}
SECRET_PROMPT = "the quarterly numbers are 4711"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in pairs}


@dataclass
class Received:
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    status_code: int


class OTLPReceiver:
    """A minimal OTLP/HTTP trace receiver: decodes each export with the OTLP protobuf messages and keeps the
    spans (and the raw bodies, to search them for what must never be exported)."""

    def __init__(self) -> None:
        self.spans: list[Received] = []
        self.bodies: list[bytes] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the standard library's name)
                body = self.rfile.read(int(self.headers["content-length"]))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                receiver.take(self.path, self.headers.get("content-type", ""), body)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def take(self, path: str, content_type: str, body: bytes) -> None:
        assert path == "/v1/traces" and content_type == "application/x-protobuf"
        self.bodies.append(body)
        export = ExportTraceServiceRequest.FromString(body)
        for resource_spans in export.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(
                        Received(
                            name=span.name,
                            kind=span.kind,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            attributes=_attributes(span.attributes),
                            resource=resource,
                            status_code=span.status.code,
                        )
                    )


@contextmanager
def otlp_receiver() -> Iterator[OTLPReceiver]:
    receiver = OTLPReceiver()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
        thread.join(5)


def failover_snapshot(upstream: str):
    """`primary` (chain: recorder `a`, no retries) falls back to `backup`; recorder `g` is global."""
    plugins = [
        PluginConfig(slug="g", name="g", import_path=REC, config={"label": "g"}, global_order=0),
        PluginConfig(slug="a", name="a", import_path=REC, config={"label": "a"}),
    ]
    primary = llm(
        1,
        "primary",
        f"{upstream}/v1",
        allowed_models=["mock-gpt"],
        max_retries=0,
        fallbacks=[FallbackTarget(llm_slug="backup", model="backup-model")],
        plugin_chain=[PluginBinding(plugin_slug="a", order=0)],
    )
    backup = llm(
        2, "backup", f"{upstream}/v1", default_model="backup-model", allowed_models=["backup-model"], max_retries=0
    )
    prices = [
        ModelPriceConfig(vendor="mock", model=m, prompt_per_million=Decimal(1), completion_per_million=Decimal(2))
        for m in ("mock-gpt", "backup-model")
    ]
    return make_snapshot(
        upstream,
        llms=[primary, backup],
        apps=[AppConfig(id=1, name="app-one", llm_ids=[1, 2])],
        plugins=plugins,
        prices=prices,
    )


def chat(edge, mock: str = "", headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(
        f"{edge.url}/v1/chat/completions",
        headers={**AUTH, **(headers or {})},
        timeout=15,
        json={"model": "mock-gpt", "messages": [{"role": "user", "content": SECRET_PROMPT}], "mock": mock},
    )


def test_a_sampled_request_shows_its_plugin_phases_each_upstream_attempt_and_the_telemetry_hand_off(upstream, tmp_path):
    with otlp_receiver() as receiver:
        with run_edge(failover_snapshot(upstream), tmp_path, otel_endpoint=receiver.url, otel_sample_ratio=1.0) as edge:
            reply = chat(edge, f"fail_times=1;key={uuid.uuid4().hex};status=503")
        # The edge's shutdown exported what its batch held.
    assert reply.status_code == 200
    (server,) = [s for s in receiver.spans if s.kind == 2]  # SPAN_KIND_SERVER
    assert server.name == "chat backup-model"
    assert server.parent_id == ""
    attrs = server.attributes
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.system"] == "mock"
    assert attrs["gen_ai.request.model"] == "mock-gpt" and attrs["gen_ai.response.model"] == "backup-model"
    assert attrs["gen_ai.usage.input_tokens"] > 0 and attrs["gen_ai.usage.output_tokens"] > 0
    assert attrs["http.response.status_code"] == 200
    assert attrs["fjordgate.llm.slug"] == "backup" and attrs["fjordgate.app.name"] == "app-one"
    assert attrs["fjordgate.request_id"] == reply.headers["x-request-id"]
    assert server.resource["service.name"] == "fjordgate-edge"
    assert server.resource["fjordgate.edge.id"] == "edge-test" and server.resource["fjordgate.namespace"] == "test"

    children = [s for s in receiver.spans if s is not server]
    assert {s.trace_id for s in children} == {server.trace_id}
    assert {s.parent_id for s in children} == {server.span_id}
    # Each upstream attempt, in order: the primary's 503 (with its error type), then the backup's answer.
    attempts = [s for s in children if s.kind == 3]  # SPAN_KIND_CLIENT
    assert [(s.name, s.attributes["fjordgate.llm.slug"]) for s in attempts] == [
        ("chat mock-gpt", "primary"),
        ("chat backup-model", "backup"),
    ]
    failed, answered = (s.attributes for s in attempts)
    assert failed["http.response.status_code"] == 503 and failed["error.type"] == "upstream_error"
    assert attempts[0].status_code == 2  # STATUS_CODE_ERROR
    assert answered["http.response.status_code"] == 200 and "error.type" not in answered
    assert answered["gen_ai.request.model"] == "backup-model"
    assert answered["server.address"] == "127.0.0.1" and answered["server.port"] == int(upstream.rsplit(":", 1)[1])
    # The plugin phases of both attempts: the primary's chain (g, a), then the backup's (g).
    phases = [(s.name, s.attributes["fjordgate.plugins"]) for s in children if s.name.startswith("plugins ")]
    assert ("plugins pre_auth", ["g", "a"]) in phases and ("plugins pre_auth", ["g"]) in phases
    assert ("plugins response_body", ["g"]) in phases
    pre_auth = next(s for s in children if s.name == "plugins pre_auth")
    assert pre_auth.attributes["fjordgate.plugin.outcomes"] == ["g=pass", "a=pass"]
    (handoff,) = [s for s in children if s.name == "telemetry hand-off"]
    assert handoff.attributes["fjordgate.telemetry.accounted"] is True
    # No prompt text and no key leaves the edge in a span.
    exported = b"".join(receiver.bodies)
    for secret in (SECRET_PROMPT, CLIENT_KEY, VENDOR_KEY):
        assert secret.encode() not in exported


def test_a_stream_is_traced_to_its_end_with_its_usage_and_stream_complete_phase(upstream, tmp_path):
    body = {
        "model": "mock-gpt",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": SECRET_PROMPT}],
    }
    with otlp_receiver() as receiver:
        with run_edge(failover_snapshot(upstream), tmp_path, otel_endpoint=receiver.url, otel_sample_ratio=1.0) as edge:
            reply = httpx.post(f"{edge.url}/v1/chat/completions", headers=AUTH, json=body, timeout=15)
    assert reply.status_code == 200 and b"[DONE]" in reply.content
    (server,) = [s for s in receiver.spans if s.kind == 2]
    assert server.name == "chat mock-gpt" and server.attributes["fjordgate.streamed"] is True
    assert server.attributes["gen_ai.usage.output_tokens"] > 0
    (attempt,) = [s for s in receiver.spans if s.kind == 3]
    assert attempt.attributes["http.response.status_code"] == 200 and attempt.parent_id == server.span_id
    assert any(s.name == "plugins stream_complete" for s in receiver.spans)
    assert SECRET_PROMPT.encode() not in b"".join(receiver.bodies)


def test_an_edge_sampling_nothing_exports_only_what_a_caller_sampled(upstream, tmp_path):
    with otlp_receiver() as receiver:
        with run_edge(failover_snapshot(upstream), tmp_path, otel_endpoint=receiver.url, otel_sample_ratio=0.0) as edge:
            for _ in range(5):
                assert chat(edge).status_code == 200
            traced = chat(edge, headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
    assert traced.status_code == 200
    assert receiver.spans, "the caller's sampled trace is exported"
    # Only the caller's trace, continued under its span: the five unsampled requests left nothing.
    assert {s.trace_id for s in receiver.spans} == {TRACE_ID}
    (server,) = [s for s in receiver.spans if s.kind == 2]
    assert server.parent_id == PARENT_ID


def test_a_caller_that_did_not_sample_is_followed(upstream, tmp_path):
    with otlp_receiver() as receiver:
        with run_edge(failover_snapshot(upstream), tmp_path, otel_endpoint=receiver.url, otel_sample_ratio=1.0) as edge:
            assert chat(edge, headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-00"}).status_code == 200
            assert chat(edge).status_code == 200
    traces = {s.trace_id for s in receiver.spans}
    assert len(traces) == 1 and TRACE_ID not in traces  # the second request's own trace, not the caller's


def test_an_edge_without_an_endpoint_never_imports_opentelemetry(tmp_path):
    script = (
        "import sys\n"
        "from edge_gateway.app import create_app\n"
        "from edge_gateway.settings import EdgeSettings\n"
        f"create_app(EdgeSettings(state_dir={str(tmp_path)!r}, snapshot_file='unused'))\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("ratio", ["-0.1", "1.5", "often"])
def test_a_sample_ratio_outside_zero_to_one_stops_the_edge_naming_the_variable(tmp_path, ratio):
    snapshot = tmp_path / "snapshot.json"
    snapshot.write_text("{}")
    env = {"EDGE_SNAPSHOT_FILE": str(snapshot), "EDGE_OTEL_ENDPOINT": "http://collector:4318"}
    with pytest.raises(ConfigError, match="EDGE_OTEL_SAMPLE_RATIO"):
        load_settings({**env, "EDGE_OTEL_SAMPLE_RATIO": ratio})
    settings = load_settings(env)
    assert settings.otel_endpoint == "http://collector:4318" and settings.otel_sample_ratio == 0.01


def test_new_traces_are_sampled_at_the_configured_ratio():
    """The edge decides on a new trace's id before the SDK does; both must agree, or the ratio is squared."""
    from opentelemetry import context as otel_context
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from edge_gateway.tracing import EdgeTracing

    exported = InMemorySpanExporter()
    tracing = EdgeTracing(
        endpoint="http://unused:4318", sample_ratio=0.5, edge_id="e", namespace="n", exporter=exported
    )

    def requests() -> None:
        for _ in range(4000):
            started = tracing.start_request({}, "chat")
            if started is not None:
                otel_context.detach(started.token)
                started.span.end()

    contextvars.copy_context().run(requests)  # what the spans made current stays in there
    tracing.shutdown()
    assert 1800 <= len(exported.get_finished_spans()) <= 2200
