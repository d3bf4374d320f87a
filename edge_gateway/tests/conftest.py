from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from .support import start_mock


@pytest.fixture(scope="session")
def mock_upstream() -> Iterator[str]:
    """One mock LLM process for the session; tests reset its log and fault counters before use."""
    with start_mock() as url:
        yield url


@pytest.fixture
def upstream(mock_upstream: str) -> str:
    httpx.post(f"{mock_upstream}/_mock/reset", timeout=5)
    return mock_upstream
