from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html

from control_plane.accounts.admin_access import request_user_access
from control_plane.budgets.currency_rule import app_llm_currency_errors
from control_plane.hooks.admin_mixins import ServiceAdminMixin, run_each

from .models import App, Credential, PluginResource
from .services import (
    APP_FIELDS,
    app_approve,
    app_create,
    app_delete,
    app_hook_view,
    app_update,
    credential_create,
    credential_revoke,
    credential_rotate,
    privacy_errors,
)


def _show_key(request, credential, key: str, verb: str) -> None:
    """The one time a key is visible: a message on the next page, never stored or logged."""
    messages.warning(
        request,
        format_html(
            "{} key for app {!s} ({}…): <code>{}</code> — copy it now, it will not be shown again.",
            verb,
            credential.app,
            credential.prefix,
            key,
        ),
    )


class CredentialInline(admin.TabularInline):
    model = Credential
    extra = 0
    can_delete = False
    fields = readonly_fields = ("prefix", "name", "user", "created_at", "expires_at", "revoked_at", "rotated_from")
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False  # keys are created by the "create key" action so the key can be shown once


class PluginResourceInline(admin.TabularInline):
    model = PluginResource
    extra = 0
    fields = readonly_fields = ("plugin", "resource_type", "resource_id", "name", "privacy_score")

    def has_add_permission(self, request, obj=None):
        return False  # resources are attached through the API, which asks the plugin for their privacy score


class AppAdminForm(forms.ModelForm):
    """The app form plus a picker of plugin resources (instances of every `ResourceProvider` type)."""

    resources = forms.MultipleChoiceField(
        required=False,
        label="Plugin resources",
        widget=forms.CheckboxSelectMultiple,
        help_text="Resources of resource-provider plugins (e.g. document collections). The privacy rule applies: "
        "the app's LLMs must have a privacy score at least as high as each resource's.",
    )

    #: The plugins whose resources are offered (`AppAdmin.get_form` sets those the user may view; None: every one).
    resource_plugins: Any = None

    class Meta:
        model = App
        fields = "__all__"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from control_plane.plugins.resources import resource_choices

        self.resource_choices = {c.value: c.as_dict() for c in resource_choices(self.resource_plugins)}
        attached = []
        if self.instance.pk:
            for r in self.instance.plugin_resources.select_related("plugin"):
                value = f"{r.plugin.slug}|{r.resource_type}|{r.resource_id}"
                attached.append(value)
                self.resource_choices.setdefault(
                    value,
                    {
                        "plugin": r.plugin.slug,
                        "resource_type": r.resource_type,
                        "resource_id": r.resource_id,
                        "privacy_score": r.privacy_score,
                        "label": f"{r.resource_type}: {r.name or r.resource_id} (privacy score {r.privacy_score})",
                    },
                )
        self.fields["resources"].choices = [(v, c["label"]) for v, c in self.resource_choices.items()]
        self.initial.setdefault("resources", attached)


def _held_unoffered(form, obj, field: str) -> set[int]:
    """What the app holds that the form did not offer (another namespace's, attached by a super-administrator):
    kept, since the user could neither see nor keep it otherwise (`formfield_for_manytomany`)."""
    if obj is None or obj.pk is None or field not in form.fields:
        return set()
    offered = form.fields[field].queryset
    return set(getattr(obj, field).exclude(pk__in=offered.values("pk")).values_list("pk", flat=True))


