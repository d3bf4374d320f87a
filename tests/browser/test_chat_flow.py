"""The portal's chat as a person uses it, in real headless Chromium.

The control plane is served the way `fjordgate web` serves it, by uvicorn (ASGI), so replies stream: Django's
WSGI live server would collect an async stream before sending it. The LLM is the real mock LLM in its own process,
slowed down between stream events, so the page must show part of a reply before the reply ends. Then the bundled
desk agent calls a tool (its call and result appear), answers and finishes; reopening the session shows its
history.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import uvicorn
from django.contrib.auth.models import Group
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application

from control_plane.accounts.models import Catalogue
from control_plane.analytics.models import AnalyticsEvent
from control_plane.catalog.models import Tool
from control_plane.catalog.services import model_price_upsert
from control_plane.chat.models import ChatMessage
from control_plane.llms.services import llm_create
from control_plane.plugins.services import plugin_register
from fjordgate.embedded import free_port

from .support import portal_login

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

MODEL = "mock-gpt"
QUESTION = "Tell me about the fjords of Norway"
REPLY = f"Echo: {QUESTION}"


@pytest.fixture
def mock_url(processes) -> str:
    port = free_port()
    processes(
        [sys.executable, "-m", "fjordgate.mock_llm", "--port", str(port), "--chunk-delay-ms", "150"],
        ready_url=f"http://127.0.0.1:{port}/health",
        name="mock-llm",
    )
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def asgi_url(transactional_db) -> Iterator[str]:
    """The control plane under uvicorn in a thread, on the test database; static files from the app folders."""
    port = free_port()
    config = uvicorn.Config(
        ASGIStaticFilesHandler(get_asgi_application()),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-chat-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(15)


def _seed(django_user_model, mock_url: str) -> None:
    alice = django_user_model.objects.create_user("alice", "alice@example.com", "pw-alice-123456")
    group = Group.objects.create(name="developers")
    alice.groups.add(group)
    llm = llm_create(
        data={
            "name": "Team GPT",
            "slug": "team-gpt",
            "vendor": "openai",
            "api_endpoint": f"{mock_url}/v1",
            "default_model": MODEL,
            "max_retries": 0,
        }
    )
    model_price_upsert(
        data={"vendor": "openai", "model": MODEL, "prompt_per_million": 1000, "completion_per_million": 2000}
    )
    agent = plugin_register(data={"slug": "desk-agent", "entry_point": "desk-agent"})
    catalogue = Catalogue.objects.create(group=group)
    catalogue.llms.add(llm)
    catalogue.agents.add(agent)


def _send(page, text: str) -> None:
    page.fill("#message-form textarea[name=message]", text)
    page.click("#send")


def test_chat_streams_an_llm_then_the_desk_agent_and_reopens(page, screenshot, asgi_url, mock_url, django_user_model):
    _seed(django_user_model, mock_url)
    base = asgi_url

    page.goto(f"{base}/portal/chat/")
    assert "/portal/login/" in page.url
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", "pw-alice-123456")
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_url(f"{base}/portal/chat/")
    options = page.locator("#new-chat select[name=target] option").all_inner_texts()
    assert options == ["Team GPT (LLM)", "Desk agent (agent)"]
    screenshot("1-pick")

    # an LLM: the reply grows on the page while the stream is still open
    page.select_option("#new-chat select[name=target]", label="Team GPT (LLM)")
    page.click("#new-chat button[type=submit]")
    page.wait_for_url(f"{base}/portal/chat/*/")
    session_url = page.url
    _send(page, QUESTION)
    bubble = page.locator(".turn.assistant").last
    page.wait_for_function(
        "() => { const b = [...document.querySelectorAll('.turn.assistant')].pop();"
        " return b && b.classList.contains('streaming') && b.querySelector('.chunk.content'); }"
    )
    partial = bubble.locator(".chunk.content").inner_text()
    still_streaming = "streaming" in (bubble.get_attribute("class") or "")
    screenshot("2-llm-partial")
    page.wait_for_selector(".turn.assistant.done .chunk.done")
    final = bubble.locator(".chunk.content").inner_text()
    assert still_streaming and partial and len(partial) < len(final), (partial, final)
    assert REPLY.startswith(partial) and final == REPLY
    screenshot("3-llm-done")
    assert page.locator(".turn.user").last.inner_text() == QUESTION
    assert page.locator("#chat-title").inner_text() == QUESTION  # the first message names the conversation

    # the agent: thinking, the tool call and its result, the answer, done; each its own kind of element
    page.goto(f"{base}/portal/chat/")
    page.select_option("#new-chat select[name=target]", label="Desk agent (agent)")
    page.click("#new-chat button[type=submit]")
    page.wait_for_url(f"{base}/portal/chat/*/")
    _send(page, "call tool list_llms")
    page.wait_for_selector(".turn.assistant.done .chunk.done")
    agent = page.locator(".turn.assistant").last
    kinds = agent.evaluate("b => [...b.querySelectorAll('.chunk')].map(c => c.classList[1])")
    assert kinds == ["thinking", "tool_call", "tool_result", "thinking", "content", "done"]
    assert agent.locator(".chunk.tool_call").text_content() == "Tool call list_llms({})"
    assert "Team GPT (team-gpt, privacy 0)" in agent.locator(".chunk.tool_result").inner_text()
    assert agent.locator(".chunk.content").inner_text() == "Echo: Team GPT (team-gpt, privacy 0)"
    screenshot("4-agent")

    # reopen the first session from the list: its history is there, and the conversation continues with it
    page.goto(f"{base}/portal/chat/")
    page.click(f"#sessions a:text-is('{QUESTION}')")
    page.wait_for_url(session_url)
    assert page.locator(".turn.user").first.inner_text() == QUESTION
    assert page.locator(".turn.assistant .chunk.content").first.inner_text() == REPLY
    _send(page, "And the glaciers?")
    page.wait_for_selector(".turn.assistant.done >> nth=1")
    assert page.locator(".turn.assistant .chunk.content").nth(1).inner_text() == "Echo: And the glaciers?"
    screenshot("5-reopened")

    assert ChatMessage.objects.filter(role="assistant", status="done").count() == 3
    # the two LLM turns and the desk agent's own two LLM calls while answering her: all alice's
    assert AnalyticsEvent.objects.count() == AnalyticsEvent.objects.filter(user_id__isnull=False).count() == 4


def test_a_conversation_is_renamed_and_deleted_from_its_page(page, screenshot, asgi_url, mock_url, django_user_model):
    _seed(django_user_model, mock_url)
    base = asgi_url
    portal_login(page, base)
    page.goto(f"{base}/portal/chat/")
    page.click("#new-chat button[type=submit]")
    page.wait_for_url(f"{base}/portal/chat/*/")
    _send(page, QUESTION)
    page.wait_for_selector(".turn.assistant.done .chunk.done")
    assert page.locator("#rename-form input[name=title]").input_value() == QUESTION  # the page's own title

    # rename: a blank title is the form's error, the input kept; a real one names it on the page and in the list
    page.fill("#rename-form input[name=title]", "   ")
    page.click("#rename-form button[type=submit]")
    assert page.locator("#rename-form .errorlist").inner_text() == "Give the conversation a title."
    page.fill("#rename-form input[name=title]", "Fjords <b>trip</b>")
    page.click("#rename-form button[type=submit]")
    page.wait_for_load_state()
    assert page.locator("#chat-title").inner_text() == "Fjords <b>trip</b>"
    screenshot("1-renamed")
    page.goto(f"{base}/portal/chat/")
    assert page.locator("#sessions a").all_inner_texts() == ["Fjords <b>trip</b>"]

    # delete: dismissing the confirmation keeps it; accepting removes it with its messages
    page.click("#sessions a")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("#delete-form button[type=submit]")
    assert page.locator("#chat-title").inner_text() == "Fjords <b>trip</b>"
    assert ChatMessage.objects.count() == 2
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#delete-form button[type=submit]")
    page.wait_for_url(f"{base}/portal/chat/")
    assert "deleted, with its messages" in page.locator("ul.messages").inner_text()
    assert page.locator("#sessions").inner_text().endswith("None yet.")
    assert not ChatMessage.objects.exists()
    screenshot("2-deleted")


def test_leaving_the_page_mid_reply_stops_the_agent(page, screenshot, asgi_url, mock_url, django_user_model, tmp_path):
    """Through the real server: the browser closes the EventSource by leaving, uvicorn reports the disconnect,
    Django cancels the response, and the agent's iterator is closed long before its 30 s of work would end."""
    _seed(django_user_model, mock_url)
    marker = tmp_path / "closed"
    slow = plugin_register(
        data={
            "slug": "slow-agent",
            "import_path": "control_plane.chat.tests.agents:SlowAgent",
            "config": {"sleep_s": 30, "marker": str(marker)},
        }
    )
    Catalogue.objects.get().agents.add(slow)
    base = asgi_url
    portal_login(page, base, "/portal/chat/")
    page.select_option("#new-chat select[name=target]", label="slow-agent (agent)")
    page.click("#new-chat button[type=submit]")
    page.wait_for_url(f"{base}/portal/chat/*/")
    session_url = page.url
    _send(page, "a long job")
    page.wait_for_selector(".turn.assistant.streaming .chunk.content")
    screenshot("1-working")
    left = time.monotonic()
    page.goto(f"{base}/portal/")
    while not marker.exists():
        assert time.monotonic() - left < 15, "the agent was not stopped when the user left"
        time.sleep(0.1)
    while ChatMessage.objects.get(role="assistant").status == "streaming":
        assert time.monotonic() - left < 15
        time.sleep(0.1)
    assert ChatMessage.objects.get(role="assistant").status == "cancelled"
    page.goto(session_url)
    page.wait_for_selector(".turn.assistant.cancelled")
    assert "cut off when the page was left" in page.locator(".turn.assistant").inner_text()
    screenshot("2-reopened")


