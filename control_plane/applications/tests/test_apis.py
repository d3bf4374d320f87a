"""The API of apps, credentials, LLMs, tools, datasources, users, budgets, prices: permissions, input, rules."""

from __future__ import annotations

import pytest

from control_plane.accounts.services import catalogue_set, group_save
from control_plane.applications.models import App, Credential
from control_plane.catalog.services import tool_create
from control_plane.llms.services import llm_create
from control_plane.sync.models import ConfigChange
from shared_sdk.snapshot import hash_credential

pytestmark = pytest.mark.django_db


@pytest.fixture
def llm():
    return llm_create(
        data={
            "name": "Low",
            "slug": "low",
            "vendor": "mock",
            "api_endpoint": "http://mock.local/v1",
            "privacy_score": 30,
        }
    )


@pytest.fixture
def private_tool():
    return tool_create(data={"name": "HR", "slug": "hr", "privacy_score": 80})


def test_admin_creates_app_and_change_is_recorded_for_namespace(admin_api, llm):
    before = ConfigChange.objects.count()
    response = admin_api.post(
        "/api/v1/apps/",
        {
            "name": "bot",
            "namespace": "eu",
            "llm_ids": [llm.pk],
            "tags": ["support"],
            "rate_limit_rpm": 60,
            "allowed_ips": ["10.0.0.0/8"],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["llm_ids"] == [llm.pk] and body["tags"] == ["support"] and body["approved"] is False
    change = ConfigChange.objects.order_by("-version").first()
    assert ConfigChange.objects.count() == before + 1 and change.namespace == "eu"


def test_privacy_rule_rejected_in_api_with_clear_message(admin_api, llm, private_tool):
    response = admin_api.post(
        "/api/v1/apps/", {"name": "bot", "llm_ids": [llm.pk], "tool_ids": [private_tool.pk]}, format="json"
    )
    assert response.status_code == 400
    assert "privacy score 80, above the highest privacy score of the app's LLMs (30)" in response.json()["message"]
    assert not App.objects.exists()


def test_lowering_llm_privacy_score_below_an_apps_tool_is_refused(admin_api, llm, private_tool):
    llm_high = llm_create(
        data={"name": "High", "slug": "high", "vendor": "mock", "api_endpoint": "http://m.local", "privacy_score": 90}
    )
    ok = admin_api.post(
        "/api/v1/apps/", {"name": "bot", "llm_ids": [llm_high.pk], "tool_ids": [private_tool.pk]}, format="json"
    )
    assert ok.status_code == 201
    response = admin_api.patch(f"/api/v1/llms/{llm_high.pk}/", {"privacy_score": 10}, format="json")
    assert response.status_code == 400
    assert "privacy score 80" in response.json()["message"]


def test_invalid_input_gets_field_errors_not_500(admin_api):
    response = admin_api.post(
        "/api/v1/llms/",
        {"name": "x", "slug": "Bad Slug!", "vendor": "nope", "api_endpoint": "not a url", "allowed_models": ["("]},
        format="json",
    )
    assert response.status_code == 400
    fields = response.json()["extra"]["fields"]
    assert {"slug", "vendor", "api_endpoint"} <= fields.keys()
    bad_regex = admin_api.post(
        "/api/v1/llms/",
        {"name": "x", "slug": "x", "vendor": "openai", "api_endpoint": "https://a.example", "allowed_models": ["("]},
        format="json",
    )
    assert bad_regex.status_code == 400 and "not a valid regular expression" in bad_regex.json()["message"]
    bad_ip = admin_api.post("/api/v1/apps/", {"name": "a", "allowed_ips": ["300.1.1.1"]}, format="json")
    assert bad_ip.status_code == 400 and "not an IP address" in bad_ip.json()["message"]


def test_unauthenticated_requests_are_refused(client):
    for path in ("/api/v1/apps/", "/api/v1/llms/", "/api/v1/credentials/", "/api/v1/users/"):
        assert client.get(path).status_code == 401


def test_plain_user_sees_only_own_apps_and_keys(admin_api, user_api, plain_user, admin_user, llm):
    App.objects.create(name="someone-else", owner=admin_user)
    mine = user_api.post("/api/v1/apps/", {"name": "mine"}, format="json")
    assert mine.status_code == 201, mine.content
    assert mine.json()["approved"] is False and mine.json()["owner"] == plain_user.pk
    listed = user_api.get("/api/v1/apps/").json()
    assert [a["name"] for a in listed["results"]] == ["mine"]
    other = App.objects.get(name="someone-else")
    assert user_api.get(f"/api/v1/apps/{other.pk}/").status_code == 404
    refused = user_api.post("/api/v1/credentials/", {"app": other.pk}, format="json")
    assert refused.status_code == 403
    assert user_api.post(f"/api/v1/apps/{mine.json()['id']}/approve/").status_code == 403
    assert user_api.patch(f"/api/v1/apps/{mine.json()['id']}/", {"approved": True}, format="json").status_code == 403
    for path in ("/api/v1/users/", "/api/v1/budgets/", "/api/v1/plugins/", "/api/v1/model-prices/"):
        assert user_api.get(path).status_code == 403
    assert user_api.post("/api/v1/llms/", {"name": "x"}, format="json").status_code == 403


def test_plain_user_may_attach_only_catalogue_llms(user_api, plain_user, llm):
    refused = user_api.post("/api/v1/apps/", {"name": "a", "llm_ids": [llm.pk]}, format="json")
    assert refused.status_code == 403 and "catalogues" in refused.json()["message"]
    group = group_save(name="team")
    catalogue_set(group=group, llm_ids=[llm.pk])
    plain_user.groups.add(group)
    assert user_api.get("/api/v1/llms/").json()["count"] == 1
    assert user_api.post("/api/v1/apps/", {"name": "a", "llm_ids": [llm.pk]}, format="json").status_code == 201


def test_key_shown_once_stored_hashed_then_rotated_and_revoked(user_api, plain_user):
    app = user_api.post("/api/v1/apps/", {"name": "mine"}, format="json").json()
    App.objects.filter(pk=app["id"]).update(approved=True)  # an administrator approved it
    created = user_api.post("/api/v1/credentials/", {"app": app["id"], "name": "ci"}, format="json")
    assert created.status_code == 201
    key = created.json()["key"]
    credential = Credential.objects.get(pk=created.json()["id"])
    assert credential.key_hash == hash_credential(key) and key.startswith(credential.prefix)
    shown_again = user_api.get(f"/api/v1/credentials/{credential.pk}/").json()
    assert "key" not in shown_again and key not in str(user_api.get("/api/v1/credentials/").content)

    rotated = user_api.post(f"/api/v1/credentials/{credential.pk}/rotate/", {}, format="json")
    assert rotated.status_code == 201
    new_key = rotated.json()["key"]
    assert new_key != key and rotated.json()["rotated_from"] == credential.pk
    credential.refresh_from_db()
    assert credential.revoked_at is not None and not credential.is_usable
    again = user_api.post(f"/api/v1/credentials/{credential.pk}/rotate/", {}, format="json")
    assert again.status_code == 400

    new_id = rotated.json()["id"]
    assert user_api.delete(f"/api/v1/credentials/{new_id}/").status_code == 204
    assert Credential.objects.get(pk=new_id).revoked_at is not None


def test_owners_get_no_key_for_an_app_awaiting_approval_or_deactivated(user_api, plain_user, django_user_model):
    """The portal refused a key for an app still awaiting approval (or deactivated), but the API's POST minted
    one for its owner: a key that started working the moment an administrator approved the app. Now the API
    refuses like the portal (400 on `app`); administrators who may approve the app still create keys for it."""
    from rest_framework.test import APIClient

    from control_plane.accounts.models import NamespaceRole

    waiting = user_api.post("/api/v1/apps/", {"name": "waiting"}, format="json").json()
    deactivated = App.objects.create(name="off", owner=plain_user, approved=True, is_active=False)
    message = "Keys can be created once an administrator has approved the app."
    for app_id in (waiting["id"], deactivated.pk):
        refused = user_api.post("/api/v1/credentials/", {"app": app_id, "name": "ci"}, format="json")
        assert refused.status_code == 400, refused.content
        assert refused.json() == {"message": f"app: {message}", "extra": {"fields": {"app": [message]}}}
    assert not Credential.objects.exists()

    admin = django_user_model.objects.create_user("ns-admin", is_staff=True)
    NamespaceRole.objects.create(user=admin, namespace="", role="admin")
    admin_api = APIClient()
    admin_api.force_authenticate(admin)
    assert admin_api.post("/api/v1/credentials/", {"app": waiting["id"]}, format="json").status_code == 201
    viewer = django_user_model.objects.create_user("ns-viewer", is_staff=True)
    NamespaceRole.objects.create(user=viewer, namespace="", role="viewer")
    viewer_api = APIClient()
    viewer_api.force_authenticate(viewer)
    assert viewer_api.post("/api/v1/credentials/", {"app": waiting["id"]}, format="json").status_code == 403

    App.objects.filter(pk=waiting["id"]).update(approved=True)
    assert user_api.post("/api/v1/credentials/", {"app": waiting["id"]}, format="json").status_code == 201


def test_owners_cannot_rotate_a_key_of_an_app_awaiting_approval_or_deactivated(user_api, plain_user, django_user_model):
    """Creating was refused to the owner of an app awaiting approval or deactivated, but rotating an existing key
    of it minted a new one, which started working the moment the app was (re)activated. Now a 400 with the same
    message; administrators who may change the app still rotate; the owner still revokes."""
    from rest_framework.test import APIClient

    from control_plane.accounts.models import NamespaceRole

    app = App.objects.create(name="mine", owner=plain_user, approved=True)
    key = user_api.post("/api/v1/credentials/", {"app": app.pk}, format="json").json()
    message = "Keys can be created once an administrator has approved the app."
    for change in ({"is_active": False}, {"is_active": True, "approved": False}):
        App.objects.filter(pk=app.pk).update(**change)
        refused = user_api.post(f"/api/v1/credentials/{key['id']}/rotate/", {}, format="json")
        assert refused.status_code == 400, (change, refused.content)
        assert refused.json()["message"] == message
        assert Credential.objects.filter(app=app).count() == 1
        assert Credential.objects.get(pk=key["id"]).revoked_at is None

    admin = django_user_model.objects.create_user("ns-admin", is_staff=True)
    NamespaceRole.objects.create(user=admin, namespace="", role="admin")
    admin_api = APIClient()
    admin_api.force_authenticate(admin)
    rotated = admin_api.post(f"/api/v1/credentials/{key['id']}/rotate/", {}, format="json")
    assert rotated.status_code == 201, rotated.content
    assert user_api.post(f"/api/v1/credentials/{rotated.json()['id']}/revoke/").status_code == 200
    assert not any(c.is_usable for c in Credential.objects.filter(app=app))


def test_rotation_with_grace_keeps_old_key_until_expiry(admin_api, admin_user):
    app = App.objects.create(name="a", owner=admin_user)
    created = admin_api.post("/api/v1/credentials/", {"app": app.pk}, format="json").json()
    rotated = admin_api.post(f"/api/v1/credentials/{created['id']}/rotate/", {"grace_seconds": 3600}, format="json")
    old = Credential.objects.get(pk=created["id"])
    assert rotated.status_code == 201 and old.revoked_at is None and old.expires_at is not None and old.is_usable


def test_admin_approves_app(admin_api, admin_user):
    app = App.objects.create(name="a", owner=admin_user, is_active=False)
    response = admin_api.post(f"/api/v1/apps/{app.pk}/approve/")
    assert response.status_code == 200 and response.json()["approved"] and response.json()["is_active"]


def test_users_groups_tools_datasources_prices_budgets_crud(admin_api, llm):
    user = admin_api.post(
        "/api/v1/users/",
        {"username": "bob", "email": "b@example.com", "password": "a-long-password-42", "metadata": {"tier": "gold"}},
        format="json",
    )
    assert user.status_code == 201 and "password" not in user.json() and user.json()["metadata"] == {"tier": "gold"}
    weak = admin_api.post("/api/v1/users/", {"username": "eve", "password": "123"}, format="json")
    assert weak.status_code == 400
    group = admin_api.post("/api/v1/groups/", {"name": "team", "llm_ids": [llm.pk]}, format="json")
    assert group.status_code == 201 and group.json()["llm_ids"] == [llm.pk]
    tool = admin_api.post("/api/v1/tools/", {"name": "T", "slug": "t", "privacy_score": 101}, format="json")
    assert tool.status_code == 400
    ds = admin_api.post("/api/v1/datasources/", {"name": "D", "slug": "d", "privacy_score": 5}, format="json")
    assert ds.status_code == 201
    price = admin_api.post(
        "/api/v1/model-prices/",
        {"vendor": "openai", "model": "gpt-4o", "prompt_per_million": "2.500000", "completion_per_million": "10"},
        format="json",
    )
    assert price.status_code == 201 and price.json()["prompt_per_million"] == "2.500000"
    budget = admin_api.post(
        "/api/v1/budgets/", {"scope": "llm", "llm": llm.pk, "limit": "100.00", "period": "monthly"}, format="json"
    )
    assert budget.status_code == 201 and budget.json()["target_id"] == llm.pk
    wrong = admin_api.post("/api/v1/budgets/", {"scope": "app", "llm": llm.pk, "limit": "1"}, format="json")
    assert wrong.status_code == 400
    assert admin_api.get("/api/v1/llms/?namespace=nowhere").json()["count"] == 0
    assert admin_api.get("/api/v1/llms/?limit=1").json()["count"] == 1


def test_openapi_schema_served(admin_api):
    response = admin_api.get("/api/v1/schema/?format=json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/v1/apps/" in paths and "/api/v1/credentials/{id}/rotate/" in paths


@pytest.mark.parametrize(
    "lifted",
    [
        {"rate_limit_rpm": None},
        {"user_rate_limit_tpm": 10**9},
        {"allowed_ips": []},
        {"is_active": True},
        {"metadata": {"tier": "gold"}},
        {"tags": ["vip"]},
    ],
    ids=lambda body: next(iter(body)),
)
def test_an_owner_cannot_lift_the_limits_an_administrator_governs_the_app_with(admin_api, user_api, lifted):
    """An owner PATCHed away the rate limits, IP fence or deactivation an administrator had just set (or tagged
    the app, creating a global tag): 200, and the edges got the lifted app with the next snapshot."""
    app_id = user_api.post("/api/v1/apps/", {"name": "mine"}, format="json").json()["id"]
    assert admin_api.post(f"/api/v1/apps/{app_id}/approve/").status_code == 200
    governed = {
        "rate_limit_rpm": 10,
        "user_rate_limit_tpm": 1000,
        "allowed_ips": ["10.0.0.0/8"],
        "is_active": False,
        "metadata": {"tier": "free"},
        "tags": [],
    }
    assert admin_api.patch(f"/api/v1/apps/{app_id}/", governed, format="json").status_code == 200
    refused = user_api.patch(f"/api/v1/apps/{app_id}/", lifted, format="json")
    assert refused.status_code == 403, refused.content
    assert refused.json()["message"] == f"Only administrators may set {next(iter(lifted))}."
    shown = user_api.get(f"/api/v1/apps/{app_id}/").json()
    assert {field: shown[field] for field in governed} == governed
    # what the owner may change still goes through
    renamed = user_api.patch(f"/api/v1/apps/{app_id}/", {"name": "ours", "description": "team bot"}, format="json")
    assert renamed.status_code == 200 and renamed.json()["rate_limit_rpm"] == 10


def test_an_administrator_attaches_only_llms_tools_and_datasources_it_may_see(admin_api, django_user_model):
    """A team-a administrator (or one of the global objects) attached team-b's LLM by its id: 200, and a global app
    carrying it could call it at team-b's edges, spending team-b's vendor key and budget."""
    from rest_framework.test import APIClient

    from control_plane.accounts.models import NamespaceRole
    from control_plane.catalog.services import datasource_create

    common = {"vendor": "mock", "api_endpoint": "http://mock.local/v1"}
    llm_a = llm_create(data={"name": "A", "slug": "gpt-a", "namespace": "team-a", **common})
    llm_b = llm_create(data={"name": "B", "slug": "gpt-b", "namespace": "team-b", **common})
    tool_b = tool_create(data={"name": "HR", "slug": "hr-b", "namespace": "team-b"})
    source_b = datasource_create(data={"name": "Wiki", "slug": "wiki-b", "namespace": "team-b"})
    callers = {}
    for namespace in ("team-a", ""):
        user = django_user_model.objects.create_user(f"admin-{namespace or 'global'}", is_staff=True)
        NamespaceRole.objects.create(user=user, namespace=namespace, role="admin")
        callers[namespace] = APIClient()
        callers[namespace].force_authenticate(user)
    mine = callers["team-a"].post("/api/v1/apps/", {"name": "a", "namespace": "team-a", "llm_ids": [llm_a.pk]})
    assert mine.status_code == 201, mine.content
    app_id = mine.json()["id"]
    for field, hidden in (("llm_ids", llm_b.pk), ("tool_ids", tool_b.pk), ("datasource_ids", source_b.pk)):
        refused = callers["team-a"].patch(f"/api/v1/apps/{app_id}/", {field: [hidden]}, format="json")
        assert refused.status_code == 400, refused.content
        assert refused.json()["extra"]["fields"][field] == [f"Unknown ids: [{hidden}]."]
    assert App.objects.get(pk=app_id).llms.get() == llm_a
    global_app = callers[""].post("/api/v1/apps/", {"name": "g", "llm_ids": [llm_b.pk]}, format="json")
    assert global_app.status_code == 400 and not App.objects.filter(name="g").exists()
    # a super-administrator sees every namespace, and may
    made = admin_api.post("/api/v1/apps/", {"name": "g", "llm_ids": [llm_b.pk]}, format="json")
    assert made.status_code == 201
    # what the app already holds is sent back as shown, and kept
    shown = callers[""].get(f"/api/v1/apps/{made.json()['id']}/").json()
    kept = callers[""].patch(f"/api/v1/apps/{shown['id']}/", {"llm_ids": shown["llm_ids"]}, format="json")
    assert kept.status_code == 200 and kept.json()["llm_ids"] == [llm_b.pk]
