"""A vendor's 4xx reaches a client that speaks the vendor's dialect with the vendor's own error fields.

Client code branches on them: the `openai` SDK's `APIStatusError.code` / `.param` / `.type`, Google's `status`
(`google.genai.errors.APIError.status`), Anthropic's `error.type`. Each case goes through the stock SDK and a
real edge, to the mock LLM (which answers api.openai.com's real 400s) or to a raw-socket vendor that answers
what a test scripts, hostile values included (a 1 MB `param`, a number as `code`: dropped, never a 500).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from .hostile_vendor import HostileVendor, Script, raw, vendor_thread
from .support import CLIENT_KEY, RunningEdge, llm, make_snapshot, run_edge

USER: Any = [{"role": "user", "content": "Hello"}]


def _answer(status: int, reason: bytes, document: object) -> Script:
    body = json.dumps(document).encode()  # not orjson: it encodes at most 255 levels, a hostile vendor more
    head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % (
        status,
        reason,
        len(body),
    )
    return raw(head + body, keep=True)


def _openai_error(message: str, type: object, param: object, code: object) -> dict[str, object]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


GOOGLE_429_DETAILS = [
    {
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests"}],
    },
    {"@type": "type.googleapis.com/google.rpc.Help", "links": [{"description": "quota", "url": "https://ai.dev/q"}]},
    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "38s"},
]
_DEEP: Any = {"@type": "type.googleapis.com/google.rpc.DebugInfo"}
for _ in range(300):
    _DEEP = {"@type": "type.googleapis.com/google.rpc.DebugInfo", "inner": _DEEP}
ERROR_INFO = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "SAFETY", "domain": "googleapis.com"}
RETRY_INFO = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"}
HOSTILE_DETAILS = [
    "not an object",
    {"reason": "no @type"},
    {"@type": 5},
    ERROR_INFO,
    {"@type": "type.googleapis.com/google.rpc.DebugInfo", "detail": "d" * (1 << 20)},
    _DEEP,
    RETRY_INFO,
]

SCRIPTS: dict[str, Script] = {
    # an OpenAI-compatible vendor's 400, as api.openai.com words it
    "/fields/chat/completions": _answer(
        400,
        b"Bad Request",
        _openai_error(
            "Invalid 'n': integer above maximum value.", "invalid_request_error", "n", "integer_above_max_value"
        ),
    ),
    "/fields/v1/responses": _answer(
        400,
        b"Bad Request",
        _openai_error("Invalid value: 'x'.", "invalid_request_error", "input[0].type", "invalid_value"),
    ),
    # hostile vendors: a 1 MB param and an object as type beside a usable code; then nothing usable at all
    "/hostile/chat/completions": _answer(
        400, b"Bad Request", _openai_error("no good", {"nested": True}, "p" * (1 << 20), "too_long")
    ),
    "/untyped/chat/completions": _answer(400, b"Bad Request", _openai_error("no good", 5, ["n"], 7)),
    "/google/v1beta/models/gemini-2.5-flash:generateContent": _answer(
        400,
        b"Bad Request",
        {"error": {"code": 400, "message": "User location is not supported.", "status": "FAILED_PRECONDITION"}},
    ),
    # Google's 429 as it sends it: the quota broken and when to retry, in `details`
    "/quota/v1beta/models/gemini-2.5-flash:generateContent": _answer(
        429,
        b"Too Many Requests",
        {
            "error": {
                "code": 429,
                "message": "You exceeded your current quota.",
                "status": "RESOURCE_EXHAUSTED",
                "details": GOOGLE_429_DETAILS,
            }
        },
    ),
    "/quota/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse": _answer(
        429,
        b"Too Many Requests",
        {
            "error": {
                "code": 429,
                "message": "You exceeded your current quota.",
                "status": "RESOURCE_EXHAUSTED",
                "details": GOOGLE_429_DETAILS,
            }
        },
    ),
    # a hostile Google: entries of no `@type`, a 1 MB one between usable ones, one nested past orjson's depth
    "/bloated/v1beta/models/gemini-2.5-flash:generateContent": _answer(
        400,
        b"Bad Request",
        {"error": {"code": 400, "message": "no good", "status": "INVALID_ARGUMENT", "details": HOSTILE_DETAILS}},
    ),
    "/scalar/v1beta/models/gemini-2.5-flash:generateContent": _answer(
        400,
        b"Bad Request",
        {"error": {"code": 400, "message": "no good", "status": "INVALID_ARGUMENT", "details": "d" * 1000}},
    ),
    # a vendor out of credit, as OpenRouter says it (its `code` a number), and as Anthropic does
    "/credit/chat/completions": _answer(
        402, b"Payment Required", {"error": {"code": 402, "message": "Insufficient credits. Add more credits."}}
    ),
    "/claudecredit/v1/messages": _answer(
        402,
        b"Payment Required",
        {"type": "error", "error": {"type": "billing_error", "message": "Your credit balance is too low."}},
    ),
    "/claude/v1/messages": _answer(
        404, b"Not Found", {"type": "error", "error": {"type": "not_found_error", "message": "model: claude-x"}}
    ),
}


@pytest.fixture(scope="module")
def vendor() -> Iterator[HostileVendor]:
    with vendor_thread(SCRIPTS) as running:
        yield running


@pytest.fixture(scope="module")
def edge(vendor: HostileVendor, mock_upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEdge]:
    base = f"http://127.0.0.1:{vendor.port}"
    llms = [
        llm(1, "mock-llm", f"{mock_upstream}/v1", allowed_models=["gpt-4o"]),
        llm(2, "fields", f"{base}/fields", max_retries=0),
        llm(3, "hostile", f"{base}/hostile", max_retries=0),
        llm(7, "untyped", f"{base}/untyped", max_retries=0),
        llm(4, "own-responses", f"{base}/fields", vendor="openai", max_retries=0),
        llm(5, "google", f"{base}/google", vendor="google", default_model="gemini-2.5-flash", max_retries=0),
        llm(6, "claude", f"{base}/claude", vendor="anthropic", default_model="claude-x", max_retries=0),
        *(
            llm(8 + i, slug, f"{base}/{slug}", vendor="google", default_model="gemini-2.5-flash", max_retries=0)
            for i, slug in enumerate(("quota", "bloated", "scalar"))
        ),
        llm(11, "gemini-mock", mock_upstream, vendor="google", default_model="gemini-2.5-flash"),
        llm(12, "credit", f"{base}/credit", max_retries=0),
        llm(13, "claudecredit", f"{base}/claudecredit", vendor="anthropic", default_model="claude-x", max_retries=0),
    ]
    with run_edge(make_snapshot(mock_upstream, llms=llms), tmp_path_factory.mktemp("edge")) as running:
        yield running


def _openai(edge: RunningEdge) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{edge.url}/v1", api_key=CLIENT_KEY, max_retries=0)


@pytest.mark.parametrize("stream", [False, True])
def test_the_openai_sdk_gets_param_and_code_of_the_vendors_400(edge: RunningEdge, stream: bool) -> None:
    bad: dict[str, Any] = {"temperature": "hot", "stream": stream}  # the SDK sends it as given, as clients do
    with pytest.raises(openai.BadRequestError) as refused:
        _openai(edge).chat.completions.create(model="mock-llm/gpt-4o", messages=USER, **bad)
    error = refused.value
    assert error.message.endswith("Invalid type for 'temperature': expected a decimal, but got a string instead.")
    assert (error.type, error.param, error.code) == ("invalid_request_error", "temperature", "invalid_type")


def test_an_openai_compatible_vendors_fields_pass_as_it_sent_them(edge: RunningEdge) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        _openai(edge).chat.completions.create(model="fields/mock-gpt", messages=USER, n=200)
    assert (refused.value.param, refused.value.code) == ("n", "integer_above_max_value")


def test_a_responses_pass_through_keeps_the_vendors_fields(edge: RunningEdge) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        _openai(edge).responses.create(model="own-responses/mock-gpt", input="Hi")
    assert (refused.value.param, refused.value.code) == ("input[0].type", "invalid_value")


def test_a_translated_responses_call_names_no_chat_field(edge: RunningEdge) -> None:
    """The vendor got Chat Completions: its `param` would name a field the Responses client never sent."""
    with pytest.raises(openai.BadRequestError) as refused:
        _openai(edge).responses.create(model="fields/mock-gpt", input="Hi")
    assert refused.value.param is None and refused.value.code == "upstream_400"
    assert "integer above maximum value" in refused.value.message


@pytest.mark.parametrize(("slug", "code"), [("hostile", "too_long"), ("untyped", "upstream_400")])
def test_a_hostile_vendors_fields_are_dropped_not_a_500(edge: RunningEdge, slug: str, code: str) -> None:
    """What is not a short string is dropped and the edge's own field takes its place; what is, is kept."""
    with pytest.raises(openai.BadRequestError) as refused:
        _openai(edge).chat.completions.create(model=f"{slug}/mock-gpt", messages=USER)
    error = refused.value
    assert error.status_code == 400 and error.message.endswith("no good")
    assert (error.type, error.param, error.code) == ("invalid_request_error", None, code)
    assert len(error.response.content) < 1000


