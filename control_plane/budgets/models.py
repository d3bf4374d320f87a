"""Spending limits on an app, a user, a group or an LLM, per calendar or anniversary period."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from control_plane.sync.namespaces import namespace_check, validate_namespace


class Budget(models.Model):
    """`period_start`/`period_end` bound the current period; `spent` is what the edges reported in it.

    Calendar periods (daily, weekly from Monday, monthly from the 1st) start at UTC midnight; an
    `anniversary_monthly` budget restarts on the day of month of `anchor`.
    """

    class Scope(models.TextChoices):
        APP = "app"
        USER = "user"
        GROUP = "group"
        LLM = "llm"

    class Period(models.TextChoices):
        DAILY = "daily"
        WEEKLY = "weekly"
        MONTHLY = "monthly", "monthly (calendar)"
        ANNIVERSARY_MONTHLY = "anniversary_monthly", "monthly (anniversary of anchor)"

    class Action(models.TextChoices):
        BLOCK = "block", "block requests"
        NOTIFY = "notify", "notify only"

    name = models.CharField(max_length=200, blank=True, default="")
    scope = models.CharField(max_length=10, choices=Scope.choices)
    app = models.ForeignKey("applications.App", on_delete=models.CASCADE, null=True, blank=True, related_name="budgets")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="fjordgate_budgets"
    )
    group = models.ForeignKey(Group, on_delete=models.CASCADE, null=True, blank=True, related_name="fjordgate_budgets")
    llm = models.ForeignKey("llms.LLM", on_delete=models.CASCADE, null=True, blank=True, related_name="budgets")
    namespace = models.CharField(max_length=100, blank=True, default="", db_index=True, validators=[validate_namespace])
    limit = models.DecimalField(max_digits=18, decimal_places=6, validators=[MinValueValidator(Decimal("0"))])
    currency = models.CharField(max_length=3, default="USD")
    period = models.CharField(max_length=24, choices=Period.choices, default=Period.MONTHLY)
    action = models.CharField(max_length=10, choices=Action.choices, default=Action.BLOCK)
    anchor = models.DateTimeField(null=True, blank=True, help_text="Start of the first period (anniversary budgets)")
    period_start = models.DateTimeField(editable=False)
    period_end = models.DateTimeField(editable=False)
    spent = models.DecimalField(max_digits=18, decimal_places=6, default=Decimal("0"), editable=False)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["scope", "id"]
        constraints = [
            namespace_check("budgets_budget"),
            models.CheckConstraint(
                condition=(
                    Q(scope="app", app__isnull=False, user__isnull=True, group__isnull=True, llm__isnull=True)
                    | Q(scope="user", app__isnull=True, user__isnull=False, group__isnull=True, llm__isnull=True)
                    | Q(scope="group", app__isnull=True, user__isnull=True, group__isnull=False, llm__isnull=True)
                    | Q(scope="llm", app__isnull=True, user__isnull=True, group__isnull=True, llm__isnull=False)
                ),
                name="budget_target_matches_scope",
            ),
            models.CheckConstraint(condition=Q(period_end__gt=models.F("period_start")), name="budget_period_order"),
        ]

    def __str__(self) -> str:
        return self.name or f"{self.scope} budget #{self.pk}"

    @property
    def target_id(self) -> int | None:
        return {"app": self.app_id, "user": self.user_id, "group": self.group_id, "llm": self.llm_id}.get(self.scope)
