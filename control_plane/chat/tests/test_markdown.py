"""`chat.markdown.render`: an LLM's Markdown becomes HTML, and hostile text never becomes markup of its own."""

from __future__ import annotations

import re

import pytest
from django.utils.safestring import SafeString

from control_plane.chat.markdown import MAX_CHARS, MAX_NESTING, render


def test_markdown_becomes_html():
    html = render("# Title\n\n**bold** and `code`\n\n- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n~~old~~")
    assert isinstance(html, SafeString)
    for tag in ("<h1>Title</h1>", "<strong>bold</strong>", "<code>code</code>", "<li>one</li>", "<th>a</th>"):
        assert tag in html
    assert "<td>2</td>" in html and "<s>old</s>" in html
    assert render("line one\nline two") == "<p>line one<br />\nline two</p>\n"  # a newline stays a line break


def test_fenced_code_keeps_its_text_and_names_its_language():
    html = render("```python\nif a < b and c > d:\n    print('<b>')\n```")
    assert html == (
        "<pre><code class=\"language-python\">if a &lt; b and c &gt; d:\n    print('&lt;b&gt;')\n</code></pre>\n"
    )
    assert '"><script>' not in render('```"><script>\nx\n```')  # the info string is escaped in the class


@pytest.mark.parametrize(
    "text",
    [
        "<script>alert(1)</script>",
        '<img src=x onerror="window.__xss=1">',
        "<!-- a comment -->",
        "a <b onmouseover=alert(1)>b</b>",
        "<a href='javascript:alert(1)'>x</a>",
    ],
)
def test_raw_html_is_shown_escaped(text):
    html = render(text)
    assert "<" not in html.removeprefix("<p>").removesuffix("</p>\n"), html
    assert "&lt;" in html


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JAVASCRIPT:alert(1)",
        "JaVaScRiPt:alert(1)",
        "vbscript:msgbox(1)",
        "data:text/html,<script>alert(1)</script>",
        "data:image/png;base64,iVBORw0KGgo=",
        "file:///etc/passwd",
        "/portal/chat/1/delete/",
        "//evil.example/x",
    ],
)
def test_links_images_and_autolinks_only_to_http_and_mailto(url):
    for text in (f"[x]({url})", f"![x]({url})", f"<{url}>", f"[x][r]\n\n[r]: {url}"):
        html = render(text)
        assert "<a " not in html and "<img" not in html and "href" not in html, (text, html)


def test_links_open_in_a_new_tab_without_referrer():
    assert render("[docs](https://example.com/a?b=1&c=2)") == (
        '<p><a href="https://example.com/a?b=1&amp;c=2" rel="noopener noreferrer nofollow" target="_blank">'
        "docs</a></p>\n"
    )
    assert 'href="mailto:a@example.com"' in render("<mailto:a@example.com>")
    assert 'rel="noopener noreferrer nofollow"' in render("<HTTP://EXAMPLE.COM>")


def test_images_are_links_never_loaded():
    html = render('![a "pixel"](https://tracker.example/p.gif "t")')
    assert "<img" not in html
    assert html == (
        '<p><a href="https://tracker.example/p.gif" rel="noopener noreferrer nofollow" target="_blank" '
        'class="image-link">a &quot;pixel&quot;</a></p>\n'
    )


@pytest.mark.parametrize(
    "text",
    [
        ">" * 10_000 + " deep",
        "> " * 10_000 + "deep",
        "- " * 10_000 + "deep",
        "".join("  " * i + "- deep\n" for i in range(2_000)),
        "*" * 10_000 + "deep" + "*" * 10_000,
        "[" * 10_000 + "deep" + "](https://x.example)" * 10_000,
    ],
)
def test_deep_nesting_is_cut_not_recursed(text):
    """Past `MAX_NESTING` levels markdown-it stops nesting (what is deeper is left out or kept as text): no
    recursion error, and the HTML stays a small multiple of the text. (Emphasis is matched over a flat list of
    delimiters, without recursion: 10,000 stars are as many tags, linear in the text.)"""
    html = render(text)
    assert len(html) < 10 * len(text)
    for tag in ("blockquote", "ul", "li", "a"):
        assert len(re.findall(rf"<{tag}[ >]", html)) <= MAX_NESTING, tag


def test_a_reply_past_the_limit_is_plain_escaped_text():
    text = "**bold** <script>x</script>\n" * (MAX_CHARS // 20)
    assert len(text) > MAX_CHARS
    html = render(text)
    assert html.startswith('<div class="plain">**bold** &lt;script&gt;x&lt;/script&gt;\n')
    assert "<strong>" not in html and "<script>" not in html