def test_a_gemini_client_gets_googles_own_status(edge: RunningEdge) -> None:
    client = genai.Client(api_key=CLIENT_KEY, http_options={"base_url": edge.url})
    with pytest.raises(genai_errors.ClientError) as refused:
        client.models.generate_content(model="google/gemini-2.5-flash", contents="Hi")
    assert (refused.value.code, refused.value.status) == (400, "FAILED_PRECONDITION")
    assert refused.value.message == "User location is not supported."


def test_an_anthropic_client_gets_the_vendors_error_type(edge: RunningEdge) -> None:
    client = anthropic.Anthropic(base_url=edge.url, api_key=CLIENT_KEY, max_retries=0)
    with pytest.raises(anthropic.NotFoundError) as refused:
        client.messages.create(model="claude/claude-x", max_tokens=10, messages=USER)
    assert refused.value.body == {"type": "error", "error": {"type": "not_found_error", "message": "model: claude-x"}}


def _gemini(edge: RunningEdge) -> genai.Client:
    return genai.Client(api_key=CLIENT_KEY, http_options={"base_url": edge.url})


def test_a_gemini_client_gets_googles_details_of_a_field_it_got_wrong(edge: RunningEdge) -> None:
    """The mock answers as Google does: a field it cannot read is a BadRequest `fieldViolations` entry."""
    client = _gemini(edge)  # held: the SDK's HTTP client closes when its owner is collected
    bogus = types.HttpOptions(extra_body={"generationConfig": {"bogusKnob": 1}})
    with pytest.raises(genai_errors.ClientError) as refused:
        client.models.generate_content(
            model="gemini-mock/gemini-2.5-flash", contents="Hi", config=types.GenerateContentConfig(http_options=bogus)
        )
    assert (refused.value.code, refused.value.status) == (400, "INVALID_ARGUMENT")
    (violation,) = refused.value.details["error"]["details"]
    assert violation["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert violation["fieldViolations"] == [{"field": "generation_config", "description": refused.value.message}]


@pytest.mark.parametrize("stream", [False, True])
def test_a_gemini_client_gets_when_to_retry_a_429(edge: RunningEdge, stream: bool) -> None:
    client = _gemini(edge)  # held: the SDK's HTTP client closes when its owner is collected
    with pytest.raises(genai_errors.ClientError) as refused:
        if stream:
            list(client.models.generate_content_stream(model="quota/gemini-2.5-flash", contents="Hi"))
        else:
            client.models.generate_content(model="quota/gemini-2.5-flash", contents="Hi")
    assert (refused.value.code, refused.value.status) == (429, "RESOURCE_EXHAUSTED")
    assert refused.value.details["error"]["details"] == GOOGLE_429_DETAILS


def test_a_hostile_googles_details_are_cut_by_whole_entries_not_a_500(edge: RunningEdge) -> None:
    """Only objects with an `@type` string pass, in order, while they fit in the bound; the 1 MB entry and the
    one nested too deeply to encode are dropped whole, the small one after them kept."""
    client = _gemini(edge)  # held: the SDK's HTTP client closes when its owner is collected
    with pytest.raises(genai_errors.ClientError) as refused:
        client.models.generate_content(model="bloated/gemini-2.5-flash", contents="Hi")
    assert (refused.value.code, refused.value.status, refused.value.message) == (400, "INVALID_ARGUMENT", "no good")
    assert refused.value.details["error"]["details"] == [ERROR_INFO, RETRY_INFO]
    assert len(refused.value.response.content) < 20_000  # the bound is 16 KiB of details
    with pytest.raises(genai_errors.ClientError) as scalar:
        client.models.generate_content(model="scalar/gemini-2.5-flash", contents="Hi")
    assert scalar.value.status == "INVALID_ARGUMENT" and "details" not in scalar.value.details["error"]


def test_a_vendors_402_is_one_kind_of_error_in_each_clients_words(edge: RunningEdge) -> None:
    """Out of credit at the vendor: an OpenAI client gets the 402 as `insufficient_quota` (the edge's own 402 type),
    an Anthropic client Anthropic's own 402 `billing_error` (its SDK's `APIStatusError`, not retried), a Gemini
    client Google's 400 FAILED_PRECONDITION (Google has no 402); the vendor's message each time."""
    message = "Insufficient credits. Add more credits."
    with pytest.raises(openai.APIStatusError) as paid:
        _openai(edge).chat.completions.create(model="credit/mock-gpt", messages=USER)
    assert paid.value.status_code == 402
    assert (paid.value.type, paid.value.code) == ("insufficient_quota", "upstream_402")
    assert paid.value.message.endswith(message)
    claude = anthropic.Anthropic(base_url=edge.url, api_key=CLIENT_KEY, max_retries=0)
    for model, said in (("credit/mock-gpt", message), ("claudecredit/claude-x", "Your credit balance is too low.")):
        with pytest.raises(anthropic.APIStatusError) as billed:
            claude.messages.create(model=model, max_tokens=10, messages=USER)
        assert billed.value.status_code == 402
        assert billed.value.body == {"type": "error", "error": {"type": "billing_error", "message": said}}
    client = _gemini(edge)  # held: the SDK's HTTP client closes when its owner is collected
    with pytest.raises(genai_errors.ClientError) as refused:
        client.models.generate_content(model="credit/mock-gpt", contents="Hi")
    assert (refused.value.code, refused.value.status, refused.value.message) == (400, "FAILED_PRECONDITION", message)
