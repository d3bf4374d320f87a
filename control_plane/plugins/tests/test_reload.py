"""Reload is exact in the studio runtime: a plugin reloaded after a config change keeps only the new instance's
event subscriptions (one event reaches it once), and an isolated plugin's reload starts a fresh process, which
runs the plugin's current code."""

from __future__ import annotations

import sys
import textwrap

import pytest
from django.test import override_settings

from control_plane.plugins.runtime import call_plugin, plugin_host, publish_local_event
from control_plane.plugins.services import plugin_register, plugin_update
from shared_sdk.messages import Event, Schedule

from . import plugins as test_plugins

PLUGINS = "control_plane.plugins.tests.plugins"


@pytest.mark.django_db(transaction=True)
def test_reload_after_a_config_change_drops_the_old_subscriptions(caplog):
    test_plugins.RECEIVED.clear()
    plugin = plugin_register(
        data={"slug": "counter", "import_path": f"{PLUGINS}:EventCounter", "config": {"label": "v1"}}
    )
    call_plugin("counter", "execute_scheduled_task", Schedule(id="load"))  # loads it in this process
    publish_local_event(Event(topic="counter.ping", id="first"))
    assert test_plugins.RECEIVED == [("v1", "first")]

    plugin_update(plugin=plugin, data={"config": {"label": "v2"}})  # reloaded on commit
    publish_local_event(Event(topic="counter.ping", id="second"))
    assert test_plugins.RECEIVED == [("v1", "first"), ("v2", "second")]  # once, by the new instance only
    assert "restart the process to run changed code" in caplog.text  # in-process code is not re-imported


@pytest.mark.django_db(transaction=True)
def test_reload_of_an_isolated_plugin_restarts_its_process_with_the_new_code(tmp_path):
    """Python modules are imported once per process: an isolated plugin picks up new code because every reload
    spawns a fresh process."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    program = bin_dir / "versioned-plugin"

    def write(version: str) -> None:
        program.write_text(
            f"#!{sys.executable}\n"
            + textwrap.dedent(
                f"""
                from shared_sdk import BasePlugin, SchedulerPlugin, serve

                class Versioned(BasePlugin, SchedulerPlugin):
                    name = "versioned"
                    version = "{version}"

                    async def execute_scheduled_task(self, ctx, schedule):
                        return None

                serve(Versioned())
                """
            )
        )
        program.chmod(0o755)

    write("1.0.0")
    with override_settings(FJORDGATE_PLUGIN_COMMAND_DIRS=[str(bin_dir)]):
        plugin = plugin_register(data={"slug": "versioned", "command": [str(program)]})
        call_plugin("versioned", "execute_scheduled_task", Schedule(id="load"))
        first = plugin_host().get("versioned")
        assert first is not None and first.version == "1.0.0"

        write("2.0.0")
        plugin_update(plugin=plugin, data={"timeout_ms": 20_000})  # any change reloads it
        second = plugin_host().get("versioned")
        assert second is not None and second.version == "2.0.0" and second.pid != first.pid
