"""Who may use what travels to the edges: user active state and the groups whose catalogue grants each LLM are in
the snapshot, and every write that changes them (user update, catalogue change, the group admin) is a config
change the bridge publishes."""

from __future__ import annotations

import pytest

from control_plane.accounts.services import catalogue_set, group_save, user_create, user_update
from control_plane.applications.services import app_create
from control_plane.llms.services import llm_create
from control_plane.sync.models import ConfigChange
from control_plane.sync.selectors import snapshot_build

pytestmark = pytest.mark.django_db


def _snapshot_view(namespace: str):
    snapshot = snapshot_build(namespace=namespace)
    return {llm.slug: llm.granted_group_ids for llm in snapshot.llms}, {u.id: u for u in snapshot.users}


def test_user_state_and_group_grants_are_in_the_snapshot_and_each_change_is_recorded(admin_client):
    llm = llm_create(
        data={"name": "L", "slug": "l", "vendor": "mock", "api_endpoint": "http://m.local", "namespace": "eu"}
    )
    group = group_save(name="team")
    member = user_create(data={"username": "member", "groups": ["team"]})
    app_create(data={"name": "bot", "namespace": "eu", "owner_id": member.pk, "llm_ids": [llm.pk]})

    before = ConfigChange.objects.count()
    catalogue_set(group=group, llm_ids=[llm.pk])
    assert ConfigChange.objects.count() == before + 1
    grants, users = _snapshot_view("eu")
    assert grants == {"l": [group.pk]}
    assert users[member.pk].active and users[member.pk].group_ids == [group.pk]

    user_update(user=member, data={"is_active": False, "groups": []})
    _, users = _snapshot_view("eu")
    assert not users[member.pk].active and users[member.pk].group_ids == []

    # the group admin saves the catalogue inline itself: that is a config change too
    before = ConfigChange.objects.count()
    response = admin_client.post(
        "/admin/auth/group/add/",
        {
            "name": "second",
            "catalogue-TOTAL_FORMS": "1",
            "catalogue-INITIAL_FORMS": "0",
            "catalogue-MIN_NUM_FORMS": "0",
            "catalogue-MAX_NUM_FORMS": "1",
            "catalogue-0-llms": [str(llm.pk)],
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert ConfigChange.objects.count() > before
    grants, _ = _snapshot_view("eu")
    assert len(grants["l"]) == 2
