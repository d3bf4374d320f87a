"""The portal end to end, as people would use it: real headless Chromium, the control plane (live server), and a
real bridge, edge and mock LLM against the same test database.

A user signs in to the portal and requests an app; an administrator approves it in the admin (a second browser
context); the user creates a key, sees it once, calls an edge with it, and finds the call in the portal's usage
page (table, Chart.js charts, budget bar).
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import Group

from control_plane.accounts.models import Catalogue
from control_plane.analytics.models import AnalyticsEvent, BudgetUsageRecord
from control_plane.applications.models import App
from control_plane.budgets.services import budget_create
from control_plane.catalog.services import model_price_upsert
from control_plane.llms.services import llm_create
from control_plane.sync.services import config_change_record
from tests.e2e.cluster import MODEL, wait_until
from tests.e2e.conftest import cluster, nats_server  # noqa: F401 - fixtures of the real processes

NAMESPACE = "team"
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]


def _seed(django_user_model, mock_url: str) -> None:
    """An administrator, a user whose group's catalogue offers an LLM on the mock, and the model's price."""
    django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123456")
    alice = django_user_model.objects.create_user("alice", "alice@example.com", "pw-alice-123456")
    group = Group.objects.create(name="developers")
    alice.groups.add(group)
    llm = llm_create(
        data={
            "name": "Team GPT",
            "slug": "team-gpt",
            "vendor": "mock",
            "api_endpoint": mock_url,
            "default_model": MODEL,
            "is_active": True,
            "max_retries": 0,
        }
    )
    Catalogue.objects.create(group=group).llms.add(llm)
    config_change_record(namespace=NAMESPACE, reason="the edge's namespace")  # global objects only, so far
    model_price_upsert(
        price=None,
        data={
            "vendor": "mock",
            "model": MODEL,
            "prompt_per_million": Decimal("1000"),
            "completion_per_million": Decimal("2000"),
            "currency": "USD",
        },
    )


def _sign_in(page, url: str, username: str, password: str) -> None:
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit], input[type=submit]")


def test_request_approve_key_once_call_edge_usage(page, screenshot, browser, live_server, cluster, django_user_model):  # noqa: F811
    _seed(django_user_model, cluster.mock_url)
    cluster.start_bridge()
    edge = cluster.start_edge(cluster.add_edge("p1", NAMESPACE))
    base = live_server.url

    # the user signs in to the portal and sees the catalogue
    page.goto(f"{base}/portal/")
    assert "/portal/login/" in page.url
    _sign_in(page, base, "alice", "pw-alice-123456")
    page.wait_for_url(f"{base}/portal/")
    assert page.locator("#catalogue").inner_text().count("team-gpt") == 1
    screenshot("1-catalogue")

    # requests an app
    page.click("text=Request an app >> nth=0")
    page.fill("input[name=name]", "support-bot")
    page.fill("textarea[name=description]", "Answers support tickets")
    page.check("input[name=llms]")
    page.click("#request-app button[type=submit]")
    page.wait_for_url(f"{base}/portal/apps/*/")
    assert "waiting for approval" in page.content()
    assert page.locator("#create-key").count() == 0
    screenshot("2-requested")
    app = App.objects.get(name="support-bot")

    # an administrator approves it in the admin, in a second browser context
    admin_context = browser.new_context(viewport={"width": 1280, "height": 900})
    admin = admin_context.new_page()
    admin.set_default_timeout(20_000)
    admin.goto(f"{base}/admin/login/?next=/admin/applications/app/")
    _sign_in(admin, base, "root", "pw-root-123456")
    admin.wait_for_url(f"{base}/admin/applications/app/")
    assert "1 app request(s) wait for approval" in admin.content()
    admin.check(f"input[name=_selected_action][value='{app.pk}']")
    admin.select_option("select[name=action]", "approve")
    admin.click("button[name=index]")
    admin.wait_for_selector("text=Approved")
    assert "wait for approval" not in admin.content()
    admin.screenshot(path=str(_shot("3-admin-approved")), full_page=True)
    admin_context.close()

    # the user sees the approval and creates a key, shown once
    page.reload()
    assert "waiting for approval" not in page.content()
    page.fill("#create-key input[name=name]", "laptop")
    page.click("#create-key button[type=submit]")
    key = page.locator("#new-key").inner_text().strip()
    assert key.startswith("fjg_")
    screenshot("4-key-once")
    page.click("text=I have copied it")
    page.wait_for_url(f"{base}/portal/apps/{app.pk}/")
    assert key not in page.content() and key[:12] in page.content()

    # a budget on the app, then a call through the real edge with that key
    budget_create(data={"scope": "app", "app": app, "limit": Decimal("1")})
    wait_until(lambda: edge.chat(key)[0] == 200, timeout=30, message="the edge accepts the new key")
    wait_until(
        lambda: (
            AnalyticsEvent.objects.filter(app_id=app.pk).exists()
            and BudgetUsageRecord.objects.filter(app_id=app.pk).exists()
        ),
        timeout=30,
        message="the call reached analytics through the bridge",
    )

    # and the call shows in the portal's usage page: totals, table, drawn charts, the budget bar moved
    page.click("text=Usage and spend")
    page.wait_for_url(f"{base}/portal/apps/{app.pk}/usage/")
    requests = AnalyticsEvent.objects.filter(app_id=app.pk).count()
    assert page.locator("#total-requests").inner_text() == str(requests)
    assert int(page.locator("#total-tokens").inner_text()) > 0
    page.wait_for_selector("#chart-requests[data-drawn=true]")
    assert page.evaluate("Chart.getChart('chart-requests').scales.y.max") >= 1
    assert float(page.locator("#budgets [role=progressbar]").get_attribute("aria-valuenow")) > 0
    screenshot("5-usage")
    with page.expect_download() as download:
        page.click("#csv")
    csv_lines = open(download.value.path()).read().splitlines()
    assert csv_lines[0].startswith("day,requests") and any(line.split(",")[1] != "0" for line in csv_lines[1:])


def _shot(step: str):
    """The path the `screenshot` fixture would use for `step` (for the admin's own page)."""
    from tests.browser.conftest import SCREENSHOTS

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"test_request_approve_key_once_call_edge_usage-{step}.png"
