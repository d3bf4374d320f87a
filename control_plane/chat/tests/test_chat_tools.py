"""An LLM chat that uses the user's catalogue tools: their OpenAPI operations offered to the LLM, each tool call run
against the tool's real HTTP API (a server in a thread here), shown as it happens and fed back to the LLM (the real
mock LLM, which calls a tool on `call tool NAME` and answers a tool result with `Echo: <result>`)."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from django.contrib.auth.models import Group

from control_plane.accounts.models import Catalogue
from control_plane.analytics.models import AnalyticsEvent
from control_plane.catalog.models import Tool
from control_plane.catalog.services import model_price_upsert, tool_create
from control_plane.chat.models import ChatMessage
from control_plane.llms.services import llm_create
from fjordgate.embedded import free_port

from .test_chat import _client, _events, _say, _start

pytestmark = pytest.mark.django_db(transaction=True)

GET_EMPLOYEE = "hr-records__getEmployee"


class _Api(BaseHTTPRequestHandler):
    """The HR tool's API: `/api/employees/<id>` answers JSON, `/api/binary` JSON holding NUL bytes, `/api/broken` a 500, `/api/slow` after 3 s,
    `/api/moved` a redirect to another server. Every request is recorded on the server."""

    server: Any

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.server.seen.append({"path": self.path, "headers": dict(self.headers)})
        if self.path.startswith("/api/employees/"):
            body = json.dumps({"id": self.path.rsplit("/", 1)[1].split("?")[0], "name": "Ada Lovelace"}).encode()
            self._send(200, body)
        elif self.path.startswith("/api/whoami"):  # a careless API that echoes the credential it got
            self._send(200, json.dumps({"you": self.headers.get("X-Api-Key", "")}).encode())
        elif self.path.startswith("/api/binary"):  # NUL bytes in a body that decodes as text
            self._send(200, b'{"name": "Ada\x00\x00Lovelace"}')
        elif self.path.startswith("/api/broken"):
            self._send(500, b'{"error": "database down"}')
        elif self.path.startswith("/api/slow"):
            time.sleep(3)
            self._send(200, b"{}")
        elif self.path.startswith("/api/moved"):
            self.send_response(302)
            self.send_header("Location", self.server.elsewhere)
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._send(404, b"{}")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def _serve() -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    server.daemon_threads = True
    server.seen = []  # type: ignore[attr-defined]
    server.elsewhere = ""  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def api() -> Iterator[ThreadingHTTPServer]:
    server, other = _serve(), _serve()
    server.elsewhere = f"http://127.0.0.1:{other.server_port}/api/employees/9"  # type: ignore[attr-defined]
    server.other = other  # type: ignore[attr-defined]
    yield server
    for s in (server, other):
        s.shutdown()
        s.server_close()


def _spec(port: int, *paths: str) -> dict[str, Any]:
    operations = {
        "/employees/{id}": {
            "get": {
                "operationId": "getEmployee",
                "summary": "One employee's record",
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}},
                    {"name": "fields", "in": "query", "schema": {"$ref": "#/components/schemas/Fields"}},
                ],
            }
        },
        "/files/{name}": {
            "get": {
                "operationId": "getFile",
                "summary": "A file (the mock LLM picks the enum's first value: a dot segment)",
                "parameters": [{"name": "name", "in": "path", "schema": {"type": "string", "enum": [".."]}}],
            }
        },
        "/broken": {"get": {"operationId": "getBroken", "summary": "Always fails"}},
        "/slow": {"get": {"operationId": "getSlow", "summary": "Takes its time"}},
        "/moved": {"get": {"operationId": "getMoved", "summary": "Moved elsewhere"}},
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "HR", "version": "1"},
        "servers": [{"url": f"http://127.0.0.1:{port}/api"}],
        "paths": {path: operations[path] for path in paths or operations},
        "components": {"schemas": {"Fields": {"type": "string", "enum": ["name"]}}},
    }


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
def world(django_user_model, mock_url, api):
    """alice's group grants an LLM (privacy score 50) and the HR tool; a tool outside every catalogue and a tool
    in the catalogue more private than the LLM exist too."""
    alice = django_user_model.objects.create_user("alice", "alice@example.com", "pw-alice-123456")
    group = Group.objects.create(name="developers")
    alice.groups.add(group)
    llm = llm_create(
        data={
            "name": "Team GPT",
            "slug": "team-gpt",
            "vendor": "openai",
            "api_endpoint": f"{mock_url}/v1",
            "default_model": "mock-gpt",
            "max_retries": 0,
            "privacy_score": 50,
        }
    )
    model_price_upsert(
        data={"vendor": "openai", "model": "mock-gpt", "prompt_per_million": Decimal("1000"),
              "completion_per_million": Decimal("2000")}
    )  # fmt: skip
    port = api.server_port
    hr = Tool.objects.create(name="HR records", slug="hr-records", privacy_score=10, openapi_spec=_spec(port))
    secret = Tool.objects.create(
        name="Payroll", slug="payroll", privacy_score=90, openapi_spec=_spec(port, "/employees/{id}")
    )
    Tool.objects.create(name="Elsewhere", slug="elsewhere", openapi_spec=_spec(port, "/employees/{id}"))
    catalogue = Catalogue.objects.create(group=group)
    catalogue.llms.add(llm)
    catalogue.tools.add(hr, secret)
    return {"alice": alice, "llm": llm, "hr": hr, "mock": mock_url, "api": api}


def _llm_requests(world) -> list[dict[str, Any]]:
    data = httpx.get(f"{world['mock']}/_mock/requests?path=/v1/chat/completions", timeout=5).json()["data"]
    return [item["body"] for item in data]


def _chat(world, text: str) -> tuple[int, list[tuple[str, dict]]]:
    alice = _client(world["alice"])
    session_id = _start(alice, f"llm:{world['llm'].pk}")
    assert _say(alice, session_id, text).status_code == 201
    return session_id, _events(alice, session_id)


def test_the_llm_calls_a_catalogue_tool_and_the_chat_shows_the_call_its_result_and_the_answer(world):
    session_id, events = _chat(world, f"Who is employee one? call tool {GET_EMPLOYEE}")
    assert [name for name, _ in events][:2] == ["tool_call", "tool_result"]
    assert [name for name, _ in events][-1] == "done"
    call, result = events[0][1], events[1][1]
    assert call["metadata"]["tool"] == "hr-records" and call["metadata"]["operation"] == "getEmployee"
    assert json.loads(call["metadata"]["arguments"]) == {"id": 1, "fields": "name"}
    assert result["metadata"]["ok"] is True and result["metadata"]["status"] == 200
    assert "Ada Lovelace" in result["content"]
    answer = "".join(e["content"] for name, e in events if name == "content")
    assert answer.startswith("Echo: HTTP 200") and "Ada Lovelace" in answer  # the LLM read the tool's result
    assert [seen["path"] for seen in world["api"].seen] == ["/api/employees/1?fields=name"]
    first, second = _llm_requests(world)
    assert second["messages"][-1]["role"] == "tool" and "Ada Lovelace" in second["messages"][-1]["content"]
    assert second["messages"][-2]["tool_calls"][0]["function"]["name"] == GET_EMPLOYEE
    # each round is a governed LLM call of alice's
    assert AnalyticsEvent.objects.filter(user_id=world["alice"].pk, status_code=200).count() == 2
    # a reopened session replays the tool call and its result where they happened
    reply = ChatMessage.objects.get(role="assistant")
    assert [p["type"] for p in reply.parts] == ["tool_call", "tool_result", "content", "done"]
    page = _client(world["alice"]).get(f"/portal/chat/{session_id}/").content.decode()
    assert "Tool call" in page and "hr-records · getEmployee" in page and "Tool result" in page
    assert page.index("Tool result") < page.index("Echo: HTTP 200")


def test_the_llm_is_offered_only_the_users_tools_no_more_private_than_itself(world):
    _chat(world, "Hello there")
    offered = {tool["function"]["name"]: tool["function"] for tool in _llm_requests(world)[0]["tools"]}
    assert sorted(offered) == sorted(
        [GET_EMPLOYEE, "hr-records__getFile", "hr-records__getBroken", "hr-records__getSlow", "hr-records__getMoved"]
    )
    definition = offered[GET_EMPLOYEE]
    assert definition["description"].startswith("One employee's record")
    assert definition["parameters"]["properties"]["fields"] == {"type": "string", "enum": ["name"]}
    assert definition["parameters"]["required"] == ["id"]
    world["hr"].operations = ["getEmployee"]  # an admin narrows the tool to one operation
    world["hr"].save()
    _chat(world, "Hello again")
    assert [tool["function"]["name"] for tool in _llm_requests(world)[-1]["tools"]] == [GET_EMPLOYEE]


@pytest.mark.parametrize(
    ("operation", "shown"),
    [
        ("getBroken", "HTTP 500"),
        ("getSlow", "no answer within 0.5 s"),
        ("getMoved", "redirects are not followed"),
        ("getFile", "Refused: the path parameter 'name' may not be '..'"),
    ],
)
def test_a_failing_tool_call_is_a_failed_result_and_the_reply_goes_on(world, settings, operation, shown):
    settings.FJORDGATE_CHAT_TOOL_TIMEOUT_S = 0.5
    started = time.monotonic()
    _, events = _chat(world, f"call tool hr-records__{operation}")
    assert [name for name, _ in events][:2] == ["tool_call", "tool_result"] and events[-1][0] == "done"
    result = events[1][1]
    assert result["metadata"]["ok"] is False and shown in result["content"]
    answer = "".join(e["content"] for name, e in events if name == "content")
    assert answer.startswith("Echo: ") and shown in answer  # the LLM was told, and answered
    assert time.monotonic() - started < 3
    assert world["api"].other.seen == []  # a redirect never takes the call to another server
    assert all(seen["path"].startswith(("/api/broken", "/api/slow", "/api/moved")) for seen in world["api"].seen)
    assert ChatMessage.objects.get(role="assistant").status == "done"


def test_no_tool_is_offered_when_chat_tool_rounds_are_off(world, settings):
    settings.FJORDGATE_CHAT_TOOL_ROUNDS = 0
    _, events = _chat(world, f"call tool {GET_EMPLOYEE}")
    assert "tools" not in _llm_requests(world)[0]
    assert [name for name, _ in events][-1] == "done" and world["api"].seen == []


def test_the_tools_key_is_sent_as_its_spec_says_and_never_shown_to_the_user_or_the_llm(world, admin_user):
    key = "s3cret-tool-key-0042"
    spec = {
        "openapi": "3.0.3",
        "info": {"title": "Who", "version": "1"},
        "servers": [{"url": f"http://127.0.0.1:{world['api'].server_port}/api"}],
        "security": [{"apiKey": []}],
        "paths": {"/whoami": {"get": {"operationId": "whoami", "summary": "Who the API thinks you are"}}},
        "components": {"securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"}}},
    }
    tool = tool_create(data={"name": "Who", "slug": "who", "openapi_spec": spec, "auth_key": key})
    Catalogue.objects.get().tools.add(tool)
    session_id, events = _chat(world, "call tool who__whoami")
    assert [seen["headers"].get("X-Api-Key") for seen in world["api"].seen] == [key]
    assert events[1][0] == "tool_result" and "[redacted]" in events[1][1]["content"]
    stored = ChatMessage.objects.get(role="assistant")
    sent_to_llm = json.dumps(_llm_requests(world))
    for place in (json.dumps(events), json.dumps(stored.parts), stored.content, sent_to_llm):
        assert key not in place
    assert key not in Tool.objects.get(pk=tool.pk).auth_key_encrypted  # encrypted at rest
    api = _client(admin_user).get(f"/api/v1/tools/{tool.pk}/").json()
    assert api["has_auth_key"] is True and "auth_key" not in api and key not in json.dumps(api)


def test_a_reply_holding_nul_is_stored_and_the_conversation_goes_on(world):
    """A tool answered bytes holding NUL, the LLM echoed them: the user saw the reply stream, but storing it failed
    in PostgreSQL, so the reply was gone when the page was opened again and the next message was refused ("Wait
    for the reply to your last message") until the turn went stale."""
    spec = {
        "openapi": "3.0.3",
        "info": {"title": "Bin", "version": "1"},
        "servers": [{"url": f"http://127.0.0.1:{world['api'].server_port}/api"}],
        "paths": {"/binary": {"get": {"operationId": "getBinary", "summary": "Bytes"}}},
    }
    Catalogue.objects.get().tools.add(tool_create(data={"name": "Bin", "slug": "bin", "openapi_spec": spec}))
    session_id, events = _chat(world, "call tool bin__getBinary")
    assert [name for name, _ in events][:2] == ["tool_call", "tool_result"] and events[-1][0] == "done"
    assert "Ada\x00\x00Lovelace" in events[1][1]["content"]  # streamed as it came
    reply = ChatMessage.objects.get(role="assistant")
    assert reply.status == "done" and "Ada\ufffd\ufffdLovelace" in reply.content
    assert "Ada\ufffd\ufffdLovelace" in reply.parts[1]["content"]
    assert ChatMessage.objects.get(role="user").status == "answered"
    alice = _client(world["alice"])
    page = alice.get(f"/portal/chat/{session_id}/").content.decode()
    assert "Echo: HTTP 200" in page and "Ada\ufffd\ufffdLovelace" in page
    assert _say(alice, session_id, "thanks").status_code == 201
