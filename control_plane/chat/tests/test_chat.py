"""The portal's chat through Django's test client against real PostgreSQL, the real mock LLM in its own process and
the real studio plugin host: who may chat with what, hostile input, streamed replies from an LLM (governed: budget
refusals, usage recorded for the user) and from agents (tool calls, timeout, cancellation when the user leaves)."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from decimal import Decimal

import httpx
import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import Group
from django.test import Client

from control_plane.accounts.models import Catalogue, Profile
from control_plane.analytics.models import AnalyticsEvent, BudgetUsageRecord
from control_plane.budgets.services import budget_create
from control_plane.catalog.models import Tool
from control_plane.catalog.services import model_price_upsert
from control_plane.chat.models import ChatMessage, ChatSession
from control_plane.chat.stream import reply_events
from control_plane.kv.services import kv_read
from control_plane.llms.services import llm_create, llm_set_plugin_chain
from control_plane.plugins.services import plugin_register
from fjordgate.embedded import free_port

pytestmark = pytest.mark.django_db(transaction=True)  # the stream and the studio services use their own threads

MODEL = "mock-gpt"


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
def world(django_user_model, mock_url):
    """alice's group grants one LLM and the desk agent; bob has nothing; an LLM outside every catalogue."""
    alice = django_user_model.objects.create_user("alice", "alice@example.com", "pw-alice-123456")
    bob = django_user_model.objects.create_user("bob", "bob@example.com", "pw-bob-123456")
    group = Group.objects.create(name="developers")
    alice.groups.add(group)
    common = {"vendor": "openai", "api_endpoint": f"{mock_url}/v1", "default_model": MODEL, "max_retries": 0}
    llm = llm_create(data={"name": "Team GPT", "slug": "team-gpt", **common})
    hidden = llm_create(data={"name": "Hidden", "slug": "hidden", **common})
    model_price_upsert(
        data={
            "vendor": "openai",
            "model": MODEL,
            "prompt_per_million": Decimal("1000"),
            "completion_per_million": Decimal("2000"),
        }
    )
    agent = plugin_register(data={"slug": "desk-agent", "entry_point": "desk-agent"})
    catalogue = Catalogue.objects.create(group=group)
    catalogue.llms.add(llm)
    catalogue.agents.add(agent)
    catalogue.tools.add(Tool.objects.create(name="HR records", slug="hr-records", privacy_score=0))
    return {"alice": alice, "bob": bob, "llm": llm, "hidden": hidden, "agent": agent, "mock": mock_url}


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _start(client: Client, target: str) -> int:
    response = client.post("/portal/chat/new/", {"target": target})
    assert response.status_code == 302, response.content
    return int(response["Location"].rstrip("/").rsplit("/", 1)[1])


def _say(client: Client, session_id: int, text: str):
    return client.post(f"/portal/chat/{session_id}/messages/", {"message": text}, HTTP_ACCEPT="application/json")


async def _collect(iterator) -> list[bytes]:
    return [chunk async for chunk in iterator]


def _events(client: Client, session_id: int) -> list[tuple[str, dict]]:
    response = client.get(f"/portal/chat/{session_id}/stream/")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/event-stream")
    body = b"".join(async_to_sync(_collect)(response.streaming_content)).decode()  # type: ignore[attr-defined]
    events = []
    for block in body.strip().split("\n\n"):
        name, data = block.split("\n", 1)
        events.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return events


def test_the_chat_offers_only_the_users_catalogue_and_refuses_the_rest(world):
    alice = _client(world["alice"])
    page = alice.get("/portal/chat/").content.decode()
    assert "Team GPT (LLM)" in page and "Desk agent (agent)" in page
    assert "Hidden" not in page
    response = alice.post("/portal/chat/new/", {"target": f"llm:{world['hidden'].pk}"})
    assert response.status_code == 400 and "Select a valid choice" in response.content.decode()
    assert not ChatSession.objects.exists()
    assert "no LLM or agent" in _client(world["bob"]).get("/portal/chat/").content.decode()


def test_signed_out_users_sign_in_and_users_without_chat_are_refused(world, client):
    assert client.get("/portal/chat/")["Location"].startswith("/portal/login/")
    Profile.objects.update_or_create(user=world["alice"], defaults={"show_chat": False})
    alice = _client(world["alice"])
    assert alice.get("/portal/chat/").status_code == 403
    assert alice.get("/portal/chat/1/stream/").status_code == 403


