"""`POST /v1/responses` through a real edge with the stock `openai` SDK: translated to Chat Completions (mock in
chat mode, Anthropic), passed through (mock in Responses mode), streamed and not; tools, `previous_response_id`,
retrieve and delete of stored responses, errors, and one app through a budget and a response hook."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest

from edge_gateway.kv import EdgeKV
from edge_gateway.response_store import ResponseStore
from shared_sdk import AnalyticsRecord, BudgetUsage
from shared_sdk.snapshot import CredentialConfig, ModelPriceConfig, hash_credential

from . import recording_plugins
from .support import (
    CLIENT_KEY,
    OTHER_KEY,
    AppConfig,
    BudgetConfig,
    FallbackTarget,
    PluginBinding,
    PluginConfig,
    default_credentials,
    llm,
    make_snapshot,
    run_edge,
)

BUDGET_KEY = "sk-client-budget-responses"
BROKE_KEY = "sk-client-broke-responses"
CLAUDE = "claude-sonnet-4-20250514"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


PACED_ERROR = "error_after_chunks=3;chunk_delay_ms=100"
"""The vendor's in-band error after three events, each its own read: sent at once, a loaded machine read the first
events and the error together, before the stream's start, so the call failed as a whole (a 502, retried or fallen
back) instead of ending a started stream, and the tests of a started stream's end failed four runs in five."""


FAILING_HOOK = {"plugin_chain": [PluginBinding(plugin_slug="ev-first", order=1)]}
VENDOR_ERROR_FIRST = {"extra_headers": {"x-mock-fault": "error_after_chunks=0"}}


@pytest.fixture(scope="module")
def edge(mock_upstream, tmp_path_factory):
    recorder = PluginConfig(
        slug="rec",
        name="rec",
        import_path="edge_gateway.tests.recording_plugins:Recorder",
        config={"label": "rec"},
    )
    buggy = PluginConfig(
        slug="ev",
        name="ev",
        import_path="edge_gateway.tests.recording_plugins:EventsRecorder",
        config={"answer_text": True},
    )
    buggy_first = PluginConfig(
        slug="ev-first",
        name="ev-first",
        import_path="edge_gateway.tests.recording_plugins:EventsRecorder",
        config={"answer_text": True, "answer_text_from": 0},
    )
    answering = PluginConfig(
        slug="sc",
        name="sc",
        import_path="edge_gateway.tests.recording_plugins:Recorder",
        config={"label": "sc", "short_circuit_at": "post_auth"},
    )
    llms = [
        llm(
            1,
            "chat",
            f"{mock_upstream}/v1",
            allowed_models=["mock-gpt"],
            plugin_chain=[PluginBinding(plugin_slug="rec", order=1)],
        ),
        # a second deployment of mock-gpt, ranked after `chat` (priority 1): bare `mock-gpt` stays translated,
        # `native/mock-gpt` pins the pass-through
        llm(
            2,
            "native",
            f"{mock_upstream}/v1",
            allowed_models=["mock-gpt"],
            metadata={"responses_api": True},
            priority=1,
        ),
        llm(4, "dead", "http://127.0.0.1:1/v1", default_model="dead-gpt", allowed_models=["dead-gpt"], max_retries=0),
        llm(
            5,
            "flaky",
            f"{mock_upstream}/v1",
            default_model="flaky-gpt",
            allowed_models=["flaky-gpt"],
            extra_headers={"x-mock-fault": PACED_ERROR},
        ),
        llm(
            6,
            "falling",
            "http://127.0.0.1:1/v1",
            default_model="falling-gpt",
            allowed_models=["falling-gpt"],
            max_retries=0,
            fallbacks=[FallbackTarget(llm_slug="claude", model=CLAUDE)],
        ),
        llm(
            7,
            "answered",
            f"{mock_upstream}/v1",
            default_model="sc-gpt",
            allowed_models=["sc-gpt"],
            plugin_chain=[PluginBinding(plugin_slug="sc", order=1)],
        ),
        llm(3, "claude", mock_upstream, vendor="anthropic", default_model=CLAUDE, allowed_models=["claude-.*"]),
        # each breaks with its vendor's in-band error after three events: a pass-through vendor, an Anthropic one
        llm(
            8,
            "native-flaky",
            f"{mock_upstream}/v1",
            default_model="native-flaky-gpt",
            allowed_models=["native-flaky-gpt"],
            metadata={"responses_api": True},
            extra_headers={"x-mock-fault": "error_after_chunks=3"},
        ),
        llm(
            9,
            "flaky-claude",
            mock_upstream,
            vendor="anthropic",
            default_model="flaky-claude",
            allowed_models=["flaky-claude"],
            extra_headers={"x-mock-fault": PACED_ERROR},
        ),
        # a chunk hook that fails after the stream's first event
        llm(
            10,
            "buggy",
            f"{mock_upstream}/v1",
            default_model="buggy-gpt",
            allowed_models=["buggy-gpt"],
            plugin_chain=[PluginBinding(plugin_slug="ev", order=1)],
        ),
        # before the client has `response.created`: a chunk hook that fails on the first read (translated and
        # passed through), and a vendor whose stream errs before its first event (both ways)
        *(
            llm(
                id,
                slug,
                f"{mock_upstream}/v1",
                default_model=f"{slug}-gpt",
                allowed_models=[f"{slug}-gpt"],
                max_retries=0,
                metadata={"responses_api": slug.startswith("native")},
                **extra,
            )
            for id, slug, extra in (
                (11, "buggy-first", FAILING_HOOK),
                (12, "native-buggy-first", FAILING_HOOK),
                (13, "error-first", VENDOR_ERROR_FIRST),
                (14, "native-error-first", VENDOR_ERROR_FIRST),
            )
        ),
    ]
    prices = [
        ModelPriceConfig(
            vendor="mock", model="mock-gpt", prompt_per_million=Decimal(1000), completion_per_million=Decimal(2000)
        ),
        ModelPriceConfig(
            vendor="anthropic", model=CLAUDE, prompt_per_million=Decimal(1000), completion_per_million=Decimal(2000)
        ),
    ]
    snap = make_snapshot(
        mock_upstream,
        llms=llms,
        apps=[
            AppConfig(id=1, name="one", llm_ids=list(range(1, 15))),
            AppConfig(id=2, name="two", llm_ids=[1]),
            AppConfig(id=3, name="budgeted", llm_ids=[1]),
            AppConfig(id=4, name="broke", llm_ids=[1]),
        ],
        credentials=[
            *default_credentials(),
            CredentialConfig(key_hash=hash_credential(BUDGET_KEY), app_id=3, credential_id=20),
            CredentialConfig(key_hash=hash_credential(BROKE_KEY), app_id=4, credential_id=21),
        ],
        budgets=[
            BudgetConfig(id=1, scope="app", target_id=3, limit=Decimal("100")),
            BudgetConfig(id=2, scope="app", target_id=4, limit=Decimal("0.000001")),
        ],
        plugins=[recorder, answering, buggy, buggy_first],
        prices=prices,
    )
    with run_edge(snap, tmp_path_factory.mktemp("edge")) as running:
        yield running


