from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from control_plane.hooks.admin_mixins import ServiceAdminMixin

from .currency_rule import budget_currency_errors
from .models import Budget, BudgetAlert, BudgetEdgeSpend
from .services import BUDGET_FIELDS, budget_create, budget_delete, budget_target_errors, budget_update


class BudgetEdgeSpendInline(admin.TabularInline):
    """Each edge's part of the current period's spend (written by the bridge; read-only here)."""

    model = BudgetEdgeSpend
    extra = 0
    can_delete = False
    fields = ("edge_id", "spent", "reserved", "updated_at")
    readonly_fields = ("edge_id", "spent", "reserved", "updated_at")
    verbose_name_plural = "spend per edge (current period)"

    def has_add_permission(self, request, obj=None):
        return False


class BudgetAlertInline(admin.TabularInline):
    """Thresholds the budget crossed, newest first, every period (alerts are fired by the bridge, never here)."""

    model = BudgetAlert
    extra = 0
    can_delete = False
    fields = ("created_at", "period_start", "threshold", "spent", "limit", "emailed_to")
    readonly_fields = ("created_at", "period_start", "threshold", "spent", "limit", "emailed_to")
    verbose_name_plural = "alerts"

    def has_add_permission(self, request, obj=None):
        return False


def _bar(budget: Budget) -> str:
    """A progress bar in plain HTML: spent (solid), reserved (light) and the number, no JavaScript."""
    if budget.limit is None:
        return "-"
    limit = budget.limit if budget.limit > 0 else None
    spent_pct = min(100, float(budget.spent * 100 / limit)) if limit else (100 if budget.spent > 0 else 0)
    reserved_pct = min(100 - spent_pct, float(budget.reserved * 100 / limit)) if limit else 0
    used = float(budget.used_percent)
    color = "#ba2121" if used >= 100 else "#c77c02" if used >= 80 else "#2e7d32"
    return format_html(
        '<div class="fj-budget-bar" title="{} spent, {} reserved, {} remaining of {} {}" '
        'style="width:140px;height:10px;background:#e5e5e5;display:inline-block;vertical-align:middle">'
        '<div style="width:{}%;height:100%;background:{};float:left"></div>'
        '<div style="width:{}%;height:100%;background:{};opacity:.4;float:left"></div></div> {}%',
        budget.spent,
        budget.reserved,
        budget.remaining,
        budget.limit,
        budget.currency,
        f"{spent_pct:.1f}",
        color,
        f"{reserved_pct:.1f}",
        color,
        f"{used:.0f}",
    )


@admin.register(Budget)
class BudgetAdmin(ServiceAdminMixin, admin.ModelAdmin):
    list_display = [
        "__str__",
        "scope",
        "target",
        "limit",
        "spent",
        "reserved",
        "remaining",
        "usage",
        "alerted",
        "per_edge",
        "currency",
        "period",
        "action",
        "period_end",
        "is_active",
    ]
    list_filter = ["scope", "period", "action", "is_active", "namespace"]
    search_fields = ["name", "app__name", "user__username", "group__name", "llm__slug"]
    readonly_fields = ["namespace", "period_start", "period_end", "spent", "reserved", "remaining", "usage"]
    autocomplete_fields = ["app", "llm"]
    inlines = [BudgetEdgeSpendInline, BudgetAlertInline]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("edge_spends", "alerts")

    @admin.display(description="Remaining")
    def remaining(self, obj):
        return obj.remaining

    @admin.display(description="Used")
    def usage(self, obj):
        return _bar(obj)

    @admin.display(description="Alerts this period")
    def alerted(self, obj):
        reached = sorted(a.threshold for a in obj.alerts.all() if a.period_start == obj.period_start)
        if not reached:
            return "-"
        return format_html_join(
            " ", '<span class="fj-budget-alert" title="alert fired">&#9888; {}%</span>', ((t,) for t in reached)
        )

    @admin.display(description="Per edge")
    def per_edge(self, obj):
        rows = list(obj.edge_spends.all())
        if not rows:
            return "-"
        return format_html_join(mark_safe("<br>"), "{}: {}", ((row.edge_id or "(unknown)", row.spent) for row in rows))

    @admin.display(description="Target")
    def target(self, obj):
        return obj.app or obj.user or obj.group or obj.llm

    def service_data(self, form, obj):
        return {name: form.cleaned_data[name] for name in BUDGET_FIELDS if name in form.cleaned_data}

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change=change, **kwargs)

        class BudgetForm(form_class):
            def clean(self):
                """The target rule beside any other error: the fields it names are then left out of the
                model's constraint check, whose message would only name the constraint."""
                cleaned = super().clean()
                scope = cleaned.get("scope")
                if scope:
                    targets = {name: cleaned.get(name) for name in ("app", "user", "group", "llm")}
                    for name, message in budget_target_errors(scope, targets).items():
                        if name not in self.errors:
                            self.add_error(name, message)
                if not self.errors and cleaned.get("is_active"):
                    for error in budget_currency_errors(
                        scope=scope, app=cleaned.get("app"), llm=cleaned.get("llm"), currency=cleaned["currency"]
                    ):
                        self.add_error("currency", error)
                return cleaned

        return BudgetForm

    def service_save(self, request, obj, data, outcome):
        if obj is None:
            return budget_create(data=data)
        return budget_update(budget=obj, data=data)

    def service_delete(self, request, obj):
        budget_delete(budget=obj)
