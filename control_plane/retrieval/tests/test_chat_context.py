"""The chat with datasources, against real PostgreSQL and the real mock LLM: the sources are shown before the answer
and the passages reach the LLM, only for users whose catalogue grants the datasource and LLMs trusted with it."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync
from django.test import Client

from control_plane.analytics.models import AnalyticsEvent
from control_plane.chat.models import ChatMessage
from control_plane.retrieval.services import document_add

from .conftest import EXPENSES, HANDBOOK
from .conftest import mock_requests as _mock_requests

pytestmark = pytest.mark.django_db(transaction=True)  # the chat stream and the studio services use their own threads


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


async def _collect(iterator) -> list[bytes]:
    return [chunk async for chunk in iterator]


def _chat(user, llm, text: str) -> tuple[int, list[tuple[str, dict]]]:
    client = _client(user)
    started = client.post("/portal/chat/new/", {"target": f"llm:{llm.pk}"})
    session_id = int(started["Location"].rstrip("/").rsplit("/", 1)[1])
    posted = client.post(f"/portal/chat/{session_id}/messages/", {"message": text}, HTTP_ACCEPT="application/json")
    assert posted.status_code == 201, posted.content
    response = client.get(f"/portal/chat/{session_id}/stream/")
    body = b"".join(async_to_sync(_collect)(response.streaming_content)).decode()  # type: ignore[attr-defined]
    events = []
    for block in body.strip().split("\n\n"):
        name, data = block.split("\n", 1)
        events.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return session_id, events


def test_the_chat_shows_the_sources_before_the_answer_and_the_llm_gets_the_passage(world):
    document_add(datasource=world["handbook"], title="Staff handbook", text=HANDBOOK)
    session_id, events = _chat(world["alice"], world["llm"], EXPENSES)
    names = [name for name, _ in events]
    assert names[0] == "tool_result" and names[-1] == "done" and "content" in names
    context = events[0][1]
    assert context["metadata"]["kind"] == "datasource_context"
    [source] = context["metadata"]["sources"]
    assert (source["datasource"], source["document"], source["excerpt"]) == ("handbook", "Staff handbook", EXPENSES)
    assert source["score"] == pytest.approx(1.0, abs=1e-3)
    assert context["content"] == "Context from Handbook › Staff handbook (1.00)"
    # the LLM was given the passage, before the user's message
    sent = _mock_requests(world, "/v1/chat/completions")[-1]["body"]["messages"]
    assert sent[0]["role"] == "system" and EXPENSES in sent[0]["content"] and "Staff handbook" in sent[0]["content"]
    assert sent[-1] == {"role": "user", "content": EXPENSES}
    # the question's embedding is alice's call (her budgets, her usage)
    question = AnalyticsEvent.objects.filter(llm_id=world["embedder"].pk, user_id=world["alice"].pk).get()
    assert question.status_code == 200
    # stored with the reply, so the reopened session shows the sources again
    reply = ChatMessage.objects.get(role="assistant")
    assert reply.parts[0]["metadata"]["sources"][0]["document"] == "Staff handbook"
    page = _client(world["alice"]).get(f"/portal/chat/{session_id}/").content.decode()
    assert (
        'class="chunk context"' in page
        and "<bdi>Handbook</bdi> › <bdi>Staff handbook</bdi>" in page
        and "score 1.00" in page
    )


def test_users_without_the_datasource_and_llms_below_its_privacy_get_no_retrieval(world):
    document_add(datasource=world["handbook"], title="Staff handbook", text=HANDBOOK)
    _, events = _chat(world["alice"], world["llm"], EXPENSES)
    assert events[0][0] == "tool_result"  # granted to alice's group: she gets the context
    embedded = len(_mock_requests(world, "/v1/embeddings"))
    _, events = _chat(world["bob"], world["llm"], EXPENSES)
    assert [name for name, _ in events if name != "content"] == ["done"]
    sent = _mock_requests(world, "/v1/chat/completions")[-1]["body"]["messages"]
    assert [m["role"] for m in sent] == ["user"]
    # a datasource more private than the chatting LLM stays out even for a user it is granted to
    world["handbook"].privacy_score = 50
    world["handbook"].save(update_fields=["privacy_score"])
    _, events = _chat(world["alice"], world["llm"], EXPENSES)
    assert "tool_result" not in [name for name, _ in events]
    assert len(_mock_requests(world, "/v1/embeddings")) == embedded  # nobody's question was embedded
