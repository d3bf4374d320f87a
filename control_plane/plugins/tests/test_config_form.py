"""The plugin admin's config form: object/array properties carry their JSON Schema for the generated form, and the
server still validates what is posted (a score out of range is a form error, nothing saved)."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client

from control_plane.plugins.services import plugin_register

pytestmark = pytest.mark.django_db(transaction=True)


def _change_data(plugin) -> dict:
    """The change form of the document-collections plugin as the admin posts it, its config left to the test."""
    return {
        "slug": "docs",
        "name": plugin.name,
        "version": plugin.version,
        "description": plugin.description,
        "entry_point": "document-collections",
        "import_path": "",
        "command": "[]",
        "failure_policy": plugin.failure_policy,
        "timeout_ms": plugin.timeout_ms,
        "namespace": "",
        "active": "on",
        "global_order": "",
        "extra_scopes": "[]",
        "raw_config": "{}",
        "object_hooks-TOTAL_FORMS": 0,
        "object_hooks-INITIAL_FORMS": 0,
    }


def test_array_property_gets_a_schema_form_and_server_validation(admin_user):
    plugin = plugin_register(data={"slug": "docs", "entry_point": "document-collections"})
    client = Client()
    client.force_login(admin_user)
    url = f"/admin/plugins/plugin/{plugin.pk}/change/"
    page = client.get(url).content.decode()
    assert "plugins/jsoneditor.min.js" in page and 'class="fj-json-editor"' in page
    assert 'id="id_config__collections-schema"' in page and '"privacy_score"' in page
    data = _change_data(plugin)
    bad = [{"id": "x", "name": "X", "privacy_score": 101}]
    refused = client.post(url, {**data, "config__collections": json.dumps(bad)})
    assert refused.status_code == 200 and "101" in refused.content.decode()
    plugin.refresh_from_db()
    assert plugin.config.get("collections", []) == []
    good = [{"id": "x", "name": "X", "privacy_score": 40}]
    saved = client.post(url, {**data, "config__collections": json.dumps(good)})
    assert saved.status_code == 302, re.findall(r"errorlist[^<]*<li>([^<]*)", saved.content.decode())
    plugin.refresh_from_db()
    assert plugin.config["collections"] == good


@pytest.mark.parametrize("depth", [200, 5000])
def test_a_config_nested_too_deeply_is_a_form_error_not_a_500(admin_user, depth):
    """200 levels parse and are refused by the bound; 5,000 made Python's json raise RecursionError (a 500)."""
    plugin = plugin_register(data={"slug": "docs", "entry_point": "document-collections"})
    client = Client(raise_request_exception=False)
    client.force_login(admin_user)
    url = f"/admin/plugins/plugin/{plugin.pk}/change/"
    data = _change_data(plugin)
    deep = "[" * depth + "]" * depth
    refused = client.post(url, {**data, "config__collections": deep})
    assert refused.status_code == 200
    assert "nested deeper than 128 levels" in refused.content.decode()
    plugin.refresh_from_db()
    assert plugin.config.get("collections", []) == []


def test_a_config_with_a_nul_character_is_a_form_error_not_a_500(admin_user):
    """jsonb cannot hold `\\u0000`: the save failed in PostgreSQL, a 500."""
    plugin = plugin_register(data={"slug": "docs", "entry_point": "document-collections"})
    client = Client(raise_request_exception=False)
    client.force_login(admin_user)
    url = f"/admin/plugins/plugin/{plugin.pk}/change/"
    page = client.get(url)
    assert page.status_code == 200
    data = _change_data(plugin)
    nul = json.dumps([{"id": "x\u0000y", "name": "X", "privacy_score": 40}])
    refused = client.post(url, {**data, "config__collections": nul})
    assert refused.status_code == 200
    assert "cannot contain NUL" in refused.content.decode()
    plugin.refresh_from_db()
    assert plugin.config.get("collections", []) == []
