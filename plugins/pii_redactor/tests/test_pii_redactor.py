import json
from typing import Any

import orjson
import pytest

from plugins.pii_redactor import PIIRedactor
from shared_sdk import ResponseWriteRequest, StreamEventsRequest
from shared_sdk.testing import PluginHarness, make_request


async def test_request_messages_are_redacted() -> None:
    async with PluginHarness(PIIRedactor()) as h:
        out = await h.call("handle_post_auth", make_request("card 4111 1111 1111 1111, mail a.b@c.io"))
    text = orjson.loads(out.body)["messages"][0]["content"]
    assert "4111" not in text and "a.b@c.io" not in text and "[REDACTED:card]" in text


@pytest.mark.parametrize(
    "body",
    [
        # '@' escaped in the JSON: the body's bytes have no '@', its string has one
        b'{"model":"m","messages":[{"role":"user","content":"mail ada\\u0040example.com now"}]}',
        # digits of another script: a bytes pattern's \d does not take them, the patterns do
        '{"model":"m","messages":[{"role":"user","content":"card \u0664\u0661\u0661\u0661 \u0661\u0661\u0661\u0661'
        ' \u0661\u0661\u0661\u0661 \u0661\u0661\u0661\u0661 now"}]}'.encode(),
        # digits escaped in the JSON
        b'{"model":"m","messages":[{"role":"user","content":"ssn \\u0030\\u0037\\u0038-\\u0030\\u0035-'
        b'\\u0031\\u0031\\u0032\\u0030 now"}]}',
    ],
)
async def test_a_request_whose_bytes_hide_the_value_is_redacted(body: bytes) -> None:
    """What JSON escapes or another script's digits hide from the body's bytes is found in its strings: a search of
    the raw bytes before parsing (tried as a shortcut, and slower than orjson's parse) would miss these."""
    async with PluginHarness(PIIRedactor()) as h:
        out = await h.call("handle_post_auth", make_request(body=body))
    assert out.modified
    text = orjson.loads(out.body)["messages"][0]["content"]
    assert "[REDACTED:" in text and text.endswith("now") and not any(c.isdigit() or c == "@" for c in text)


async def test_a_request_with_nothing_to_redact_passes_unchanged() -> None:
    body = b'{"model":"m","messages":[{"role":"user","content":"Say hello."}],"max_tokens":123456789,"seed":42}'
    async with PluginHarness(PIIRedactor()) as h:
        out = await h.call("handle_post_auth", make_request(body=body))
        clean = await h.call("handle_post_auth", make_request("Say hello to the benchmark."))
    assert not out.modified and not clean.modified


async def test_stream_redacts_values_split_across_chunks() -> None:
    pieces = ["write to ", "jane", ".doe@", "example", ".com please", ""]
    async with PluginHarness(PIIRedactor(), config={"stream_holdback_chars": 16}) as h:
        ctx = h.context(request_id="r1")
        sent = []
        for i, piece in enumerate(pieces):
            chunk = {
                "choices": [
                    {"index": 0, "delta": {"content": piece}, "finish_reason": "stop" if i == len(pieces) - 1 else None}
                ]
            }
            body = b"data: " + orjson.dumps(chunk) + b"\n\n"
            out = await h.call("on_before_write", ResponseWriteRequest(body=body, is_stream_chunk=True), ctx=ctx)
            sent.append(out.body if out.modified else body)
    text = "".join(orjson.loads(b[6:])["choices"][0]["delta"]["content"] for b in sent)
    assert text == "write to [REDACTED:email] please"


async def test_each_kind_is_redacted_and_text_without_pii_is_left_alone() -> None:
    async with PluginHarness(PIIRedactor(), config={"replacement": "<{kind}>"}) as h:
        plugin = h.plugin
        assert plugin.redact("no personal data here, just words.") == "no personal data here, just words."
        assert plugin.redact("ssn 078-05-1120 ok") == "ssn <ssn> ok"
        assert plugin.redact("call +44 20 7946 0958 now") == "call <phone> now"
        assert plugin.redact("mail ops@example.org") == "mail <email>"
        assert plugin.redact("order 12 shipped") == "order 12 shipped"


