"""What an operator sees of a budget: the edges' spend (total, per edge) in the API and the admin, and the
threshold alerts (once per threshold per period; log, studio event, e-mail, admin mark)."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.utils import timezone

from control_plane.applications.models import App
from control_plane.budgets.alerts import ALERT_TOPIC
from control_plane.budgets.models import Budget, BudgetAlert
from control_plane.budgets.services import budget_create, budget_rollover_periods
from control_plane.budgets.spend import budget_spend_record
from control_plane.plugins import runtime
from control_plane.plugins.services import plugin_register
from shared_sdk.sync_protocol import BudgetSpend

from .plugins import AlertListener

pytestmark = pytest.mark.django_db


@pytest.fixture
def app():
    return App.objects.create(name="bot", namespace="eu")


def _budget(app, **extra) -> Budget:
    data = {"name": "team", "scope": "app", "app": app, "limit": Decimal("10"), "period": "monthly", **extra}
    return budget_create(data=data)


def _spend(budget: Budget, **by_edge: str) -> BudgetSpend:
    edges = {edge: Decimal(value) for edge, value in by_edge.items()}
    return BudgetSpend(
        budget_id=budget.pk,
        spent=sum(edges.values(), Decimal("0")),
        period_start=budget.period_start.timestamp(),
        by_edge=edges,
    )


def test_api_shows_spent_reserved_remaining_in_total_and_per_edge(admin_api, app):
    budget = _budget(app)
    budget_spend_record(spends=[_spend(budget, e1="2.5", e2="1.25")])
    body = admin_api.get("/api/v1/budgets/").json()
    row = (body["results"] if isinstance(body, dict) else body)[0]
    assert (row["spent"], row["reserved"], row["remaining"]) == ("3.750000", "0.000000", "6.250000")
    assert [(e["edge_id"], e["spent"]) for e in row["by_edge"]] == [("e1", "2.500000"), ("e2", "1.250000")]
    # an edge whose usage left the figures (no usage in this period any more) loses its row; totals follow
    budget_spend_record(spends=[_spend(budget, e1="3")])
    row = admin_api.get(f"/api/v1/budgets/{budget.pk}/").json()
    assert row["spent"] == "3.000000" and [e["edge_id"] for e in row["by_edge"]] == ["e1"]


def test_figures_of_another_period_are_ignored_and_roll_over_resets_spend(admin_api, app):
    budget = _budget(app)
    stale = BudgetSpend(budget_id=budget.pk, spent=Decimal("9"), period_start=budget.period_start.timestamp() - 86400)
    budget_spend_record(spends=[stale])
    assert Budget.objects.get(pk=budget.pk).spent == 0
    budget_spend_record(spends=[_spend(budget, e1="4")])
    Budget.objects.filter(pk=budget.pk).update(period_end=timezone.now() - timedelta(seconds=1))
    assert budget_rollover_periods() == 1
    row = admin_api.get(f"/api/v1/budgets/{budget.pk}/").json()
    assert (row["spent"], row["remaining"], row["by_edge"], row["alerts"]) == ("0.000000", "10.000000", [], [])


def test_thresholds_alert_once_per_period_by_log_mail_event_and_admin(
    admin_client, app, caplog, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    plugin_register(data={"slug": "alert-listener", "import_path": "control_plane.budgets.tests.plugins:AlertListener"})
    AlertListener.received.clear()
    assert runtime.plugins_load_session_aware() == ["alert-listener"]  # what the bridge does at start
    notify = _budget(app, name="watch", action="notify", notify_email="ops@example.com")
    block = _budget(app, name="stop", action="block", alert_thresholds=[75, 100])

    with caplog.at_level(logging.WARNING, logger="fjordgate.budgets"), django_capture_on_commit_callbacks(execute=True):
        budget_spend_record(spends=[_spend(notify, e1="8.5"), _spend(block, e1="8.5")])
        budget_spend_record(spends=[_spend(notify, e1="8.6"), _spend(block, e1="8.6")])  # nothing new crossed
    assert sorted(BudgetAlert.objects.filter(budget=notify).values_list("threshold", flat=True)) == [50, 80]
    assert list(BudgetAlert.objects.filter(budget=block).values_list("threshold", flat=True)) == [75]
    assert [m.to for m in mail.outbox] == [["ops@example.com"], ["ops@example.com"]]
    assert "reached 80%" in mail.outbox[1].subject
    assert sum("budget alert" in r.getMessage() for r in caplog.records) == 3
    assert {e.topic for e in AlertListener.received} == {ALERT_TOPIC}
    payloads = [json.loads(e.payload) for e in AlertListener.received]
    assert sorted((p["budget"], p["threshold_percent"], p["action"]) for p in payloads) == [
        ("stop", 75, "block"),
        ("watch", 50, "notify"),
        ("watch", 80, "notify"),
    ]

    page = admin_client.get("/admin/budgets/budget/").content.decode()
    assert page.count("fj-budget-bar") == 2 and "&#9888; 75%" in page and "&#9888; 50%" in page
    assert "e1: 8.600000" in page
    detail = admin_client.get(f"/admin/budgets/budget/{notify.pk}/change/").content.decode()
    assert "ops@example.com" in detail and "spend per edge" in detail.lower() and "8.500000" in detail

    # the next period alerts again from the first threshold (the alerts so far belong to the period that ends)
    earlier = notify.period_start - timedelta(days=31)
    BudgetAlert.objects.filter(budget=notify).update(period_start=earlier)
    Budget.objects.filter(pk=notify.pk).update(period_start=earlier, period_end=timezone.now() - timedelta(seconds=1))
    budget_rollover_periods()
    notify.refresh_from_db()
    budget_spend_record(spends=[_spend(notify, e2="5")])
    assert list(
        BudgetAlert.objects.filter(budget=notify, period_start=notify.period_start).values_list("threshold", flat=True)
    ) == [50]


def test_alert_thresholds_are_validated(admin_api, app):
    response = admin_api.post(
        "/api/v1/budgets/",
        {"scope": "app", "app": app.pk, "limit": "5", "alert_thresholds": [50, "x"]},
        format="json",
    )
    assert response.status_code == 400 and "alert_thresholds" in response.json()["extra"]["fields"], response.content


def test_the_bridge_storing_spend_and_holds_writes_no_audit_entry_and_an_operator_s_change_does(app):
    """The spend and holds the bridge stores several times a second while usage flows are figures, not changes of
    governance: the audit trail keeps the operators' writes, not one entry per figure (and no read before each)."""
    from control_plane.audit.models import AuditEntry
    from control_plane.budgets.services import budget_update

    budget = _budget(app)
    for n in range(1, 6):
        budget_spend_record(spends=[_spend(budget, e1=f"0.{n}", e2=f"0.0{n}")])
    budget.refresh_from_db()
    assert budget.spent == Decimal("0.55")
    assert [e.action for e in AuditEntry.objects.filter(object_type="budgets.budget")] == ["create"]
    budget_update(budget=budget, data={"limit": Decimal("20")})
    [update] = AuditEntry.objects.filter(object_type="budgets.budget", action="update")
    assert set(update.changes) == {"limit"}  # its diff holds the operator's change, not the figures


def test_the_admin_form_names_a_wrong_target_in_words_beside_other_errors(admin_client, app, django_user_model):
    """The target rule was checked only on an otherwise valid form: with any other error (here the currency) the
    operator got the database constraint's name ("Constraint “budget_target_matches_scope” is violated.")."""
    user = django_user_model.objects.create_user("carol")
    form = {
        "scope": "app",
        "user": user.pk,
        "limit": "10",
        "currency": "usd",
        "period": "monthly",
        "action": "block",
        "on_unreachable": "fail_closed",
        "alert_thresholds": "[80, 100]",
        **{
            f"{inline}-{count}": "0"
            for inline in ("edge_spends", "alerts")
            for count in ("TOTAL_FORMS", "INITIAL_FORMS")
        },
    }
    response = admin_client.post("/admin/budgets/budget/add/", form)
    page = response.content.decode()
    assert response.status_code == 200 and "three-letter ISO 4217 currency code" in page
    assert "An app budget needs an app." in page and "An app budget cannot also name a user." in page
    assert "budget_target_matches_scope" not in page
    assert not Budget.objects.exists()
