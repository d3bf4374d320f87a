"""Plugin code is found, not named: a registration that names code outside the operator's allow-list is a 400 and
runs nothing (no import, no process), in the API, the admin and the studio host.

Each hostile registration would leave a marker file if its code ran: a module that writes one when imported, a
command that creates one.
"""

from __future__ import annotations

import os
import sys
import uuid

import pytest
from django.test import override_settings

from control_plane.plugins.models import Plugin
from control_plane.plugins.runtime import call_plugin, plugin_host
from shared_sdk import PluginCallError
from shared_sdk.testing import make_context, make_request

pytestmark = pytest.mark.django_db


@pytest.fixture
def marker_module(tmp_path, monkeypatch):
    """An importable module (outside every allowed root) that writes `marker` when it is imported."""
    name = f"fj_marker_{uuid.uuid4().hex[:8]}"
    marker = tmp_path / "imported.marker"
    (tmp_path / f"{name}.py").write_text(
        f"open({str(marker)!r}, 'w').write('imported')\nclass Plugin:\n    name = 'marker'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name, marker
    sys.modules.pop(name, None)


def _post(admin_api, **source):
    return admin_api.post("/api/v1/plugins/", {"slug": f"p-{uuid.uuid4().hex[:6]}", **source}, format="json")


def test_api_refuses_import_paths_outside_the_roots_without_importing_them(admin_api, marker_module, capfd):
    name, marker = marker_module
    for import_path in ("os:system", "this:s", f"{name}:Plugin", "plugins.request_tagger.plugin:os.system"):
        response = _post(admin_api, import_path=import_path)
        assert response.status_code == 400, import_path
        assert "import_path" in response.json()["extra"]["fields"], response.json()
    assert not marker.exists()  # the module was never imported
    assert name not in sys.modules and "this" not in sys.modules
    assert "Beautiful is better than ugly" not in capfd.readouterr().out  # `this` prints the Zen on import
    assert not Plugin.objects.exists()


def test_api_refuses_commands_outside_the_command_dirs_without_running_them(admin_api, tmp_path):
    marker = tmp_path / "ran.marker"
    commands = [
        ["id"],
        ["/bin/sh", "-c", f"touch {marker}"],
        ["/usr/bin/touch", str(marker)],
        [sys.executable + "/../../../../bin/sh", "-c", f"touch {marker}"],  # no climbing out of an allowed dir
    ]
    for command in commands:
        response = _post(admin_api, command=command)
        assert response.status_code == 400, command
        assert "command" in response.json()["extra"]["fields"], response.json()
    with override_settings(FJORDGATE_PLUGIN_COMMAND_DIRS=[]):  # the default: no command runs at all
        response = _post(admin_api, command=[sys.executable, "-c", f"open({str(marker)!r}, 'w')"])
        assert response.status_code == 400
        assert "FJORDGATE_PLUGIN_COMMAND_DIRS" in response.json()["extra"]["fields"]["command"][0]
    assert not marker.exists()
    assert not Plugin.objects.exists()


def test_a_bundled_plugin_is_registered_by_its_entry_point(admin_api):
    response = _post(admin_api, entry_point="request-tagger", config={"tags": ["t"]})
    assert response.status_code == 201, response.json()
    assert "post_auth" in response.json()["capabilities"]
    assert "restart" in response.json()["code_changes"]  # says plainly how new code of an in-process plugin runs
    unknown = _post(admin_api, entry_point="no-such-plugin")
    assert unknown.status_code == 400
    assert "request-tagger" in unknown.json()["extra"]["fields"]["entry_point"][0]  # lists what is installed
    both = _post(admin_api, entry_point="request-tagger", import_path="plugins.request_tagger.plugin:create_plugin")
    assert both.status_code == 400


def test_admin_form_refuses_a_hostile_import_path_as_a_form_error(admin_client, marker_module):
    name, marker = marker_module
    response = admin_client.post(
        "/admin/plugins/plugin/add/",
        {
            "slug": "hostile",
            "import_path": f"{name}:Plugin",
            "command": "[]",
            "failure_policy": "open",
            "timeout_ms": 30000,
            "raw_config": "{}",
            "extra_scopes": "[]",
            "objecthookregistration_set-TOTAL_FORMS": "0",
            "objecthookregistration_set-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200  # the form again, with its error
    assert "not under an allowed import root" in response.content.decode()
    assert not marker.exists() and not Plugin.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_studio_host_refuses_a_row_written_around_the_services(marker_module):
    """A row that never went through validation (SQL, an old version) is still not imported by the studio."""
    name, marker = marker_module
    Plugin.objects.create(slug="sneaked", name="sneaked", import_path=f"{name}:Plugin")
    with pytest.raises(PluginCallError) as err:
        call_plugin("sneaked", "execute_scheduled_task", None)
    assert err.value.kind == "unavailable" and "allowed import root" in err.value.detail
    assert not marker.exists()


@pytest.mark.django_db(transaction=True)
def test_an_entry_point_runs_isolated_without_any_command(admin_api):
    """With no command directory allowed (the default), an installed plugin still runs in its own process."""
    with override_settings(FJORDGATE_PLUGIN_COMMAND_DIRS=[]):
        response = _post(admin_api, entry_point="request-tagger", isolated=True)
        assert response.status_code == 201, response.json()
        assert "fresh process" in response.json()["code_changes"]
        slug = response.json()["slug"]
        assert call_plugin(slug, "handle_post_auth", make_request("hi"), ctx=make_context()) is not None
        handle = plugin_host().get(slug)
        assert handle is not None and handle.pid not in (None, os.getpid())  # it ran in its own process
    both = _post(admin_api, command=[sys.executable], isolated=True)
    assert both.status_code == 400 and "isolated" in both.json()["extra"]["fields"]


@pytest.mark.django_db(transaction=True)
def test_an_isolated_import_path_must_name_what_its_allowed_module_defines(admin_api):
    """`plugins.response_cache.plugin:time` is a module under an allowed root, but `time` is only imported there:
    refused in process, it was registered isolated (201) and served, the child process checking nothing."""
    for isolated in (False, True):
        response = _post(admin_api, import_path="plugins.response_cache.plugin:time", isolated=isolated)
        assert response.status_code == 400, (isolated, response.json())
        assert "not under an allowed import root" in str(response.json()["extra"]["fields"])
    assert not Plugin.objects.exists()
    fine = _post(admin_api, import_path="plugins.request_tagger.plugin:create_plugin", isolated=True)
    assert fine.status_code == 201, fine.json()  # a plugin its module defines still runs isolated