def test_another_users_session_is_a_404_everywhere(world):
    session_id = _start(_client(world["alice"]), f"llm:{world['llm'].pk}")
    bob = _client(world["bob"])
    assert bob.get(f"/portal/chat/{session_id}/").status_code == 404
    assert _say(bob, session_id, "hi").status_code == 404
    assert bob.get(f"/portal/chat/{session_id}/stream/").status_code == 404
    assert not ChatMessage.objects.exists()


def test_empty_oversized_and_unprotected_messages_are_refused(world, settings):
    settings.FJORDGATE_CHAT_MAX_MESSAGE_CHARS = 50
    alice = _client(world["alice"])
    session_id = _start(alice, f"llm:{world['llm'].pk}")
    empty = _say(alice, session_id, "   ")
    assert empty.status_code == 400 and empty.json()["errors"]["message"][0]["message"] == "Write a message first."
    big = _say(alice, session_id, "x" * 51)
    assert big.status_code == 400 and "at most 50 characters" in big.json()["errors"]["message"][0]["message"]
    page = alice.post(f"/portal/chat/{session_id}/messages/", {"message": ""})  # without the script: the page
    assert page.status_code == 400 and "Write a message first." in page.content.decode()
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(world["alice"])
    assert _say(strict, session_id, "hello").status_code == 403
    assert not ChatMessage.objects.exists()


def test_users_rename_and_delete_their_own_sessions_and_nothing_else(world):
    alice = _client(world["alice"])
    session_id = _start(alice, f"llm:{world['llm'].pk}")
    named = alice.post(f"/portal/chat/{session_id}/rename/", {"title": "  Trip planning  "})
    assert named.status_code == 302 and named["Location"] == f"/portal/chat/{session_id}/"
    assert _say(alice, session_id, "hello there").status_code == 201
    assert ChatSession.objects.get().title == "Trip planning"  # the first message no longer names it
    assert "Trip planning" in alice.get("/portal/chat/").content.decode()

    for title, error in (("   ", "Give the conversation a title."), ("x" * 201, "at most 200 characters")):
        refused = alice.post(f"/portal/chat/{session_id}/rename/", {"title": title})
        assert refused.status_code == 400 and error in refused.content.decode()
    hostile = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
    assert alice.post(f"/portal/chat/{session_id}/rename/", {"title": hostile}).status_code == 302
    page = alice.get(f"/portal/chat/{session_id}/").content.decode()
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page

    bob = _client(world["bob"])
    assert bob.post(f"/portal/chat/{session_id}/rename/", {"title": "mine"}).status_code == 404
    assert bob.post(f"/portal/chat/{session_id}/delete/").status_code == 404
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(world["alice"])
    assert strict.post(f"/portal/chat/{session_id}/rename/", {"title": "csrf"}).status_code == 403
    assert strict.post(f"/portal/chat/{session_id}/delete/").status_code == 403
    assert alice.get(f"/portal/chat/{session_id}/delete/").status_code == 405
    assert ChatSession.objects.get().title == hostile and ChatMessage.objects.count() == 1

    deleted = alice.post(f"/portal/chat/{session_id}/delete/", follow=True)
    assert deleted.redirect_chain == [("/portal/chat/", 302)]
    assert "deleted, with its messages" in deleted.content.decode()
    assert not ChatSession.objects.exists() and not ChatMessage.objects.exists()
    assert alice.get(f"/portal/chat/{session_id}/").status_code == 404


def test_the_list_pages_through_every_session_newest_first(world):
    """Only the newest 100 were listed: older conversations could not be found from the page."""
    ChatSession.objects.bulk_create(
        ChatSession(user=world["alice"], llm=world["llm"], title=f"talk {n:03}") for n in range(101)
    )
    ChatSession.objects.create(user=world["bob"], title="not hers")
    alice = _client(world["alice"])
    first = alice.get("/portal/chat/").content.decode()
    assert first.count("talk ") == 100 and "Page 1 of 2" in first and 'href="?page=2"' in first
    last = alice.get("/portal/chat/?page=2").content.decode()
    assert last.count("talk ") == 1 and 'href="?page=1"' in last and "not hers" not in first + last
    listed = {title for page in (first, last) for title in re.findall(r"talk \d{3}", page)}
    assert listed == {f"talk {n:03}" for n in range(101)}
    assert alice.get("/portal/chat/?page=99").content.decode().count("talk ") == 1  # past the end: the last page
    assert alice.get("/portal/chat/?page=x").status_code == 200


