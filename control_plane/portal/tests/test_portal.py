"""The portal as a non-admin user sees it, through Django's test client against real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.test import Client
from django.utils import timezone

from control_plane.accounts.models import Catalogue, Profile
from control_plane.analytics.models import AnalyticsEvent, BudgetUsageRecord
from control_plane.applications.models import App, Credential
from control_plane.applications.services import app_approve, app_create
from control_plane.budgets.services import budget_create
from control_plane.catalog.models import Tool
from control_plane.llms.models import LLM
from shared_sdk.snapshot import hash_credential

pytestmark = pytest.mark.django_db

KEY = re.compile(r'<code id="new-key" class="key">(fjg_[^<]+)</code>')


def _llm(slug: str, privacy: int) -> LLM:
    return LLM.objects.create(
        name=slug.title(), slug=slug, vendor="mock", api_endpoint="http://127.0.0.1:1/v1", privacy_score=privacy
    )


@pytest.fixture
def catalogue(plain_user):
    group = Group.objects.create(name="developers")
    plain_user.groups.add(group)
    cat = Catalogue.objects.create(group=group)
    public, private = _llm("public-llm", 10), _llm("private-llm", 80)
    hidden = _llm("hidden-llm", 90)
    secret_tool = Tool.objects.create(name="HR records", slug="hr-records", privacy_score=70)
    cat.llms.add(public, private)
    cat.tools.add(secret_tool)
    return {"public": public, "private": private, "hidden": hidden, "tool": secret_tool}


@pytest.fixture
def alice(plain_user) -> Client:
    client = Client()
    client.force_login(plain_user)
    return client


def _approved_app(owner, llm) -> App:
    app = app_create(data={"name": "bot", "owner_id": owner.pk, "approved": False, "llm_ids": [llm.pk]})
    return app_approve(app=app)


def test_signed_out_visitors_go_to_the_portal_sign_in(client):
    response = client.get("/portal/")
    assert response.status_code == 302
    assert response["Location"].startswith("/portal/login/?next=/portal/")


def test_password_sign_in_lands_in_the_portal(plain_user, client):
    page = client.get("/portal/login/")
    assert b'name="csrfmiddlewaretoken"' in page.content
    response = client.post("/portal/login/", {"username": "alice", "password": "pw-alice-123456"})
    assert response.status_code == 302 and response["Location"] == "/portal/"
    assert client.get("/portal/").status_code == 200


def test_users_without_show_portal_are_refused(plain_user, alice):
    Profile.objects.create(user=plain_user, show_portal=False)
    response = alice.get("/portal/")
    assert response.status_code == 403
    assert b"not available to you" in response.content
    assert alice.get("/portal/apps/new/").status_code == 403


def test_catalogue_lists_what_the_groups_give_and_nothing_else(catalogue, alice):
    page = alice.get("/portal/").content.decode()
    assert "public-llm" in page and "private-llm" in page and "hr-records" in page
    assert "hidden-llm" not in page


def test_request_app_creates_an_unapproved_app_and_mails_staff(
    django_user_model, plain_user, catalogue, alice, django_capture_on_commit_callbacks
):
    django_user_model.objects.create_user("ops", "ops@example.com", "pw-ops-1234567", is_staff=True)
    with django_capture_on_commit_callbacks(execute=True):
        response = alice.post(
            "/portal/apps/new/",
            {
                "name": "hr-bot",
                "description": "answers HR questions",
                "llms": [catalogue["private"].pk],
                "tools": [catalogue["tool"].pk],
            },
        )
    app = App.objects.get(name="hr-bot")
    assert response.status_code == 302 and response["Location"] == f"/portal/apps/{app.pk}/"
    assert (app.owner, app.approved) == (plain_user, False)
    assert "waiting for approval" in alice.get(response["Location"]).content.decode()
    assert [m.to for m in mail.outbox] == [["ops@example.com"]]
    assert "hr-bot" in mail.outbox[0].subject


def test_request_app_breaking_the_privacy_rule_is_a_form_error(catalogue, alice):
    response = alice.post(
        "/portal/apps/new/", {"name": "leaky", "llms": [catalogue["public"].pk], "tools": [catalogue["tool"].pk]}
    )
    assert response.status_code == 200
    assert "privacy score 70" in response.content.decode()
    assert not App.objects.filter(name="leaky").exists()


def test_request_app_refuses_llms_outside_the_catalogue(catalogue, alice):
    response = alice.post("/portal/apps/new/", {"name": "sneaky", "llms": [catalogue["hidden"].pk]})
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not App.objects.filter(name="sneaky").exists()


def test_forms_need_the_csrf_token(catalogue, plain_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(plain_user)
    response = client.post("/portal/apps/new/", {"name": "x", "llms": [catalogue["public"].pk]})
    assert response.status_code == 403
    assert not App.objects.filter(name="x").exists()


def test_approval_shows_in_the_portal_and_mails_the_owner(plain_user, catalogue, alice):
    app = app_create(
        data={"name": "bot", "owner_id": plain_user.pk, "approved": False, "llm_ids": [catalogue["public"].pk]}
    )
    assert b"Create key" not in alice.get(f"/portal/apps/{app.pk}/").content
    with_commit = app_approve(app=app)
    assert with_commit.approved
    page = alice.get(f"/portal/apps/{app.pk}/").content.decode()
    assert "approved" in page and "Create key" in page


def test_owner_is_mailed_on_approval(plain_user, catalogue, django_capture_on_commit_callbacks):
    app = app_create(
        data={"name": "bot", "owner_id": plain_user.pk, "approved": False, "llm_ids": [catalogue["public"].pk]}
    )
    with django_capture_on_commit_callbacks(execute=True):
        app_approve(app=app)
    with django_capture_on_commit_callbacks(execute=True):
        app_approve(app=app)  # approving again mails nobody
    assert [m.to for m in mail.outbox] == [["alice@example.com"]]
    assert "approved" in mail.outbox[0].subject


def test_no_key_before_approval(plain_user, catalogue, alice):
    app = app_create(
        data={"name": "bot", "owner_id": plain_user.pk, "approved": False, "llm_ids": [catalogue["public"].pk]}
    )
    response = alice.post(f"/portal/apps/{app.pk}/keys/", {"name": "k"})
    assert response.status_code == 302
    assert not Credential.objects.filter(app=app).exists()


def test_a_new_key_is_shown_once_and_works_as_stored(plain_user, catalogue, alice):
    app = _approved_app(plain_user, catalogue["public"])
    response = alice.post(f"/portal/apps/{app.pk}/keys/", {"name": "laptop"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    key = KEY.search(response.content.decode()).group(1)
    credential = Credential.objects.get(app=app)
    assert credential.key_hash == hash_credential(key)
    later = alice.get(f"/portal/apps/{app.pk}/").content.decode()
    assert key not in later and credential.prefix in later


def test_rotate_shows_the_new_key_once_and_revokes_the_old(plain_user, catalogue, alice):
    app = _approved_app(plain_user, catalogue["public"])
    alice.post(f"/portal/apps/{app.pk}/keys/", {"name": "laptop"})
    old = Credential.objects.get(app=app)
    response = alice.post(f"/portal/apps/{app.pk}/keys/{old.pk}/rotate/")
    new_key = KEY.search(response.content.decode()).group(1)
    old.refresh_from_db()
    assert old.revoked_at is not None
    assert Credential.objects.get(key_hash=hash_credential(new_key)).rotated_from == old
    alice.post(f"/portal/apps/{app.pk}/keys/{Credential.objects.get(rotated_from=old).pk}/revoke/")
    assert not any(c.is_usable for c in Credential.objects.filter(app=app))


def test_no_rotated_key_for_a_deactivated_or_unapproved_app_but_revoking_works(plain_user, catalogue, alice):
    """The portal refused a new key for an app awaiting approval or deactivated, but rotated an existing one: a key
    that started working the moment the app was (re)activated. Now a rotation is refused with the same message;
    revoking still works (it only takes access away)."""
    app = _approved_app(plain_user, catalogue["public"])
    alice.post(f"/portal/apps/{app.pk}/keys/", {"name": "laptop"})
    old = Credential.objects.get(app=app)
    for change in ({"is_active": False}, {"is_active": True, "approved": False}):
        App.objects.filter(pk=app.pk).update(**change)
        response = alice.post(f"/portal/apps/{app.pk}/keys/{old.pk}/rotate/", follow=True)
        assert KEY.search(response.content.decode()) is None, change
        assert "Keys can be created once an administrator has approved the app." in response.content.decode()
        assert list(Credential.objects.filter(app=app)) == [old], change
        old.refresh_from_db()
        assert old.revoked_at is None
    alice.post(f"/portal/apps/{app.pk}/keys/{old.pk}/revoke/")
    old.refresh_from_db()
    assert old.revoked_at is not None


def test_another_users_app_and_keys_are_404(django_user_model, catalogue, alice):
    bob = django_user_model.objects.create_user("bob", "bob@example.com", "pw-bob-12345678")
    app = _approved_app(bob, catalogue["public"])
    Credential.objects.create(app=app, prefix="fjg_x", key_hash="0" * 64)
    key = Credential.objects.get(app=app)
    for url in (f"/portal/apps/{app.pk}/", f"/portal/apps/{app.pk}/usage/", f"/portal/apps/{app.pk}/usage.csv"):
        assert alice.get(url).status_code == 404, url
    for url in (
        f"/portal/apps/{app.pk}/keys/",
        f"/portal/apps/{app.pk}/keys/{key.pk}/revoke/",
        f"/portal/apps/{app.pk}/keys/{key.pk}/rotate/",
    ):
        assert alice.post(url).status_code == 404, url
    key.refresh_from_db()
    assert key.revoked_at is None and Credential.objects.filter(app=app).count() == 1


def _event(app: App, when: dt.datetime, n: int, tokens: int, cost: str) -> None:
    AnalyticsEvent.objects.create(
        record_id=f"r-{app.pk}-{when.isoformat()}-{n}",
        timestamp=when,
        app_id=app.pk,
        status_code=200,
        prompt_tokens=tokens - 1,
        completion_tokens=1,
        total_tokens=tokens,
        cost=Decimal(cost),
    )


def test_usage_table_csv_and_budget_bar(plain_user, catalogue, alice):
    app = _approved_app(plain_user, catalogue["public"])
    today = timezone.now().replace(hour=12, minute=0, second=0, microsecond=0)
    yesterday = today - dt.timedelta(days=1)
    for n in range(3):
        _event(app, today, n, 10, "0.5")
    _event(app, yesterday, 0, 7, "0.25")
    _event(app, today - dt.timedelta(days=40), 0, 1000, "9")  # outside the default range
    budget_create(data={"scope": "app", "app": app, "limit": Decimal("4")})
    for n, cost in enumerate(("1.5", "0.25")):  # the usage records the bridge ingested this period
        BudgetUsageRecord.objects.create(record_id=f"b-{n}", timestamp=today, app_id=app.pk, cost=Decimal(cost))

    page = alice.get(f"/portal/apps/{app.pk}/usage/").content.decode()
    assert 'id="total-requests">4<' in page and 'id="total-tokens">37<' in page
    assert 'aria-valuenow="43.8"' in page  # 1.75 of 4
    assert "chart.umd.min.js" in page and 'id="usage-data"' in page

    start, end = yesterday.date().isoformat(), today.date().isoformat()
    csv_text = alice.get(f"/portal/apps/{app.pk}/usage.csv?start={start}&end={end}").content.decode()
    assert csv_text.splitlines() == [
        "day,requests,prompt_tokens,completion_tokens,total_tokens,cost",
        f"{start},1,6,1,7,0.250000",
        f"{end},3,27,3,30,1.500000",
    ]


def test_bad_date_ranges_are_form_errors(plain_user, catalogue, alice):
    app = _approved_app(plain_user, catalogue["public"])
    page = alice.get(f"/portal/apps/{app.pk}/usage/?start=2026-05-01&end=2026-04-01")
    assert page.status_code == 400 and b"must not be after" in page.content
    assert alice.get(f"/portal/apps/{app.pk}/usage/?start=1900-01-01&end=2026-01-01").status_code == 400
    assert alice.get(f"/portal/apps/{app.pk}/usage/?start=nonsense").status_code == 400
    assert alice.get(f"/portal/apps/{app.pk}/usage.csv?start=2026-05-01&end=2026-04-01").status_code == 400


def test_admin_app_list_announces_waiting_requests(admin_user, plain_user, catalogue, alice):
    alice.post("/portal/apps/new/", {"name": "waiting-bot", "llms": [catalogue["public"].pk]})
    admin = Client()
    admin.force_login(admin_user)
    page = admin.get("/admin/applications/app/").content.decode()
    assert "1 app request(s) wait for approval" in page and "?approved__exact=0" in page
    app_approve(app=App.objects.get(name="waiting-bot"))
    assert "wait for approval" not in admin.get("/admin/applications/app/").content.decode()


def test_long_names_are_form_errors_not_crashes(plain_user, catalogue, alice):
    response = alice.post("/portal/apps/new/", {"name": "x" * 201, "llms": [catalogue["public"].pk]})
    assert response.status_code == 200 and "at most 200 characters" in response.content.decode()
    app = _approved_app(plain_user, catalogue["public"])
    assert alice.post(f"/portal/apps/{app.pk}/keys/", {"name": "k" * 201}).status_code == 400
    assert not Credential.objects.filter(app=app).exists()


def test_sign_in_page_offers_single_sign_on_when_configured(client, settings):
    assert b"sso-login" not in client.get("/portal/login/").content
    settings.FJORDGATE_OIDC_ISSUER = "https://sso.example.com"
    settings.FJORDGATE_OIDC_PROVIDER_NAME = "Acme SSO"
    page = client.get("/portal/login/?next=/portal/").content.decode()
    assert "Sign in with Acme SSO" in page and "/oidc/authenticate/?next=/portal/" in page


def test_request_page_says_when_the_catalogue_has_no_llm(plain_user, alice):
    assert 'id="no-llms"' in alice.get("/portal/apps/new/").content.decode()