def client(edge, key=CLIENT_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{edge.url}/v1", api_key=key, max_retries=0)


def record(edge, kind: type, request_id: str):
    """The telemetry record of kind `kind` for the request sent with `x-request-id: request_id`."""
    for _ in range(250):
        found = [r for r in edge.sink.of(kind) if r.request_id == request_id]
        if found:
            return found[0]
        time.sleep(0.02)
    raise AssertionError(f"no {kind.__name__} for request {request_id}")


def last_upstream(mock_upstream: str) -> dict:
    return httpx.get(f"{mock_upstream}/_mock/requests").json()["data"][-1]


def test_translated_to_chat_completions(edge, mock_upstream):
    reply = client(edge).responses.create(
        model="mock-gpt", instructions="Be brief.", input="hello there", max_output_tokens=50, temperature=0.5
    )
    assert reply.output_text == "Echo: hello there"
    assert reply.status == "completed" and reply.id.startswith("resp_")
    assert reply.usage.input_tokens > 0 and reply.usage.output_tokens > 0
    seen = last_upstream(mock_upstream)
    assert seen["path"] == "/v1/chat/completions"
    assert seen["body"]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello there"},
    ]
    assert seen["body"]["max_tokens"] == 50 and seen["body"]["temperature"] == 0.5


