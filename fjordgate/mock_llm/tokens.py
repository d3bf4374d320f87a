"""The mock's tokenizer and its deterministic reply, so a test can predict every usage figure.

Token rule: a token is a run of word characters (letters, digits, underscore) or one other non-space character.
`"Echo: Hello, world!"` is 6 tokens (`Echo` `:` `Hello` `,` `world` `!`). Whitespace never counts.

The reply is `"Echo: " + <text of the last message>`, then, in this order: padded with filler words or cut to
`reply_tokens` when that mock option is set, cut before the first stop sequence it contains (finish reason
`stop`), and cut to `max_tokens` (finish reason `length`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import cycle, islice

_TOKEN = re.compile(r"\w+|[^\w\s]")
_FILLER = ("lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit")


def count_tokens(text: str) -> int:
    """Tokens in `text` under the mock's rule."""
    return len(_TOKEN.findall(text))


def token_pieces(text: str) -> list[str]:
    """Split `text` into one piece per token, each carrying the whitespace before it.

    Joining the pieces gives `text` back, so streamed deltas concatenate to the non-streamed content.
    """
    ends = [match.end() for match in _TOKEN.finditer(text)]
    if not ends:
        return [text] if text else []
    ends[-1] = len(text)
    starts = [0, *ends[:-1]]
    return [text[start:end] for start, end in zip(starts, ends, strict=True)]


def group_pieces(pieces: list[str], chunks: int | None) -> list[str]:
    """Merge token pieces into at most `chunks` nearly even groups (None keeps one piece per token)."""
    if chunks is None or len(pieces) <= chunks:
        return pieces
    size, extra = divmod(len(pieces), chunks)
    groups: list[str] = []
    start = 0
    for index in range(chunks):
        end = start + size + (1 if index < extra else 0)
        groups.append("".join(pieces[start:end]))
        start = end
    return groups


def truncate_tokens(text: str, limit: int) -> str:
    """The prefix of `text` holding its first `limit` tokens."""
    if limit <= 0:
        return ""
    for index, match in enumerate(_TOKEN.finditer(text)):
        if index == limit - 1:
            return text[: match.end()]
    return text


def pad_tokens(text: str, size: int) -> str:
    """`text` cut or padded with filler words to exactly `size` tokens."""
    have = count_tokens(text)
    if have >= size:
        return truncate_tokens(text, size)
    filler = " ".join(islice(cycle(_FILLER), size - have))
    return f"{text} {filler}" if text else filler


@dataclass(frozen=True, slots=True)
class Reply:
    """The generated text, why generation stopped, and the stop sequence that stopped it (if any)."""

    text: str
    finish: str  # "stop" | "length" | "stop_sequence"
    stop_sequence: str | None
    tokens: int


def echo(last_text: str) -> str:
    """The reply before shaping: the last message's text after `Echo: `."""
    return f"Echo: {last_text}".rstrip()


def compose_reply(text: str, *, max_tokens: int | None, stop: list[str], reply_tokens: int | None = None) -> Reply:
    """Shape a reply (usually `echo(...)`) by `reply_tokens`, stop sequences and `max_tokens`, in that order."""
    if reply_tokens is not None:
        text = pad_tokens(text, reply_tokens)
    finish, matched = "stop", None
    cut = -1
    for sequence in stop:
        position = text.find(sequence) if sequence else -1
        if position != -1 and (cut == -1 or position < cut):
            cut, matched = position, sequence
    if matched is not None:
        text, finish = text[:cut], "stop_sequence"
    tokens = count_tokens(text)
    if max_tokens is not None and tokens > max_tokens:
        text, finish, matched, tokens = truncate_tokens(text, max_tokens), "length", None, max_tokens
    return Reply(text=text, finish=finish, stop_sequence=matched, tokens=tokens)