async def test_only_the_configured_kinds_are_redacted() -> None:
    async with PluginHarness(PIIRedactor(), config={"kinds": ["email"]}) as h:
        assert h.plugin.redact("a@b.io 078-05-1120") == "[REDACTED:email] 078-05-1120"
    async with PluginHarness(PIIRedactor(), config={"kinds": []}) as h:
        assert h.plugin.redact("a@b.io 078-05-1120") == "a@b.io 078-05-1120"


# -- streams: the raw-bytes fast path must redact exactly what decoding every event would -------------------

_HEAD = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}


def _event(choices: list[dict[str, Any]], spaced: bool = False, **extra: Any) -> bytes:
    payload = {**_HEAD, "choices": choices, **extra}
    raw = json.dumps(payload).encode() if spaced else orjson.dumps(payload)
    return b"data: " + raw + b"\n\n"


def _delta(text: str, index: int = 0, finish: str | None = None) -> dict[str, Any]:
    return {"index": index, "delta": {"content": text} if text or not finish else {}, "finish_reason": finish}


async def _run(events: list[bytes], holdback: int = 16, request_id: str = "r1") -> list[bytes]:
    """What the client is sent for `events` (a hook's body, or the event itself when the hook passed it)."""
    async with PluginHarness(PIIRedactor(), config={"stream_holdback_chars": holdback}) as h:
        ctx = h.context(request_id=request_id)
        sent = []
        for body in events:
            out = await h.call("on_before_write", ResponseWriteRequest(body=body, is_stream_chunk=True), ctx=ctx)
            assert not out.drop_chunk
            sent.append(out.body if out.modified else body)
        if events[-1] == b"data: [DONE]\n\n":
            assert not h.plugin._streams, "a finished stream's state must be dropped"
    return sent


async def _run_grouped(events: list[bytes], size: int, holdback: int = 16) -> list[bytes]:
    """What the client is sent for `events` when they come `size` at a time through `on_before_write_events`."""
    async with PluginHarness(PIIRedactor(), config={"stream_holdback_chars": holdback}) as h:
        ctx = h.context(request_id="r1")
        sent: list[bytes] = []
        for at in range(0, len(events), size):
            group = events[at : at + size]
            req = StreamEventsRequest(events=group, first_index=at, is_final=at + size >= len(events))
            out = await h.call("on_before_write_events", req, ctx=ctx)
            sent += out.events if out.modified else group
        if events[-1] == b"data: [DONE]\n\n":
            assert not h.plugin._streams, "a finished stream's state must be dropped"
    return sent


def _texts(sent: list[bytes]) -> dict[int, str]:
    """The text per choice index a client reads from the events it was sent."""
    texts: dict[int, str] = {}
    for body in sent:
        for piece in body.split(b"\n\n"):
            if piece.startswith(b"data: {"):
                for choice in orjson.loads(piece[6:]).get("choices") or ():
                    if not isinstance(choice, dict):
                        continue
                    text = (choice.get("delta") or {}).get("content") or ""
                    texts[choice.get("index", 0)] = texts.get(choice.get("index", 0), "") + text
    return texts


_SPLIT = ["Mail ", "jane", ".doe", "@", "exam", "ple.com", " or call +44", " 20 79", "46 0958", " today, thanks."]
_REDACTED = "Mail [REDACTED:email] or call [REDACTED:phone] today, thanks."


@pytest.mark.parametrize("spaced", [False, True], ids=["compact", "json.dumps"])
@pytest.mark.parametrize("ending", ["finish", "done-only"])
async def test_stream_pii_split_over_events_is_redacted_and_held_text_flushed(spaced: bool, ending: str) -> None:
    events = [_event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}], spaced)]
    events += [_event([_delta(piece)], spaced) for piece in _SPLIT]
    if ending == "finish":
        events.append(_event([_delta("", finish="stop")], spaced))
    events += [_event([], spaced, usage={"total_tokens": 9}), b"data: [DONE]\n\n"]
    sent = await _run(events)
    assert _texts(sent) == {0: _REDACTED}
    assert sent[-1].endswith(b"data: [DONE]\n\n")
    assert b"jane" not in b"".join(sent) and b"7946" not in b"".join(sent)


def _not_text(sent: list[bytes]) -> list[bytes]:
    """The events a client is sent that are not a plain text delta (role, finish, usage, [DONE])."""
    return [e for e in sent if not (b'"delta":{"content":' in e and b'"finish_reason":null' in e)]


