"""The KV store read through the API and the admin shows each caller only the entries of plugins in namespaces
it may view: a plugin's stored values are objects of its namespace, like the plugin."""

from __future__ import annotations

import base64

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

from control_plane.accounts.models import NamespaceRole
from control_plane.kv.models import KVEntry
from control_plane.kv.services import kv_write
from control_plane.plugins.models import Plugin

pytestmark = pytest.mark.django_db


@pytest.fixture
def stored():
    """A plugin of team-a and one of team-b keep a value each; a deleted plugin's entry is left behind."""
    for slug, namespace in (("notes-a", "team-a"), ("notes-b", "team-b")):
        Plugin.objects.create(slug=slug, name=slug, namespace=namespace, import_path=f"x.{slug.replace('-', '_')}:P")
        kv_write(plugin_slug=slug, key="oauth/refresh-token", value=f"secret-of-{namespace}".encode())
    kv_write(plugin_slug="gone", key="left", value=b"orphan")


def _viewer(namespace: str):
    user = get_user_model().objects.create_user(f"viewer-{namespace}", password="pw-Viewer-123456!", is_staff=True)
    NamespaceRole.objects.create(user=user, namespace=namespace, role="viewer")
    return user


def test_a_viewer_of_one_namespace_reads_only_its_plugins_kv_entries(stored, admin_user):
    api = APIClient()
    api.force_authenticate(_viewer("team-a"))
    listed = api.get("/api/v1/kv-entries/").json()["results"]
    assert sorted(entry["plugin_slug"] for entry in listed) == ["gone", "notes-a"]
    assert b"secret-of-team-a" in base64.b64decode(
        next(e for e in listed if e["plugin_slug"] == "notes-a")["value_base64"]
    )
    other = KVEntry.objects.get(plugin_slug="notes-b")
    assert api.get(f"/api/v1/kv-entries/{other.pk}/").status_code == 404
    assert api.get("/api/v1/kv-entries/?plugin_slug=notes-b").json()["count"] == 0
    # a super-administrator still sees everything
    root = APIClient()
    root.force_authenticate(admin_user)
    assert root.get("/api/v1/kv-entries/").json()["count"] == 3


def test_the_admin_lists_only_the_kv_entries_of_viewable_namespaces(stored):
    client = Client()
    client.force_login(_viewer("team-a"))
    listing = client.get("/admin/kv/kventry/")
    assert listing.status_code == 200
    shown = sorted(entry.plugin_slug for entry in listing.context["cl"].result_list)
    assert shown == ["gone", "notes-a"]
    other = KVEntry.objects.get(plugin_slug="notes-b")
    assert client.get(f"/admin/kv/kventry/{other.pk}/change/").status_code in (302, 404)
