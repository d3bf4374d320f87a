"""A reply's token bound is a number budgets and tpm leases reserve by before the call: a hostile one is refused
at the edge, in the caller's format, before any vendor sees it."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from shared_sdk.snapshot import BudgetConfig

from .support import CLIENT_KEY, MOCK_PRICE, llm, make_snapshot, run_edge

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
VIDEO_URI = "gs://bucket/an-hour-of-video.mp4"


def _image_chat(*urls: str) -> dict[str, Any]:
    parts = [{"type": "text", "text": "what is in it?"}] + [
        {"type": "image_url", "image_url": {"url": u}} for u in urls
    ]
    return {"model": "mock-gpt", "max_tokens": 100, "messages": [{"role": "user", "content": parts}]}


def _priced(max_input_tokens: int) -> list[Any]:
    import msgspec

    return [msgspec.structs.replace(MOCK_PRICE, max_input_tokens=max_input_tokens)]


def _budget(limit: str) -> list[BudgetConfig]:
    return [BudgetConfig(id=1, scope="app", target_id=1, limit=Decimal(limit), period_start=0.0, period_end=9e9)]


def _without_and_with_input_limit(
    upstream: str, tmp_path: Any, path: str, body: dict[str, Any], *, budget: str, limit: int
) -> list[httpx.Response]:
    """The answers to `body` under an app budget of `budget`, from an edge whose price names no input limit, then
    from one whose price names `limit`."""
    answers: list[httpx.Response] = []
    for prices in (None, _priced(limit)):
        state = tmp_path / str(len(answers))
        state.mkdir()
        with run_edge(make_snapshot(upstream, budgets=_budget(budget), prices=prices), state) as running:
            answers.append(httpx.post(f"{running.url}{path}", headers=AUTH, json=body, timeout=10))
    return answers


def _anthropic(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"model": "mock-gpt", "max_tokens": 100, "messages": [{"role": "user", "content": list(parts)}]}


def _anthropic_image(url: str) -> dict[str, Any]:
    return {"type": "image", "source": {"type": "url", "url": url}}


@pytest.mark.parametrize(
    ("path", "one", "two"),
    [
        ("/v1/chat/completions", _image_chat(IMAGE_URL), _image_chat(IMAGE_URL, IMAGE_URL)),
        (
            "/v1/responses",
            {
                "model": "mock-gpt",
                "input": [{"role": "user", "content": [{"type": "input_image", "image_url": IMAGE_URL}]}],
            },
            {
                "model": "mock-gpt",
                "input": [{"role": "user", "content": [{"type": "input_image", "image_url": IMAGE_URL}] * 2}],
            },
        ),
        ("/v1/messages", _anthropic(_anthropic_image(IMAGE_URL)), _anthropic(*[_anthropic_image(IMAGE_URL)] * 2)),
    ],
    ids=["openai-image-url", "responses-image-url", "anthropic-url-source"],
)
def test_each_image_given_by_reference_reserves_what_the_largest_image_costs(upstream, tmp_path, path, one, two):
    """An image URL's bytes say nothing of the tokens its pixels cost (~1,500 on gpt-4o, up to 48,169 on
    gpt-4o-mini): each reserves 50,000 input tokens, $50 at $1000/M. One fits a $100 budget; two do not (402, or
    Anthropic's 400 billing_error, before any vendor call); two inline images are bounded by their bytes."""
    with run_edge(make_snapshot(upstream, budgets=_budget("100")), tmp_path) as running:
        answers = [httpx.post(f"{running.url}{path}", headers=AUTH, json=body, timeout=10) for body in (one, two)]
        two_inline = _image_chat(INLINE_IMAGE, INLINE_IMAGE)
        inline = httpx.post(f"{running.url}/v1/chat/completions", headers=AUTH, json=two_inline, timeout=10)
    assert answers[0].status_code == 200, answers[0].text
    # Anthropic's SDK gets its own shape for a spend limit: 400 billing_error (`errors.error_response`)
    assert answers[1].status_code == (400 if path == "/v1/messages" else 402), answers[1].text
    assert "budget exhausted" in answers[1].text
    assert inline.status_code == 200, inline.text
    assert _vendor_saw(upstream) == 2, "the two-image request never reached the vendor"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/v1/chat/completions",
            {
                "model": "mock-gpt",
                "max_tokens": 100,
                "messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-report"}}]}],
            },
        ),
        ("/v1/messages", _anthropic({"type": "document", "source": {"type": "url", "url": "https://d.example/r.pdf"}})),
        (
            "/v1beta/models/mock-gpt:generateContent",
            {"contents": [{"role": "user", "parts": [{"fileData": {"mimeType": "video/mp4", "fileUri": VIDEO_URI}}]}]},
        ),
    ],
    ids=["openai-file-id", "anthropic-document-url", "gemini-video-uri"],
)
def test_other_media_given_by_reference_reserves_the_models_input_limit(upstream, tmp_path, path, body):
    """A document or a video costs by its pages or seconds (an hour of video ~1,000,000 tokens): nothing smaller
    than the model's input limit bounds it. With none on the price, 1,048,576 tokens ($1,048 at $1000/M): over a
    $100 budget. With the price's limit of 50,000 tokens ($50): within it (the mock model, an OpenAI chat wire,
    takes the file; a document or a video its translation refuses, after the budget passed them)."""
    answers = _without_and_with_input_limit(upstream, tmp_path, path, body, budget="100", limit=50_000)
    assert answers[0].status_code in (400, 402) and "budget exhausted" in answers[0].text, answers[0].text
    assert "budget" not in answers[1].text, answers[1].text
    if path == "/v1/chat/completions":
        assert answers[1].status_code == 200, answers[1].text


