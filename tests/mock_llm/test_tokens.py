"""The tokenizer and reply rules that docs/mock-llm.md promises, so tests elsewhere can predict usage."""

from __future__ import annotations

from fjordgate.mock_llm.tokens import compose_reply, count_tokens, echo, group_pieces, token_pieces


def test_words_and_each_punctuation_mark_are_tokens() -> None:
    assert count_tokens("Echo: Hello, world!") == 6
    assert count_tokens("  spaced   out \n") == 2
    assert count_tokens("") == 0
    assert count_tokens("snake_case and 42.5") == 5  # snake_case, and, 42, ., 5


def test_pieces_rejoin_to_the_text_one_per_token() -> None:
    text = "  Echo: Hello,   world!  "
    pieces = token_pieces(text)

    assert "".join(pieces) == text
    assert len(pieces) == count_tokens(text)


def test_grouping_keeps_text_and_caps_the_count() -> None:
    pieces = token_pieces("a b c d e f g")

    assert group_pieces(pieces, 3) == ["a b c", " d e", " f g"]
    assert group_pieces(pieces, 50) == pieces


def test_reply_shaping_order_pad_then_stop_then_max_tokens() -> None:
    padded = compose_reply(echo("hi"), max_tokens=None, stop=[], reply_tokens=6)
    stopped = compose_reply(echo("one two three"), max_tokens=2, stop=["two"])
    cut = compose_reply(echo("one two three"), max_tokens=3, stop=[])

    assert (padded.text, padded.tokens, padded.finish) == ("Echo: hi lorem ipsum dolor", 6, "stop")
    assert (stopped.text, stopped.finish) == ("Echo:", "length")
    assert (cut.text, cut.tokens, cut.finish) == ("Echo: one", 3, "length")
    assert compose_reply(echo("a b"), max_tokens=9, stop=["b", " a"]).stop_sequence == " a"
