from __future__ import annotations

from django import forms
from django.contrib import admin

from control_plane.budgets.currency_rule import price_currency_errors
from control_plane.hooks.admin_mixins import ServiceAdminMixin

from .models import Datasource, ModelPrice, Tag, Tool
from .services import (
    DATASOURCE_FIELDS,
    TOOL_FIELDS,
    datasource_create,
    datasource_delete,
    datasource_update,
    model_price_delete,
    model_price_upsert,
    resource_hook_view,
    tag_delete,
    tag_get_or_create,
    tag_rename,
    tool_create,
    tool_delete,
    tool_update,
)


class _ResourceAdmin(ServiceAdminMixin, admin.ModelAdmin):
    list_display = ["slug", "name", "privacy_score", "is_active", "namespace", "updated_at"]
    list_filter = ["is_active", "namespace"]
    search_fields = ["slug", "name", "description"]
    prepopulated_fields = {"slug": ["name"]}
    actions = ["activate", "deactivate"]
    fields_tuple: tuple[str, ...] = ()

    def service_data(self, form, obj):
        return {name: form.cleaned_data[name] for name in self.fields_tuple if name in form.cleaned_data}

    def hook_view(self, obj, data):
        return resource_hook_view(self.model, self.fields_tuple, obj, data)


class ToolAdminForm(forms.ModelForm):
    auth_key = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        strip=True,
        help_text=(
            "The API's credential, sent where the spec's security scheme says (apiKey header or query, http bearer "
            "or basic as user:password; Authorization: Bearer when the spec declares none). Stored encrypted; never "
            "shown again. Leave empty to keep the current key."
        ),
    )
    clear_auth_key = forms.BooleanField(required=False, help_text="Remove the stored key")

    class Meta:
        model = Tool
        fields = "__all__"


@admin.register(Tool)
class ToolAdmin(_ResourceAdmin):
    form = ToolAdminForm
    object_type = "tool"
    fields_tuple = TOOL_FIELDS
    list_display = [*_ResourceAdmin.list_display[:-1], "has_auth_key", "updated_at"]

    @admin.display(boolean=True, description="Auth key")
    def has_auth_key(self, obj):
        return obj.has_auth_key

    def service_data(self, form, obj):
        data = super().service_data(form, obj)
        if form.cleaned_data.get("clear_auth_key"):
            data["auth_key"] = ""
        elif form.cleaned_data.get("auth_key"):
            data["auth_key"] = form.cleaned_data["auth_key"]
        return data

    def _update(self, request, obj, data, outcome=None):
        return tool_update(tool=obj, data=data, actor_id=request.user.pk, hook_outcome=outcome)

    def service_save(self, request, obj, data, outcome):
        if obj is None:
            return tool_create(data=data, actor_id=request.user.pk, hook_outcome=outcome)
        return self._update(request, obj, data, outcome)

    def service_delete(self, request, obj):
        tool_delete(tool=obj, actor_id=request.user.pk)


@admin.register(Datasource)
class DatasourceAdmin(_ResourceAdmin):
    object_type = "datasource"
    fields_tuple = DATASOURCE_FIELDS
    autocomplete_fields = ["embedding_llm"]

    def service_data(self, form, obj):
        data = super().service_data(form, obj)
        if "embedding_llm" in form.cleaned_data:  # the form picks an LLM; the service takes its id
            llm = form.cleaned_data["embedding_llm"]
            data["embedding_llm_id"] = llm.pk if llm is not None else None
        return data

    def _update(self, request, obj, data, outcome=None):
        return datasource_update(datasource=obj, data=data, actor_id=request.user.pk, hook_outcome=outcome)

    def service_save(self, request, obj, data, outcome):
        if obj is None:
            return datasource_create(data=data, actor_id=request.user.pk, hook_outcome=outcome)
        return self._update(request, obj, data, outcome)

    def service_delete(self, request, obj):
        datasource_delete(datasource=obj, actor_id=request.user.pk)


@admin.register(Tag)
class TagAdmin(ServiceAdminMixin, admin.ModelAdmin):
    search_fields = ["name"]

    def service_data(self, form, obj):
        return {"name": form.cleaned_data["name"]}

    def service_save(self, request, obj, data, outcome):
        if obj is None:
            return tag_get_or_create(name=data["name"])
        return tag_rename(tag=obj, name=data["name"])

    def service_delete(self, request, obj):
        tag_delete(tag=obj)


@admin.register(ModelPrice)
class ModelPriceAdmin(ServiceAdminMixin, admin.ModelAdmin):
    list_display = [
        "vendor",
        "model",
        "prompt_per_million",
        "completion_per_million",
        "cache_read_per_million",
        "cache_write_per_million",
        "currency",
        "max_output_tokens",
        "max_input_tokens",
        "updated_at",
    ]
    list_filter = ["vendor", "currency"]
    search_fields = ["vendor", "model"]

    def service_data(self, form, obj):
        return dict(form.cleaned_data)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change=change, **kwargs)

        class ModelPriceForm(form_class):
            def clean(self):
                """The currency rule (`budgets.currency_rule`) on the currency field, before the service checks
                it again under its transaction."""
                cleaned = super().clean()
                if not self.errors:
                    for error in price_currency_errors(
                        vendor=cleaned["vendor"],
                        model=cleaned["model"],
                        currency=cleaned["currency"],
                        price_id=obj.pk if obj is not None else None,
                    ):
                        self.add_error("currency", error)
                return cleaned

        return ModelPriceForm

    def service_save(self, request, obj, data, outcome):
        return model_price_upsert(data=data, price=obj)

    def service_delete(self, request, obj):
        model_price_delete(price=obj)