def test_translated_stream_event_sequence(edge):
    with client(edge).responses.stream(
        model="mock-gpt", input=[{"role": "user", "content": [{"type": "input_text", "text": "stream me"}]}]
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert "response.output_text.delta" in kinds and kinds[-1] == "response.completed"
    assert kinds.index("response.output_text.done") < kinds.index("response.output_item.done")
    assert final.output_text == "Echo: stream me"
    assert final.usage.output_tokens > 0


async def test_async_client_iterating_stream_true(edge):
    async with openai.AsyncOpenAI(base_url=f"{edge.url}/v1", api_key=CLIENT_KEY, max_retries=0) as aclient:
        events = [event async for event in await aclient.responses.create(model="mock-gpt", input="async", stream=True)]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-1].type == "response.completed" and events[-1].response.output_text == "Echo: async"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "Echo: async"


def test_length_cut_is_incomplete(edge):
    reply = client(edge).responses.create(model="mock-gpt", input="one two three four five six", max_output_tokens=2)
    assert reply.status == "incomplete" and reply.incomplete_details.reason == "max_output_tokens"


def test_function_tool_round_trip_with_previous_response(edge, mock_upstream):
    first = client(edge).responses.create(model="mock-gpt", input="call tool get_weather please", tools=[WEATHER])
    call = first.output[0]
    assert call.type == "function_call" and call.name == "get_weather" and call.call_id
    second = client(edge).responses.create(
        model="mock-gpt",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
        tools=[WEATHER],
    )
    assert second.output_text == "Echo: sunny"
    messages = last_upstream(mock_upstream)["body"]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert messages[1]["tool_calls"][0]["id"] == call.call_id
    assert messages[2] == {"role": "tool", "tool_call_id": call.call_id, "content": "sunny"}


def test_streamed_tool_call(edge):
    with client(edge).responses.stream(model="mock-gpt", input="call tool get_weather", tools=[WEATHER]) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds
    assert final.output[0].type == "function_call" and '"city"' in final.output[0].arguments


def test_chaining_retrieve_delete_and_app_scope(edge, mock_upstream):
    first = client(edge).responses.create(model="mock-gpt", input="my name is Ada")
    client(edge).responses.create(model="mock-gpt", previous_response_id=first.id, input="what is my name?")
    messages = last_upstream(mock_upstream)["body"]["messages"]
    assert messages == [
        {"role": "user", "content": "my name is Ada"},
        {"role": "assistant", "content": "Echo: my name is Ada"},
        {"role": "user", "content": "what is my name?"},
    ]
    assert client(edge).responses.retrieve(first.id).output_text == "Echo: my name is Ada"
    with pytest.raises(openai.NotFoundError):
        client(edge, OTHER_KEY).responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        client(edge, OTHER_KEY).responses.delete(first.id)
    with pytest.raises(openai.BadRequestError) as foreign:
        client(edge, OTHER_KEY).responses.create(model="mock-gpt", previous_response_id=first.id, input="hi")
    assert foreign.value.code == "previous_response_not_found"
    client(edge).responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client(edge).responses.retrieve(first.id)
    unstored = client(edge).responses.create(model="mock-gpt", input="forget me", store=False)
    with pytest.raises(openai.NotFoundError):
        client(edge).responses.retrieve(unstored.id)


def test_input_items_of_a_chain_page_as_openais_do(edge):
    first = client(edge).responses.create(model="mock-gpt", input="one")
    second = client(edge).responses.create(
        model="mock-gpt",
        previous_response_id=first.id,
        input=[
            {"role": "user", "content": "two"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "three"}]},
        ],
    )
    items = client(edge).responses.input_items.list(second.id)  # newest first: OpenAI's default order
    texts = [(item.role, item.content[0].text) for item in items.data]
    assert texts == [("user", "three"), ("user", "two"), ("assistant", "Echo: one"), ("user", "one")]
    assert items.data[2].id == first.output[0].id  # the earlier output keeps its id
    assert len({item.id for item in items.data}) == 4 and all(item.type == "message" for item in items.data)
    assert not items.has_more and items.first_id == items.data[0].id and items.last_id == items.data[-1].id

    ascending = client(edge).responses.input_items.list(second.id, order="asc", limit=3)
    assert [item.content[0].text for item in ascending.data] == ["one", "Echo: one", "two"]
    assert ascending.has_more
    paged = [item.content[0].text for item in client(edge).responses.input_items.list(second.id, limit=1)]
    assert paged == ["three", "two", "Echo: one", "one"]  # the SDK's auto-paging follows `after`
    again = client(edge).responses.input_items.list(second.id, order="asc", after=ascending.last_id)
    assert [item.content[0].text for item in again.data] == ["three"] and not again.has_more
    before = client(edge).responses.input_items.list(  # `before`: Azure's and older SDKs' cursor
        second.id, order="asc", limit=1, extra_query={"before": ascending.last_id}
    )
    assert [item.content[0].text for item in before.data] == ["Echo: one"] and before.has_more

    for query, param in (
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"order": "sideways"}, "order"),
        ({"after": "msg_unknown"}, "after"),
        ({"include": ["not.a.thing"]}, "include"),
    ):
        with pytest.raises(openai.BadRequestError) as refused:
            client(edge).responses.input_items.list(second.id, **query)
        assert refused.value.body["param"] == param, query
    with pytest.raises(openai.BadRequestError) as not_a_number:
        client(edge).responses.input_items.list(second.id, extra_query={"limit": "lots"})
    assert not_a_number.value.body["param"] == "limit"
    with pytest.raises(openai.NotFoundError):  # another app's response is as unknown as a made-up id
        client(edge, OTHER_KEY).responses.input_items.list(second.id)
    with pytest.raises(openai.NotFoundError):
        client(edge).responses.input_items.list("resp_made_up")
    with pytest.raises(openai.AuthenticationError):
        client(edge, "fj-not-a-key").responses.input_items.list(second.id)


