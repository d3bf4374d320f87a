from __future__ import annotations

from django import forms
from django.contrib import admin, messages

from control_plane.hooks.admin_mixins import ServiceAdminMixin, run_each
from control_plane.plugins.services import plugin_validate_config
from control_plane.sync.services import config_change_record, config_push_now

from .models import LLM, LLMPluginBinding
from .services import LLM_FIELDS, llm_create, llm_delete, llm_hook_view, llm_update


class LLMAdminForm(forms.ModelForm):
    api_endpoint = forms.URLField(max_length=500, assume_scheme="https")
    api_key = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        strip=True,
        help_text="Stored encrypted; never shown again. Leave empty to keep the current key.",
    )
    clear_api_key = forms.BooleanField(required=False, help_text="Remove the stored key")

    class Meta:
        model = LLM
        fields = "__all__"


class BindingForm(forms.ModelForm):
    class Meta:
        model = LLMPluginBinding
        fields = ["plugin", "order_index", "is_active", "config_override"]

    def clean(self):
        cleaned = super().clean()
        plugin = cleaned.get("plugin")
        if plugin is not None and not self.errors:
            plugin_validate_config(
                plugin=plugin, config=cleaned.get("config_override") or {}, partial_over=plugin.config
            )
        return cleaned


class BindingInline(admin.TabularInline):
    model = LLMPluginBinding
    form = BindingForm
    extra = 0
    ordering = ["order_index"]
    autocomplete_fields = ["plugin"]


@admin.register(LLM)
class LLMAdmin(ServiceAdminMixin, admin.ModelAdmin):
    object_type = "llm"
    form = LLMAdminForm
    inlines = [BindingInline]
    list_display = [
        "slug",
        "name",
        "vendor",
        "default_model",
        "privacy_score",
        "is_active",
        "namespace",
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
        super().save_formset(request, form, formset, change)
        if formset.has_changed():
            config_change_record(namespace=form.instance.namespace, reason=f"llm {form.instance.slug} chain changed")

    @admin.action(description="Activate selected LLMs")
    def activate(self, request, queryset):
        run_each(
            request,
            queryset,
            lambda o: llm_update(llm=o, data={"is_active": True}, actor_id=request.user.pk),
            "Activated",
        )

    @admin.action(description="Deactivate selected LLMs")
    def deactivate(self, request, queryset):
        run_each(
            request,
            queryset,
            lambda o: llm_update(llm=o, data={"is_active": False}, actor_id=request.user.pk),
            "Deactivated",
        )

    @admin.action(description="Push config now (namespaces of the selected LLMs)")
    def push_config(self, request, queryset):
        for namespace in sorted(set(queryset.values_list("namespace", flat=True))):
            change = config_push_now(namespace=namespace, actor=request.user.get_username())
            messages.success(request, f"Config version {change.version} for namespace {namespace or '(global)'}")
