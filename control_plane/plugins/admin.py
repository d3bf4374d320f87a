"""Plugin admin: the config is a form generated from the plugin's JSON Schema and validated on save; the event
outbox is shown read-only."""

from __future__ import annotations

import json

import msgspec
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils.html import format_html

from control_plane.config.json_fields import BoundedJSONFormField
from control_plane.hooks.admin_mixins import ServiceAdminMixin
from control_plane.hooks.models import ObjectHookRegistration
from shared_sdk.messages import Event
from shared_sdk.sync_protocol import down_subject

from .models import OutboundEvent, Plugin
from .services import (
    CODE_SOURCE_FIELDS,
    ONE_CODE_SOURCE,
    PLUGIN_FIELDS,
    plugin_delete,
    plugin_describe_into,
    plugin_initialize_check,
    plugin_register,
    plugin_update,
    plugin_validate_config,
)
from .sources import plugin_code_changes_note

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
    from .schema_widget import SchemaJSONWidget

    return BoundedJSONFormField(widget=SchemaJSONWidget(prop), **common)


class PluginAdminForm(forms.ModelForm):
    raw_config = BoundedJSONFormField(
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
            "entry_point",
            "import_path",
            "isolated",
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
        if "name" in self.fields:  # absent on a view-only page, where every field is read-only
            self.fields["name"].required = False
        config = self.instance.config if self.instance and self.instance.pk else {}
        for name, prop in self.schema_props.items():
            field = self.fields.get(CONFIG_PREFIX + name)
            if field is not None:
                value = config.get(name, prop.get("default"))
                self.initial[CONFIG_PREFIX + name] = value  # a JSONField encodes it once (dumping here made it twice)
        if self.schema_props:
            self.initial["raw_config"] = {k: v for k, v in config.items() if k not in self.schema_props}
            self.fields["raw_config"].label = "Other config keys (JSON)"
        else:
            self.initial["raw_config"] = config

    def clean_raw_config(self) -> dict:
        value = self.cleaned_data.get("raw_config")
        if value in (None, ""):
            return {}
        if not isinstance(value, dict):
            raise forms.ValidationError("Give a JSON object ({...}).", code="json_object")
        return value

    def config_from_fields(self) -> dict:
        config = dict(self.cleaned_data.get("raw_config") or {})
        for name in self.schema_props:
            key = CONFIG_PREFIX + name
            if key in self.cleaned_data and self.cleaned_data[key] not in (None, ""):
                config[name] = self.cleaned_data[key]
        return config

    def _one_code_source(self, cleaned: dict) -> None:
        """The service's rule on the first source given (entry point if none), beside any other error: that field
        is then left out of the model's constraint check, whose message would only name the constraint."""
        if not all(name in self.fields for name in CODE_SOURCE_FIELDS):  # a view-only page
            return
        sources = [name for name in CODE_SOURCE_FIELDS if cleaned.get(name)]
        if len(sources) != 1 and not any(name in self.errors for name in CODE_SOURCE_FIELDS):
            self.add_error(sources[0] if sources else "entry_point", ONE_CODE_SOURCE)

    def clean(self):
        """Load the plugin aside and validate the config now, so problems are form errors, not a failed save."""
        cleaned = super().clean()
        self._one_code_source(cleaned)
        if not self.errors:
            probe = Plugin(**{name: cleaned[name] for name in PLUGIN_FIELDS if name in cleaned and name != "config"})
            plugin_describe_into(probe)  # checks the code source against the allow-list before importing it
            try:
                probe.config = plugin_validate_config(plugin=probe, config=self.config_from_fields())
                plugin_initialize_check(probe)
            except ValidationError as exc:
                # The service names "config", which is no field of this form: show its problems above the form.
                raise forms.ValidationError([f"Config: {message}" for message in exc.messages]) from None
        return cleaned


class HookRegistrationInline(admin.TabularInline):
    model = ObjectHookRegistration
    extra = 0
    fields = readonly_fields = ("object_type", "hook_type", "priority")
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
    search_fields = ["slug", "name", "description", "entry_point", "import_path"]
    readonly_fields = ["capabilities", "config_schema", "manifest", "hook_registrations", "code_changes"]
    actions = ["activate", "deactivate", "push_config"]

    @admin.display(description="Code changes")
    def code_changes(self, obj):
        return plugin_code_changes_note(obj)

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
        saved = plugin_register(data=data) if obj is None else plugin_update(plugin=obj, data=data)
        messages.info(request, plugin_code_changes_note(saved))
        return saved

    def service_delete(self, request, obj):
        plugin_delete(plugin=obj)


class OutboundStatusFilter(admin.SimpleListFilter):
    """Pending or sent, from `sent_at`: the outbox has no status column, a row is sent once it has a time."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("pending", "Pending"), ("sent", "Sent")]

    def queryset(self, request, queryset):
        if self.value() == "pending":
            return queryset.filter(sent_at__isnull=True)
        if self.value() == "sent":
            return queryset.filter(sent_at__isnull=False)
        return queryset


_event_decoder = msgspec.msgpack.Decoder(Event)


@admin.register(OutboundEvent)
class OutboundEventAdmin(admin.ModelAdmin):
    """The event outbox, for troubleshooting "did my DOWN event leave?": read-only, since the leader bridge owns
    the rows. There is no retry action: a pending row is retried on every bridge poll until NATS takes it, so the
    only thing an operator can learn here is whether (and when) it went, and where."""

    list_display = ["id", "topic", "subject", "namespace_label", "source", "status", "created_at", "sent_at"]
    list_filter = [OutboundStatusFilter, "namespace", "source"]
    search_fields = ["topic", "event_id", "source", "namespace"]
    date_hierarchy = "created_at"
    fields = readonly_fields = (
        "event_id",
        "topic",
        "subject",
        "namespace",
        "source",
        "status",
        "created_at",
        "sent_at",
        "event",
    )

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # the bridge purges sent rows after a day; deleting a pending one would silently drop it

    @admin.display(description="NATS subject")
    def subject(self, obj: OutboundEvent) -> str:
        try:
            return down_subject(obj.namespace or None, "event")
        except ValueError:
            return "(invalid namespace: never sent)"

    @admin.display(description="Namespace", ordering="namespace")
    def namespace_label(self, obj: OutboundEvent) -> str:
        return obj.namespace or "(every edge)"

    @admin.display(description="Status", ordering="sent_at")
    def status(self, obj: OutboundEvent) -> str:
        return "Sent" if obj.sent_at else "Pending"

    @admin.display(description="Event")
    def event(self, obj: OutboundEvent) -> str:
        """The stored event as the edges will get it; the payload as text when it is UTF-8, else its size."""
        try:
            event = _event_decoder.decode(bytes(obj.body))
        except msgspec.DecodeError as exc:
            return f"(undecodable: {exc})"
        shown = msgspec.to_builtins(event)
        try:
            shown["payload"] = event.payload.decode("utf-8")
        except UnicodeDecodeError:
            shown["payload"] = f"({len(event.payload)} bytes, binary)"
        return format_html("<pre>{}</pre>", json.dumps(shown, indent=2, default=str))
