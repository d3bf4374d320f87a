import orjson

from plugins.text_rewrite import TextRewrite
from shared_sdk import ResponseWriteRequest, StreamEventsRequest
from shared_sdk.testing import PluginHarness

CONFIG = {"replace": {"tok": "token", "cat": "dog"}}


def _event(content: str) -> bytes:
    chunk = {"id": "c-1", "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}]}
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


async def test_stream_event_text_is_rewritten_and_the_rest_kept() -> None:
    async with PluginHarness(TextRewrite(), config=CONFIG) as h:
        out = await h.call(
            "on_before_write", ResponseWriteRequest(body=_event("a tok and a cat"), is_stream_chunk=True)
        )
    assert out.modified and out.body.startswith(b"data: ") and out.body.endswith(b"\n\n")
    chunk = orjson.loads(out.body[6:])
    assert chunk["id"] == "c-1" and chunk["choices"][0]["delta"]["content"] == "a token and a dog"


async def test_events_without_the_words_pass_untouched() -> None:
    async with PluginHarness(TextRewrite(), config=CONFIG) as h:
        for body in (_event("nothing here"), b"data: [DONE]\n\n", _event("")):
            out = await h.call("on_before_write", ResponseWriteRequest(body=body, is_stream_chunk=True))
            assert not out.modified


async def test_escaped_words_are_found_and_full_bodies_rewritten() -> None:
    escaped = b'data: {"choices":[{"index":0,"delta":{"content":"\\u0074ok"},"finish_reason":null}]}\n\n'
    full = orjson.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": "tok tok"}}]})
    async with PluginHarness(TextRewrite(), config=CONFIG) as h:
        out = await h.call("on_before_write", ResponseWriteRequest(body=escaped, is_stream_chunk=True))
        assert orjson.loads(out.body[6:])["choices"][0]["delta"]["content"] == "token"
        out = await h.call("on_before_write", ResponseWriteRequest(body=full))
        assert orjson.loads(out.body)["choices"][0]["message"]["content"] == "token token"


def _text(events: list[bytes]) -> str:
    return "".join(orjson.loads(e[6:])["choices"][0]["delta"]["content"] for e in events if e.startswith(b"data: {"))


async def test_a_reads_events_are_rewritten_in_one_call_and_untouched_ones_kept() -> None:
    """The text deltas from the first one holding a word on go out as one rewritten event (one rewrite per run);
    events before it, and reads without a word, pass as the vendor sent them."""
    events = [_event("nothing "), _event("a tok"), _event(" and a "), _event("ca"), _event("t."), b"data: [DONE]\n\n"]
    async with PluginHarness(TextRewrite(), config=CONFIG) as h:
        out = await h.call("on_before_write_events", StreamEventsRequest(events=events, is_final=True))
        assert out.modified and len(out.events) == 3
        assert out.events[0] == events[0] and out.events[-1] == events[-1]
        assert _text(out.events) == "nothing a token and a dog."  # "ca" + "t." is one text in the run
        assert orjson.loads(out.events[1][6:])["id"] == "c-1"
        unchanged = await h.call("on_before_write_events", StreamEventsRequest(events=[events[0], events[-1]]))
        assert not unchanged.modified


async def test_a_read_of_one_event_is_rewritten_as_on_before_write_does() -> None:
    async with PluginHarness(TextRewrite(), config=CONFIG) as h:
        for body in (_event("a tok"), _event("nothing"), b'data: {"choices":[{"delta":{"content":"tok"}}]}\n\n'):
            alone = await h.call("on_before_write", ResponseWriteRequest(body=body, is_stream_chunk=True))
            grouped = await h.call("on_before_write_events", StreamEventsRequest(events=[body]))
            assert grouped.modified == alone.modified
            assert grouped.events == ([alone.body] if alone.modified else [])
