"""A long unbroken word (a pasted URL, a name without spaces) in what a user typed breaks inside its box in real
headless Chromium, instead of widening the page: the portal's home, an app's page and a chat transcript were
tens of thousands of pixels wide, every other line of the page out of sight."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from control_plane.accounts.models import Catalogue
from control_plane.applications.models import App
from control_plane.chat.models import ChatMessage, ChatSession
from control_plane.llms.services import llm_create

from .support import portal_login

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

WORD = "https://example.com/" + "a" * 3000


def _seed(django_user_model) -> tuple[int, int]:
    alice = django_user_model.objects.create_user("alice", "alice@example.com", "pw-alice-123456")
    group = Group.objects.create(name="developers")
    alice.groups.add(group)
    llm = llm_create(
        data={"name": "Team GPT", "slug": "team-gpt", "vendor": "openai", "api_endpoint": "http://127.0.0.1:9"}
    )
    Catalogue.objects.create(group=group).llms.add(llm)
    app = App.objects.create(name="N" * 200, description=WORD, owner=alice)
    app.llms.add(llm)
    session = ChatSession.objects.create(user=alice, llm=llm, title=WORD[:200])
    ChatMessage.objects.create(session=session, role="user", content=WORD, status="answered")
    ChatMessage.objects.create(
        session=session, role="assistant", content=WORD, status="done", parts=[{"type": "content", "content": WORD}]
    )
    return app.pk, session.pk


def test_a_long_word_breaks_instead_of_widening_the_page(page, screenshot, live_server, django_user_model):
    app_id, session_id = _seed(django_user_model)
    base = live_server.url
    portal_login(page, base)
    for path in ("/portal/", f"/portal/apps/{app_id}/", "/portal/chat/", f"/portal/chat/{session_id}/"):
        page.goto(f"{base}{path}")
        text = page.locator("main").inner_text()
        assert "NNNN" in text or "aaaa" in text, path
        wide = page.evaluate("document.documentElement.scrollWidth")
        assert wide <= page.evaluate("document.documentElement.clientWidth"), (path, wide)
    screenshot("chat")
