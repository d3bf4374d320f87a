"""`shared_sdk.stream_text`: the common text event found and rewritten on its bytes, anything else declined."""

from __future__ import annotations

import json

import orjson
import pytest

from shared_sdk.stream_text import has_no_choices, text_between, text_event, text_run

HEAD = {"id": "c-1", "object": "chat.completion.chunk", "model": "m"}


def event(choices: list, spaced: bool = False, **extra: object) -> bytes:
    payload = {**HEAD, "choices": choices, **extra}
    return b"data: " + (json.dumps(payload).encode() if spaced else orjson.dumps(payload)) + b"\n\n"


def text(content: str, **delta: object) -> dict:
    return {"index": 0, "delta": {**delta, "content": content}, "logprobs": None, "finish_reason": None}


@pytest.mark.parametrize("spaced", [False, True], ids=["compact", "json.dumps"])
def test_the_common_event_is_found_and_rewritten_leaving_the_rest(spaced: bool) -> None:
    raw = event([text('say "hi" \u00e9 \U0001f600')], spaced)
    found = text_event(raw)
    assert found is not None and found.index == 0 and found.text == 'say "hi" \u00e9 \U0001f600'
    out = found.replace(raw, "new\ntext")
    assert orjson.loads(out[6:]) == orjson.loads(event([text("new\ntext")])[6:])
    assert out.startswith(raw[: found.start - 1]) and out.endswith(raw[found.end + 1 :])


def test_escapes_are_decoded_and_the_role_event_is_common() -> None:
    raw = b'data: {"choices":[{"index":2,"delta":{"role":"assistant","content":"a\\u0040b"},"finish_reason":null}]}\n\n'
    found = text_event(raw)
    assert found is not None and (found.index, found.text) == (2, "a@b")


@pytest.mark.parametrize(
    "raw",
    [
        event([{"index": 0, "delta": {}, "finish_reason": "stop"}]),
        event([{"index": 0, "delta": {"content": "x"}, "finish_reason": "stop"}]),
        event(
            [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]},
                    "finish_reason": None,
                }
            ]
        ),
        event([text("a"), {**text("b"), "index": 1}]),
        event([text("real")], ext={"choices": []}),
        b"data: " + orjson.dumps({"ext": {"choices": [text("decoy")]}, "choices": [text("real")]}) + b"\n\n",
        b'data: {"choices":[{"finish_reason":null,"delta":{"content":"x"},"index":0}]}\n\n',
        b'data: {"choices":[{"index":0,"delta":{"content":"bad \\x escape"},"finish_reason":null}]}\n\n',
        b'data: {"choices":[{"index":0,"delta":{"content":"\xff"},"finish_reason":null}]}\n\n',
        b"data: [DONE]\n\n",
    ],
    ids=[
        "finish",
        "finish-with-text",
        "tool-calls",
        "two-choices",
        "choices-after",
        "decoy-before",
        "key-order",
        "bad-escape",
        "bad-utf8",
        "done",
    ],
)
def test_every_other_event_is_declined(raw: bytes) -> None:
    assert text_event(raw) is None


def test_the_usage_event_has_no_choices_and_only_it() -> None:
    assert has_no_choices(event([], usage={"total_tokens": 3}))
    assert has_no_choices(event([], spaced=True, usage={"total_tokens": 3}))
    assert not has_no_choices(event([text("a")]))
    assert not has_no_choices(b"data: " + orjson.dumps({"choices": [], "x": {"choices": [text("a")]}}) + b"\n\n")


# -- text_run: the same texts, and the same stop, as text_between one event at a time (it inlines it) ----------

RUN_HEAD = b'data: {"id":"c1","choices":[{"index":0,"delta":{"content":"'
RUN_TAIL = b'"},"finish_reason":null}]}\n\n'


def one_by_one(events: list[bytes], start: int, head: bytes, tail: bytes) -> tuple[list[str], int]:
    texts: list[str] = []
    for at in range(start, len(events)):
        text = text_between(events[at], head, tail)
        if text is None:
            return texts, at
        texts.append(text)
    return texts, len(events)


RUN_ODD = [
    RUN_HEAD + b"plain" + RUN_TAIL,
    RUN_HEAD + RUN_TAIL,  # empty text
    RUN_HEAD + "é€😀".encode() + RUN_TAIL,
    RUN_HEAD + b'a\\"b' + RUN_TAIL,  # an escaped quote: read the long way
    RUN_HEAD + b"a\\u0040b" + RUN_TAIL,  # an escape
    RUN_HEAD + b"\xff\xfe" + RUN_TAIL,  # not UTF-8
    RUN_HEAD + b"x" + RUN_TAIL[:-1],  # the tail cut short
    RUN_HEAD[:-3],  # shorter than head + tail
    b'data: {"other":1}\n\n',
    b"data: [DONE]\n\n",
]


@pytest.mark.parametrize("odd", RUN_ODD)
@pytest.mark.parametrize("tail", [RUN_TAIL, b""])
def test_a_run_stops_where_text_between_stops(odd: bytes, tail: bytes) -> None:
    head = RUN_HEAD
    events = [
        head + b"one" + tail,
        head + b"two" + tail,
        odd if tail else odd.removesuffix(RUN_TAIL),
        head + b"z" + tail,
    ]
    for start in range(len(events)):
        assert text_run(events, start, head, tail) == one_by_one(events, start, head, tail)


def test_head_and_tail_overlapping_in_a_short_event_is_not_a_text() -> None:
    head, tail = b"data: ab", b"bc\n\n"
    assert text_run([b"data: abc\n\n"], 0, head, tail) == ([], 0) == one_by_one([b"data: abc\n\n"], 0, head, tail)
