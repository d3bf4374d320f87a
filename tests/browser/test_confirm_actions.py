"""Actions that cannot be undone ask first, in real headless Chromium: revoking or rotating a key in the portal
(either stops the key at once) was one click, so a misplaced one cut off every client using the key."""

from __future__ import annotations

import pytest

from control_plane.applications.models import App, Credential
from control_plane.applications.services import credential_create

from .support import portal_login

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def test_revoking_and_rotating_a_key_ask_first(page, screenshot, live_server, django_user_model):
    alice = django_user_model.objects.create_user("alice", "alice@example.com", "pw-alice-123456")
    app = App.objects.create(name="bot", owner=alice, approved=True, is_active=True)
    credential, _ = credential_create(app=app, name="laptop", user_id=alice.pk)
    base = live_server.url
    portal_login(page, base)
    page.goto(f"{base}/portal/apps/{app.pk}/")

    asked: list[str] = []

    def answer(accept: bool):
        def handle(dialog) -> None:
            asked.append(dialog.message)
            dialog.accept() if accept else dialog.dismiss()

        return handle

    for button in ("Revoke", "Rotate"):
        page.once("dialog", answer(False))
        page.click(f"button:text-is('{button}')")
        assert page.url == f"{base}/portal/apps/{app.pk}/"
    assert asked[0].startswith(f"Revoke key {credential.prefix}") and asked[1].startswith("Rotate key")
    assert list(Credential.objects.values_list("revoked_at", flat=True)) == [None]  # both dismissed: nothing done

    page.once("dialog", answer(True))
    page.click("button:text-is('Revoke')")
    page.wait_for_load_state()
    assert "revoked" in page.locator("ul.messages").inner_text()
    assert Credential.objects.get().revoked_at is not None
    screenshot("revoked")
