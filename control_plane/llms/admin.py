from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from control_plane.audit.recorder import redact_secret_keys
from control_plane.config.admin_widgets import SafeAutocompleteMixin
from control_plane.hooks.admin_mixins import ServiceAdminMixin
from control_plane.plugins.services import plugin_override_check

from .models import LLM, LLMPluginBinding
from .presets import endpoint_help, vendor_settings_check
from .services import LLM_FIELDS, llm_create, llm_delete, llm_hook_view, llm_set_plugin_chain, llm_update


class LLMAdminForm(forms.ModelForm):
    api_endpoint = forms.URLField(max_length=500, assume_scheme="https", required=False, help_text=endpoint_help())
    api_key = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        strip=True,
        help_text=(
            "Stored encrypted; never shown again. Leave empty to keep the current key."
            ' AWS Bedrock: ACCESS_KEY_ID:SECRET_ACCESS_KEY, with metadata {"region": "us-east-1"}.'
        ),
    )
    clear_api_key = forms.BooleanField(required=False, help_text="Remove the stored key")
    max_response_bytes = forms.IntegerField(
        required=False,
        min_value=1024,
        max_value=1024**3,
        initial=LLM._meta.get_field("max_response_bytes").default,
        help_text="Largest vendor reply an edge reads (decoded), 1 KiB to 1 GiB; a larger one is a 502. Empty: 32 MiB.",
    )

    weight = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=1000,
        initial=1,
        help_text=LLM._meta.get_field("weight").help_text + " Empty: 1.",
    )
    priority = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=100,
        initial=0,
        help_text=LLM._meta.get_field("priority").help_text + " Empty: 0.",
    )

    class Meta:
        model = LLM
        fields = "__all__"

    def _or_default(self, name: str) -> int:
        """Optional in the form (older scripts posting the form keep working); empty means the field's default."""
        value = self.cleaned_data.get(name)
        field = LLM._meta.get_field(name)
        assert isinstance(field, models.Field)
        return field.default if value is None else value

    def clean(self) -> dict[str, Any]:
        """The vendor's needs (preset endpoint, Bedrock region and key pair) as form errors on their fields; the
        service checks them again on save (`presets.vendor_settings_check`)."""
        cleaned = super().clean() or {}
        vendor = cleaned.get("vendor")
        if vendor and not self.errors:
            probe = LLM(vendor=vendor, api_endpoint=cleaned.get("api_endpoint") or "", metadata=cleaned.get("metadata"))
            try:
                vendor_settings_check(probe, cleaned.get("api_key") or None)
            except ValidationError as exc:
                self.add_error(None, exc)
        return cleaned

    def clean_max_response_bytes(self) -> int:
        return self._or_default("max_response_bytes")

    def clean_weight(self) -> int:
        return self._or_default("weight")

    def clean_priority(self) -> int:
        return self._or_default("priority")


class BindingForm(forms.ModelForm):
    class Meta:
        model = LLMPluginBinding
        fields = ["plugin", "order_index", "is_active", "config_override"]

    def clean(self):
        """The row's override checked as the service checks it (`llm_set_plugin_chain`), as a form error on the row:
        the schema, and, on an active row the user added or changed, `initialize` with the merged config."""
        cleaned = super().clean()
        plugin = cleaned.get("plugin")
        if plugin is not None and not self.errors:
            plugin_override_check(
                plugin=plugin,
                override=cleaned.get("config_override") or {},
                initialize=bool(cleaned.get("is_active")) and self.has_changed(),
            )
        return cleaned


class RedactedForViewersMixin:
    """JSON fields shown to whoever may only view the LLM (a viewer of its namespace) with their secret-looking
    values redacted, as the API shows them (`apis.LLMSerializer`): a chain's config override may hold a guardrail
    service's key. `redacted_fields` names each field; `<name>_shown` is what is shown in its place."""

    redacted_fields: tuple[str, ...] = ()

    def _view_only(self, request: Any, obj: Any) -> bool:
        return obj is not None and not self.has_change_permission(request, obj)  # type: ignore[attr-defined]

    def get_readonly_fields(self, request: Any, obj: Any = None) -> list[str]:
        readonly = list(super().get_readonly_fields(request, obj))  # type: ignore[misc]
        if self._view_only(request, obj):
            readonly += [f"{name}_shown" for name in self.redacted_fields]
        return readonly

    def get_fields(self, request: Any, obj: Any = None) -> list[Any]:
        fields = list(super().get_fields(request, obj))  # type: ignore[misc]
        if self._view_only(request, obj):
            fields = [name for name in fields if name not in self.redacted_fields]
        return fields


