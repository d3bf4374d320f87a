"""Every ```python block in docs/plugins/ runs as written (each block in a fresh namespace)."""

from __future__ import annotations

import pathlib
import re

import pytest

DOCS = pathlib.Path(__file__).resolve().parents[2] / "docs" / "plugins"
BLOCK = re.compile(r"```python\n(.*?)```", re.S)
EXAMPLES = [
    (page.name, i, code) for page in sorted(DOCS.glob("*.md")) for i, code in enumerate(BLOCK.findall(page.read_text()))
]


def test_every_capability_page_has_a_runnable_example():
    pages = {name for name, _, code in EXAMPLES if "asyncio.run(" in code}
    for cap in (
        "pre-auth auth post-auth response data-collection custom-endpoints ui-provider portal-ui config-provider "
        "manifest-provider agent object-hooks scheduler edge-payload resource-provider session-aware"
    ).split():
        assert f"{cap}.md" in pages, cap


@pytest.mark.parametrize(("page", "index", "code"), EXAMPLES, ids=[f"{p}#{i}" for p, i, _ in EXAMPLES])
def test_doc_example_runs(page, index, code):
    exec(compile(code, f"{page}#{index}", "exec"), {"__name__": f"docs_example_{index}"})
