"""Resource-provider plugins end to end, with the bundled document collections: types and instances listed in the
API and the admin, attached to apps in the admin and the portal's request form, and the privacy rule on every
path, LLM deletion included (refused, naming the app and the resource)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from control_plane.accounts.models import Catalogue
from control_plane.applications.models import App
from control_plane.applications.services import app_create
from control_plane.llms.models import LLM
from control_plane.llms.services import llm_delete
from control_plane.plugins.services import plugin_register

pytestmark = pytest.mark.django_db(transaction=True)

COLLECTIONS = {
    "collections": [
        {"id": "handbook", "name": "Employee handbook", "privacy_score": 20},
        {"id": "contracts", "name": "Customer contracts", "privacy_score": 80},
        {"id": "old-wiki", "name": "Old wiki", "privacy_score": 5, "active": False},
    ]
}
HANDBOOK = {"plugin": "docs", "resource_type": "document-collection", "resource_id": "handbook"}


@pytest.fixture
def docs():
    return plugin_register(data={"slug": "docs", "entry_point": "document-collections", "config": COLLECTIONS})


def _llm(slug: str, privacy: int) -> LLM:
    return LLM.objects.create(
        name=slug, slug=slug, vendor="mock", api_endpoint="http://127.0.0.1:1/v1", privacy_score=privacy
    )


def test_api_lists_types_and_instances(docs, admin_api, plain_user):
    types = admin_api.get("/api/v1/resources/types/").json()["results"]
    assert [(t["plugin"], t["slug"], t["name"]) for t in types] == [
        ("docs", "document-collection", "Document collection")
    ]
    listed = admin_api.get("/api/v1/resources/types/document-collection/").json()
    assert [(i["id"], i["privacy_score"], i["is_active"]) for i in listed["results"]] == [
        ("handbook", 20, True),
        ("contracts", 80, True),
        ("old-wiki", 5, False),
    ]
    assert listed["problems"] == []
    assert admin_api.get("/api/v1/resources/types/nothing/").status_code == 404
    from rest_framework.test import APIClient

    from control_plane.accounts.tokens import api_token_create

    user_api = APIClient()
    user_api.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(owner=plain_user)[1]}")
    assert user_api.get("/api/v1/resources/types/").status_code == 403


def test_admin_lists_types_and_attaches_under_the_privacy_rule(docs, admin_user):
    client = Client()
    client.force_login(admin_user)
    page = client.get("/admin/resources/").content.decode()
    assert "Employee handbook" in page and "Customer contracts" in page
    low, high = _llm("low", 10), _llm("high", 90)
    app = app_create(data={"name": "bot", "llm_ids": [low.pk]})
    form = client.get(f"/admin/applications/app/{app.pk}/change/").content.decode()
    assert "Employee handbook: Employee handbook (privacy score 20)" not in form  # label is type: name
    assert "Document collection: Employee handbook (privacy score 20)" in form
    assert "Old wiki" not in form, "switched-off collections are not offered"
    data = {
        "name": "bot",
        "description": "",
        "namespace": "",
        "is_active": "on",
        "llms": [low.pk],
        "metadata": "{}",
        "allowed_ips": "[]",
        "resources": ["docs|document-collection|handbook"],
        "credentials-TOTAL_FORMS": 0,
        "credentials-INITIAL_FORMS": 0,
        "plugin_resources-TOTAL_FORMS": 0,
        "plugin_resources-INITIAL_FORMS": 0,
    }
    refused = client.post(f"/admin/applications/app/{app.pk}/change/", data)
    assert refused.status_code == 200
    assert "privacy score 20, above the highest privacy score of the app&#x27;s LLMs (10)" in refused.content.decode()
    assert not app.plugin_resources.exists()
    saved = client.post(f"/admin/applications/app/{app.pk}/change/", {**data, "llms": [low.pk, high.pk]})
    assert saved.status_code == 302, saved.content.decode()[:3000]
    held = list(app.plugin_resources.values_list("resource_id", "privacy_score"))
    assert held == [("handbook", 20)]


def test_portal_request_form_offers_resources_and_applies_the_rule(docs, plain_user):
    group = Group.objects.create(name="developers")
    plain_user.groups.add(group)
    low, high = _llm("low", 10), _llm("high", 90)
    Catalogue.objects.create(group=group).llms.add(low, high)
    client = Client()
    client.force_login(plain_user)
    assert (
        "Document collection: Customer contracts (privacy score 80)" in client.get("/portal/apps/new/").content.decode()
    )
    wanted = {"name": "reader", "llms": [low.pk], "resources": ["docs|document-collection|contracts"]}
    refused = client.post("/portal/apps/new/", wanted)
    assert refused.status_code == 200 and "privacy score 80" in refused.content.decode()
    assert not App.objects.filter(name="reader").exists()
    created = client.post("/portal/apps/new/", {**wanted, "llms": [high.pk]})
    assert created.status_code == 302
    app = App.objects.get(name="reader")
    assert list(app.plugin_resources.values_list("resource_id", "privacy_score")) == [("contracts", 80)]
    forged = client.post(
        "/portal/apps/new/", {**wanted, "name": "x", "resources": ["docs|document-collection|old-wiki"]}
    )
    assert "not one of the available choices" in forged.content.decode()


def test_deleting_an_llm_that_would_leave_an_app_over_its_privacy_is_refused(docs, admin_api):
    only, other = _llm("only", 50), _llm("other", 30)
    app = app_create(data={"name": "bot", "llm_ids": [only.pk, other.pk], "plugin_resources": [HANDBOOK]})
    # 'other' (30) still covers the handbook (20): deleting 'only' is fine
    llm_delete(llm=only)
    answer = admin_api.delete(f"/api/v1/llms/{other.pk}/")
    assert answer.status_code == 400
    message = str(answer.json())
    assert "'other' cannot be deleted" in message and "'bot'" in message and "document-collection/handbook" in message
    assert LLM.objects.filter(pk=other.pk).exists() and app.llms.count() == 1


def test_another_namespaces_resources_are_not_listed(admin_user):
    """A namespace's resource provider (its document collections) was listed, types and instances, to every
    administrator of any namespace, through the API and the admin's resource page."""
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    from control_plane.accounts.models import NamespaceRole

    plugin_register(
        data={"slug": "docs-b", "entry_point": "document-collections", "config": COLLECTIONS, "namespace": "team-b"}
    )
    seen = {}
    for namespace in ("team-a", "team-b"):
        user = get_user_model().objects.create_user(f"admin-{namespace}", is_staff=True)
        NamespaceRole.objects.create(user=user, namespace=namespace, role="admin")
        api = APIClient()
        api.force_authenticate(user)
        page = Client()
        page.force_login(user)
        seen[namespace] = (
            [t["plugin"] for t in api.get("/api/v1/resources/types/").json()["results"]],
            api.get("/api/v1/resources/types/document-collection/").status_code,
            "Employee handbook" in page.get("/admin/resources/").content.decode(),
        )
    assert seen == {"team-a": ([], 404, False), "team-b": (["docs-b"], 200, True)}


