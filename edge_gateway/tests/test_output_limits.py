"""A reply's token bound is a number budgets and tpm leases reserve by before the call: a hostile one is refused
at the edge, in the caller's format, before any vendor sees it."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from shared_sdk.snapshot import BudgetConfig

from .support import CLIENT_KEY, llm, make_snapshot, run_edge

AUTH = {"authorization": f"Bearer {CLIENT_KEY}"}
MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def edge(mock_upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    gemini = llm(
        2, "gemini", mock_upstream, vendor="google", default_model="gemini-2.0-flash", allowed_models=["gemini-.*"]
    )
    budget = BudgetConfig(id=1, scope="app", target_id=1, limit=Decimal("100"), period_start=0.0, period_end=9e9)
    snap = make_snapshot(mock_upstream, llms=[llm(1, "gpt", f"{mock_upstream}/v1"), gemini], budgets=[budget])
    with run_edge(snap, tmp_path_factory.mktemp("limits")) as running:
        yield running


def _vendor_saw(upstream: str) -> int:
    return len(httpx.get(f"{upstream}/_mock/requests").json()["data"])


PROMPT = "a b c d e f g h i j k l m n o p"
PROMPT_BOUND = 8 + 4 + 31 + 8
"""8 per message + "user" (4 bytes) + the content's 31 bytes + 8."""


def _billed_when_abandoned(upstream: str, tmp_path: Any, **fields: Any) -> Decimal:
    """What a stream costs its app when the client leaves after the first event (the vendor's count never came,
    so the edge bills the request's bound: `accounting._charge`), with `fields` added to the request."""
    from shared_sdk import BudgetUsage

    budget = BudgetConfig(id=1, scope="app", target_id=1, limit=Decimal("100"), period_start=0.0, period_end=9e9)
    body = {"model": "mock-gpt", "stream": True, "max_tokens": 100, "mock": "chunk_delay_ms=200", **fields}
    body["messages"] = [{"role": "user", "content": PROMPT}]
    with run_edge(make_snapshot(upstream, budgets=[budget]), tmp_path) as running:
        with httpx.Client(timeout=10) as http:
            with http.stream("POST", f"{running.url}/v1/chat/completions", headers=AUTH, json=body) as reply:
                assert next(reply.iter_raw()).startswith(b"data:")
        usage: BudgetUsage = running.sink.wait_for(BudgetUsage, 1)[0]
    return usage.cost


@pytest.mark.parametrize(
    ("path", "field", "value", "code"),
    [
        ("/v1/chat/completions", "max_tokens", -1_000_000_000_000, "integer_below_min_value"),
        ("/v1/chat/completions", "max_tokens", 0, "integer_below_min_value"),
        ("/v1/chat/completions", "max_completion_tokens", -5, "integer_below_min_value"),
        ("/v1/chat/completions", "max_tokens", "100", "invalid_type"),
        ("/v1/chat/completions", "max_tokens", 1.5, "invalid_type"),
        ("/v1/chat/completions", "max_tokens", True, "invalid_type"),
        ("/v1/completions", "max_tokens", -7, "integer_below_min_value"),
        ("/v1/responses", "max_output_tokens", -7, "integer_below_min_value"),
    ],
)
def test_a_hostile_output_bound_is_a_400_naming_the_field(edge, upstream, path, field, value, code):
    body: dict[str, Any] = {"model": "mock-gpt", field: value}
    body.update({"messages": MESSAGES} if path.endswith("chat/completions") else {})
    body.update({"prompt": "hello"} if path.endswith("/completions") and "chat" not in path else {})
    body.update({"input": "hello"} if path.endswith("responses") else {})
    reply = httpx.post(f"{edge.url}{path}", headers=AUTH, json=body, timeout=10)
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", field, code)
    assert _vendor_saw(upstream) == 0


def test_a_null_bound_is_no_bound(edge, upstream):
    reply = httpx.post(
        f"{edge.url}/v1/chat/completions",
        headers=AUTH,
        json={"model": "mock-gpt", "messages": MESSAGES, "max_tokens": None, "max_completion_tokens": 5},
        timeout=10,
    )
    assert reply.status_code == 200, reply.text


@pytest.mark.parametrize("value", [-3, 0, "64", 2.5])
def test_geminis_hostile_output_bound_is_invalid_argument(edge, upstream, value):
    reply = httpx.post(
        f"{edge.url}/v1beta/models/gemini-2.0-flash:generateContent",
        headers={"x-goog-api-key": CLIENT_KEY},
        json={
            "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "generationConfig": {"maxOutputTokens": value},
        },
        timeout=10,
    )
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert _vendor_saw(upstream) == 0


def test_a_budget_reserves_the_bound_of_every_reply_asked_for(upstream, tmp_path):
    """`n` replies may each use `max_tokens`: a stream the client abandons is billed that bound, n times over."""
    cost = _billed_when_abandoned(upstream, tmp_path, n=3)
    assert cost == Decimal(PROMPT_BOUND * 1000 + 3 * 100 * 2000) / 1_000_000  # $1000/M prompt, $2000/M completion


