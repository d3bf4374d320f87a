"""A plugin's config in the admin is a form generated from its JSON Schema (json-editor, vendored): a person edits
a collection's name in the form, saves, and the server (which validates against the schema) stores it."""

from __future__ import annotations

import pytest

from control_plane.plugins.services import plugin_register

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]


def test_config_array_is_edited_as_a_form(page, screenshot, live_server, django_user_model):
    django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123456")
    config = {"collections": [{"id": "handbook", "name": "Employee handbook", "privacy_score": 20}]}
    plugin = plugin_register(data={"slug": "docs", "entry_point": "document-collections", "config": config})
    base = live_server.url
    page.goto(f"{base}/admin/login/?next=/admin/plugins/plugin/{plugin.pk}/change/")
    page.fill("input[name=username]", "root")
    page.fill("input[name=password]", "pw-root-123456")
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/admin/plugins/plugin/{plugin.pk}/change/")
    name = page.locator(".fj-json-editor input[name='root[0][name]']")
    name.wait_for()
    assert name.input_value() == "Employee handbook"
    assert not page.locator("textarea[name=config__collections]").is_visible(), "the form replaces the JSON box"
    name.fill("Staff handbook")
    name.press("Tab")
    screenshot("config-form")
    page.click("input[name=_continue]")
    page.wait_for_load_state()
    assert "was changed successfully" in page.content()
    plugin.refresh_from_db()
    assert plugin.config["collections"][0]["name"] == "Staff handbook"