def test_a_stream_with_a_video_abandoned_is_billed_the_input_limit(upstream, tmp_path):
    """The vendor may bill the whole video: a stream the client leaves before the vendor's count is billed the
    bound, the input limit the price names (50,000 tokens) plus `max_tokens`."""
    from shared_sdk import BudgetUsage

    video = {"type": "video_url", "video_url": {"url": "https://v.example.com/clip.mp4"}}
    body = {
        "model": "mock-gpt",
        "max_tokens": 100,
        "stream": True,
        "mock": "chunk_delay_ms=200",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "summarise"}, video]}],
    }
    with run_edge(make_snapshot(upstream, budgets=_budget("100"), prices=_priced(50_000)), tmp_path) as running:
        with httpx.Client(timeout=10) as http:
            with http.stream("POST", f"{running.url}/v1/chat/completions", headers=AUTH, json=body) as reply:
                assert reply.status_code == 200
                assert next(reply.iter_raw()).startswith(b"data:")
        usage: BudgetUsage = running.sink.wait_for(BudgetUsage, 1)[0]
    assert usage.cost == Decimal(50_000 * 1000 + 100 * 2000) / 1_000_000


def test_the_input_limit_caps_what_a_long_input_reserves(upstream, tmp_path):
    """200,000 bytes of text bound 200,000 tokens ($200 at $1000/M, over a $10 budget), but a model whose input
    limit is 4,000 tokens bills no more than that (a longer input is refused, not billed): $4, within it."""
    body = {"model": "mock-gpt", "max_tokens": 100, "messages": [{"role": "user", "content": "word " * 40_000}]}
    answers = _without_and_with_input_limit(upstream, tmp_path, "/v1/chat/completions", body, budget="10", limit=4_000)
    assert [a.status_code for a in answers] == [402, 200], [a.text[:200] for a in answers]


@pytest.mark.parametrize(
    ("part", "kind"),
    [
        ({"type": "image_url", "image_url": {"url": IMAGE_URL}}, "image"),
        ({"type": "image_url", "image_url": IMAGE_URL}, "image"),
        ({"type": "image_url", "image_url": {"url": INLINE_IMAGE}}, None),
        ({"type": "video_url", "video_url": {"url": "https://v.example.com/clip.mp4"}}, "media"),
        ({"type": "input_image", "image_url": IMAGE_URL}, "image"),
        ({"type": "input_image", "image_url": INLINE_IMAGE}, None),
        ({"type": "input_image", "file_id": "file-1"}, "image"),
        ({"type": "input_file", "file_url": "https://d.example.com/report.pdf"}, "media"),
        ({"type": "input_file", "file_data": "JVBERi0x"}, None),
        ({"type": "file", "file": {"file_id": "file-1"}}, "media"),
        ({"type": "file", "file": {"file_data": "JVBERi0x"}}, None),
        ({"type": "image", "source": {"type": "url", "url": IMAGE_URL}}, "image"),
        ({"type": "document", "source": {"type": "file", "file_id": "file-1"}}, "media"),
        ({"type": "image", "source": {"type": "file", "file_id": "file-1"}}, "image"),
        ({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}}, None),
        ({"fileData": {"mimeType": "video/mp4", "fileUri": VIDEO_URI}}, "media"),
        ({"fileData": {"mimeType": "image/png", "fileUri": "gs://b/photo.png"}}, "image"),
        ({"inlineData": {"mimeType": "image/png", "data": "iVBOR"}}, None),
        ({"image": {"format": "png", "source": {"s3Location": {"uri": "s3://b/photo.png"}}}}, "media"),
        ({"image": {"format": "png", "source": {"bytes": "iVBOR"}}}, None),
        ({"type": "text", "text": "see https://example.com/a.png"}, None),
        ({"type": "image_url", "image_url": None}, None),
        ({"type": 7}, None),
    ],
)
def test_which_content_parts_are_media_by_reference(part, kind):
    from edge_gateway.policy import input_token_bound

    found: list[str] = []  # the kinds of the parts (or of their nested sources) the walk found by reference
    input_token_bound([{"role": "user", "content": [part]}], found)
    assert found == ([kind] if kind else []), "each part found once, as what it is"


@pytest.mark.parametrize(
    ("raw", "media"),
    [
        (b'{"messages": [{"role": "user", "content": [{"text": "open the file at this url"}]}]}', False),
        (b'{"contents": [{"role": "user", "parts": [{"fileData": {"fileUri": "gs://b/clip.mp4"}}]}]}', True),
        (b"not json, names a file", True),
        (b"not json at all", False),
    ],
)
def test_a_native_body_gives_media_by_reference_by_its_shape(raw, media):  # media: other than images
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
    ex.kind, ex.prompt_bound, ex.prompt_media = "native", -1, False
    ex.call = OpenAIRequest.from_data("native", raw, data)
    assert _prompt_bound(ex) == len(raw) + 8
    assert ex.prompt_media is media
