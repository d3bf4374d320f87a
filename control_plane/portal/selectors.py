"""Reads for the portal: a user's catalogue, their own apps (another user's app is a 404), keys, budgets, usage."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db.models import Q, QuerySet
from django.shortcuts import get_object_or_404

from control_plane.analytics.selectors import app_spent_in_period
from control_plane.applications.models import App, Credential
from control_plane.budgets.models import Budget
from control_plane.catalog.models import Datasource, Tool
from control_plane.llms.models import LLM


def catalogue_llms(user: Any) -> QuerySet[LLM]:
    return LLM.objects.filter(Q(catalogues__group__user=user), is_active=True).distinct().order_by("name", "slug")


def catalogue_tools(user: Any) -> QuerySet[Tool]:
    return Tool.objects.filter(Q(catalogues__group__user=user), is_active=True).distinct().order_by("name", "slug")


def catalogue_datasources(user: Any) -> QuerySet[Datasource]:
    return (
        Datasource.objects.filter(Q(catalogues__group__user=user), is_active=True).distinct().order_by("name", "slug")
    )


def user_apps(user: Any) -> QuerySet[App]:
    return App.objects.filter(owner=user).prefetch_related("llms", "tools", "datasources").order_by("name", "id")


def user_app(user: Any, app_id: int) -> App:
    """The user's own app; any other id (someone else's or none) is the same 404, so ids reveal nothing."""
    return get_object_or_404(App.objects.filter(owner=user), pk=app_id)


def user_credential(user: Any, app: App, credential_id: int) -> Credential:
    return get_object_or_404(Credential.objects.filter(app=app, app__owner=user), pk=credential_id)


def app_keys(app: App) -> QuerySet[Credential]:
    return app.credentials.order_by("-created_at", "-id")


def app_budgets(app: App) -> list[dict[str, Any]]:
    """Budget progress of an app: spent in the current period against the limit, as a percentage too.

    Spend is summed from the ingested usage records (as the bridge does for edges), so the bar moves as soon as
    traffic is ingested; `Budget.spent` counts when it is higher (a figure set by an administrator)."""
    rows = []
    for budget in Budget.objects.filter(scope=Budget.Scope.APP, app=app, is_active=True).order_by("id"):
        limit = budget.limit or Decimal("0")
        summed = app_spent_in_period(
            app_id=app.pk, since=budget.period_start, until=budget.period_end, currency=budget.currency
        )
        spent = max(budget.spent, summed)
        percent = float(min(spent / limit, Decimal("1")) * 100) if limit > 0 else 100.0
        rows.append(
            {
                "budget": budget,
                "spent": spent,
                "limit": limit,
                "percent": round(percent, 1),
                "over": spent >= limit,
            }
        )
    return rows


def default_range(today: dt.date | None = None) -> tuple[dt.date, dt.date]:
    today = today or dt.datetime.now(dt.UTC).date()
    return today - dt.timedelta(days=13), today
