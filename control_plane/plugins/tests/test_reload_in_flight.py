"""A studio plugin reloaded (its row edited) or unloaded (deactivated) while a call, a stream or an LLM call's chain
is using it keeps its old instance running until that use is over, then stops it: the call in flight returns its
answer, the stream yields every item, and the next call runs on the new instance. Bounded as at the edge: past
`RETIRED_MAX` waiting instances the oldest is stopped at once, and none waits longer than `RETIRE_AFTER_S`.

The plugin (`HeldCall`) holds its call until the test creates a file, and logs what each instance (by its config's
label) did, `shutdown` included, so the order of "call returned" and "instance stopped" is read back from its log.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.db import connections

from control_plane.plugins.runtime import call_plugin, plugin_host
from control_plane.plugins.services import plugin_register, plugin_update
from control_plane.plugins.streaming import plugin_stream
from shared_sdk import Context, Runtime
from shared_sdk.messages import AgentChunkType, AgentMessageRequest, Schedule

pytestmark = pytest.mark.django_db(transaction=True)  # the calls in flight read the plugin's row on their threads

HELD = "control_plane.plugins.tests.plugins:HeldCall"
ISOLATED = pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "isolated"])


class Held:
    """The `HeldCall` plugin's directory: what its instances logged, and the file that lets held calls go."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.threads: list[concurrent.futures.Future] = []

    def config(self, label: str) -> dict[str, str]:
        return {"label": label, "dir": str(self.path)}

    def lines(self) -> list[str]:
        log = self.path / "log"
        return log.read_text().splitlines() if log.exists() else []

    def wait_for(self, line: str, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while line not in self.lines():
            assert time.monotonic() < deadline, f"{line!r} never logged: {self.lines()}"
            time.sleep(0.02)

    def release(self) -> None:
        (self.path / "release").touch()

    def register(self, *, isolated: bool = False):
        plugin = plugin_register(
            data={"slug": "held", "import_path": HELD, "isolated": isolated, "config": self.config("v1")}
        )
        call_plugin("held", "execute_scheduled_task", Schedule(id="load"))  # loads it in this process
        return plugin

    def call_in_flight(self, call_id: str) -> concurrent.futures.Future:
        """A call that holds until `release`, on a thread of its own; returns once the plugin is holding it."""
        label = self._current_label()
        future = self.on_thread(
            lambda: call_plugin("held", "execute_scheduled_task", Schedule(id=call_id, config={"hold": True}))
        )
        self.wait_for(f"{label} holding {call_id}")
        return future

    def on_thread(self, fn: Callable[[], Any]) -> concurrent.futures.Future:
        def run() -> Any:
            try:
                return fn()
            finally:
                connections.close_all()  # this thread's own connections

        executor = concurrent.futures.ThreadPoolExecutor(1)
        future = executor.submit(run)
        executor.shutdown(wait=False)
        self.threads.append(future)
        return future

    def _current_label(self) -> str:
        handle = plugin_host().get("held")
        assert handle is not None
        return str(handle.spec.config["label"])


@pytest.fixture
def held(tmp_path):
    """The plugin's directory; whatever a test left holding is let go (and waited for) before the runtime stops."""
    directory = Held(tmp_path)
    yield directory
    directory.release()
    concurrent.futures.wait(directory.threads, timeout=30)


@ISOLATED
def test_a_call_in_flight_during_a_reload_returns_and_only_then_is_its_instance_stopped(held, isolated):
    plugin = held.register(isolated=isolated)
    in_flight = held.call_in_flight("slow")

    plugin_update(plugin=plugin, data={"config": held.config("v2")})  # reloaded on commit, while the call holds
    call_plugin("held", "execute_scheduled_task", Schedule(id="next"))
    assert held.lines()[-1] == "v2 next", "the next call runs on the new instance"
    assert "v1 shutdown" not in held.lines(), "the old instance still serves the call in flight"

    held.release()
    assert in_flight.result(20) is None  # its answer, not a PluginCallError
    held.wait_for("v1 shutdown")
    lines = held.lines()
    assert lines.index("v1 slow") < lines.index("v1 shutdown")
    assert "v2 shutdown" not in lines


@ISOLATED
def test_a_stream_in_flight_during_a_reload_yields_every_item_then_its_instance_stops(held, isolated):
    plugin = held.register(isolated=isolated)

    async def chat() -> list[Any]:
        request = AgentMessageRequest(user_message="chat")
        ctx = Context(runtime=Runtime.STUDIO)
        return [chunk async for chunk in plugin_stream("held", "handle_agent_message", request, ctx=ctx)]

    in_flight = held.on_thread(async_to_sync(chat))
    held.wait_for("v1 holding chat")  # the first item is out, the second not yet
    plugin_update(plugin=plugin, data={"config": held.config("v2")})
    assert "v1 shutdown" not in held.lines()

    held.release()
    chunks = in_flight.result(20)
    assert [chunk.content for chunk in chunks] == ["v1 first", "v1 second", ""]
    assert chunks[-1].type is AgentChunkType.DONE
    held.wait_for("v1 shutdown")
    lines = held.lines()
    assert lines.index("v1 chat") < lines.index("v1 shutdown")


def test_a_plugin_deactivated_during_a_call_is_stopped_once_the_call_returns(held):
    plugin = held.register()
    in_flight = held.call_in_flight("slow")

    plugin_update(plugin=plugin, data={"active": False})  # unloaded on commit
    assert "held" not in plugin_host()
    assert "v1 shutdown" not in held.lines()

    held.release()
    assert in_flight.result(20) is None
    held.wait_for("v1 shutdown")
    lines = held.lines()
    assert lines.index("v1 slow") < lines.index("v1 shutdown")


def test_past_the_bound_the_oldest_waiting_instance_is_stopped_at_once(held, monkeypatch):
    from control_plane.plugins import handle_users

    monkeypatch.setattr(handle_users, "RETIRED_MAX", 2)
    plugin = held.register()
    calls = [held.call_in_flight("held1")]
    for n in (2, 3):
        plugin_update(plugin=plugin, data={"config": held.config(f"v{n}")})
        calls.append(held.call_in_flight(f"held{n}"))
    assert not [line for line in held.lines() if line.endswith("shutdown")], "v1 and v2 wait for their calls"

    plugin_update(plugin=plugin, data={"config": held.config("v4")})  # v3 waits too: three, one more than the bound
    assert "v1 shutdown" in held.lines(), "the oldest is stopped at once"
    assert "v2 shutdown" not in held.lines() and "v3 shutdown" not in held.lines()

    held.release()
    for call in calls[1:]:
        assert call.result(20) is None
    calls[0].exception(20)  # whatever the stopped instance's call ended with
    held.wait_for("v2 shutdown")
    held.wait_for("v3 shutdown")
    lines = held.lines()
    assert lines.index("v2 held2") < lines.index("v2 shutdown") and lines.index("v3 held3") < lines.index("v3 shutdown")
    assert "v4 shutdown" not in lines


def test_an_instance_waits_for_its_calls_at_most_retire_after_s(held, monkeypatch):
    from control_plane.plugins import handle_users

    monkeypatch.setattr(handle_users, "RETIRE_AFTER_S", 0.3)
    plugin = held.register()
    in_flight = held.call_in_flight("stuck")

    plugin_update(plugin=plugin, data={"config": held.config("v2")})
    held.wait_for("v1 shutdown", timeout_s=5)  # stopped although its call still holds
    assert "v1 stuck" not in held.lines()
    held.release()
    in_flight.exception(20)