def test_streamed_response_is_stored(edge):
    with client(edge).responses.stream(model="mock-gpt", input="remember the stream") as stream:
        final = stream.get_final_response()
    assert client(edge).responses.retrieve(final.id).output_text == "Echo: remember the stream"


def test_passthrough_to_a_vendor_with_the_responses_api(edge, mock_upstream):
    reply = client(edge).responses.create(model="native/mock-gpt", input="straight through")
    assert reply.output_text == "Echo: straight through"
    seen = last_upstream(mock_upstream)
    assert seen["path"] == "/v1/responses" and seen["body"]["input"] == "straight through"
    follow = client(edge).responses.create(model="native/mock-gpt", previous_response_id=reply.id, input="again")
    assert follow.previous_response_id == reply.id  # the vendor keeps the state
    with client(edge).responses.stream(
        model="native/mock-gpt", input="stream through", extra_headers={"x-request-id": "resp-passthrough-stream"}
    ) as stream:
        final = stream.get_final_response()
    assert final.output_text == "Echo: stream through" and final.usage.output_tokens > 0
    accounted = record(edge, AnalyticsRecord, "resp-passthrough-stream")
    assert accounted.llm_slug == "native" and accounted.cost > 0
    assert (accounted.prompt_tokens, accounted.completion_tokens) == (
        final.usage.input_tokens,
        final.usage.output_tokens,
    )


def test_anthropic_behind_responses(edge, mock_upstream):
    reply = client(edge).responses.create(model=CLAUDE, instructions="Be brief.", input="hi claude")
    assert "hi claude" in reply.output_text and reply.usage.input_tokens > 0
    seen = last_upstream(mock_upstream)
    assert seen["path"] == "/v1/messages" and seen["body"]["system"] == "Be brief."
    with client(edge).responses.stream(model=CLAUDE, input="stream claude") as stream:
        final = stream.get_final_response()
    assert "stream claude" in final.output_text and final.usage.output_tokens > 0


def test_stream_broken_mid_way_and_a_fallback_that_answers(edge):
    with client(edge).responses.stream(model="flaky-gpt", input="one two three four five six seven") as stream:
        error = [event for event in stream if event.type == "error"]
    assert error[0].message == SERVER_ERROR  # the vendor's own message (its in-band error)
    reply = client(edge).responses.create(
        model="falling-gpt", input="fall back please", extra_headers={"x-request-id": "resp-fallback"}
    )
    assert "fall back please" in reply.output_text
    assert record(edge, AnalyticsRecord, "resp-fallback").llm_slug == "claude"


SERVER_ERROR = "The server had an error while processing your request. Sorry about that!"
WORDS = "one two three four five six seven"


def failing_stream(edge, model: str, request_id: str) -> list:
    """The events the SDK yields for a Responses stream that breaks mid-way (it raises for none of them)."""
    return list(
        client(edge).responses.create(model=model, input=WORDS, stream=True, extra_headers={"x-request-id": request_id})
    )


