"""Renaming a tag in the admin changes the config of every namespace whose apps carry it."""

from __future__ import annotations

import pytest

from control_plane.applications.services import app_create
from control_plane.catalog.models import Tag
from control_plane.catalog.services import tag_get_or_create
from control_plane.sync.models import ConfigChange
from control_plane.sync.selectors import snapshot_build

pytestmark = pytest.mark.django_db


def test_renaming_a_tag_in_the_admin_records_a_config_change_per_namespace(client, admin_user):
    tag = tag_get_or_create(name="beta")
    app_create(data={"name": "a", "namespace": "eu", "tags": [tag.name]})
    unused = tag_get_or_create(name="unused")
    client.force_login(admin_user)
    before = set(ConfigChange.objects.values_list("pk", flat=True))

    response = client.post(f"/admin/catalog/tag/{tag.pk}/change/", {"name": "beta-testers"})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Tag.objects.get(pk=tag.pk).name == "beta-testers"
    changes = list(ConfigChange.objects.exclude(pk__in=before).values_list("namespace", "reason"))
    assert changes == [("eu", "tag beta renamed to beta-testers")]
    assert snapshot_build(namespace="eu").apps[0].tags == ["beta-testers"]

    # A tag no app carries, or a save that keeps the name, changes no edge's config.
    client.post(f"/admin/catalog/tag/{unused.pk}/change/", {"name": "still-unused"})
    client.post(f"/admin/catalog/tag/{tag.pk}/change/", {"name": "beta-testers"})
    assert ConfigChange.objects.exclude(pk__in=before).count() == 1


def test_a_tag_rename_to_an_existing_name_is_a_form_error(client, admin_user):
    tag = tag_get_or_create(name="beta")
    tag_get_or_create(name="gamma")
    client.force_login(admin_user)
    response = client.post(f"/admin/catalog/tag/{tag.pk}/change/", {"name": "gamma"})
    assert response.status_code == 200 and "Tag with this Name already exists." in response.content.decode()
