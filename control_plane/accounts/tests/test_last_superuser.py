"""The last active superuser can be neither deleted nor deactivated nor demoted: not by the service, the API or the
admin (single delete, bulk delete, change form). With a second one, the same operations succeed."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from control_plane.accounts.services import LAST_SUPERUSER_MESSAGE, user_delete, user_update
from control_plane.config.tests.admin_form_data import form_data

pytestmark = pytest.mark.django_db
User = get_user_model()
DEMOTIONS = [{"is_active": False}, {"is_superuser": False}, {"is_staff": False}]


def _still_administrator(user) -> bool:
    user.refresh_from_db()
    return user.is_active and user.is_superuser and user.is_staff


def test_service_refuses_to_delete_the_last_superuser(admin_user):
    with pytest.raises(ValidationError, match="last active superuser"):
        user_delete(user=admin_user)
    assert User.objects.filter(pk=admin_user.pk).exists()


@pytest.mark.parametrize("change", DEMOTIONS)
def test_service_refuses_to_demote_the_last_superuser(admin_user, change):
    with pytest.raises(ValidationError, match="last active superuser"):
        user_update(user=admin_user, data=change)
    assert _still_administrator(admin_user)


@pytest.mark.parametrize("change", DEMOTIONS)
def test_with_another_superuser_demoting_and_deleting_work(admin_user, change):
    other = User.objects.create_superuser("second", "second@example.com", "pw-second-123456")
    user_update(user=admin_user, data=change)
    assert not _still_administrator(admin_user)
    with pytest.raises(ValidationError):  # `other` is now the last one
        user_delete(user=other)
    user_update(user=admin_user, data={"is_active": True, "is_superuser": True, "is_staff": True})
    user_delete(user=other)
    assert not User.objects.filter(pk=other.pk).exists()


def test_a_superuser_who_is_not_staff_does_not_count(admin_user):
    User.objects.create_user("nostaff", "n@example.com", "pw-nostaff-12345", is_superuser=True, is_staff=False)
    with pytest.raises(ValidationError):
        user_delete(user=admin_user)


def test_api_refuses_to_delete_or_demote_the_last_superuser(admin_api, admin_user):
    response = admin_api.delete(f"/api/v1/users/{admin_user.pk}/")
    assert response.status_code == 400
    assert response.json()["message"] == LAST_SUPERUSER_MESSAGE
    for change in DEMOTIONS:
        response = admin_api.patch(f"/api/v1/users/{admin_user.pk}/", change, format="json")
        assert response.status_code == 400, change
        assert "last active superuser" in response.json()["message"]
    assert _still_administrator(admin_user)


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def test_admin_single_delete_is_refused_with_a_message(client, admin_user):
    client.force_login(admin_user)
    response = client.post(f"/admin/auth/user/{admin_user.pk}/delete/", {"post": "yes"}, follow=True)
    assert response.status_code == 200
    assert LAST_SUPERUSER_MESSAGE in _messages(response)
    assert User.objects.filter(pk=admin_user.pk).exists()


def test_admin_bulk_delete_is_refused_with_a_message(client, admin_user, plain_user):
    client.force_login(admin_user)
    response = client.post(
        "/admin/auth/user/",
        {"action": "delete_selected", "_selected_action": [admin_user.pk, plain_user.pk], "post": "yes"},
        follow=True,
    )
    assert response.status_code == 200
    assert LAST_SUPERUSER_MESSAGE in " ".join(_messages(response))
    assert User.objects.filter(pk=admin_user.pk).exists()


@pytest.mark.parametrize("flag", ["is_active", "is_superuser", "is_staff"])
def test_admin_change_form_refuses_to_demote_the_last_superuser(client, admin_user, flag):
    client.force_login(admin_user)
    url = f"/admin/auth/user/{admin_user.pk}/change/"
    data = form_data(client.get(url).content.decode(), "user_form")
    data.pop(flag)
    response = client.post(url, data)
    assert response.status_code == 200  # the form again, with the error
    assert LAST_SUPERUSER_MESSAGE in response.content.decode().replace("&#x27;", "'")
    assert _still_administrator(admin_user)
