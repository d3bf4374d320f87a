"""Password guessing is locked out on every door that checks a password: after the limit of failed sign-ins for
one username from one address, even the right password is refused there (a 429 in the door's shape) until the
cool-off ends; from another address, or after a success, the count is that pair's own. Without it, the admin,
the portal and `POST /api/v1/auth/token/` took unlimited guesses."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db
PASSWORD = "pw-Right-123456!"
ATTACKER, OTHER = "203.0.113.7", "198.51.100.9"


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", "alice@example.com", PASSWORD, is_staff=True)


def _portal(client: Client, password: str, address: str = ATTACKER):
    return client.post("/portal/login/", {"username": "alice", "password": password}, REMOTE_ADDR=address)


def _admin(client: Client, password: str, address: str = ATTACKER):
    return client.post("/admin/login/", {"username": "alice", "password": password}, REMOTE_ADDR=address)


def _token(password: str, address: str = ATTACKER):
    data = {"username": "alice", "password": password, "name": "ci"}
    return APIClient().post("/api/v1/auth/token/", data, format="json", REMOTE_ADDR=address)


def test_the_portal_and_admin_lock_a_guessed_account_for_that_address_only(alice):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _portal(client, "guess").status_code == 200  # the form again, with its error
    assert _portal(client, "guess").status_code == 429  # the limit-th failure locks
    refused = _portal(client, PASSWORD)
    assert refused.status_code == 429 and int(refused["Retry-After"]) == settings.AXES_COOLOFF_TIME.total_seconds()
    assert "Too many failed sign-ins" in refused.content.decode()
    assert "_auth_user_id" not in client.session  # the right password did not sign in
    assert _admin(Client(), PASSWORD).status_code == 429  # the admin's door counts the same guesses
    assert _token(PASSWORD).status_code == 429
    signed_in = Client()
    assert _portal(signed_in, PASSWORD, address=OTHER).status_code == 302  # the user, elsewhere, is not locked out
    assert signed_in.session["_auth_user_id"] == str(alice.pk)


def test_the_api_answers_its_own_error_shape_and_a_success_resets_the_count(alice):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _token("guess").status_code == 401
    assert _token(PASSWORD).status_code == 201  # the count starts again
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _token("guess").status_code == 401
    assert _token(PASSWORD).status_code == 201
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _token("guess").status_code == 401
    assert _token("guess").status_code == 429
    refused = _token(PASSWORD)
    assert refused.status_code == 429
    body = refused.json()
    assert body["message"].startswith("Too many failed sign-ins") and body["extra"] == {
        "retry_after_s": int(settings.AXES_COOLOFF_TIME.total_seconds())
    }
