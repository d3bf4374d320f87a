"""Object-hook plugins run isolated as well as in-process: their registrations are read from the plugin's own
process before it is configured, and its `before_*` answers decide the write like an in-process plugin's."""

from __future__ import annotations

import sys

import pytest

from control_plane.config.exceptions import HookRejected
from control_plane.hooks.models import ObjectHookRegistration
from control_plane.llms.models import LLM
from control_plane.llms.services import llm_create

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(60)]

LLM_DATA = {"name": "gpt", "slug": "gpt", "vendor": "openai", "api_endpoint": "https://api.openai.example/v1"}


def test_isolated_object_hook_plugin_registers_and_refuses_a_write(register_plugin):
    command = [
        sys.executable,
        "-m",
        "shared_sdk.isolated.run",
        "control_plane.hooks.tests.plugins:RejectExperimentalPlugin",
    ]
    from control_plane.plugins.services import plugin_register

    plugin = plugin_register(data={"slug": "rejector-isolated", "command": command})
    kinds = set(ObjectHookRegistration.objects.filter(plugin=plugin).values_list("object_type", "hook_type"))
    assert kinds == {
        ("llm", "before_create"),
        ("llm", "before_update"),
        ("app", "before_create"),
        ("app", "before_update"),
    }
    with pytest.raises(HookRejected) as err:
        llm_create(data={**LLM_DATA, "name": "Experimental GPT"})
    assert err.value.message == "experimental models need sign-off"
    assert err.value.plugin == "rejector-isolated"
    assert not LLM.objects.exists()
    assert llm_create(data=LLM_DATA).name == "gpt"  # the same process lets an ordinary one through