def test_an_llm_reply_streams_is_stored_and_is_accounted_to_the_user(world):
    alice = _client(world["alice"])
    session_id = _start(alice, f"llm:{world['llm'].pk}")
    assert _say(alice, session_id, "Hello there").status_code == 201
    events = _events(alice, session_id)
    contents = [e for name, e in events if name == "content"]
    assert len(contents) > 1  # token by token, not one block
    assert "".join(e["content"] for e in contents) == "Echo: Hello there"
    assert events[-1][0] == "done"
    # the same turn is never answered twice (a reconnecting EventSource gets an error event)
    assert _events(alice, session_id) == [
        ("error", {"type": "error", "content": "There is no message waiting for a reply.", "metadata": {}})
    ]
    reply = ChatMessage.objects.get(role="assistant")
    assert (reply.content, reply.status) == ("Echo: Hello there", "done")
    row = AnalyticsEvent.objects.get()
    assert (row.user_id, row.edge_id, row.status_code, row.llm_id) == (
        world["alice"].pk,
        "studio",
        200,
        world["llm"].pk,
    )
    assert row.cost > 0 and BudgetUsageRecord.objects.get().cost == row.cost
    # the second turn carries the first as history
    _say(alice, session_id, "And again")
    _events(alice, session_id)
    sent = httpx.get(f"{world['mock']}/_mock/requests?path=/v1/chat/completions", timeout=5).json()["data"][-1]
    assert [m["content"] for m in sent["body"]["messages"]] == ["Hello there", "Echo: Hello there", "And again"]
    page = alice.get(f"/portal/chat/{session_id}/").content.decode()
    assert "Echo: Hello there" in page and "Echo: And again" in page


def test_a_reply_in_markdown_ends_with_its_html_and_shows_as_html_on_its_page(world):
    """The reply streams as its text; the `done` event carries it rendered from Markdown by the server (raw HTML
    escaped), and the session page, without JavaScript, shows the same HTML; the user's own turn stays text."""
    alice = _client(world["alice"])
    session_id = _start(alice, f"llm:{world['llm'].pk}")
    _say(alice, session_id, "**hi** <script>alert(1)</script>")
    events = _events(alice, session_id)
    streamed = "".join(e["content"] for name, e in events if name == "content")
    assert streamed == "Echo: **hi** <script>alert(1)</script>"
    html = "<p>Echo: <strong>hi</strong> &lt;script&gt;alert(1)&lt;/script&gt;</p>\n"
    assert events[-1] == (
        "done",
        {"type": "done", "content": "", "metadata": {"finish_reason": "stop"}, "html": [html]},
    )
    page = alice.get(f"/portal/chat/{session_id}/").content.decode()
    assert f'<div class="chunk content md" dir="auto">{html}</div>' in page
    assert '<div class="chunk content" dir="auto">**hi** &lt;script&gt;alert(1)&lt;/script&gt;</div>' in page
    assert "<script>alert(1)" not in page


def test_an_exhausted_llm_budget_refuses_the_chat_with_the_edges_message(world):
    budget_create(data={"scope": "llm", "llm": world["llm"], "limit": Decimal("0.0001"), "action": "block"})
    alice = _client(world["alice"])
    session_id = _start(alice, f"llm:{world['llm'].pk}")
    _say(alice, session_id, "Hello there")
    events = _events(alice, session_id)
    assert [name for name, _ in events] == ["error"]
    assert events[0][1]["content"].startswith("llm budget exhausted")
    assert httpx.get(f"{world['mock']}/_mock/stats", timeout=5).json()["requests_total"] == 0
    refused = AnalyticsEvent.objects.get()
    assert (refused.status_code, refused.error_type, refused.user_id) == (402, "budget_exceeded", world["alice"].pk)
    assert ChatMessage.objects.get(role="assistant").status == "error"


