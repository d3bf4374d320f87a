"""Spending limits on an app, a user, a group or an LLM, per calendar or anniversary period."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from control_plane.config.currency import CURRENCY_CODE
from control_plane.sync.namespaces import namespace_check, validate_namespace

DEFAULT_ALERT_THRESHOLDS = (50, 80, 90, 100)


def default_alert_thresholds() -> list[int]:
    return list(DEFAULT_ALERT_THRESHOLDS)


def validate_alert_thresholds(value: object) -> None:
    """A short list of distinct whole percentages in 1..1000 (above 100 alerts on overspend of notify budgets)."""
    if not isinstance(value, list) or len(value) > 20:
        raise ValidationError("Give a list of at most 20 percentages, e.g. [50, 80, 90, 100].")
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int) or not 1 <= item <= 1000:
            raise ValidationError(f"{item!r} is not a whole percentage between 1 and 1000.")
    if len(set(value)) != len(value):
        raise ValidationError("Each percentage may appear once.")


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
    currency = models.CharField(max_length=3, default="USD", validators=[CURRENCY_CODE])
    period = models.CharField(max_length=24, choices=Period.choices, default=Period.MONTHLY)
    action = models.CharField(max_length=10, choices=Action.choices, default=Action.BLOCK)
    on_unreachable = models.CharField(
        max_length=12,
        choices=[("fail_closed", "refuse (402)"), ("fail_open", "serve and account")],
        default="fail_closed",
        help_text="What an edge does once it spent its lease and cannot reach the control plane for more",
    )
    anchor = models.DateTimeField(null=True, blank=True, help_text="Start of the first period (anniversary budgets)")
    period_start = models.DateTimeField(editable=False)
    period_end = models.DateTimeField(editable=False)
    spent = models.DecimalField(max_digits=18, decimal_places=6, default=Decimal("0"), editable=False)
    reserved = models.DecimalField(
        max_digits=18,
        decimal_places=6,
        default=Decimal("0"),
        editable=False,
        help_text="Held in the quota ledger beyond the spend: edges' leases (requests in flight, unspent slices)"
        " and studio calls' holds",
    )
    alert_thresholds = models.JSONField(
        default=default_alert_thresholds,
        blank=True,
        validators=[validate_alert_thresholds],
        help_text="Percent of the limit at which an alert fires, once per period each (e.g. [50, 80, 90, 100])",
    )
    notify_email = models.EmailField(blank=True, default="", help_text="Where alerts are e-mailed (blank: none)")
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
    def remaining(self) -> Decimal:
        """What may still be spent in this period: never below zero (zero while no limit is set, e.g. a blank form)."""
        if self.limit is None:
            return Decimal("0")
        return max(Decimal("0"), self.limit - self.spent - self.reserved)

    @property
    def used_percent(self) -> Decimal:
        """Spent plus reserved, in percent of the limit (a zero limit counts as fully used)."""
        if self.limit is None:
            return Decimal("0")
        if self.limit <= 0:
            return Decimal("100")
        return (self.spent + self.reserved) * 100 / self.limit

    @property
    def target_id(self) -> int | None:
        return {"app": self.app_id, "user": self.user_id, "group": self.group_id, "llm": self.llm_id}.get(self.scope)


class BudgetLease(models.Model):
    """What one edge (or `studio`) holds of a blocking budget in one period: the quota-leasing ledger.

    `granted` only grows within a period (slices add up); `used` is what the edge last reported (settled spend
    plus reservations in flight). A lease is live until `expires_at`; after that only what it used counts, so a
    dead edge's unspent slice goes back to the others. See docs/governance.md for the bound this keeps.
    """

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="leases")
    period_start = models.DateTimeField()
    edge_id = models.CharField(max_length=64)
    granted = models.DecimalField(max_digits=18, decimal_places=6, default=Decimal("0"))
    used = models.DecimalField(max_digits=18, decimal_places=6, default=Decimal("0"))
    expires_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["budget", "period_start", "edge_id"], name="one_lease_per_edge_period")
        ]

    def __str__(self) -> str:
        return f"lease of {self.edge_id} on budget {self.budget_id}"


class RateLease(models.Model):
    """Requests per minute one edge may admit under one rate limit in one fixed minute (`window_start`, epoch
    seconds): the rate-limit side of the quota ledger. Rows of past minutes are purged as new ones are granted."""

    namespace = models.CharField(max_length=100)
    key = models.CharField(max_length=200, help_text="The limit's key at the edge, e.g. app:3:rpm")
    window_start = models.BigIntegerField()
    edge_id = models.CharField(max_length=64)
    granted = models.PositiveIntegerField(default=0)
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["namespace", "key", "window_start", "edge_id"], name="one_rate_lease_per_edge_window"
            )
        ]
        indexes = [models.Index(fields=["window_start"])]

    def __str__(self) -> str:
        return f"{self.key} @ {self.window_start} for {self.edge_id}"


class BudgetEdgeSpend(models.Model):
    """One edge's part of a budget's current period, as the bridge summed it from ingested usage records."""

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="edge_spends")
    edge_id = models.CharField(max_length=63)
    spent = models.DecimalField(max_digits=18, decimal_places=6, default=Decimal("0"))
    reserved = models.DecimalField(max_digits=18, decimal_places=6, default=Decimal("0"))
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["budget_id", "edge_id"]
        constraints = [models.UniqueConstraint(fields=["budget", "edge_id"], name="budget_edge_spend_once")]

    def __str__(self) -> str:
        return f"{self.budget_id}@{self.edge_id or '(unknown edge)'}: {self.spent}"


class BudgetAlert(models.Model):
    """A threshold a budget crossed in one period; the unique key makes each alert fire once per period."""

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="alerts")
    period_start = models.DateTimeField()
    threshold = models.PositiveIntegerField(help_text="Percent of the limit")
    spent = models.DecimalField(max_digits=18, decimal_places=6)
    limit = models.DecimalField(max_digits=18, decimal_places=6)
    emailed_to = models.EmailField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-threshold"]
        constraints = [
            models.UniqueConstraint(fields=["budget", "period_start", "threshold"], name="budget_alert_once_per_period")
        ]

    def __str__(self) -> str:
        return f"{self.budget} reached {self.threshold}% ({self.spent} of {self.limit})"
