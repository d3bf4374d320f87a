from __future__ import annotations

from django.contrib import admin

from control_plane.hooks.admin_mixins import ServiceAdminMixin

from .models import Budget
from .services import BUDGET_FIELDS, budget_create, budget_delete, budget_update


@admin.register(Budget)
class BudgetAdmin(ServiceAdminMixin, admin.ModelAdmin):
    list_display = [
        "__str__",
        "scope",
        "target",
        "limit",
        "spent",
        "currency",
        "period",
        "action",
        "period_end",
        "is_active",
    ]
    list_filter = ["scope", "period", "action", "is_active", "namespace"]
    search_fields = ["name", "app__name", "user__username", "group__name", "llm__slug"]
    readonly_fields = ["namespace", "period_start", "period_end", "spent"]
    autocomplete_fields = ["app", "llm"]

    @admin.display(description="Target")
    def target(self, obj):
        return obj.app or obj.user or obj.group or obj.llm

    def service_data(self, form, obj):
        return {name: form.cleaned_data[name] for name in BUDGET_FIELDS if name in form.cleaned_data}

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change=change, **kwargs)

        class BudgetForm(form_class):
            def clean(self):
                cleaned = super().clean()
                if not self.errors:
                    scope = cleaned.get("scope")
                    if scope and not cleaned.get(scope):
                        self.add_error(scope, f"A {scope} budget needs a {scope}.")
                    for other in ("app", "user", "group", "llm"):
                        if other != scope and cleaned.get(other):
                            self.add_error(other, f"A {scope} budget cannot also name a {other}.")
                return cleaned

        return BudgetForm

    def service_save(self, request, obj, data, outcome):
        if obj is None:
            return budget_create(data=data)
        return budget_update(budget=obj, data=data)

    def service_delete(self, request, obj):
        budget_delete(budget=obj)