@pytest.mark.parametrize("scope", ["user", "group"])
def test_the_users_and_groups_budgets_apply_to_chat_and_count_its_spend(world, scope):
    target = {"user": world["alice"]} if scope == "user" else {"group": Group.objects.get(name="developers")}
    budget = budget_create(data={"scope": scope, **target, "limit": Decimal("10"), "action": "block"})
    alice = _client(world["alice"])
    session_id = _start(alice, f"llm:{world['llm'].pk}")
    _say(alice, session_id, "Hello there")
    assert _events(alice, session_id)[-1][0] == "done"  # within the budget: served, and its cost counts
    usage = BudgetUsageRecord.objects.get()  # the user's row: it counts for their (and their groups') budgets
    assert usage.cost > 0 and usage.user_id == world["alice"].pk
    budget.spent = Decimal("10")  # an administrator's figure: the budget is used up
    budget.save(update_fields=["spent"])
    _say(alice, session_id, "Hello again")
    events = _events(alice, session_id)
    assert [name for name, _ in events] == ["error"]
    assert events[0][1]["content"].startswith(f"{scope} budget exhausted")


@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "isolated"])
def test_the_desk_agent_calls_a_tool_and_answers(world, isolated):
    if isolated:
        from control_plane.plugins.services import plugin_update

        plugin_update(plugin=world["agent"], data={"isolated": True})
    alice = _client(world["alice"])
    session_id = _start(alice, f"agent:{world['agent'].pk}")
    _say(alice, session_id, "call tool list_llms")
    events = _events(alice, session_id)
    names = [name for name, _ in events]
    assert names == ["thinking", "tool_call", "tool_result", "thinking", "content", "done"]
    assert events[1][1]["content"] == "list_llms({})"
    assert events[2][1]["content"] == "Team GPT (team-gpt, privacy 0)"
    assert events[4][1]["content"] == "Echo: Team GPT (team-gpt, privacy 0)"
    stored = ChatMessage.objects.get(role="assistant")
    assert [p["type"] for p in stored.parts] == names and stored.status == "done"
    # its LLM calls went through the studio's governed path, as the plugin's
    rows = AnalyticsEvent.objects.order_by("id")
    assert rows.count() == 2 and all(r.edge_id == "studio" for r in rows)
    page = alice.get(f"/portal/chat/{session_id}/").content.decode()
    assert 'class="chunk tool_call"' in page and 'class="chunk tool_result"' in page


@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "isolated"])
def test_an_agents_llm_calls_in_a_chat_turn_are_the_users_and_their_budget_refuses_them(world, isolated):
    """The desk agent's own LLM call, made while it answers alice, is alice's: her analytics row, her budget.
    Isolated, its calls reach the studio over its broker and are matched to the turn by the call id the host gave it;
    the process is started before the turn, as a preloaded plugin is."""
    if isolated:
        from control_plane.plugins.runtime import plugin_stream_handle
        from control_plane.plugins.services import plugin_update

        plugin_update(plugin=world["agent"], data={"isolated": True})
        assert plugin_stream_handle("desk-agent", "handle_agent_message")[0].pid is not None
    alice = _client(world["alice"])
    session_id = _start(alice, f"agent:{world['agent'].pk}")
    _say(alice, session_id, "call tool list_llms")
    assert _events(alice, session_id)[-1][0] == "done"
    rows = AnalyticsEvent.objects.order_by("id")
    assert [(r.user_id, r.status_code) for r in rows] == [(world["alice"].pk, 200)] * 2
    budget_create(data={"scope": "user", "user": world["alice"], "limit": Decimal("0.0001"), "action": "block"})
    AnalyticsEvent.objects.all().delete()
    before = httpx.get(f"{world['mock']}/_mock/stats", timeout=5).json()["requests_total"]
    _say(alice, session_id, "call tool list_llms")
    events = _events(alice, session_id)
    assert events[-1][0] == "error" and "user budget exhausted" in events[-1][1]["content"]
    assert httpx.get(f"{world['mock']}/_mock/stats", timeout=5).json()["requests_total"] == before
    refused = AnalyticsEvent.objects.get()
    assert (refused.status_code, refused.error_type, refused.user_id) == (402, "budget_exceeded", world["alice"].pk)