@pytest.mark.parametrize(
    ("model", "code", "message", "status", "error_type"),
    [
        ("flaky-gpt", "server_error", SERVER_ERROR, 502, "upstream_stream_error"),  # a chat LLM's in-band error
        ("flaky-claude", "server_error", "Overloaded", 502, "upstream_stream_error"),  # Anthropic's, translated
        ("buggy-gpt", "plugin_failed", "plugin 'ev' failed", 500, "plugin_failed"),  # a chunk hook's failure
    ],
)
def test_a_translated_stream_the_edge_ends_with_an_error_ends_as_openais_do(
    edge, model, code, message, status, error_type
):
    """What OpenAI sends when a Responses stream fails: `error` (code, message, the next sequence number), then
    `response.failed` with the same response, failed; never a chat-style `{"error"}` chunk (which the SDK would
    raise as an APIError a Responses client never sees from OpenAI) nor `response.completed`."""
    request_id = f"resp-broken-{model}"
    events = failing_stream(edge, model, request_id)
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-2:] == ["error", "response.failed"], kinds
    assert kinds.count("error") == 1 and "response.completed" not in kinds
    numbers = [e.sequence_number for e in events]
    if error_type == "plugin_failed":  # the events the failed hook held were numbered, never sent: after them
        assert numbers == sorted(set(numbers))
    else:
        assert numbers == list(range(len(events)))
    error, failed = events[-2:]
    assert (error.code, error.message, error.param) == (code, message, None)
    assert failed.response.id == events[0].response.id and failed.response.status == "failed"
    assert (failed.response.error.code, failed.response.error.message) == (code, message)
    accounted = record(edge, AnalyticsRecord, request_id)
    assert accounted.streamed and (accounted.status_code, accounted.error_type) == (status, error_type)
    with client(edge).responses.stream(model=model, input=WORDS) as stream:  # the SDK's helper takes them too
        assert [e.type for e in stream][-2:] == ["error", "response.failed"]
    with pytest.raises(RuntimeError, match="response.completed"):
        stream.get_final_response()  # as for OpenAI's failed stream: there is no final response


