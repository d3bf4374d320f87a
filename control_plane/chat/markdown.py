"""An assistant's reply as HTML: LLMs answer in Markdown (code blocks, lists, tables), shown as its source it is
hard to read. The reply is text an LLM, an agent or a tool's answer chose, so it is hostile input: the HTML comes
only from markdown-it's own renderer, never from the text.

- Raw HTML in the text (`<script>`, `<img onerror>`, comments) is escaped and shown as text (`html=False`).
- Links and autolinks only to absolute `http:`, `https:` and `mailto:` URLs (anything else, `javascript:` in any
  case, `data:`, `file:`, relative paths, stays text); each opens in a new tab with
  `rel="noopener noreferrer nofollow"`.
- Images are never loaded (a remote image is a tracking pixel, a `data:` image a way to smuggle content): an image
  is shown as a link to its URL, its alt text as the link's text, under the same URL rule.
- Cost is bounded: nesting stops at `MAX_NESTING` levels (10,000 `>` do not recurse), and a text longer than
  `MAX_CHARS` (markdown-it-py renders some 300 KB a second) is shown as plain text instead.

Tables (GFM), strikethrough and fenced code (`class="language-<info>"` on the `<code>`) are on; single newlines
are line breaks, as in the plain text shown before. No linkify: it needs another dependency.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

__all__ = ["MAX_CHARS", "MAX_NESTING", "render"]

MAX_CHARS = 50_000
MAX_NESTING = 20
_LINK_REL = "noopener noreferrer nofollow"
_ALLOWED_URL = re.compile(r"(?:https?://|mailto:)", re.IGNORECASE)


class _Markdown(MarkdownIt):
    def validateLink(self, url: str) -> bool:  # noqa: N802 (markdown-it's name)
        """Called with the normalized URL of every link, autolink and image: only the allowed schemes pass."""
        return _ALLOWED_URL.match(url) is not None


def _link_open(renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    tokens[idx].attrSet("rel", _LINK_REL)
    tokens[idx].attrSet("target", "_blank")
    return renderer.renderToken(tokens, idx, options, env)


def _image(renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    alt = renderer.renderInlineAsText(token.children or [], options, env) or src
    return f'<a href="{escapeHtml(src)}" rel="{_LINK_REL}" target="_blank" class="image-link">{escapeHtml(alt)}</a>'


def _parser() -> MarkdownIt:
    options: dict[str, Any] = {"html": False, "breaks": True, "linkify": False, "maxNesting": MAX_NESTING}
    md = _Markdown("commonmark", options).enable(["table", "strikethrough"])
    md.add_render_rule("link_open", _link_open)
    md.add_render_rule("image", _image)
    return md


_MD = _parser()


def render(text: str) -> SafeString:
    """The text as safe HTML (see the module's docstring); past `MAX_CHARS`, as escaped plain text."""
    if len(text) > MAX_CHARS:
        return mark_safe(f'<div class="plain">{escape(text)}</div>')  # noqa: S308 (escaped above)
    return mark_safe(_MD.render(text))  # noqa: S308 (markdown-it's own HTML; the text's HTML is escaped)