@admin.register(App)
class AppAdmin(ServiceAdminMixin, admin.ModelAdmin):
    object_type = "app"
    form = AppAdminForm
    inlines = [CredentialInline, PluginResourceInline]
    list_display = [
        "name",
        "owner",
        "namespace",
        "approved",
        "is_active",
        "rate_limit_rpm",
        "rate_limit_tpm",
        "created_at",
    ]
    list_filter = ["approved", "is_active", "namespace", "llms", "tags"]
    search_fields = ["name", "description", "owner__username", "owner__email"]
    filter_horizontal = ["llms", "tools", "datasources", "tags"]
    readonly_fields = ["approved_at", "created_at", "updated_at"]
    actions = ["approve", "activate", "deactivate", "create_key", "push_config"]

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        """Only the LLMs, tools and datasources the user may see are offered, as the API takes
        (`apis.AppViewSet._check_visible`): another namespace's are neither listed nor attachable."""
        if db_field.name in ("llms", "tools", "datasources") and "queryset" not in kwargs:
            related = db_field.remote_field.model._default_manager.all()
            kwargs["queryset"] = request_user_access(request).filter_visible(related)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def get_form(self, request, obj=None, change=False, **kwargs):
        """The resource picker offers the resources of the plugins the user may view, as the API takes them
        (`apis.AppViewSet._check_visible`): another namespace's document collections are neither listed nor
        attachable (a crafted choice is invalid); what the app holds stays offered (`AppAdminForm`)."""
        from control_plane.plugins.models import Plugin

        form = super().get_form(request, obj, change=change, **kwargs)
        plugins = request_user_access(request).filter_visible(Plugin.objects.all())

        class AppForm(form):
            resource_plugins = plugins

            def clean(self):
                """An LLM given to the app may not bill one of its budgets in another currency (the service's
                rule, `budgets.currency_rule`, shown on the field rather than above the form)."""
                cleaned = super().clean()
                if not self.errors and obj is not None and "llms" in cleaned:
                    added = {x.pk for x in cleaned["llms"]} - set(obj.llms.values_list("pk", flat=True))
                    for error in app_llm_currency_errors(app=obj, llm_ids=added):
                        self.add_error("llms", error)
                return cleaned

        AppForm.__name__, AppForm.__qualname__, AppForm.__module__ = form.__name__, form.__name__, form.__module__
        return AppForm

    def changelist_view(self, request, extra_context=None):
        """App requests from the portal wait here: say how many, with a link to the unapproved ones."""
        # on GET only: a POST here runs an action (e.g. approve) after this point, so its count would be stale
        pending = self.get_queryset(request).filter(approved=False).count() if request.method == "GET" else 0
        if pending and request.GET.get("approved__exact") != "0":
            messages.info(
                request,
                format_html(
                    '{} app request(s) wait for approval: <a href="?approved__exact=0">show them</a>, select, '
                    'then "Approve selected apps".',
                    pending,
                ),
            )
        return super().changelist_view(request, extra_context)

    def service_data(self, form, obj):
        cd = form.cleaned_data
        data = {name: cd[name] for name in APP_FIELDS if name in cd}
        if "owner" in cd:
            data["owner_id"] = cd["owner"].pk if cd["owner"] else None
        for field, key in (("llms", "llm_ids"), ("tools", "tool_ids"), ("datasources", "datasource_ids")):
            if field in cd:
                data[key] = sorted({x.pk for x in cd[field]} | _held_unoffered(form, obj, field))
        if "tags" in cd:
            data["tags"] = sorted(t.name for t in cd["tags"])
        if "resources" in cd and hasattr(form, "resource_choices"):
            data["plugin_resources"] = [
                {k: form.resource_choices[v][k] for k in ("plugin", "resource_type", "resource_id", "privacy_score")}
                for v in cd["resources"]
            ]
        return data

    def hook_view(self, obj, data):
        return app_hook_view(obj, data)

    def check_outcome(self, outcome):
        resources = outcome.obj.get("plugin_resources") or []  # those picked in the form, else those held
        return privacy_errors(
            llm_ids=outcome.obj.get("llm_ids", []),
            tool_ids=outcome.obj.get("tool_ids", []),
            datasource_ids=outcome.obj.get("datasource_ids", []),
            resources=resources,
        )

    def service_save(self, request, obj, data, outcome):
        if obj is None:
            return app_create(data=data, actor_id=request.user.pk, hook_outcome=outcome)
        return app_update(app=obj, data=data, actor_id=request.user.pk, hook_outcome=outcome)

    def service_delete(self, request, obj):
        app_delete(app=obj, actor_id=request.user.pk)

    change_form_template = "admin/applications/app/change_form.html"

    def get_urls(self):
        from django.urls import path

        return [
            path(
                "<int:app_id>/create-key/",
                self.admin_site.admin_view(self.create_key_view),
                name="applications_app_create_key",
            ),
            *super().get_urls(),
        ]

    def create_key_view(self, request, app_id: int):
        """POST from the app page's "Create key" button: the key is shown once, on a page that is never cached."""
        from django.core.exceptions import PermissionDenied
        from django.http import HttpResponseNotAllowed
        from django.shortcuts import get_object_or_404
        from django.template.response import TemplateResponse
        from django.utils.cache import add_never_cache_headers

        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        app = get_object_or_404(App, pk=app_id)
        if not self.has_change_permission(request, app):
            raise PermissionDenied
        name = (request.POST.get("name") or "admin").strip()[:200] or "admin"
        credential, key = credential_create(app=app, user_id=request.user.pk, name=name)
        context = {
            **self.admin_site.each_context(request),
            "title": f"New key for {app.name}",
            "app": app,
            "credential": credential,
            "key": key,
            "opts": App._meta,
        }
        response = TemplateResponse(request, "admin/applications/app/key_created.html", context)
        add_never_cache_headers(response)
        return response

    @admin.action(description="Approve selected apps")
    def approve(self, request, queryset):
        run_each(request, queryset, lambda o: app_approve(app=o, actor_id=request.user.pk), "Approved")

    @admin.action(description="Create a key for each selected app (shown once)")
    def create_key(self, request, queryset):
        for app in queryset:
            credential, key = credential_create(app=app, user_id=request.user.pk, name="admin")
            _show_key(request, credential, key, "New")


@admin.register(Credential)
class CredentialAdmin(admin.ModelAdmin):
    list_display = ["prefix", "app", "name", "user", "created_at", "expires_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), "app__namespace"]
    search_fields = ["prefix", "name", "app__name"]
    fields = ["app", "name", "user", "prefix", "created_at", "expires_at", "revoked_at", "rotated_from"]
    readonly_fields = ["app", "user", "prefix", "created_at", "revoked_at", "rotated_from"]
    actions = ["rotate", "revoke"]

    def has_add_permission(self, request):
        return False  # created by the app's "create key" action (or the API) so the key is shown once

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead: the row stays for audit

    @admin.action(description="Rotate selected keys (new key shown once; old key revoked)")
    def rotate(self, request, queryset):
        def rotate_one(credential):
            new, key = credential_rotate(credential=credential)
            _show_key(request, new, key, "Rotated")

        run_each(request, queryset, rotate_one, "Rotated")

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset):
        run_each(request, queryset, lambda c: credential_revoke(credential=c), "Revoked")
