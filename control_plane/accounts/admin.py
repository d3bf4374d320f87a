"""Users and groups in the admin, with Fjordgate's profile and catalogues, written through the services."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import flatten_fieldsets, unquote
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied

from control_plane.config.admin_widgets import NamespacePickerMixin
from control_plane.hooks.admin_mixins import ServiceAdminMixin, run_each

from .access import user_takeover_refusal
from .admin_access import NamespaceAdminMixin, RowNamespaceInline, request_user_access
from .models import ApiToken, Catalogue, NamespaceRole
from .roles import namespace_role_change, namespace_role_grant, namespace_role_revoke
from .services import (
    USER_FIELDS,
    catalogue_changed,
    group_delete,
    user_create,
    user_delete,
    user_hook_view,
    user_last_superuser_problem,
    user_update,
)
from .tokens import api_token_revoke, api_tokens_visible

User = get_user_model()


CATALOGUE_FIELDS = ("llms", "tools", "datasources", "agents")


class CatalogueForm(forms.ModelForm):
    """Keeps what the catalogue grants that the form did not offer (another namespace's, granted by a
    super-administrator): the user could neither see nor keep it otherwise (`CatalogueInline`)."""

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk is not None:
            for name in CATALOGUE_FIELDS:
                if name in self.fields and name in cleaned:
                    offered = self.fields[name].queryset.values("pk")
                    held = getattr(self.instance, name).exclude(pk__in=offered)
                    cleaned[name] = [*cleaned[name], *held]
        return cleaned


class CatalogueInline(admin.StackedInline):
    """A group's catalogue offers only the LLMs, tools, datasources and agents the user may view, as an app's form
    does: a group is a global object, but granting it another namespace's LLM hands that namespace's LLM to its
    members at that namespace's edges, which an administrator of "" may not decide (`apis.GroupViewSet`)."""

    model = Catalogue
    form = CatalogueForm
    can_delete = False
    filter_horizontal = list(CATALOGUE_FIELDS)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        field = super().formfield_for_manytomany(db_field, request, **kwargs)
        if db_field.name in CATALOGUE_FIELDS and field is not None:
            field.queryset = request_user_access(request).filter_visible(field.queryset)
        return field


admin.site.unregister(User)
admin.site.unregister(Group)


def _may_manage(request, user) -> bool:
    """A super-administrator's account (and roles) is changed or deleted only by a super-administrator."""
    return user is None or not user.is_superuser or request.user.is_superuser


def _may_take_over(request, user) -> bool:
    """An account holding roles is changed or deleted only by whoever could grant each of them
    (`access.user_takeover_refusal`): its password or e-mail signs in with those roles. Granting roles to it is
    the inline's business, not this."""
    return user is None or user_takeover_refusal(request_user_access(request), user, caller_id=request.user.pk) is None


