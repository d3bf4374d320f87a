"""How the admin writes through services: before hooks run while the form validates (a refusal becomes a form
error showing the plugin's reason), the save calls the service with that outcome, deletes call the delete service.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import models
from django.http import HttpResponseRedirect

from control_plane.config.admin_widgets import NamespacePickerMixin, SafeAutocompleteMixin
from control_plane.config.exceptions import ApplicationError, HookRejected
from control_plane.config.json_fields import BoundedJSONFormField
from control_plane.sync.services import config_push_now

from .services import HookOutcome, object_hooks_run_before


class ServiceAdminMixin(NamespacePickerMixin, SafeAutocompleteMixin):
    """Subclasses set `object_type` (or None for objects without hooks) and implement:
    `service_data(form, obj) -> dict`, `service_save(request, obj, data, outcome) -> Model`,
    `service_delete(request, obj)`, and optionally `hook_view(obj, data)` and `check_outcome(outcome)`.
    """

    object_type: str | None = None
    save_form_m2m = False

    def formfield_for_dbfield(self, db_field: Any, request: Any, **kwargs: Any) -> Any:
        """A plain JSON column gets the bounded JSON input (`config.json_fields`): Django's own showed a posted
        unpaired surrogate back into the page, which cannot be encoded, a 500 (a budget's alert thresholds, a
        plugin's extra scopes). The shaped columns bring it already."""
        if type(db_field) is models.JSONField:
            kwargs.setdefault("form_class", BoundedJSONFormField)
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    active_field = "is_active"
    """The model's on/off field, for the activate / deactivate actions (which go through `service_save`)."""

    # Shared actions: an admin enables the ones it wants by naming them in `actions`. Django fills in
    # %(verbose_name_plural)s, so each model's menu still says what it acts on.
    @admin.action(description="Activate selected %(verbose_name_plural)s")
    def activate(self, request, queryset):
        run_each(
            request, queryset, lambda obj: self.service_save(request, obj, {self.active_field: True}, None), "Activated"
        )

    @admin.action(description="Deactivate selected %(verbose_name_plural)s")
    def deactivate(self, request, queryset):
        run_each(
            request,
            queryset,
            lambda obj: self.service_save(request, obj, {self.active_field: False}, None),
            "Deactivated",
        )

    @admin.action(description="Push config now (namespaces of the selected %(verbose_name_plural)s)")
    def push_config(self, request, queryset):
        for namespace in sorted(set(queryset.values_list("namespace", flat=True))):
            change = config_push_now(namespace=namespace, actor=request.user.get_username())
            messages.success(request, f"Config version {change.version} for namespace {namespace or '(global)'}")

    def hook_view(self, obj: Any, data: dict) -> dict:
        return data

    def check_outcome(self, outcome: HookOutcome) -> list[str]:
        return []

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change=change, **kwargs)
        admin = self

        class ServiceForm(form_class):
            hook_outcome: HookOutcome | None = None

            def clean(self):
                cleaned = super().clean()
                if self.errors:
                    return cleaned
                data = admin.service_data(self, obj)
                self.service_payload = data
                if admin.object_type is None:
                    return cleaned
                try:
                    self.hook_outcome = object_hooks_run_before(
                        object_type=admin.object_type,
                        operation="update" if obj is not None and obj.pk else "create",
                        obj=admin.hook_view(obj, data),
                        actor_id=request.user.pk,
                    )
                except HookRejected as exc:
                    raise ValidationError(
                        f"Refused by plugin {exc.plugin}: {exc.message}", code="hook_rejected"
                    ) from None
                problems = admin.check_outcome(self.hook_outcome)
                if problems:
                    raise ValidationError(problems, code="rule")
                return cleaned

        return ServiceForm

    def save_model(self, request, obj, form, change):
        saved = self.service_save(request, obj if change else None, form.service_payload, form.hook_outcome)
        obj.__dict__.update({k: v for k, v in saved.__dict__.items() if k != "_state"})
        obj._state.adding = False
        obj._state.db = saved._state.db

    def save_related(self, request, form, formsets, change):
        if self.save_form_m2m:
            form.save_m2m()
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def delete_model(self, request, obj):
        self.service_delete(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.service_delete(request, obj)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        """The form validates what it can before saving; a rule only the service can check (under its locks) is a
        message on the same page, never a server error. The transaction of the save was rolled back."""
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except (ApplicationError, ValidationError) as exc:
            messages.error(request, _message(exc))
            return HttpResponseRedirect(request.get_full_path())

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except (ApplicationError, ValidationError) as exc:
            messages.error(request, _message(exc))
            return HttpResponseRedirect(request.path)

    def response_action(self, request, queryset):
        try:
            return super().response_action(request, queryset)
        except (ApplicationError, ValidationError) as exc:
            messages.error(request, _message(exc))
            return HttpResponseRedirect(request.get_full_path())


def _message(exc: Exception) -> str:
    if isinstance(exc, HookRejected):
        return f"Refused by plugin {exc.plugin}: {exc.message}"
    if isinstance(exc, ApplicationError):
        return exc.message
    return "; ".join(exc.messages)  # type: ignore[attr-defined]


def run_each(request, queryset, fn, done: str) -> None:
    """Apply `fn` to each selected object; a refusal of one is reported and does not stop the others."""
    count = 0
    for obj in queryset:
        try:
            fn(obj)
            count += 1
        except (ApplicationError, ValidationError) as exc:
            messages.error(request, f"{obj}: {_message(exc)}")
    if count:
        messages.success(request, f"{done}: {count}")