@pytest.mark.parametrize(("max_tokens", "n", "bound"), [(-1_000_000, 1, None), (0, 1, None), (50, -4, 50), (50, 4, 50)])
def test_a_native_body_never_bounds_a_reply_below_nothing(max_tokens, n, bound):
    """A vendor-native body is passed on as it is; what a budget reserves by it is never less than nothing."""
    from edge_gateway.providers.base import OpenAIRequest

    call = OpenAIRequest.from_data("native", b"{}", {"max_tokens": max_tokens, "n": n})
    assert call.max_tokens == bound
    assert call.choices == max(n, 1)


def test_a_budget_reserves_the_tool_definitions_the_vendor_counts(upstream, tmp_path):
    """Tool schemas are prompt tokens (their keys too): a stream the client abandons is billed a bound with them."""
    import orjson

    tools = [
        {
            "type": "function",
            "function": {
                "name": f"tool_{i}",
                "description": "looks a thing up " * 20,
                "parameters": {"type": "object", "properties": {f"field_{j}": {"type": "string"} for j in range(20)}},
            },
        }
        for i in range(10)
    ]
    cost = _billed_when_abandoned(upstream, tmp_path, tools=tools)
    assert cost == Decimal((PROMPT_BOUND + len(orjson.dumps(tools))) * 1000 + 100 * 2000) / 1_000_000


def test_an_input_of_token_ids_is_priced_by_its_length(upstream, tmp_path):
    """OpenAI's embeddings (and legacy completions) take token ids: 50,000 of them at $1000/M are $50, more than a
    $10 budget allows, though no string in the body is longer than a few bytes."""
    budget = BudgetConfig(id=1, scope="app", target_id=1, limit=Decimal("10"), period_start=0.0, period_end=9e9)
    with run_edge(make_snapshot(upstream, budgets=[budget]), tmp_path) as running:
        small = httpx.post(
            f"{running.url}/v1/embeddings", headers=AUTH, json={"model": "mock-gpt", "input": [[1, 2, 3]]}, timeout=10
        )
        large = httpx.post(
            f"{running.url}/v1/embeddings",
            headers=AUTH,
            json={"model": "mock-gpt", "input": [list(range(50_000))]},
            timeout=10,
        )
    assert small.status_code == 200, small.text
    assert large.status_code == 402, large.text
    assert large.json()["error"]["code"] == "budget_exceeded"


IMAGE_URL = "https://images.example.com/a-large-photo.png"
INLINE_IMAGE = "data:image/png;base64," + "iVBORw0KGgo" * 4


def _image_chat(url: str) -> dict[str, Any]:
    parts = [{"type": "text", "text": "what is in it?"}, {"type": "image_url", "image_url": {"url": url}}]
    return {"model": "mock-gpt", "max_tokens": 100, "messages": [{"role": "user", "content": parts}]}


def _priced(max_input_tokens: int) -> list[Any]:
    from shared_sdk.snapshot import ModelPriceConfig

    return [
        ModelPriceConfig(
            vendor="mock",
            model="mock-gpt",
            prompt_per_million=Decimal("1000"),
            completion_per_million=Decimal("2000"),
            max_input_tokens=max_input_tokens,
        )
    ]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", _image_chat(IMAGE_URL)),
        (
            "/v1/responses",
            {"model": "mock-gpt", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f-1"}]}]},
        ),
        (
            "/v1/messages",
            {
                "model": "mock-gpt",
                "max_tokens": 100,
                "messages": [
                    {"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": IMAGE_URL}}]}
                ],
            },
        ),
    ],
    ids=["openai-image-url", "responses-file-id", "anthropic-url-source"],
)
def test_media_given_by_reference_reserves_the_models_input_limit(upstream, tmp_path, path, body):
    """An image URL's bytes say nothing of the tokens its pixels cost (~1,500 on gpt-4o, ~48,000 on gpt-4o-mini):
    with no input limit on the price, such a request reserves 1,048,576 input tokens ($1,048 at $1000/M), more
    than a $100 budget holds: 402, and no vendor called. The same image inline is bounded by its bytes: 200."""
    budget = BudgetConfig(id=1, scope="app", target_id=1, limit=Decimal("100"), period_start=0.0, period_end=9e9)
    with run_edge(make_snapshot(upstream, budgets=[budget]), tmp_path) as running:
        by_reference = httpx.post(f"{running.url}{path}", headers=AUTH, json=body, timeout=10)
        inline = httpx.post(f"{running.url}/v1/chat/completions", headers=AUTH, json=_image_chat(INLINE_IMAGE))
    # Anthropic's SDK gets its own shape for a spend limit: 400 billing_error (`errors.error_response`)
    assert by_reference.status_code == (400 if path == "/v1/messages" else 402), by_reference.text
    assert "budget exhausted" in by_reference.text
    assert _vendor_saw(upstream) == 1, "only the inline image reached the vendor"
    assert inline.status_code == 200, inline.text