class NamespaceRoleInline(RowNamespaceInline, NamespacePickerMixin, admin.TabularInline):
    """The user's namespace roles, granted and revoked where the caller administers the namespace (see
    `access.py`): a namespace administrator sees and edits the rows of its namespaces only."""

    model = NamespaceRole
    extra = 0
    fields = ["namespace", "role", "source"]
    readonly_fields = ["source"]
    verbose_name = "namespace role"

    def _may_grant_to(self, request, obj) -> bool:
        return _may_manage(request, obj)

    def has_add_permission(self, request, obj=None):
        return super().has_add_permission(request, obj) and self._may_grant_to(request, obj)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._may_grant_to(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._may_grant_to(request, obj)


@admin.register(User)
class UserAdmin(NamespaceAdminMixin, ServiceAdminMixin, DjangoUserAdmin):
    """Users, with their namespace roles inline. A namespace administrator who may not change users (a global
    object) still opens a user's page to grant and revoke roles in its namespaces: every user field is then
    read-only and saving writes only the roles ("grant-only" below)."""

    object_type = "user"
    save_form_m2m = True  # permissions and groups as the form has them (the service set the same groups)
    inlines = [NamespaceRoleInline]

    def _may_change_user(self, request, obj) -> bool:
        return (
            super().has_change_permission(request, obj) and _may_manage(request, obj) and _may_take_over(request, obj)
        )

    def _grant_only(self, request, obj) -> bool:
        """May not change this user, but may grant roles to them."""
        return (
            obj is not None
            and _may_manage(request, obj)
            and not self._may_change_user(request, obj)
            and request_user_access(request).can_change_any(NamespaceRole)
        )

    def get_readonly_fields(self, request, obj=None):
        """Only a super-administrator grants the flag (see `SUPERUSER_GUARD_MESSAGE`)."""
        if self._grant_only(request, obj):
            return flatten_fieldsets(self.fieldsets)
        fields = list(super().get_readonly_fields(request, obj))
        return fields if request.user.is_superuser else [*fields, "is_superuser"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if self._grant_only(request, obj):  # nothing of the user is written: no user hooks, no service payload
            return super(ServiceAdminMixin, self).get_form(request, obj, change=change, **kwargs)
        return super().get_form(request, obj, change=change, **kwargs)

    def has_change_permission(self, request, obj=None):
        return self._may_change_user(request, obj) or self._grant_only(request, obj)

    def has_delete_permission(self, request, obj=None):
        return (
            super().has_delete_permission(request, obj) and _may_manage(request, obj) and _may_take_over(request, obj)
        )

    def user_change_password(self, request, id, form_url=""):
        user = self.get_object(request, unquote(id))
        if user is not None and not self._may_change_user(request, user):
            raise PermissionDenied
        return super().user_change_password(request, id, form_url)

    def save_model(self, request, obj, form, change):
        if change and self._grant_only(request, obj):
            return
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        if change and self._grant_only(request, form.instance):
            for formset in formsets:
                self.save_formset(request, form, formset, change=change)
            return
        super().save_related(request, form, formsets, change)

    def save_formset(self, request, form, formset, change):
        """Roles go through the role services (a hand grant, the grantee may enter the admin)."""
        if formset.model is not NamespaceRole:
            return super().save_formset(request, form, formset, change)
        rows = formset.save(commit=False)
        for row in formset.deleted_objects:
            namespace_role_revoke(row=row)
        for row in rows:
            if row.pk is None:
                namespace_role_grant(user=form.instance, namespace=row.namespace, role=row.role)
            else:
                namespace_role_change(row=row, role=row.role, namespace=row.namespace)
        return None

    def service_data(self, form, obj):
        cd = form.cleaned_data
        data = {name: cd[name] for name in USER_FIELDS if name in cd}
        if cd.get("password1"):
            data["password"] = cd["password1"]
        if "groups" in cd:
            data["groups"] = sorted(g.name for g in cd["groups"])
        return data

    def hook_view(self, obj, data):
        return user_hook_view(obj, data)

    def check_outcome(self, outcome):
        """The change form refuses to deactivate or demote the last active superuser (the service checks again)."""
        obj = outcome.obj
        remains = all(bool(obj.get(name)) for name in ("is_active", "is_superuser", "is_staff"))
        problem = user_last_superuser_problem(user_id=obj.get("id"), remains_administrator=remains)
        return [problem] if problem else []

    def service_save(self, request, obj, data, outcome):
        if obj is None:
            return user_create(data=data, actor_id=request.user.pk, hook_outcome=outcome)
        return user_update(user=obj, data=data, actor_id=request.user.pk, hook_outcome=outcome)

    def service_delete(self, request, obj):
        user_delete(user=obj, actor_id=request.user.pk)


@admin.register(Group)
class GroupAdmin(DjangoGroupAdmin):
    inlines = [CatalogueInline]

    def save_related(self, request, form, formsets, change):
        """The catalogue inline is saved here (in the admin's transaction); its LLM grants reach the edges."""
        super().save_related(request, form, formsets, change)
        catalogue_changed(group=form.instance)

    def delete_model(self, request, obj):
        group_delete(group=obj)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Personal API tokens: made through `POST /api/v1/auth/token/` (the key is shown once), revoked here."""

    list_display = ["prefix", "owner", "name", "namespaces", "read_only", "expires_at", "last_used_at", "revoked_at"]
    list_filter = ["read_only", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["prefix", "name", "owner__username"]
    fields = ["owner", "name", "prefix", "namespaces", "read_only", "created_at", "expires_at", "last_used_at"]
    readonly_fields = ["owner", "prefix", "namespaces", "read_only", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def get_queryset(self, request):
        """A user's own tokens; every user's to the global administrators (`tokens.api_tokens_visible`)."""
        queryset = super().get_queryset(request).select_related("owner")
        return api_tokens_visible(queryset, access=request_user_access(request), user=request.user)

    def changeable_selection(self, request, queryset):
        """What the revoke action may take (`admin_access._guarded`): a user's own tokens, every user's to the global
        administrators. A token is of no namespace, so the namespace rule let only the latter revoke anything, and a
        viewer or operator listed their own tokens without being able to revoke them."""
        return api_tokens_visible(queryset, access=request_user_access(request), user=request.user)

    def has_add_permission(self, request):
        return False  # the key must be shown once to its owner: get one through the API

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead: the row stays for audit

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset):
        run_each(request, queryset, lambda token: api_token_revoke(token=token), "Revoked")
