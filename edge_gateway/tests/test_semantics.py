"""Semantics plugin authors rely on (docs/edge.md, "The pipeline"), seen through the stock `openai` client:
short-circuits answered in the mode the client asked for; auth plugins that decline leave app keys working,
on the LLM routes and on plugin endpoints; one native-request builder for every provider."""

from __future__ import annotations

import httpx
import openai
import pytest

from edge_gateway.providers import provider_for
from edge_gateway.providers.base import UpstreamSpec

from . import recording_plugins
from .support import CLIENT_KEY, PluginBinding, PluginConfig, llm, make_snapshot, run_edge

REC = "edge_gateway.tests.recording_plugins:Recorder"
PICKY = "edge_gateway.tests.recording_plugins:PickyAuth"


@pytest.fixture(autouse=True)
def _clear_calls():
    recording_plugins.CALLS.clear()


def client(edge, key: str = CLIENT_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{edge.url}/v1", api_key=key, max_retries=0)


def ask(edge, model: str, **extra):
    return client(edge).chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], **extra)


@pytest.fixture(scope="module")
def short_circuit_edge(mock_upstream, tmp_path_factory):
    """Three LLMs whose chain short-circuits at post-auth: with a full response, with an OpenAI stream, and with
    a stream of plain text (not the OpenAI shape)."""
    modes = {"full": "response", "streamed": "stream", "text": "text_stream"}
    plugins = [
        PluginConfig(
            slug=name, name=name, import_path=REC, config={"label": name, "short_circuit_at": "post_auth", "mode": mode}
        )
        for name, mode in modes.items()
    ]
    llms = [
        llm(
            i,
            f"{name}-llm",
            f"{mock_upstream}/v1",
            default_model=f"{name}-model",
            plugin_chain=[PluginBinding(plugin_slug=name, order=0)],
        )
        for i, name in enumerate(modes, start=1)
    ]
    with run_edge(make_snapshot(mock_upstream, llms=llms, plugins=plugins), tmp_path_factory.mktemp("sc")) as edge:
        yield edge


def test_a_full_short_circuit_is_replayed_as_a_stream_to_a_streaming_call(short_circuit_edge):
    chunks = list(ask(short_circuit_edge, "full-model", stream=True))
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "short-circuited by full"
    assert chunks[-1].choices[0].finish_reason == "stop"
    raw = httpx.post(
        f"{short_circuit_edge.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
        json={"model": "full-model", "messages": [{"role": "user", "content": "hi"}], "stream": True},
    )
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert raw.text.rstrip().endswith("data: [DONE]")


def test_a_streamed_short_circuit_is_collected_for_a_non_streaming_call(short_circuit_edge):
    reply = ask(short_circuit_edge, "streamed-model")
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.content == "from plugin" and reply.choices[0].finish_reason == "stop"


def test_a_short_circuit_that_cannot_be_adapted_is_a_clear_plugin_error(short_circuit_edge):
    with pytest.raises(openai.InternalServerError) as caught:
        ask(short_circuit_edge, "text-model")
    error = caught.value.body
    assert error["code"] == "plugin_short_circuit_mismatch" and "'text'" in error["message"]
    # The stream the plugin meant still reaches a client that asked for one.
    assert httpx.post(
        f"{short_circuit_edge.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
        json={"model": "text-model", "messages": [{"role": "user", "content": "hi"}], "stream": True},
    ).text.startswith("data: plain words")


@pytest.fixture(scope="module")
def picky_edge(mock_upstream, tmp_path_factory):
    plugin = PluginConfig(slug="picky", name="picky", import_path=PICKY, global_order=0)
    with run_edge(make_snapshot(mock_upstream, plugins=[plugin]), tmp_path_factory.mktemp("auth")) as edge:
        yield edge


def test_an_auth_plugin_that_declines_leaves_the_app_key_to_work(picky_edge):
    assert ask(picky_edge, "mock-gpt").choices[0].message.content == "Echo: hi"  # app key, declined by the plugin
    assert (
        client(picky_edge, "tok-plugin")
        .chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": "hi"}])
        .choices
    )
    with pytest.raises(openai.AuthenticationError, match="revoked"):
        client(picky_edge, "tok-refused").chat.completions.create(
            model="mock-gpt", messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(openai.AuthenticationError, match="invalid API key"):
        client(picky_edge, "sk-nobody").chat.completions.create(
            model="mock-gpt", messages=[{"role": "user", "content": "x"}]
        )


@pytest.mark.parametrize(
    ("credential", "status", "app_id"), [("tok-plugin", 200, 1), (CLIENT_KEY, 200, 1), ("tok-refused", 401, None)]
)
def test_plugin_endpoints_requiring_auth_honour_auth_plugins(picky_edge, credential, status, app_id):
    reply = httpx.get(f"{picky_edge.url}/plugins/picky/whoami", headers={"authorization": f"Bearer {credential}"})
    assert reply.status_code == status
    if app_id is not None:
        assert reply.json() == {"app_id": app_id}
    else:
        assert reply.json()["error"]["type"] == "authentication_error"


@pytest.mark.parametrize("vendor", ["openai", "anthropic"])
@pytest.mark.parametrize(
    ("api_base", "query", "url"),
    [
        ("https://vendor.example/v1", "", "https://vendor.example/v1/messages"),
        ("https://vendor.example/v1", "beta=true", "https://vendor.example/v1/messages?beta=true"),
        (
            "https://vendor.example/v1?api-version=2",
            "beta=true",
            "https://vendor.example/v1/messages?api-version=2&beta=true",
        ),
    ],
)
def test_one_native_request_builder_joins_the_query_the_same_way(vendor, api_base, query, url):
    spec = UpstreamSpec(1, "x", vendor, api_base, "sk-vendor", {}, 1.0, 1.0, 1.0)
    provider = provider_for(vendor)
    assert provider is not None
    request = provider.native_request(spec, "POST", "v1/messages", query, {"accept": "*/*"}, b"{}", False)
    assert request.url == url  # no trailing '?' without a query; '&' after a base that has one
    assert request.headers["accept"] == "*/*"