@pytest.mark.parametrize("size", [1, 3, 100])
async def test_events_taken_together_are_redacted_as_one_by_one(size: int) -> None:
    """`on_before_write_events` (a read's events in one call) sends the client the same text as `on_before_write`
    per event: values split over events, over groups and inside one group are redacted, the hold-back flushed at
    the end. Consecutive text deltas of a group go out as one event (one hold-back pass for them); taken one at a
    time, the events are byte for byte what `on_before_write` sends."""
    events = [_event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])]
    events += [_event([_delta(piece)]) for piece in _SPLIT]
    events += [_event([_delta("", finish="stop")]), _event([], usage={"total_tokens": 9}), b"data: [DONE]\n\n"]
    no_finish = [e for e in events if b'"stop"' not in e]  # the held text is flushed before [DONE]
    for stream in (events, no_finish):
        grouped, alone = await _run_grouped(stream, size), await _run(stream)
        assert _texts(grouped) == _texts(alone) == {0: _REDACTED}
        assert b"jane" not in b"".join(grouped) and b"7946" not in b"".join(grouped)
        assert _not_text(grouped) == _not_text(alone)
        if size == 1:
            assert grouped == alone
        else:
            assert len(grouped) < len(alone)


async def test_a_run_of_empty_deltas_with_nothing_held_passes_as_sent() -> None:
    events = [_event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])]
    events += [_event([_delta("")]) for _ in range(3)]
    assert await _run_grouped(events, 100) == events


async def test_stream_events_the_fast_path_declines_are_redacted_the_same() -> None:
    """Key order, a second choice, a finish, an escape: each event taken the long way gives the same text."""
    reordered = [
        b'data: {"choices":[{"finish_reason":null,"delta":{"content":' + orjson.dumps(p) + b'},"index":0}]}\n\n'
        for p in _SPLIT
    ]
    sent = await _run([*reordered, _event([_delta("", finish="stop")])])
    assert _texts(sent) == {0: _REDACTED}


async def test_stream_unicode_escapes_and_quotes_in_the_text() -> None:
    r"""`\u0040` is an '@' once decoded: the address is still found; escaped quotes and non-ASCII survive."""
    raw = [
        '"Write to ',  # a quote: JSON escapes it
        "jane.doe\\u0040exa",  # an escaped '@', as some vendors send it
        "mple.com \\u00e9t\\u00e9 ",
        "caf\u00e9 \U0001f600 ok",  # raw UTF-8 through the fast path
    ]
    events = []
    for text in raw:
        encoded = orjson.dumps(text).replace(b"\\\\u", b"\\u")  # keep the \u escapes as escapes in the JSON
        events.append(
            b'data: {"id":"x","choices":[{"index":0,"delta":{"content":' + encoded + b'},"finish_reason":null}]}\n\n'
        )
    sent = await _run([*events, _event([_delta("", finish="stop")])])
    assert _texts(sent) == {0: '"Write to [REDACTED:email] \u00e9t\u00e9 caf\u00e9 \U0001f600 ok'}


async def test_stream_non_text_deltas_pass_untouched() -> None:
    tool = _event(
        [
            {
                "index": 0,
                "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"to":"a@b.io"}'}}]},
                "finish_reason": None,
            }
        ]
    )
    role = _event([{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}])
    done = b"data: [DONE]\n\n"
    assert await _run([role, tool, done]) == [role, tool, done]


async def test_stream_choices_keep_separate_hold_back() -> None:
    """n > 1: choices interleave (one per event, or both in one event); each has its own buffer and index."""
    events = []
    other = ["SSN ", "078", "-05-", "11", "20 and", " mail", " bob", "@x", ".io", " now"]
    for a, b in zip(_SPLIT, other, strict=True):
        events.append(_event([_delta(a, 0)]))
        events.append(_event([_delta(b, 1)]))
    events.append(_event([_delta("", 0, "stop"), _delta(".", 1, "stop")]))
    sent = await _run([*events, b"data: [DONE]\n\n"])
    assert _texts(sent) == {0: _REDACTED, 1: "SSN [REDACTED:ssn] and mail [REDACTED:email] now."}


