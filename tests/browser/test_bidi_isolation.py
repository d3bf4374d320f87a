"""A right-to-left override (U+202E) in what a user typed cannot reorder the page around it, in real headless
Chromium: an app's name followed by its status badge, a document's name followed by its score. Without isolation
the override ran to the end of the paragraph: the badge was laid out inside the reversed name, the score before
the document's name. (A block of its own, an app's description or a chat message, ends its paragraph, so an
override inside it reverses only its own text, already in the browser's default style.)"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from control_plane.accounts.models import Catalogue
from control_plane.applications.models import App
from control_plane.chat.models import ChatMessage, ChatSession
from control_plane.llms.services import llm_create

from .support import portal_login

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

RLO = "\u202e"

# The right edge of the text an element holds directly (its text nodes); how an element's text is embedded.
TEXT_RIGHT = """(el) => {
  let right = -Infinity;
  for (const node of el.childNodes) {
    const range = document.createRange();
    range.selectNodeContents(node);
    for (const rect of range.getClientRects()) right = Math.max(right, rect.right);
  }
  return right;
}"""
UNICODE_BIDI = "(el) => getComputedStyle(el).unicodeBidi"


def _seed(django_user_model) -> tuple[int, int]:
    alice = django_user_model.objects.create_user("alice", "alice@example.com", "pw-alice-123456")
    group = Group.objects.create(name="developers")
    alice.groups.add(group)
    llm = llm_create(
        data={"name": "Team GPT", "slug": "team-gpt", "vendor": "openai", "api_endpoint": "http://127.0.0.1:9"}
    )
    Catalogue.objects.create(group=group).llms.add(llm)
    app = App.objects.create(name=f"Billing {RLO}helper bot", description=f"Sends {RLO}invoices", owner=alice)
    app.llms.add(llm)
    session = ChatSession.objects.create(user=alice, llm=llm, title=f"Plans {RLO}for May")
    ChatMessage.objects.create(session=session, role="user", content=f"What {RLO}is due?", status="answered")
    source = {"datasource_name": "Handbook", "document": f"Staff {RLO}handbook", "score": 1.0, "excerpt": "Pay."}
    ChatMessage.objects.create(
        session=session,
        role="assistant",
        content="",
        status="done",
        parts=[
            {"type": "tool_result", "content": "", "metadata": {"kind": "datasource_context", "sources": [source]}},
            {"type": "content", "content": f"Nothing {RLO}is due."},
        ],
    )
    return app.pk, session.pk


def test_a_right_to_left_override_cannot_reorder_the_text_around_it(page, live_server, django_user_model):
    app_id, session_id = _seed(django_user_model)
    base = live_server.url
    portal_login(page, base)

    page.goto(f"{base}/portal/apps/{app_id}/")
    title = page.locator("main h1")
    name = title.locator("bdi") if title.locator("bdi").count() else title
    badge = title.locator(".status")
    assert badge.inner_text() == "waiting for approval"  # the badge's own letters stay in order
    assert badge.bounding_box()["x"] >= name.evaluate(TEXT_RIGHT) - 0.5, "the badge follows the whole name"
    assert title.locator("bdi").evaluate(UNICODE_BIDI) == "isolate"

    page.goto(f"{base}/portal/chat/{session_id}/")
    source = page.locator(".chunk.context .source")
    document = source.locator("bdi").last if source.locator("bdi").count() else source
    score = page.locator(".chunk.context .score")
    assert score.bounding_box()["x"] >= document.evaluate(TEXT_RIGHT) - 0.5, "the score follows the document's name"
    assert page.locator(".turn.user .chunk.content").inner_text() == f"What {RLO}is due?"  # the text itself is kept