def _json_redacted(value: Any) -> str:
    return json.dumps(redact_secret_keys(value), ensure_ascii=False, sort_keys=True)


class BindingInline(RedactedForViewersMixin, SafeAutocompleteMixin, admin.TabularInline):
    model = LLMPluginBinding
    form = BindingForm
    extra = 0
    ordering = ["order_index"]
    autocomplete_fields = ["plugin"]
    redacted_fields = ("config_override",)

    def get_formset(self, request, obj=None, **kwargs):
        self._llm = obj  # this inline instance serves one request (Django makes them per request)
        return super().get_formset(request, obj, **kwargs)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        """Only the plugins the user may view go in a chain, as the API takes them (`apis.LLMViewSet`): another
        namespace's plugin in a chain is loaded with its config by this LLM's edges. Those already in this
        LLM's chain (a super-administrator put them there) stay valid."""
        if db_field.name == "plugin" and "queryset" not in kwargs:
            from control_plane.accounts.admin_access import request_user_access
            from control_plane.plugins.models import Plugin

            visible = request_user_access(request).filter_visible(Plugin.objects.all())
            llm = getattr(self, "_llm", None)
            held = Plugin.objects.filter(llm_bindings__llm=llm) if llm is not None else Plugin.objects.none()
            kwargs["queryset"] = Plugin.objects.filter(Q(pk__in=visible.values("pk")) | Q(pk__in=held.values("pk")))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description="Config override")
    def config_override_shown(self, obj: LLMPluginBinding) -> str:
        return _json_redacted(obj.config_override)


@admin.register(LLM)
class LLMAdmin(RedactedForViewersMixin, ServiceAdminMixin, admin.ModelAdmin):
    object_type = "llm"
    form = LLMAdminForm
    inlines = [BindingInline]
    redacted_fields = ("metadata",)
    list_display = [
        "slug",
        "name",
        "vendor",
        "default_model",
        "privacy_score",
        "is_active",
        "namespace",
        "weight",
        "priority",
        "has_api_key",
        "updated_at",
    ]
    list_filter = ["vendor", "is_active", "namespace"]
    search_fields = ["slug", "name", "default_model", "api_endpoint"]
    prepopulated_fields = {"slug": ["name"]}
    actions = ["activate", "deactivate", "push_config"]

    @admin.display(boolean=True, description="API key")
    def has_api_key(self, obj):
        return obj.has_api_key

    @admin.display(description="Metadata")
    def metadata_shown(self, obj: LLM) -> str:
        return _json_redacted(obj.metadata)

    def service_data(self, form, obj):
        data = {name: form.cleaned_data[name] for name in LLM_FIELDS if name in form.cleaned_data}
        if form.cleaned_data.get("clear_api_key"):
            data["api_key"] = ""
        elif form.cleaned_data.get("api_key"):
            data["api_key"] = form.cleaned_data["api_key"]
        return data

    def hook_view(self, obj, data):
        return llm_hook_view(obj, data)

    def service_save(self, request, obj, data, outcome):
        if obj is None:
            return llm_create(data=data, actor_id=request.user.pk, hook_outcome=outcome)
        return llm_update(llm=obj, data=data, actor_id=request.user.pk, hook_outcome=outcome)

    def service_delete(self, request, obj):
        llm_delete(llm=obj, actor_id=request.user.pk)

    def save_formset(self, request, form, formset, change):
        """The plugin-chain inline is saved by `llm_set_plugin_chain` (validation + config change), not row by row."""
        if formset.model is not LLMPluginBinding:
            return super().save_formset(request, form, formset, change)
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        if not formset.has_changed():
            return None
        deleted = set(formset.deleted_forms)
        kept = [f for f in formset.forms if f not in deleted and f.cleaned_data and (f.instance.pk or f.has_changed())]
        chain = [
            {
                "plugin": f.cleaned_data["plugin"],
                "order_index": f.cleaned_data["order_index"],
                "is_active": f.cleaned_data["is_active"],
                "config_override": f.cleaned_data.get("config_override") or {},
            }
            for f in kept
        ]
        bindings = llm_set_plugin_chain(llm=form.instance, chain=chain)
        # What the admin's history message reports (the service replaced the rows, so match them by plugin).
        by_plugin = {b.plugin_id: b for b in bindings}
        for f in kept:
            binding = by_plugin[f.cleaned_data["plugin"].pk]
            if not f.instance.pk:
                formset.new_objects.append(binding)
            elif f.has_changed():
                formset.changed_objects.append((binding, f.changed_data))
        formset.deleted_objects = [f.instance for f in deleted if f.instance.pk]
        return None
