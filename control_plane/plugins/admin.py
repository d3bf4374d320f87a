"""Plugin admin: the config is a form generated from the plugin's JSON Schema and validated on save."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin

from control_plane.hooks.admin_mixins import ServiceAdminMixin
from control_plane.hooks.models import ObjectHookRegistration

from .models import Plugin
from .services import (
    PLUGIN_FIELDS,
    plugin_delete,
    plugin_describe_into,
    plugin_register,
    plugin_update,
    plugin_validate_config,
)

CONFIG_PREFIX = "config__"


def schema_field(name: str, prop: dict, required: bool) -> forms.Field:
    """One form field for one property of a JSON Schema object (objects and arrays as JSON text)."""
    kind = prop.get("type")
    common = {
        "required": required and kind != "boolean",
        "help_text": prop.get("description", ""),
        "label": prop.get("title", name),
    }
    if "enum" in prop:
        return forms.TypedChoiceField(
            choices=[(v, str(v)) for v in prop["enum"]],
            coerce=lambda v, options=prop["enum"]: next(o for o in options if str(o) == v),
            **common,
        )
    if kind == "boolean":
        return forms.BooleanField(**common)
    if kind == "integer":
        return forms.IntegerField(min_value=prop.get("minimum"), max_value=prop.get("maximum"), **common)
    if kind == "number":
        return forms.FloatField(min_value=prop.get("minimum"), max_value=prop.get("maximum"), **common)
    if kind == "string":
        widget = forms.PasswordInput(render_value=True) if prop.get("format") == "password" else None
        return forms.CharField(
            max_length=prop.get("maxLength"), min_length=prop.get("minLength"), widget=widget, strip=False, **common
        )
    return forms.JSONField(**common)


class PluginAdminForm(forms.ModelForm):
    raw_config = forms.JSONField(
        required=False,
        initial=dict,
        label="Config (JSON)",
        help_text="Used when the plugin declares no config schema (or on first registration).",
    )

    class Meta:
        model = Plugin
        fields = [
            "slug",
            "name",
            "version",
            "description",
            "import_path",
            "command",
            "failure_policy",
            "timeout_ms",
            "namespace",
            "active",
            "global_order",
            "extra_scopes",
        ]

    schema_props: dict = {}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["name"].required = False
        config = self.instance.config if self.instance and self.instance.pk else {}
        for name, prop in self.schema_props.items():
            field = self.fields.get(CONFIG_PREFIX + name)
            if field is not None:
                value = config.get(name, prop.get("default"))
                self.initial[CONFIG_PREFIX + name] = json.dumps(value) if isinstance(field, forms.JSONField) else value
        if self.schema_props:
            self.initial["raw_config"] = {k: v for k, v in config.items() if k not in self.schema_props}
            self.fields["raw_config"].label = "Other config keys (JSON)"
        else:
            self.initial["raw_config"] = config

    def config_from_fields(self) -> dict:
        config = dict(self.cleaned_data.get("raw_config") or {})
        for name in self.schema_props:
            key = CONFIG_PREFIX + name
            if key in self.cleaned_data and self.cleaned_data[key] not in (None, ""):
                config[name] = self.cleaned_data[key]
        return config

    def clean(self):
        """Load the plugin aside and validate the config now, so problems are form errors, not a failed save."""
        cleaned = super().clean()
        if not self.errors:
            probe = Plugin(**{name: cleaned[name] for name in PLUGIN_FIELDS if name in cleaned and name != "config"})
            probe.import_path = probe.import_path or ""
            probe.command = list(probe.command or [])
            if bool(probe.import_path) == bool(probe.command):
                raise forms.ValidationError("Set exactly one of import path (in-process) and command (isolated).")
            plugin_describe_into(probe)
            plugin_validate_config(plugin=probe, config=self.config_from_fields())
        return cleaned


class HookRegistrationInline(admin.TabularInline):
    model = ObjectHookRegistration
    extra = 0
    fields = ["object_type", "hook_type", "priority"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False  # discovered from the plugin


@admin.register(Plugin)
class PluginAdmin(ServiceAdminMixin, admin.ModelAdmin):
    form = PluginAdminForm
    active_field = "active"
    inlines = [HookRegistrationInline]
    list_display = [
        "slug",
        "name",
        "version",
        "active",
        "namespace",
        "global_order",
        "failure_policy",
        "timeout_ms",
        "capability_list",
    ]
    list_filter = ["active", "namespace", "failure_policy"]
    search_fields = ["slug", "name", "description", "import_path"]
    readonly_fields = ["capabilities", "config_schema", "manifest", "hook_registrations"]
    actions = ["activate", "deactivate", "push_config"]

    @admin.display(description="Capabilities")
    def capability_list(self, obj):
        return ", ".join(obj.capabilities)

    def get_form(self, request, obj=None, change=False, **kwargs):
        """A form class with one declared field per property of this plugin's config schema."""
        schema = (obj.config_schema if obj is not None else {}) or {}
        props = {k: v for k, v in (schema.get("properties") or {}).items() if isinstance(v, dict)}
        required = set(schema.get("required") or [])
        attrs = {CONFIG_PREFIX + name: schema_field(name, prop, name in required) for name, prop in props.items()}
        attrs["schema_props"] = props
        kwargs["form"] = type("PluginConfigForm", (PluginAdminForm,), attrs)
        return super().get_form(request, obj, change=change, **kwargs)

    def service_data(self, form, obj):
        data = {name: form.cleaned_data[name] for name in PLUGIN_FIELDS if name in form.cleaned_data}
        data["config"] = form.config_from_fields()
        return data

    def service_save(self, request, obj, data, outcome):
        if obj is None:
            return plugin_register(data=data)
        return plugin_update(plugin=obj, data=data)

    def service_delete(self, request, obj):
        plugin_delete(plugin=obj)
