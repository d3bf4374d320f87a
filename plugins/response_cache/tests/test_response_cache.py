import orjson

from plugins.response_cache import ResponseCache
from plugins.response_cache.plugin import assemble, to_chunks
from shared_sdk import ResponseWriteRequest
from shared_sdk.testing import PluginHarness, make_request, make_response


async def test_miss_then_store_then_hit_as_response_and_as_stream() -> None:
    async with PluginHarness(ResponseCache()) as h:
        ctx = h.context()
        miss = await h.call("handle_post_auth", make_request("q"), ctx=ctx)
        assert miss.short_circuit is None
        ctx.metadata.update(miss.context_updates)
        body = make_response("answer").body
        await h.call("on_before_write", ResponseWriteRequest(status_code=200, body=body), ctx=ctx)
        hit = await h.call("handle_post_auth", make_request("q"), ctx=h.context())
        streamed = await h.call("handle_post_auth", make_request("q", stream=True), ctx=h.context())
    assert hit.short_circuit.response.body == body
    assert streamed.short_circuit.stream_chunks[-1] == b"data: [DONE]\n\n"


def test_stream_assembly_round_trips() -> None:
    completion = orjson.dumps(
        {"id": "x", "model": "m", "choices": [{"message": {"content": "hey there"}, "finish_reason": "stop"}]}
    )
    assembled = assemble(b"".join(to_chunks(completion)))
    assert assembled is not None
    rebuilt = orjson.loads(assembled)
    assert rebuilt["choices"][0]["message"]["content"] == "hey there"


async def test_responses_api_calls_are_not_cached() -> None:
    async with PluginHarness(ResponseCache()) as h:
        miss = await h.call("handle_post_auth", make_request("q", path="/v1/responses"), ctx=h.context())
    assert miss.short_circuit is None and not miss.context_updates  # no key: nothing is stored afterwards
