"""Mistakes a first plugin makes are refused when it is registered, in the API and the admin, saying what is
wrong, rather than registered with 201 and then doing nothing (or being refused by every edge, the reason only in
each edge's log).

A plugin whose manifest asks for a service scope that does not exist (a typo: `app.read` for `apps.read`) is
refused when it is registered, in the API and the admin, naming the scope and the known ones. Before, the
registration succeeded and every host then refused to load the plugin: the author saw `201 Created` and a plugin
that never ran, the reason only in each edge's log."""

from __future__ import annotations

import pytest

from control_plane.plugins.models import Plugin

pytestmark = pytest.mark.django_db

MISSPELLED = "control_plane.plugins.tests.plugins:MisspelledScope"
TYPO = "control_plane.plugins.tests.plugins:MisspelledHook"


@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "isolated"])
def test_api_refuses_a_manifest_with_an_unknown_scope(admin_api, isolated):
    response = admin_api.post(
        "/api/v1/plugins/", {"slug": "misspelled", "import_path": MISSPELLED, "isolated": isolated}, format="json"
    )
    assert response.status_code == 400, response.json()
    (message,) = response.json()["extra"]["fields"]["import_path"]
    assert "unknown service scope(s) app.read" in message and "apps.read" in message
    assert not Plugin.objects.exists()


def test_admin_form_refuses_a_manifest_with_an_unknown_scope(admin_client):
    response = admin_client.post(
        "/admin/plugins/plugin/add/",
        {
            "slug": "misspelled",
            "import_path": MISSPELLED,
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
    assert "unknown service scope(s) app.read" in response.content.decode()
    assert not Plugin.objects.exists()


@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "isolated"])
def test_api_refuses_a_hook_name_with_a_typo_saying_which_was_meant(admin_api, isolated):
    """`handle_postauth` is never called: registered, the plugin had no capability and changed nothing."""
    response = admin_api.post(
        "/api/v1/plugins/", {"slug": "typo", "import_path": TYPO, "isolated": isolated}, format="json"
    )
    assert response.status_code == 400, response.json()
    (message,) = response.json()["extra"]["fields"]["import_path"]
    assert "handle_postauth is not a method the host calls: did you mean handle_post_auth?" in message
    assert not Plugin.objects.exists()


@pytest.mark.parametrize("timeout_ms", ["30000", "-1"], ids=["alone", "beside-another-error"])
def test_admin_form_names_two_code_sources_in_words_not_as_the_constraint(admin_client, timeout_ms):
    """Both an entry point and an import path: the form said 'Constraint “plugin_one_code_source” is violated.'
    when another field was wrong too."""
    response = admin_client.post(
        "/admin/plugins/plugin/add/",
        {
            "slug": "two-sources",
            "entry_point": "desk-agent",
            "import_path": MISSPELLED,
            "command": "[]",
            "failure_policy": "open",
            "timeout_ms": timeout_ms,
            "raw_config": "{}",
            "extra_scopes": "[]",
            "objecthookregistration_set-TOTAL_FORMS": "0",
            "objecthookregistration_set-INITIAL_FORMS": "0",
        },
    )
    page = response.content.decode()
    assert response.status_code == 200 and "Set exactly one of entry_point" in page
    assert "plugin_one_code_source" not in page
    assert not Plugin.objects.exists()
