from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from control_plane.applications.models import App
from control_plane.budgets.models import Budget
from control_plane.budgets.periods import period_bounds
from control_plane.budgets.services import budget_create, budget_rollover_periods

NOW = datetime(2025, 3, 19, 15, 30, tzinfo=UTC)  # a Wednesday


@pytest.mark.parametrize(
    ("period", "anchor", "start", "end"),
    [
        ("daily", None, datetime(2025, 3, 19, tzinfo=UTC), datetime(2025, 3, 20, tzinfo=UTC)),
        ("weekly", None, datetime(2025, 3, 17, tzinfo=UTC), datetime(2025, 3, 24, tzinfo=UTC)),
        ("monthly", None, datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 4, 1, tzinfo=UTC)),
        (
            "anniversary_monthly",
            datetime(2024, 1, 31, 9, tzinfo=UTC),
            datetime(2025, 2, 28, 9, tzinfo=UTC),
            datetime(2025, 3, 31, 9, tzinfo=UTC),
        ),
        (
            "anniversary_monthly",
            datetime(2024, 12, 10, tzinfo=UTC),
            datetime(2025, 3, 10, tzinfo=UTC),
            datetime(2025, 4, 10, tzinfo=UTC),
        ),
    ],
)
def test_period_bounds(period, anchor, start, end):
    assert period_bounds(period, NOW, anchor) == (start, end)


@pytest.mark.django_db
def test_rollover_starts_new_period_and_resets_spend():
    app = App.objects.create(name="a")
    budget = budget_create(data={"scope": "app", "app": app, "limit": Decimal("5"), "period": "daily"})
    Budget.objects.filter(pk=budget.pk).update(
        period_start=budget.period_start - timedelta(days=2),
        period_end=budget.period_end - timedelta(days=2),
        spent=Decimal("4.5"),
    )
    assert budget_rollover_periods() == 1
    budget.refresh_from_db()
    assert budget.spent == 0 and budget.period_end > datetime.now(UTC)
    assert budget_rollover_periods() == 0