def test_the_app_form_offers_and_takes_only_resources_of_visible_plugins(admin_user):
    """The admin's app form offered a team-a administrator the resources of every namespace's providers (team-b's
    document collections), and saving one attached it; the API took them too. Now the picker lists the resources
    of the plugins the user may view, a crafted POST of another's is an invalid choice, and the API answers 400 on
    `plugin_resources`; what a super-administrator attached stays offered and kept."""
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    from control_plane.accounts.models import NamespaceRole

    plugin_register(
        data={"slug": "docs-b", "entry_point": "document-collections", "config": COLLECTIONS, "namespace": "team-b"}
    )
    plugin_register(
        data={"slug": "docs-a", "entry_point": "document-collections", "config": COLLECTIONS, "namespace": "team-a"}
    )
    user = get_user_model().objects.create_user("admin-team-a", is_staff=True)
    NamespaceRole.objects.create(user=user, namespace="team-a", role="admin")
    high = LLM.objects.create(
        name="high",
        slug="high",
        vendor="mock",
        api_endpoint="http://127.0.0.1:1/v1",
        privacy_score=90,
        namespace="team-a",
    )
    app = app_create(data={"name": "bot", "namespace": "team-a", "llm_ids": [high.pk]})
    client = Client()
    client.force_login(user)
    page = client.get(f"/admin/applications/app/{app.pk}/change/")
    offered = [value for value, _ in page.context["adminform"].form.fields["resources"].choices]
    assert sorted(offered) == [f"docs-a|document-collection|{rid}" for rid in ("contracts", "handbook")]

    data = {
        "name": "bot",
        "description": "",
        "namespace": "team-a",
        "is_active": "on",
        "llms": [high.pk],
        "metadata": "{}",
        "allowed_ips": "[]",
        "resources": ["docs-b|document-collection|handbook"],
        "credentials-TOTAL_FORMS": 0,
        "credentials-INITIAL_FORMS": 0,
        "plugin_resources-TOTAL_FORMS": 0,
        "plugin_resources-INITIAL_FORMS": 0,
    }
    crafted = client.post(f"/admin/applications/app/{app.pk}/change/", data)
    assert crafted.status_code == 200 and "not one of the available choices" in crafted.content.decode()
    assert not app.plugin_resources.exists()
    saved = client.post(
        f"/admin/applications/app/{app.pk}/change/", {**data, "resources": ["docs-a|document-collection|handbook"]}
    )
    assert saved.status_code == 302
    assert list(app.plugin_resources.values_list("plugin__slug", "resource_id")) == [("docs-a", "handbook")]

    api = APIClient()
    api.force_authenticate(user)
    other = {"plugin": "docs-b", "resource_type": "document-collection", "resource_id": "handbook"}
    refused = api.patch(f"/api/v1/apps/{app.pk}/", {"plugin_resources": [other]}, format="json")
    assert refused.status_code == 400, refused.content
    assert refused.json()["extra"]["fields"] == {"plugin_resources": ["Unknown plugins: ['docs-b']."]}
    assert list(app.plugin_resources.values_list("plugin__slug", flat=True)) == ["docs-a"]

    # a super-administrator attaches team-b's collection: the team's administrator keeps it on the form and in the API
    root = Client()
    root.force_login(admin_user)
    both = ["docs-a|document-collection|handbook", "docs-b|document-collection|handbook"]
    assert root.post(f"/admin/applications/app/{app.pk}/change/", {**data, "resources": both}).status_code == 302
    kept = client.post(f"/admin/applications/app/{app.pk}/change/", {**data, "resources": both})
    assert kept.status_code == 302
    held = {**other, "name": "Employee handbook", "privacy_score": 20}
    again = api.patch(f"/api/v1/apps/{app.pk}/", {"plugin_resources": [held]}, format="json")
    assert again.status_code == 200, again.content