def _rows_of_three_calls(since: int) -> list[tuple[int | None, str]]:
    """(user, source) of the analytics rows after id `since`, once the agent's late call is in too."""
    for _ in range(200):
        rows = AnalyticsEvent.objects.filter(id__gt=since).order_by("id")
        if rows.count() >= 3:
            break
        time.sleep(0.05)
    return [(r.user_id, r.context["metadata"]["source"]) for r in rows]


@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "isolated"])
def test_an_agents_calls_name_only_the_user_of_the_live_turn_it_serves(world, isolated):
    """Isolated, only the call id the host gave the turn names the user, and only while the turn runs: a made-up id,
    or the turn's id used after the turn ended, is the plugin's own call. In-process there is no id to make up (the
    second call runs in the turn's own context, the user's), but a call after the turn is the plugin's there too.
    Two users in turn: each call names its own user (the isolated process was started during alice's turn; none of
    her context stays with it)."""
    agent = plugin_register(
        data={
            "slug": "call-id-agent",
            "import_path": "control_plane.chat.tests.agents:CallIdAgent",
            "isolated": isolated,
            "config": {"late_s": 1.0},
        }
    )
    Catalogue.objects.get().agents.add(agent)
    world["bob"].groups.add(Group.objects.get(name="developers"))
    for user in (world["alice"], world["bob"]):
        since = AnalyticsEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
        client = _client(user)
        session_id = _start(client, f"agent:{agent.pk}")
        _say(client, session_id, "count me")
        assert [name for name, _ in _events(client, session_id)] == ["content", "done"]
        made_up = (None, "studio") if isolated else (user.pk, "chat")
        assert _rows_of_three_calls(since) == [(user.pk, "chat"), made_up, (None, "studio")]


def _slow_agent(tmp_path, sleep_s: float, isolated: bool = False):
    marker = tmp_path / "closed"
    agent = plugin_register(
        data={
            "slug": "slow-agent",
            "import_path": "control_plane.chat.tests.agents:SlowAgent",
            "isolated": isolated,
            "config": {"sleep_s": sleep_s, "marker": str(marker)},
            "timeout_ms": 60_000,
        }
    )
    return agent, marker


def test_an_agent_past_the_chat_timeout_is_stopped(world, tmp_path, settings):
    settings.FJORDGATE_CHAT_TIMEOUT_S = 1.0
    agent, marker = _slow_agent(tmp_path, sleep_s=30)
    Catalogue.objects.get().agents.add(agent)
    alice = _client(world["alice"])
    session_id = _start(alice, f"agent:{agent.pk}")
    _say(alice, session_id, "a slow job")
    started = time.monotonic()
    events = _events(alice, session_id)
    assert time.monotonic() - started < 10
    assert [name for name, _ in events] == ["content", "error"]
    # the session's id and the user's catalogue reached the agent
    assert events[0][1]["content"] == f"working on a slow job (session {session_id}, tools hr-records)"
    assert events[1][1]["content"] == "No complete reply within 1 s: stopped."
    assert marker.read_text() == "closed"
    assert ChatMessage.objects.get(role="assistant").status == "error"


@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "isolated"])
def test_leaving_the_page_closes_the_agents_iterator(world, tmp_path, isolated):
    agent, marker = _slow_agent(tmp_path, sleep_s=30, isolated=isolated)
    Catalogue.objects.get().agents.add(agent)
    alice = _client(world["alice"])
    session_id = _start(alice, f"agent:{agent.pk}")
    _say(alice, session_id, "a slow job")

    async def leave_after_first_event() -> str:
        stream = reply_events(user_id=world["alice"].pk, session_id=session_id)
        first = await stream.__anext__()
        await stream.aclose()  # what the server does when the client disconnects
        return first

    assert async_to_sync(leave_after_first_event)().startswith("event: content")
    for _ in range(100):
        if marker.exists():
            break
        time.sleep(0.05)
    assert marker.read_text() == "closed"
    assert ChatMessage.objects.get(role="assistant").status == "cancelled"


