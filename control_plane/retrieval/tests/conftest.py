"""Shared by the retrieval tests: the real mock LLM in its own process, and a world with a chat LLM, an embedding LLM
and a handbook datasource granted to alice's group but not to bob's."""

from __future__ import annotations

import sys

import httpx
import pytest
from django.contrib.auth.models import Group

from control_plane.accounts.models import Catalogue
from control_plane.catalog.services import datasource_create
from control_plane.llms.services import llm_create
from fjordgate.embedded import free_port

EMBEDDER = "text-embedding-3-small"
HANDBOOK = (
    "Parental leave is sixteen weeks at full pay for every parent.\n\n"
    "The office in Bergen opens at eight and closes at five.\n\n"
    "Expenses above two hundred euros need a manager's approval."
)
LEAVE, OFFICE, EXPENSES = HANDBOOK.split("\n\n")


@pytest.fixture
def mock_url(processes) -> str:
    port = free_port()
    processes(
        [sys.executable, "-m", "fjordgate.mock_llm", "--port", str(port)],
        ready_url=f"http://127.0.0.1:{port}/health",
        name="mock-llm",
    )
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def world(django_user_model, mock_url, settings):
    """alice's group grants the chat LLM and the handbook datasource; bob's group grants the LLM only."""
    settings.FJORDGATE_RETRIEVAL_CHUNK_CHARS = 70  # one paragraph per chunk
    alice = django_user_model.objects.create_user("alice", "alice@example.com", "pw-alice-123456")
    bob = django_user_model.objects.create_user("bob", "bob@example.com", "pw-bob-123456")
    common = {"vendor": "openai", "api_endpoint": f"{mock_url}/v1", "max_retries": 0}
    llm = llm_create(data={"name": "Team GPT", "slug": "team-gpt", "default_model": "mock-gpt", **common})
    embedder = llm_create(data={"name": "Embedder", "slug": "embedder", "default_model": EMBEDDER, **common})
    handbook = datasource_create(
        data={"name": "Handbook", "slug": "handbook", "embedding_llm_id": embedder.pk, "embedder": EMBEDDER}
    )
    for user, name, grants in ((alice, "staff", [handbook]), (bob, "guests", [])):
        group = Group.objects.create(name=name)
        user.groups.add(group)
        catalogue = Catalogue.objects.create(group=group)
        catalogue.llms.add(llm)
        catalogue.datasources.add(*grants)
    return {"alice": alice, "bob": bob, "llm": llm, "embedder": embedder, "handbook": handbook, "mock": mock_url}


def mock_requests(world, path: str) -> list[dict]:
    return httpx.get(f"{world['mock']}/_mock/requests?path={path}", timeout=5).json()["data"]