class _SlowApi(BaseHTTPRequestHandler):
    """A catalogue tool's API that takes a second to answer, so the page shows the call before its result."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        time.sleep(1.0)
        status, body = (200, b'{"depth_m": 1308}') if self.path.startswith("/api/fjords/") else (500, b'{"e": 1}')
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def tool_api() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowApi)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_port
    server.shutdown()
    server.server_close()


def test_an_llm_chat_calls_a_catalogue_tool_shown_as_it_happens(
    page, screenshot, asgi_url, mock_url, tool_api, django_user_model
):
    _seed(django_user_model, mock_url)
    spec = {
        "openapi": "3.0.3",
        "info": {"title": "Fjords", "version": "1"},
        "servers": [{"url": f"http://127.0.0.1:{tool_api}/api"}],
        "paths": {
            "/fjords/{name}": {
                "get": {
                    "operationId": "getFjord",
                    "summary": "A fjord's depth",
                    "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                }
            },
            "/broken": {"get": {"operationId": "getBroken", "summary": "Always fails"}},
        },
    }
    tool = Tool.objects.create(name="Fjords", slug="fjords", openapi_spec=spec)
    Catalogue.objects.get().tools.add(tool)
    base = asgi_url
    portal_login(page, base, "/portal/chat/")
    page.select_option("#new-chat select[name=target]", label="Team GPT (LLM)")
    page.click("#new-chat button[type=submit]")
    page.wait_for_url(f"{base}/portal/chat/*/")
    session_url = page.url

    _send(page, "How deep? call tool fjords__getFjord")
    page.wait_for_selector(".turn.assistant.streaming .chunk.tool_call")
    bubble = page.locator(".turn.assistant").last
    assert bubble.locator(".chunk.tool_result").count() == 0  # the call is on the page before its result
    assert bubble.locator(".chunk.tool_call").text_content() == 'Tool call fjords · getFjord {"name":"mock"}'
    screenshot("1-tool-call")
    page.wait_for_selector(".turn.assistant.done .chunk.done")
    kinds = bubble.evaluate("b => [...b.querySelectorAll('.chunk')].map(c => c.className)")
    assert kinds == ["chunk tool_call", "chunk tool_result", "chunk content md", "chunk done"]
    assert '"depth_m": 1308' in bubble.locator(".chunk.tool_result").inner_text()
    assert bubble.locator(".chunk.content").inner_text().startswith("Echo: HTTP 200")
    screenshot("2-answered")

    _send(page, "And this? call tool fjords__getBroken")
    page.wait_for_selector(".turn.assistant.done >> nth=1")
    failed = page.locator(".turn.assistant").last.locator(".chunk.tool_result.failed")
    assert "HTTP 500" in failed.inner_text()
    screenshot("3-failed-tool")

    page.goto(session_url)  # reopened: the calls and results replay where they happened, the failure marked
    replay = page.locator(".turn.assistant").first.evaluate(
        "b => [...b.querySelectorAll('.chunk')].map(c => c.className)"
    )
    assert replay == kinds
    assert page.locator(".turn.assistant .chunk.tool_result.failed").count() == 1
    screenshot("4-reopened")


def _rendered(page, nth: int) -> dict:
    """What the nth reply shows: its content's elements and text, and whether the page is wider than the window."""
    bubble = page.locator(".turn.assistant").nth(nth)
    return bubble.evaluate(
        """b => ({
            strong: [...b.querySelectorAll('.chunk.content strong')].map(e => e.textContent),
            code: [...b.querySelectorAll('.chunk.content code')].map(e => e.textContent.slice(0, 20)),
            img: b.querySelectorAll('img').length,
            text: b.querySelector('.chunk.content').innerText,
            xss: typeof window.__xss,
            pre_scrolls: [...b.querySelectorAll('pre')].map(p => p.scrollWidth > p.clientWidth),
            table_scrolls: [...b.querySelectorAll('table')].map(t => t.scrollWidth > t.clientWidth),
            cells: [...b.querySelectorAll('td')].map(c => [c.textContent.slice(0, 10), getComputedStyle(c).borderTopStyle]),
            page_wider: document.documentElement.scrollWidth > document.documentElement.clientWidth,
        })"""
    )


