"""A chat with a datasource, in real headless Chromium against uvicorn: the sources the LLM was given (datasource,
document, score, passage) appear as a Context block before the streamed answer, and again when the session is
reopened from its stored parts."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.contrib.auth.models import Group

from control_plane.accounts.models import Catalogue
from control_plane.catalog.services import datasource_create
from control_plane.llms.services import llm_create
from control_plane.retrieval.services import document_add

from .support import portal_login
from .test_chat_flow import asgi_url, mock_url  # noqa: F401  (the uvicorn server and the slowed mock LLM)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

PASSAGE = "Expenses above two hundred euros need a manager's approval."
HANDBOOK = f"Parental leave is sixteen weeks at full pay.\n\n{PASSAGE}"


def test_the_context_of_a_datasource_shows_before_the_answer_and_on_reopening(
    page,
    screenshot,
    asgi_url,  # noqa: F811
    mock_url,  # noqa: F811
    django_user_model,
    settings,
):
    settings.FJORDGATE_RETRIEVAL_CHUNK_CHARS = 70
    alice = django_user_model.objects.create_user("alice", "alice@example.com", "pw-alice-123456")
    group = Group.objects.create(name="staff")
    alice.groups.add(group)
    common = {"vendor": "openai", "api_endpoint": f"{mock_url}/v1", "max_retries": 0}
    llm = llm_create(data={"name": "Team GPT", "slug": "team-gpt", "default_model": "mock-gpt", **common})
    embedder = llm_create(
        data={"name": "Embedder", "slug": "embedder", "default_model": "text-embedding-3-small", **common}
    )
    handbook = datasource_create(data={"name": "Handbook", "slug": "handbook", "embedding_llm_id": embedder.pk})
    with ThreadPoolExecutor(1) as pool:  # Playwright's loop runs in this thread; the embedding call needs its own
        pool.submit(document_add, datasource=handbook, title="Staff handbook", text=HANDBOOK).result()
    catalogue = Catalogue.objects.create(group=group)
    catalogue.llms.add(llm)
    catalogue.datasources.add(handbook)

    portal_login(page, asgi_url, "/portal/chat/")
    page.select_option("#new-chat select[name=target]", label="Team GPT (LLM)")
    page.click("#new-chat button[type=submit]")
    page.wait_for_url(f"{asgi_url}/portal/chat/*/")
    session_url = page.url
    page.fill("#message-form textarea[name=message]", PASSAGE)
    page.click("#send")
    page.wait_for_selector(".turn.assistant.done .chunk.done")
    reply = page.locator(".turn.assistant").last
    kinds = reply.evaluate("b => [...b.querySelectorAll('.chunk')].map(c => c.classList[1])")
    assert kinds == ["context", "content", "done"]
    context = reply.locator(".chunk.context")
    assert context.locator(".source").inner_text() == "Handbook › Staff handbook"
    assert context.locator(".score").inner_text() == "score 1.00"
    assert context.locator(".excerpt").inner_text() == PASSAGE
    screenshot("1-context-live")

    page.goto(session_url)
    stored = page.locator(".turn.assistant .chunk.context")
    assert stored.locator(".source").inner_text() == "Handbook › Staff handbook"
    assert stored.locator(".excerpt").inner_text() == PASSAGE
    screenshot("2-context-reopened")
