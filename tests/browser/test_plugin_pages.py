"""Plugin pages in real headless Chromium: the bundled UI plugin's admin page (its sandboxed frame loads with a
signed link, asks the plugin over RPC through the admin page, and shows the answer) and the bundled portal
plugin's page (a user keeps a prompt; the list comes back from the plugin for that user only)."""

from __future__ import annotations

import pytest

from control_plane.llms.services import llm_create
from control_plane.plugins.services import plugin_register

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]


def _sign_in(page, username: str, password: str) -> None:
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit], input[type=submit]")


def test_ui_plugin_page_in_the_admin_round_trips_rpc(page, screenshot, live_server, django_user_model):
    django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123456")
    llm_create(data={"name": "Team GPT", "slug": "team-gpt", "vendor": "openai", "api_endpoint": "http://127.0.0.1:9"})
    plugin_register(data={"slug": "llm-health-board", "entry_point": "llm-health-board"})
    base = live_server.url

    page.goto(f"{base}/admin/login/?next=/admin/")
    _sign_in(page, "root", "pw-root-123456")
    page.wait_for_url(f"{base}/admin/")
    assert page.title().startswith("Fjordgate administration")
    assert page.locator("a[href='/admin/dashboard/']").first.is_visible()
    page.click("#content-main >> text=LLM health board")
    page.wait_for_url(f"{base}/admin/plugins/llm-health-board/")
    frame = page.frame_locator("#fj-plugin-frame")
    row = frame.locator("#board tbody tr")
    row.first.wait_for()
    assert "Team GPT" in row.first.inner_text() and "openai" in row.first.inner_text()
    assert frame.locator("#status").inner_text() == "1 LLM(s)"
    # "Check now" goes to the plugin, which calls the (unreachable) LLM and records the failure: a second round trip
    frame.locator("button", has_text="Check now").click()
    failures = frame.locator("#board tbody tr td.failures")
    failures.filter(has_text="1").wait_for()
    assert frame.locator("#board tbody tr td.checks").inner_text() == "1"
    # the frame runs sandboxed: its own origin is opaque, so it cannot reach into the admin page
    assert (
        page.evaluate("document.getElementById('fj-plugin-frame').getAttribute('sandbox')")
        == "allow-scripts allow-forms"
    )
    origin = page.frames[1].evaluate("self.origin")
    assert origin == "null"
    screenshot("health-board")


def test_portal_plugin_page_keeps_a_users_prompt(page, screenshot, live_server, django_user_model):
    django_user_model.objects.create_user("alice", "alice@example.com", "pw-alice-123456")
    plugin_register(
        data={
            "slug": "prompt-library",
            "entry_point": "prompt-library",
            "config": {"shared": [{"title": "Summarise", "text": "Summarise in three bullet points."}]},
        }
    )
    base = live_server.url
    page.goto(f"{base}/portal/")
    _sign_in(page, "alice", "pw-alice-123456")
    page.wait_for_url(f"{base}/portal/")
    page.click("header >> text=Prompt library")
    page.wait_for_url(f"{base}/portal/plugins/prompt-library/")
    frame = page.frame_locator("#fj-plugin-frame")
    frame.locator("#hello", has_text="Prompts of alice").wait_for()
    assert "Summarise" in frame.locator("#shared").inner_text()
    frame.locator("input[name=title]").fill("Release notes")
    frame.locator("textarea[name=text]").fill("Write release notes from these commits.")
    frame.locator("button[type=submit]").click()
    frame.locator("#mine .title", has_text="Release notes").wait_for()
    page.reload()
    frame = page.frame_locator("#fj-plugin-frame")
    frame.locator("#mine .title", has_text="Release notes").wait_for()  # kept by the plugin, not the page
    screenshot("prompt-library")