def test_a_vendors_failed_responses_stream_reaches_the_client_once_and_counts_as_failed(edge):
    """Pass-through: the vendor's own `error` and `response.failed` go to the client as they are, once, with
    nothing of the edge's after them; the request is accounted as a failed stream, not a 200."""
    events = failing_stream(edge, "native-flaky-gpt", "resp-native-broken")
    kinds = [e.type for e in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "error",
        "response.failed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert (events[3].code, events[3].message) == ("server_error", SERVER_ERROR)
    accounted = record(edge, AnalyticsRecord, "resp-native-broken")
    assert accounted.streamed and (accounted.status_code, accounted.error_type) == (502, "upstream_stream_error")


def _surfaced(events: Callable[[], list[Any]]) -> tuple[str, str]:
    """How the SDK surfaces a Responses stream that failed: ("raised", message) for an `APIError` (an HTTP error
    status), or ("failed", message) for a stream that starts with `response.created` and ends with `error` and
    `response.failed` of the same response. Anything else (the helper's RuntimeError) fails the test."""
    try:
        got = events()
    except openai.APIStatusError as err:
        return "raised", err.body["message"] if isinstance(err.body, dict) else err.message
    except openai.APIError as err:
        return "raised", err.message
    kinds = [e.type for e in got]
    assert kinds[0] == "response.created" and kinds[-2:] == ["error", "response.failed"], kinds
    assert [e.sequence_number for e in got] == list(range(len(got)))
    error, failed = got[-2:]
    assert failed.response.id == got[0].response.id and failed.response.status == "failed"
    assert failed.response.error.message == error.message
    return "failed", error.message


@pytest.mark.parametrize(
    ("model", "how", "message", "status", "error_type"),
    [
        ("buggy-first-gpt", "failed", "plugin 'ev-first' failed", 500, "plugin_failed"),
        ("native-buggy-first-gpt", "failed", "plugin 'ev-first' failed", 500, "plugin_failed"),
        ("error-first-gpt", "raised", SERVER_ERROR, 502, "upstream_stream_error"),
        ("native-error-first-gpt", "raised", SERVER_ERROR, 502, "upstream_stream_error"),
    ],
)
def test_a_stream_that_fails_before_response_created_is_an_api_error_or_a_failed_response(
    edge, model, how, message, status, error_type
):
    """Before: the client got `error` (and `response.failed`) with no `response.created` before them, and the SDK's
    `responses.stream()` helper raised its own RuntimeError ("Expected to have received `response.created`")
    instead of telling the edge's error; a vendor's error as its stream's first event was relayed that way too."""
    request_id = f"resp-early-{model}"

    def iterated() -> list[Any]:
        extra = {"x-request-id": request_id}
        return list(client(edge).responses.create(model=model, input=WORDS, stream=True, extra_headers=extra))

    def helped() -> list[Any]:
        with client(edge).responses.stream(model=model, input=WORDS) as stream:
            return list(stream)

    assert _surfaced(iterated) == (how, message)
    assert _surfaced(helped) == (how, message)
    accounted = record(edge, AnalyticsRecord, request_id)
    assert (accounted.status_code, accounted.error_type) == (status, error_type)


def test_a_plugins_chat_answer_reaches_a_responses_client_in_its_shape(edge):
    reply = client(edge).responses.create(model="sc-gpt", input="anything")
    assert reply.output_text == "short-circuited by sc" and reply.status == "completed"
    with client(edge).responses.stream(model="sc-gpt", input="anything") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert final.output_text == "short-circuited by sc"


def test_errors_in_openais_shape(edge):
    with pytest.raises(openai.BadRequestError) as missing:
        client(edge).responses.create(model="mock-gpt")  # no input
    assert missing.value.body["param"] == "input"
    with pytest.raises(openai.BadRequestError) as builtin:
        client(edge).responses.create(model="mock-gpt", input="x", tools=[{"type": "web_search_preview"}])
    assert "web_search_preview" in builtin.value.body["message"]
    with pytest.raises(openai.NotFoundError):
        client(edge).responses.create(model="no-such-model", input="x")
    with pytest.raises(openai.InternalServerError) as upstream:
        client(edge).responses.create(model="dead-gpt", input="x")
    assert upstream.value.status_code == 502
    with pytest.raises(openai.BadRequestError) as vendor:
        client(edge).responses.create(model="native/mock-gpt", input="x", previous_response_id="resp_unknown")
    assert "resp_unknown" in vendor.value.body["message"]  # the vendor's own 400, relayed
    with pytest.raises(openai.AuthenticationError):
        client(edge, "sk-wrong").responses.retrieve("resp_x")


def test_budget_and_response_hook_see_the_call(edge):
    recording_plugins.CALLS.clear()
    budgeted = client(edge, BUDGET_KEY)
    reply = budgeted.responses.create(
        model="mock-gpt", input="count my tokens", extra_headers={"x-request-id": "resp-budget-full"}
    )
    accounted = record(edge, AnalyticsRecord, "resp-budget-full")
    spent = record(edge, BudgetUsage, "resp-budget-full")
    assert accounted.app_id == 3 and accounted.cost > 0 and spent.cost == accounted.cost
    assert (accounted.prompt_tokens, accounted.completion_tokens) == (
        reply.usage.input_tokens,
        reply.usage.output_tokens,
    )
    assert ("rec", "body") in recording_plugins.CALLS
    with budgeted.responses.stream(
        model="mock-gpt", input="count the stream", extra_headers={"x-request-id": "resp-budget-stream"}
    ) as stream:
        final = stream.get_final_response()
    streamed = record(edge, AnalyticsRecord, "resp-budget-stream")
    assert (streamed.prompt_tokens, streamed.completion_tokens) == (final.usage.input_tokens, final.usage.output_tokens)
    assert ("rec", "chunk") in recording_plugins.CALLS
    with pytest.raises(openai.APIStatusError) as broke:
        client(edge, BROKE_KEY).responses.create(model="mock-gpt", input="x")
    assert broke.value.status_code == 402 and broke.value.body["code"] == "budget_exceeded"


async def test_store_is_bounded_by_bytes_and_time_and_scoped_to_the_app(tmp_path):
    kv = EdgeKV(str(tmp_path / "kv.sqlite3"))
    await kv.open()
    try:
        store = ResponseStore(kv, ttl_s=3600, max_bytes=3 * 1024)
        filler = [{"type": "message", "role": "user", "content": "x" * 1000}]
        for n in range(5):
            await store.save(1, {"id": f"resp_{n}", "output": []}, filler)
            await asyncio.sleep(0.01)  # distinct expiry times: the order the entries were written in
        assert await store.trim() == 3  # about 1 KiB each: the two newest fit under 3 KiB
        assert [n for n in range(5) if await store.load(1, f"resp_{n}") is not None] == [3, 4]
        assert await store.load(2, "resp_4") is None  # another app's id is not found
        brief = ResponseStore(kv, ttl_s=0.05)
        await brief.save(1, {"id": "resp_brief", "output": []}, [])
        await asyncio.sleep(0.1)
        assert await brief.load(1, "resp_brief") is None
    finally:
        await kv.close()
