"""A studio plugin's LLM call runs the plugin chain an edge runs for that LLM: request hooks may block it before
anything reaches the vendor, response hooks rewrite the reply, and plugins of another namespace stay out.

The vendor is the real mock LLM in its own process; the calling plugin (`LLMCaller`) and the chained plugin
(`WordGuard`) run in the real studio host, in-process or isolated, and analytics rows are read back from PostgreSQL.
"""

from __future__ import annotations

import json
import sys
import time

import httpx
import pytest
from asgiref.sync import async_to_sync, sync_to_async

from control_plane.analytics.models import AnalyticsEvent
from control_plane.kv.services import kv_read
from control_plane.llms.services import llm_create, llm_set_plugin_chain
from control_plane.plugins.runtime import call_plugin, plugin_host
from control_plane.plugins.services import plugin_register, plugin_update
from control_plane.plugins.studio_services import StudioServicesImpl
from fjordgate.embedded import free_port
from shared_sdk import PluginCallError, ServiceError
from shared_sdk.messages import LLMMessage, Schedule

pytestmark = pytest.mark.django_db(transaction=True)  # the studio services read and write on their own threads

GUARD = "control_plane.plugins.tests.plugins:WordGuard"


@pytest.fixture
def mock_url(processes) -> str:
    port = free_port()
    processes(
        [sys.executable, "-m", "fjordgate.mock_llm", "--port", str(port)],
        ready_url=f"http://127.0.0.1:{port}/health",
        name="mock-llm",
    )
    return f"http://127.0.0.1:{port}"


def _llm(mock_url: str, slug: str, namespace: str = ""):
    return llm_create(
        data={
            "name": slug,
            "slug": slug,
            "vendor": "openai",
            "api_endpoint": f"{mock_url}/v1",
            "default_model": "mock-gpt",
            "namespace": namespace,
        }
    )


def _guard(slug: str, *, isolated: bool = False, namespace: str = "", global_order: int | None = None, **config):
    data = {
        "slug": slug,
        "import_path": GUARD,
        "isolated": isolated,
        "namespace": namespace,
        "global_order": global_order,
        "config": config,
    }
    return plugin_register(data=data)


def _ask(llm, prompt: str) -> dict:
    """What a studio plugin gets back from `ctx.services.studio.call_llm`."""
    config = {"llm_id": llm.pk, "prompt": prompt, "max_tokens": 16}
    call_plugin("llm-caller", "execute_scheduled_task", Schedule(id="job", config=config))
    answer = kv_read(plugin_slug="llm-caller", key="answer")
    assert answer is not None
    return json.loads(answer)


def _vendor_calls(mock_url: str) -> int:
    return httpx.get(f"{mock_url}/_mock/stats", timeout=5).json()["requests_total"]


@pytest.fixture
def caller():
    return plugin_register(data={"slug": "llm-caller", "import_path": "control_plane.plugins.tests.plugins:LLMCaller"})


@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "isolated"])
def test_a_chained_plugin_blocks_a_studio_call_before_the_vendor_and_rewrites_replies(mock_url, caller, isolated):
    llm = _llm(mock_url, "guarded")
    guard = _guard("word-guard", isolated=isolated, word="secret", find="Hello", replace="Hej", label="guard")
    assert "pre_auth" in guard.capabilities and "response" in guard.capabilities
    llm_set_plugin_chain(llm=llm, chain=[{"plugin": guard}])

    with pytest.raises(PluginCallError) as err:
        _ask(llm, "Tell me the SECRET")
    assert "guard: no 'secret'" in err.value.detail, err.value.detail
    # what the calling plugin caught: the studio service's error, with the chained plugin's own message
    services = StudioServicesImpl("direct")
    with pytest.raises(ServiceError, match="^guard: no 'secret'$"):
        async_to_sync(services.call_llm)(llm.pk, [LLMMessage(content="a secret")])
    assert _vendor_calls(mock_url) == 0, "a blocked call never reaches the vendor"
    blocked = AnalyticsEvent.objects.filter(context__metadata__plugin="llm-caller").get()
    assert (blocked.status_code, blocked.error_type, blocked.edge_id, blocked.cost) == (
        403,
        "blocked_by_plugin",
        "studio",
        0,
    )

    assert _ask(llm, "Hello there")["content"] == "Echo: Hej there"  # the reply body, rewritten by the hook
    assert _vendor_calls(mock_url) == 1

    # A binding's own config runs as an instance of its own (`slug@llm`); the plugin's own config is untouched.
    llm_set_plugin_chain(llm=llm, chain=[{"plugin": guard, "config_override": {"replace": "Hallo"}}])
    assert _ask(llm, "Hello there")["content"] == "Echo: Hallo there"
    assert "word-guard@guarded" in plugin_host()
    # An edit of the plugin reaches the cached chain on the next call.
    plugin_update(plugin=guard, data={"config": {"word": "there", "label": "edited"}})
    with pytest.raises(PluginCallError) as err:
        _ask(llm, "Hello there")
    assert "edited: no 'there'" in err.value.detail