def test_a_reply_in_markdown_is_rendered_and_its_html_is_not(page, screenshot, asgi_url, mock_url, django_user_model):
    """The mock LLM echoes the user's text: Markdown in it shows as formatting once the reply is complete (and
    after a reload, rendered by the server), raw HTML in it shows as text and runs nothing, and a long code line
    or a wide table scrolls inside its block instead of widening the page."""
    _seed(django_user_model, mock_url)
    base = asgi_url
    portal_login(page, base, "/portal/chat/")
    page.select_option("#new-chat select[name=target]", label="Team GPT (LLM)")
    page.click("#new-chat button[type=submit]")
    page.wait_for_url(f"{base}/portal/chat/*/")
    session_url = page.url

    xss = '<img src=x onerror="window.__xss=1">'
    code_line = "y" * 3000
    _send(page, "**bold** and `code`")
    page.wait_for_selector(".turn.assistant.done >> nth=0")
    _send(page, xss)
    page.wait_for_selector(".turn.assistant.done >> nth=1")
    _send(page, f"a block:\n```python\n{code_line}\n```\n\n| Fjord | Note |\n|---|---|\n| Sognefjord | {code_line} |")
    page.wait_for_selector(".turn.assistant.done >> nth=2")
    screenshot("1-streamed")
    for reloaded in (False, True):
        bold, html, code = (_rendered(page, n) for n in range(3))
        assert bold["strong"] == ["bold"] and bold["code"] == ["code"], (reloaded, bold)
        assert bold["text"] == "Echo: bold and code", (reloaded, bold)
        assert html["text"] == f"Echo: {xss}" and html["img"] == 0 and html["xss"] == "undefined", (reloaded, html)
        assert code["code"] == ["y" * 20] and code["pre_scrolls"] == [True], (reloaded, code)
        assert code["table_scrolls"] == [True], (reloaded, code)
        assert code["cells"] == [["Sognefjord", "solid"], ["y" * 10, "solid"]], (reloaded, code)
        assert not code["page_wider"], reloaded
        page.goto(session_url)
        page.wait_for_selector(".turn.assistant.done >> nth=2")
    assert page.locator(".turn.user").nth(1).inner_text() == xss  # the user's own text: plain, as typed
    screenshot("2-reloaded")