def test_self_service_apps_live_in_the_owners_namespace_and_take_only_its_resources(plain_user):
    """The portal made every requested app global (namespace ""), ignoring the owner's `app_namespace` that the
    API's self-service path uses (so that namespace's administrators approve it and its edges serve it), and
    offered every namespace's resources; the API took any plugin's resources from an owner. Now a portal request
    lands in the owner's namespace, the picker offers the resources of plugins of "" and that namespace, and the
    API refuses another's (400 on plugin_resources)."""
    from rest_framework.test import APIClient

    from control_plane.accounts.models import Profile

    for slug, namespace in (("docs-a", "team-a"), ("docs-b", "team-b")):
        plugin_register(
            data={"slug": slug, "entry_point": "document-collections", "config": COLLECTIONS, "namespace": namespace}
        )
    Profile.objects.update_or_create(user=plain_user, defaults={"app_namespace": "team-a"})
    group = Group.objects.create(name="developers")
    plain_user.groups.add(group)
    high = _llm("high", 90)
    Catalogue.objects.create(group=group).llms.add(high)
    client = Client()
    client.force_login(plain_user)
    offered = client.get("/portal/apps/new/").context["form"].fields["resources"].choices
    assert sorted(value for value, _ in offered) == [
        f"docs-a|document-collection|{r}" for r in ("contracts", "handbook")
    ]
    wanted = {"name": "reader", "llms": [high.pk], "resources": ["docs-b|document-collection|handbook"]}
    forged = client.post("/portal/apps/new/", wanted)
    assert forged.status_code == 200 and "not one of the available choices" in forged.content.decode()
    created = client.post("/portal/apps/new/", {**wanted, "resources": ["docs-a|document-collection|handbook"]})
    assert created.status_code == 302
    assert App.objects.get(name="reader").namespace == "team-a"

    api = APIClient()
    api.force_authenticate(plain_user)
    other = {"plugin": "docs-b", "resource_type": "document-collection", "resource_id": "handbook"}
    refused = api.post(
        "/api/v1/apps/", {"name": "api-app", "llm_ids": [high.pk], "plugin_resources": [other]}, format="json"
    )
    assert refused.status_code == 400, refused.content
    assert refused.json()["extra"]["fields"] == {"plugin_resources": ["Unknown plugins: ['docs-b']."]}
    mine = {**other, "plugin": "docs-a"}
    made = api.post(
        "/api/v1/apps/", {"name": "api-app", "llm_ids": [high.pk], "plugin_resources": [mine]}, format="json"
    )
    assert made.status_code == 201 and made.json()["namespace"] == "team-a"
