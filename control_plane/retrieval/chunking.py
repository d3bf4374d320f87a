"""Cut a document into chunks a search can return on their own: paragraphs, merged while they fit in `size`
characters, and a paragraph longer than that cut at sentence ends (else at spaces, else hard).

Chunks follow the author's paragraphs because a paragraph is usually about one thing, so its vector matches the
questions about that thing; whole paragraphs also read well as the sources the chat shows.
"""

from __future__ import annotations

import re

__all__ = ["chunk_text"]

_PARAGRAPHS = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _pieces(paragraph: str, size: int) -> list[str]:
    """A paragraph as pieces of at most `size` characters, cut at sentence ends where possible."""
    if len(paragraph) <= size:
        return [paragraph]
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(paragraph):
        while len(sentence) > size:
            cut = sentence.rfind(" ", 0, size + 1)
            cut = cut if cut > 0 else size
            pieces.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if sentence:
            pieces.append(sentence)
    return _merged(pieces, size, " ")


def _merged(pieces: list[str], size: int, glue: str) -> list[str]:
    out: list[str] = []
    for piece in pieces:
        if out and len(out[-1]) + len(glue) + len(piece) <= size:
            out[-1] = out[-1] + glue + piece
        else:
            out.append(piece)
    return out


def chunk_text(text: str, size: int) -> list[str]:
    """The chunks of `text`, in order, none longer than `size` characters and none empty."""
    paragraphs = [" ".join(p.split()) for p in _PARAGRAPHS.split(text.replace("\r\n", "\n"))]
    pieces = [piece for p in paragraphs if p for piece in _pieces(p, size)]
    return _merged(pieces, size, "\n\n")
