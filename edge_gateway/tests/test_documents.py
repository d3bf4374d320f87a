"""A PDF sent with each stock SDK (OpenAI chat `file` part, Responses `input_file`, Anthropic `document` block,
Gemini inline `application/pdf`) reaches whichever vendor serves the model in that vendor's own document shape,
also when a tool returned it (an Anthropic `tool_result`)."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import types

from .support import CLIENT_KEY, ModelPriceConfig, RunningEdge, llm, make_snapshot, run_edge

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF"
PDF_B64 = base64.b64encode(PDF).decode()
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-opus-4-5", "gemini": "gemini-2.5-flash"}


@pytest.fixture(scope="module")
def edge(mock_upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEdge]:
    llms = [
        llm(1, "gpt", f"{mock_upstream}/v1", vendor="openai", default_model=MODELS["openai"]),
        llm(2, "claude", mock_upstream, vendor="anthropic", default_model=MODELS["anthropic"]),
        llm(3, "gemini", mock_upstream, vendor="google", default_model=MODELS["gemini"]),
    ]
    vendors = {"openai": "openai", "anthropic": "anthropic", "gemini": "google"}
    prices = [ModelPriceConfig(vendor=vendors[column], model=model) for column, model in MODELS.items()]
    with run_edge(make_snapshot(mock_upstream, llms=llms, prices=prices), tmp_path_factory.mktemp("docs")) as e:
        yield e


def _openai(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=CLIENT_KEY, max_retries=0)


def chat(url: str, model: str) -> str:
    part = {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{PDF_B64}", "filename": "r.pdf"}}
    content: Any = [part, {"type": "text", "text": "summarise the report"}]
    reply = _openai(url).chat.completions.create(model=model, messages=[{"role": "user", "content": content}])
    return reply.choices[0].message.content or ""


def responses(url: str, model: str) -> str:
    part = {"type": "input_file", "file_data": f"data:application/pdf;base64,{PDF_B64}", "filename": "r.pdf"}
    content: Any = [part, {"type": "input_text", "text": "summarise the report"}]
    return _openai(url).responses.create(model=model, input=[{"role": "user", "content": content}]).output_text


def messages(url: str, model: str) -> str:
    client = anthropic.Anthropic(base_url=url, api_key=CLIENT_KEY, max_retries=0)
    source = {"type": "base64", "media_type": "application/pdf", "data": PDF_B64}
    content: Any = [{"type": "document", "source": source}, {"type": "text", "text": "summarise the report"}]
    reply = client.messages.create(model=model, max_tokens=100, messages=[{"role": "user", "content": content}])
    return reply.content[0].text  # type: ignore[union-attr]


def generate_content(url: str, model: str) -> str:
    client = genai.Client(api_key=CLIENT_KEY, http_options={"base_url": url})
    pdf = types.Part.from_bytes(data=PDF, mime_type="application/pdf")
    return client.models.generate_content(model=model, contents=[pdf, "summarise the report"]).text or ""


CLIENTS: dict[str, Callable[[str, str], str]] = {
    "openai.chat": chat,
    "openai.responses": responses,
    "anthropic.messages": messages,
    "genai.generate_content": generate_content,
}


def _document_seen(request: dict[str, Any]) -> dict[str, Any]:
    """The document as the vendor received it, in the vendor's own shape, from the mock's request log."""
    body = request["body"]
    if request["path"].startswith("/v1beta/"):
        part = body["contents"][0]["parts"][0]
        return part.get("inlineData") or part["inline_data"]
    if request["path"] == "/v1/messages":
        return body["messages"][0]["content"][0]
    if request["path"] == "/v1/responses":
        return body["input"][0]["content"][0]
    return body["messages"][0]["content"][0]


EXPECTED = {
    "gemini": lambda seen: (
        seen in ({"mimeType": "application/pdf", "data": PDF_B64}, {"mime_type": "application/pdf", "data": PDF_B64})
    ),
    "anthropic": lambda seen: seen["type"] == "document" and seen["source"]["data"] == PDF_B64,
    "openai": lambda seen: seen["type"] in ("file", "input_file") and PDF_B64 in str(seen),
}


@pytest.mark.parametrize("upstream", list(MODELS))
@pytest.mark.parametrize("client", list(CLIENTS))
def test_a_pdf_reaches_every_vendor_in_its_own_shape(edge: RunningEdge, mock_upstream: str, client: str, upstream: str):
    httpx.post(f"{mock_upstream}/_mock/reset", timeout=5)
    answer = CLIENTS[client](edge.url, MODELS[upstream])
    assert "summarise the report" in answer
    seen = httpx.get(f"{mock_upstream}/_mock/requests").json()["data"][-1]
    assert EXPECTED[upstream](_document_seen(seen)), seen["body"]


@pytest.mark.parametrize("upstream", ["anthropic", "gemini"])
def test_a_file_id_another_vendor_cannot_read_is_the_clients_400(edge: RunningEdge, upstream: str):
    content: Any = [{"type": "file", "file": {"file_id": "file-report"}}, {"type": "text", "text": "summarise"}]
    with pytest.raises(openai.BadRequestError) as refused:
        _openai(edge.url).chat.completions.create(
            model=MODELS[upstream], messages=[{"role": "user", "content": content}]
        )
    assert "file ids are not supported" in str(refused.value)


FETCH: Any = {"name": "fetch", "description": "fetch a report", "input_schema": {"type": "object", "properties": {}}}


@pytest.mark.parametrize("upstream", ["openai", "gemini"])
def test_documents_a_tool_returned_reach_the_model(edge: RunningEdge, mock_upstream: str, upstream: str):
    """An Anthropic client's `tool_result` holding a PDF and a plain-text document: the text stays the tool's
    result, the PDF follows as a `file` part of the next user message (OpenAI's tool messages take text only) or,
    for Gemini, as inlineData beside the functionResponse, in the same turn."""
    httpx.post(f"{mock_upstream}/_mock/reset", timeout=5)
    pdf = {"type": "base64", "media_type": "application/pdf", "data": PDF_B64}
    result: Any = [
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "Q3 revenue: 12"}},
        {"type": "document", "source": pdf, "title": "report.pdf"},
    ]
    messages: Any = [
        {"role": "user", "content": "fetch the report"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_fetch1", "name": "fetch", "input": {}}]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_fetch1", "content": result},
                {"type": "text", "text": "summarise it"},
            ],
        },
    ]
    client = anthropic.Anthropic(base_url=edge.url, api_key=CLIENT_KEY, max_retries=0)
    reply = client.messages.create(model=MODELS[upstream], max_tokens=50, tools=[FETCH], messages=messages)
    assert reply.content and reply.stop_reason == "end_turn"
    sent = httpx.get(f"{mock_upstream}/_mock/requests").json()["data"][-1]["body"]
    label = {"text": "The result of tool call toolu_fetch1 includes these documents:"}
    if upstream == "openai":
        assert sent["messages"][-2] == {"role": "tool", "tool_call_id": "toolu_fetch1", "content": "Q3 revenue: 12"}
        file = {"file_data": f"data:application/pdf;base64,{PDF_B64}", "filename": "report.pdf"}
        assert sent["messages"][-1] == {
            "role": "user",
            "content": [
                {"type": "text", **label},
                {"type": "file", "file": file},
                {"type": "text", "text": "summarise it"},
            ],
        }
    else:
        turn = sent["contents"][-1]
        answered = turn["parts"][0]["functionResponse"]
        assert turn["role"] == "user" and answered["name"] == "fetch" and "Q3 revenue: 12" in str(answered["response"])
        pdf_part = {"inlineData": {"mimeType": "application/pdf", "data": PDF_B64}}
        assert turn["parts"][1:] == [label, pdf_part, {"text": "summarise it"}]
