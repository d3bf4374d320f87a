"""Who grants what in a group's catalogue. Groups are global objects, so an administrator of "" writes them; but
the LLMs, tools, datasources and agents a catalogue grants live in namespaces (docs/control-plane.md, Roles: an
administrator of "" has nothing in other namespaces). Granting team-b's LLM to a group hands its members team-b's
LLM at team-b's edges (`LLMConfig.granted_group_ids`), so a catalogue takes only what its writer may view, as an
app does."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from rest_framework.test import APIClient

from control_plane.accounts.models import Catalogue, NamespaceRole
from control_plane.accounts.services import catalogue_set, group_save
from control_plane.llms.models import LLM

pytestmark = pytest.mark.django_db


def _llm(slug: str, namespace: str) -> LLM:
    return LLM.objects.create(
        name=slug, slug=slug, vendor="mock", api_endpoint="http://127.0.0.1:1/v1", namespace=namespace
    )


@pytest.fixture
def world(django_user_model, admin_user):
    global_admin = django_user_model.objects.create_user("global-admin", is_staff=True)
    NamespaceRole.objects.create(user=global_admin, namespace="", role="admin")
    group = group_save(name="developers")
    return {
        "global_admin": global_admin,
        "root": admin_user,
        "group": group,
        "own": _llm("shared", ""),
        "other": _llm("team-b-llm", "team-b"),
    }


def _inline(llm_ids: list[int], catalogue: Catalogue | None = None) -> dict:
    return {
        "name": "developers",
        "catalogue-TOTAL_FORMS": "1",
        "catalogue-INITIAL_FORMS": "1" if catalogue else "0",
        "catalogue-MIN_NUM_FORMS": "0",
        "catalogue-MAX_NUM_FORMS": "1",
        **({"catalogue-0-id": str(catalogue.pk), "catalogue-0-group": ""} if catalogue else {}),
        "catalogue-0-llms": [str(pk) for pk in llm_ids],
    }


def test_a_global_administrator_grants_no_other_namespaces_llm_in_the_api(world):
    api = APIClient()
    api.force_authenticate(world["global_admin"])
    group, other, own = world["group"], world["other"], world["own"]
    refused = api.patch(f"/api/v1/groups/{group.pk}/", {"llm_ids": [own.pk, other.pk]}, format="json")
    assert refused.status_code == 400, refused.content
    assert refused.json()["extra"]["fields"] == {"llm_ids": [f"Unknown ids: [{other.pk}]."]}
    assert not Catalogue.objects.filter(group=group, llms=other).exists()
    assert api.patch(f"/api/v1/groups/{group.pk}/", {"llm_ids": [own.pk]}, format="json").status_code == 200

    # what a super-administrator granted stays, and may be sent back as the group shows it
    catalogue_set(group=group, llm_ids=[own.pk, other.pk])
    shown = api.get(f"/api/v1/groups/{group.pk}/").json()["llm_ids"]
    assert api.patch(f"/api/v1/groups/{group.pk}/", {"llm_ids": shown}, format="json").status_code == 200


def test_a_global_administrator_is_not_offered_another_namespaces_llm_in_the_admin(world):
    client = Client()
    client.force_login(world["global_admin"])
    group, other, own = world["group"], world["other"], world["own"]
    page = client.get(f"/admin/auth/group/{group.pk}/change/")
    offered = page.context["inline_admin_formsets"][0].formset.forms[0].fields["llms"].queryset
    assert list(offered.values_list("slug", flat=True)) == ["shared"]

    crafted = client.post(f"/admin/auth/group/{group.pk}/change/", _inline([own.pk, other.pk]))
    assert crafted.status_code == 200 and "Select a valid choice" in crafted.content.decode()
    assert not Catalogue.objects.filter(group=group, llms=other).exists()

    # a super-administrator's grant of team-b's LLM is kept when the global administrator saves the group
    catalogue = catalogue_set(group=group, llm_ids=[other.pk])
    saved = client.post(f"/admin/auth/group/{group.pk}/change/", _inline([own.pk], catalogue))
    assert saved.status_code == 302, saved.content.decode()[:3000]
    assert set(Group.objects.get(pk=group.pk).catalogue.llms.values_list("slug", flat=True)) == {"shared", "team-b-llm"}