def test_plugins_of_another_namespaces_llm_do_not_run(mock_url, caller):
    ours = _llm(mock_url, "ours")
    theirs = _llm(mock_url, "theirs", namespace="team-b")
    bound = _guard("bound-guard", namespace="team-b", word="hello", label="bound")
    llm_set_plugin_chain(llm=theirs, chain=[{"plugin": bound}])
    _guard("global-guard", namespace="team-b", global_order=1, find="Hello", replace="Hej")

    # Neither team-b's chained plugin nor its global one runs on a call to an LLM outside team-b.
    assert _ask(ours, "Hello there")["content"] == "Echo: Hello there"
    assert _vendor_calls(mock_url) == 1
    # For team-b's LLM both do: its global plugin first (the rewrite), then its chain (the block).
    with pytest.raises(PluginCallError) as err:
        _ask(theirs, "Hello there")
    assert "bound: no 'hello'" in err.value.detail
    assert _ask(theirs, "Good day")["content"] == "Echo: Good day"
    assert _vendor_calls(mock_url) == 2
    llm_set_plugin_chain(llm=theirs, chain=[])
    assert _ask(theirs, "Hello there")["content"] == "Echo: Hej there"


@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "isolated"])
def test_a_chained_plugin_edited_during_a_streamed_call_keeps_its_instance_until_the_stream_ends(mock_url, isolated):
    """A streamed call's chunk hooks and `on_stream_complete` run on the instances its chain had when it started, to
    the end: an edit of a chained plugin meanwhile (fail-closed: a stopped instance would fail the stream) reaches
    the next call, and the replaced instance is stopped once the stream is over."""
    llm = _llm(mock_url, "streamed")
    guard = plugin_register(
        data={
            "slug": "word-guard",
            "import_path": GUARD,
            "isolated": isolated,
            "failure_policy": "closed",
            "config": {"find": "Hello", "replace": "Hej"},
        }
    )
    llm_set_plugin_chain(llm=llm, chain=[{"plugin": guard}])
    services = StudioServicesImpl("direct")
    prompt = [LLMMessage(content="Hello Hello Hello")]
    replaced = []

    async def stream_across_an_edit() -> str:
        stream = services.stream_llm(llm.pk, prompt)
        pieces = [(await stream.__anext__()).content]  # the chain is loaded and its hooks are running
        replaced.append(plugin_host().get("word-guard"))
        await sync_to_async(plugin_update)(plugin=guard, data={"config": {"find": "Hello", "replace": "Hallo"}})
        assert plugin_host().get("word-guard") is not replaced[0] and replaced[0].healthy
        pieces += [chunk.content async for chunk in stream]
        return "".join(pieces)

    assert async_to_sync(stream_across_an_edit)() == "Echo: Hej Hej Hej"
    assert kv_read(plugin_slug="word-guard", key="streams") == b"1"  # on_stream_complete ran, on the old instance
    deadline = time.monotonic() + 20
    while replaced[0].healthy:  # stopped once the stream is over
        assert time.monotonic() < deadline, "the replaced instance was never stopped"
        time.sleep(0.02)

    async def whole() -> str:
        return "".join([chunk.content async for chunk in services.stream_llm(llm.pk, prompt)])

    assert async_to_sync(whole)() == "Echo: Hallo Hallo Hallo"
    assert kv_read(plugin_slug="word-guard", key="streams") == b"2"