def test_a_cancelled_llm_stream_still_records_its_usage(world):
    alice = _client(world["alice"])
    session_id = _start(alice, f"llm:{world['llm'].pk}")
    _say(alice, session_id, "word " * 200)

    async def leave_after_first_event() -> None:
        stream = reply_events(user_id=world["alice"].pk, session_id=session_id)
        await stream.__anext__()
        await stream.aclose()
        await asyncio.sleep(0)

    async_to_sync(leave_after_first_event)()
    row = AnalyticsEvent.objects.get()
    assert (row.status_code, row.error_type) == (499, "client_closed") and row.prompt_tokens > 0
    assert ChatMessage.objects.get(role="assistant").status == "cancelled"


@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "isolated"])
def test_the_llms_plugin_chain_rewrites_the_streamed_reply_and_blocks_the_chat(world, isolated):
    """The LLM's chain (an edge plugin bound to it) runs on the chat: chunk hooks rewrite each streamed piece,
    stream-complete runs at the end, and a request hook's block is the chat's error before the vendor is asked."""
    guard = plugin_register(
        data={
            "slug": "word-guard",
            "import_path": "control_plane.plugins.tests.plugins:WordGuard",
            "isolated": isolated,
            "config": {"word": "password", "find": "Hello", "replace": "Hej", "label": "guard"},
        }
    )
    llm_set_plugin_chain(llm=world["llm"], chain=[{"plugin": guard}])
    alice = _client(world["alice"])
    session_id = _start(alice, f"llm:{world['llm'].pk}")
    _say(alice, session_id, "Hello there")
    events = _events(alice, session_id)
    contents = [e["content"] for name, e in events if name == "content"]
    assert contents == ["Echo", ":", " Hej", " there"]  # still piece by piece, each piece through the hook
    assert "".join(contents) == "Echo: Hej there" and events[-1][0] == "done"
    assert ChatMessage.objects.get(role="assistant").content == "Echo: Hej there"
    assert kv_read(plugin_slug="word-guard", key="streams") == b"1"  # on_stream_complete ran once

    _say(alice, session_id, "my password is hunter2")
    assert _events(alice, session_id) == [
        ("error", {"type": "error", "content": "guard: no 'password'", "metadata": {}, "html": []})
    ]
    assert httpx.get(f"{world['mock']}/_mock/stats", timeout=5).json()["requests_total"] == 1


def test_a_bundled_edge_plugin_redacts_the_chats_streamed_reply_unchanged(world):
    """The bundled PII redactor, written for the edge's chunk events, holds back and flushes on the chat's stream as
    it does at an edge: an address the model streams token by token never reaches the user."""
    redactor = plugin_register(
        data={"slug": "pii-redactor", "entry_point": "pii-redactor", "config": {"redact_requests": False}}
    )
    llm_set_plugin_chain(llm=world["llm"], chain=[{"plugin": redactor}])
    alice = _client(world["alice"])
    session_id = _start(alice, f"llm:{world['llm'].pk}")
    _say(alice, session_id, "write to jane.doe@example.com today")
    events = _events(alice, session_id)
    text = "".join(e["content"] for name, e in events if name == "content")
    assert text == "Echo: write to [REDACTED:email] today" and events[-1][0] == "done"
    assert "example.com" not in json.dumps(ChatMessage.objects.get(role="assistant").parts)


def test_administrators_grant_agents_to_a_group_through_the_api(world, admin_api):
    from control_plane.chat.selectors import catalogue_agents

    group = Group.objects.get(name="developers")
    cleared = admin_api.patch(f"/api/v1/groups/{group.pk}/", {"agent_ids": []}, format="json")
    assert cleared.status_code == 200 and cleared.json()["agent_ids"] == []
    assert not catalogue_agents(world["alice"]).exists()
    granted = admin_api.patch(f"/api/v1/groups/{group.pk}/", {"agent_ids": [world["agent"].pk]}, format="json")
    assert granted.status_code == 200 and granted.json()["agent_ids"] == [world["agent"].pk]
    assert list(catalogue_agents(world["alice"])) == [world["agent"]]
    not_an_agent = plugin_register(data={"slug": "usage-summary", "entry_point": "usage-summary"})
    refused = admin_api.patch(f"/api/v1/groups/{group.pk}/", {"agent_ids": [not_an_agent.pk]}, format="json")
    assert refused.status_code == 400 and "agent_ids" in refused.json()["extra"]["fields"]
    assert list(catalogue_agents(world["alice"])) == [world["agent"]]