async def test_stream_a_choices_key_elsewhere_does_not_hide_the_real_choices() -> None:
    decoy = {"choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": None}]}
    events = [b"data: " + orjson.dumps({"ext": decoy, "choices": [_delta(p)]}) + b"\n\n" for p in _SPLIT] + [
        b"data: " + orjson.dumps({"choices": [_delta(p)], "ext": decoy}) + b"\n\n" for p in ("", " and bob@x.io.")
    ]
    sent = await _run([*events, _event([_delta("", finish="stop")])])
    assert _texts(sent)[0] == _REDACTED + " and [REDACTED:email]."


async def test_stream_shape_changing_mid_stream() -> None:
    """The fast path remembers the shape of the last text event; an event of another shape is read afresh."""
    events = [_event([_delta(p)], spaced=i % 3 == 0) for i, p in enumerate(_SPLIT)]
    events[4] = events[4].replace(b'"id":"chatcmpl-1"', b'"id":"chatcmpl-22"')
    sent = await _run([*events, _event([_delta("", finish="stop")])])
    assert _texts(sent) == {0: _REDACTED}


async def test_stream_event_with_odd_choices_passes_instead_of_failing_the_hook() -> None:
    odd = [b'data: {"choices":["x",null,{"index":0,"delta":{"content":"a@b.io, hi"},"finish_reason":"stop"}]}\n\n']
    sent = await _run([*odd, b"data: [] \n\n", b"data: [DONE]\n\n"])
    assert _texts(sent) == {0: "[REDACTED:email], hi"}


async def test_prefilter_lets_every_shape_of_each_kind_through_and_skips_short_numbers() -> None:
    """Text is matched only when it could hold a match (an '@', or nine digits apart by at most two of " .-()"):
    each kind's loosest shape must still reach the patterns, and digits in any script count as the patterns'
    `\\d` does (they used to be skipped: only ASCII digits triggered the patterns)."""
    async with PluginHarness(PIIRedactor(), config={"replacement": "<{kind}>"}) as h:
        redact = h.plugin.redact
        assert redact("ring +1 (555) 123-4567 now") == "ring <phone> now"
        assert redact("ring 0.20.794.6095 now") == "ring <phone> now"
        assert redact("card 4111-1111-1111-1111.") == "card <card>."
        assert redact("ssn \u0660\u0667\u0668-\u0660\u0665-\u0661\u0661\u0662\u0660 ok") == "ssn <ssn> ok"
        text = "In 2025 revenue rose 12% to 4.5 million; on 1 March 2026 at 10:30, room 4B."
        assert redact(text) == text


async def test_stream_first_event_with_role_and_text_is_redacted() -> None:
    """The role event takes the fast path too (so the first byte is not held up); its text is still checked."""
    first = {"index": 0, "delta": {"role": "assistant", "content": "Mail ann@x.io", "refusal": None}}
    events = [_event([{**first, "finish_reason": None}]), _event([_delta(" now")]), _event([_delta("", finish="stop")])]
    sent = await _run([*events, b"data: [DONE]\n\n"])
    assert _texts(sent) == {0: "Mail [REDACTED:email] now"}
    assert orjson.loads(sent[0][6:])["choices"][0]["delta"]["role"] == "assistant"


@pytest.mark.parametrize("holdback", [16, 48])
async def test_stream_number_completed_by_a_later_event_is_redacted_before_it_leaves(holdback: int) -> None:
    """Held text already searched (digits, no match yet) and a new event completing a phone number: the search
    must look back into the held text, not at the new event alone; the words after push it all out mid-stream."""
    intro = ["An", " intro", " long", " enough", " to", " fill", " the", " hold", "-back", " first,", " so", " that"]
    pieces = [*intro * 5, " call 0", "20 79", "46 ", "0958", " now,", " then", " more", " words", " to", " push"]
    pieces += [" of", " the", " hold", "-back", " window", " and", " past", " its", " end", " too."] * 3
    events = [_event([_delta(piece)]) for piece in pieces]
    sent = await _run([*events, _event([_delta("", finish="stop")]), b"data: [DONE]\n\n"], holdback=holdback)
    text = _texts(sent)[0]
    assert "call [REDACTED:phone] now, then more words" in text and "7946" not in text