def test_an_image_url_reserves_the_input_limit_the_price_names(upstream, tmp_path):
    """With the model's input limit on its price (50,000 tokens: $50 at $1000/M), the image request fits a $100
    budget; abandoned mid-stream it is billed that bound, the most the vendor could charge for its input."""
    from shared_sdk import BudgetUsage

    budget = BudgetConfig(id=1, scope="app", target_id=1, limit=Decimal("100"), period_start=0.0, period_end=9e9)
    body = {**_image_chat(IMAGE_URL), "stream": True, "mock": "chunk_delay_ms=200"}
    with run_edge(make_snapshot(upstream, budgets=[budget], prices=_priced(50_000)), tmp_path) as running:
        with httpx.Client(timeout=10) as http:
            with http.stream("POST", f"{running.url}/v1/chat/completions", headers=AUTH, json=body) as reply:
                assert reply.status_code == 200
                assert next(reply.iter_raw()).startswith(b"data:")
        usage: BudgetUsage = running.sink.wait_for(BudgetUsage, 1)[0]
    assert usage.cost == Decimal(50_000 * 1000 + 100 * 2000) / 1_000_000


def test_the_input_limit_caps_what_a_long_input_reserves(upstream, tmp_path):
    """200,000 bytes of text bound 200,000 tokens ($200 at $1000/M, over a $10 budget), but a model whose input
    limit is 4,000 tokens bills no more than that (a longer input is refused, not billed): $4, within it."""
    budget = BudgetConfig(id=1, scope="app", target_id=1, limit=Decimal("10"), period_start=0.0, period_end=9e9)
    body = {"model": "mock-gpt", "max_tokens": 100, "messages": [{"role": "user", "content": "word " * 40_000}]}
    answers = []
    for prices in (None, _priced(4_000)):
        state = tmp_path / str(len(answers))
        state.mkdir()
        with run_edge(make_snapshot(upstream, budgets=[budget], prices=prices), state) as edge_:
            answers.append(httpx.post(f"{edge_.url}/v1/chat/completions", headers=AUTH, json=body, timeout=10))
    assert [a.status_code for a in answers] == [402, 200], [a.text[:200] for a in answers]


@pytest.mark.parametrize(
    ("part", "reference"),
    [
        ({"type": "image_url", "image_url": {"url": IMAGE_URL}}, True),
        ({"type": "image_url", "image_url": IMAGE_URL}, True),
        ({"type": "image_url", "image_url": {"url": INLINE_IMAGE}}, False),
        ({"type": "video_url", "video_url": {"url": "https://v.example.com/clip.mp4"}}, True),
        ({"type": "input_image", "image_url": IMAGE_URL}, True),
        ({"type": "input_image", "image_url": INLINE_IMAGE}, False),
        ({"type": "input_image", "file_id": "file-1"}, True),
        ({"type": "input_file", "file_url": "https://d.example.com/report.pdf"}, True),
        ({"type": "input_file", "file_data": "JVBERi0x"}, False),
        ({"type": "file", "file": {"file_id": "file-1"}}, True),
        ({"type": "file", "file": {"file_data": "JVBERi0x"}}, False),
        ({"type": "image", "source": {"type": "url", "url": IMAGE_URL}}, True),
        ({"type": "document", "source": {"type": "file", "file_id": "file-1"}}, True),
        ({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}}, False),
        ({"fileData": {"mimeType": "video/mp4", "fileUri": "gs://b/clip.mp4"}}, True),
        ({"inlineData": {"mimeType": "image/png", "data": "iVBOR"}}, False),
        ({"image": {"format": "png", "source": {"s3Location": {"uri": "s3://b/photo.png"}}}}, True),
        ({"image": {"format": "png", "source": {"bytes": "iVBOR"}}}, False),
        ({"type": "text", "text": "see https://example.com/a.png"}, False),
        ({"type": "image_url", "image_url": None}, False),
        ({"type": 7}, False),
    ],
)
def test_which_content_parts_are_media_by_reference(part, reference):
    from edge_gateway.policy import input_token_bound

    found: list[object] = []  # the parts (or their nested sources) the walk found to be media by reference
    input_token_bound([{"role": "user", "content": [part]}], found)
    assert bool(found) is reference, found


@pytest.mark.parametrize(
    ("raw", "media"),
    [
        (b'{"messages": [{"role": "user", "content": [{"text": "open the file at this url"}]}]}', False),
        (b'{"contents": [{"role": "user", "parts": [{"fileData": {"fileUri": "gs://b/clip.mp4"}}]}]}', True),
        (b"not json, names a file", True),
        (b"not json at all", False),
    ],
)
def test_a_native_body_gives_media_by_reference_by_its_shape(raw, media):
    """A native body is walked as JSON when it is an object (its words are not mistaken for media), else any of
    its bytes that could name media by reference counts as such."""
    import orjson

    from edge_gateway.exchange import Exchange
    from edge_gateway.policy import _prompt_bound
    from edge_gateway.providers.base import OpenAIRequest

    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = {}
    ex = Exchange.__new__(Exchange)
    ex.kind, ex.prompt_bound, ex.call = "native", -1, OpenAIRequest.from_data("native", raw, data)
    assert _prompt_bound(ex) == len(raw) + 8
    assert ex.prompt_media is media
