"""An LLM's chain overrides a plugin's config per LLM, and an override may hold a secret (a guardrail service's API
key): the API shows it only to those who may change the LLM, as it shows a plugin's own config; a viewer of the
namespace and a user whose catalogue offers the LLM read it in the clear."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

from control_plane.accounts.models import NamespaceRole
from control_plane.accounts.services import catalogue_set, group_save
from control_plane.llms.services import llm_create, llm_set_plugin_chain
from control_plane.plugins.models import Plugin

pytestmark = pytest.mark.django_db
OVERRIDE = {"service": {"api_key": "sk-guard-0123456789", "url": "https://guard.example"}, "threshold": 3}
METADATA = {"api_version": "2024-10-21", "client_secret": "cs-0123456789"}


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _role_holder(namespace: str, role: str) -> APIClient:
    user = get_user_model().objects.create_user(f"{role}-{namespace or 'global'}", is_staff=True)
    NamespaceRole.objects.create(user=user, namespace=namespace, role=role)
    return _client(user)


@pytest.fixture
def llm():
    """An LLM of namespace team-a with a secret in its metadata and one in its chain's override."""
    plugin = Plugin.objects.create(slug="guard", name="Guard", import_path="plugins.ip_filter.plugin:create_plugin")
    made = llm_create(
        data={
            "name": "Team A",
            "slug": "team-a-llm",
            "vendor": "mock",
            "api_endpoint": "http://mock.local/v1",
            "namespace": "team-a",
            "metadata": METADATA,
        }
    )
    llm_set_plugin_chain(llm=made, chain=[{"plugin": plugin, "order_index": 0, "config_override": OVERRIDE}])
    return made


def test_chain_overrides_and_metadata_show_their_secrets_only_to_who_may_change_the_llm(llm, admin_user, plain_user):
    group = group_save(name="team")
    catalogue_set(group=group, llm_ids=[llm.pk])
    plain_user.groups.add(group)

    redacted_override = {"service": {"api_key": "[redacted]", "url": "https://guard.example"}, "threshold": 3}
    for reader in (_role_holder("team-a", "viewer"), _client(plain_user)):
        shown = reader.get(f"/api/v1/llms/{llm.pk}/")
        assert shown.status_code == 200
        assert shown.json()["plugin_chain"][0]["config_override"] == redacted_override
        assert shown.json()["metadata"] == {"api_version": "2024-10-21", "client_secret": "[redacted]"}
        listed = reader.get("/api/v1/llms/").content.decode()
        assert "sk-guard-0123456789" not in listed and "cs-0123456789" not in listed
    for writer in (_role_holder("team-a", "admin"), _client(admin_user)):
        shown = writer.get(f"/api/v1/llms/{llm.pk}/").json()
        assert shown["plugin_chain"][0]["config_override"] == OVERRIDE and shown["metadata"] == METADATA


def test_the_admin_shows_a_viewer_the_llm_with_its_secrets_redacted(llm, admin_user):
    url = f"/admin/llms/llm/{llm.pk}/change/"
    viewer = get_user_model().objects.create_user("viewer", is_staff=True)
    for namespace in ("team-a", ""):  # the LLM's namespace, and the global plugins of its chain
        NamespaceRole.objects.create(user=viewer, namespace=namespace, role="viewer")
    page = Client()
    page.force_login(viewer)
    shown = page.get(url)
    html = shown.content.decode()
    assert shown.status_code == 200 and "Team A" in html
    assert "sk-guard-0123456789" not in html and "cs-0123456789" not in html
    assert "https://guard.example" in html and "2024-10-21" in html  # the rest is shown
    root = Client()
    root.force_login(admin_user)
    html = root.get(url).content.decode()
    assert "sk-guard-0123456789" in html and "cs-0123456789" in html  # to whoever may change it, as stored


def test_an_administrator_chains_only_plugins_it_may_view(llm):
    """A team-a administrator put team-b's plugin in a team-a LLM's chain (the API took any slug, the admin's
    inline any id): team-a's snapshot then carried team-b's plugin and its config to team-a's edges. Now the API
    answers 400 on plugin_chain and the inline offers only the plugins the user may view."""
    from control_plane.sync.selectors import snapshot_build

    Plugin.objects.create(
        slug="guard-b", name="Guard B", import_path="plugins.ip_filter.plugin:create_plugin", namespace="team-b"
    )
    team_a = get_user_model().objects.create_user("admin-a", is_staff=True)
    NamespaceRole.objects.create(user=team_a, namespace="team-a", role="admin")
    refused = _client(team_a).patch(
        f"/api/v1/llms/{llm.pk}/", {"plugin_chain": [{"plugin": "guard"}, {"plugin": "guard-b"}]}, format="json"
    )
    assert refused.status_code == 400, refused.content
    assert refused.json()["extra"]["fields"] == {"plugin_chain": ["Unknown plugins: ['guard-b']."]}
    assert "guard-b" not in {p.slug for p in snapshot_build(namespace="team-a").plugins}
    kept = _client(team_a).patch(f"/api/v1/llms/{llm.pk}/", {"plugin_chain": [{"plugin": "guard"}]}, format="json")
    assert kept.status_code == 200, kept.content

    page = Client()
    page.force_login(team_a)
    shown = page.get(f"/admin/llms/llm/{llm.pk}/change/")
    (chain,) = [f for f in shown.context["inline_admin_formsets"] if f.formset.model.__name__ == "LLMPluginBinding"]
    offered = chain.formset.forms[0].fields["plugin"].queryset
    assert sorted(offered.values_list("slug", flat=True)) == ["guard"]
