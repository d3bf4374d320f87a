"""The access policy (`access.py`) applied to every page and action of the Django admin.

Two pieces, installed once when the accounts app is ready:

- `NamespaceRolePermissionBackend` answers Django's model permissions ("may this user change apps at all?")
  from the user's namespace roles, so a role from single sign-on needs no hand-given Django permission;
- `NamespaceAdminMixin` is put in front of EVERY registered ModelAdmin (and its inlines, which follow their parent
  object unless they are a `RowNamespaceInline`, whose rows have a namespace of their own): querysets show only
  viewable namespaces, view/change/delete are checked against the object's namespace, the namespace field
  offers only the namespaces the user may change (and related objects only from those), and actions refuse
  a selection that holds an object the user may not change. The model admins' own refusals (read-only
  registries, "revoke instead of delete") still hold: the mixin only narrows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.apps import apps
from django.contrib import admin, messages

from .access import ALL, NAMESPACE_PATHS, Access, access_for, model_key, namespace_of

__all__ = [
    "NamespaceAdminMixin",
    "NamespaceRolePermissionBackend",
    "RowNamespaceInline",
    "install",
    "request_user_access",
]

_ACTIONS = {"view": "view", "add": "change", "change": "change", "delete": "change"}


def request_user_access(request: Any) -> Access:
    """The signed-in admin user's access, computed once per request."""
    return _user_access(request.user)


class NamespaceRolePermissionBackend:
    """Model permissions from namespace roles: view where any namespace is viewable, add/change/delete where
    any is changeable. Authenticates nobody (the other backends sign people in)."""

    def authenticate(self, request, **credentials):
        return None

    def has_perm(self, user_obj: Any, perm: str, obj: Any = None) -> bool:
        if obj is not None or not user_obj.is_active or "." not in perm:
            return False
        app_label, codename = perm.split(".", 1)
        action, _, model_name = codename.partition("_")
        if action not in _ACTIONS:
            return False
        try:
            model = apps.get_model(app_label, model_name)
        except LookupError:
            return False
        access = _user_access(user_obj)
        if not access.administers_anything:
            return False
        if _ACTIONS[action] == "view":
            allowed = access.viewable(model_key(model))
            return allowed is ALL or bool(allowed)
        return access.can_change_any(model)

    def has_module_perms(self, user_obj: Any, app_label: str) -> bool:
        return user_obj.is_active and _user_access(user_obj).administers_anything


def _user_access(user_obj: Any) -> Access:
    """Cached on the user object, which lives as long as one request (Django caches its permissions alike)."""
    cached = getattr(user_obj, "_fjordgate_access", None)
    if cached is None:
        cached = access_for(user_obj)
        user_obj._fjordgate_access = cached
    return cached


def _narrowed_namespace_field(db_field, field, access: Access, model):
    """A `namespace` form field offering only the namespaces where `access` may change `model` objects."""
    if db_field.name != "namespace" or field is None:
        return field
    allowed = access.changeable(model_key(model))
    if allowed is ALL:
        return field
    choices = [(ns, ns or "(global)") for ns in sorted(allowed)]
    return forms.ChoiceField(choices=choices, required=False, label=field.label, help_text=field.help_text)


def _filter_changeable(access: Access, queryset):
    allowed = access.changeable(model_key(queryset.model))
    if allowed is ALL:
        return queryset
    path = NAMESPACE_PATHS.get(model_key(queryset.model))
    if path is None:
        return queryset if "" in allowed else queryset.none()
    return queryset.filter(**{f"{path}__in": sorted(allowed)})


if TYPE_CHECKING:  # the mixins sit in front of Django's admin classes (see `install`)
    _ModelAdminBase = admin.ModelAdmin[Any]
    _InlineBase = admin.options.InlineModelAdmin[Any, Any]
else:
    _ModelAdminBase = _InlineBase = object


class NamespaceAdminMixin(_ModelAdminBase):
    """Narrows a ModelAdmin to the caller's namespaces (see the module docstring)."""

    def get_queryset(self, request):
        return request_user_access(request).filter_visible(super().get_queryset(request))

    def has_module_permission(self, request) -> bool:
        return request_user_access(request).administers_anything and super().has_module_permission(request)

    def has_view_permission(self, request, obj=None) -> bool:
        access = request_user_access(request)
        if not access.administers_anything or not super().has_view_permission(request, obj):
            return False
        return obj is None or access.can_view(type(obj), namespace_of(obj))

    def has_add_permission(self, request, *args) -> bool:
        access = request_user_access(request)
        return (
            access.administers_anything
            and access.can_change_any(self.model)
            and super().has_add_permission(request, *args)
        )

    def has_change_permission(self, request, obj=None) -> bool:
        return self._may_change(request, obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self._may_change(request, obj) and super().has_delete_permission(request, obj)

    def _may_change(self, request, obj) -> bool:
        access = request_user_access(request)
        if not access.administers_anything:
            return False
        if obj is None:
            return access.can_change_any(self.model)
        return access.can_change(type(obj), namespace_of(obj))

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        return _narrowed_namespace_field(db_field, field, request_user_access(request), self.model)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        related = db_field.remote_field.model
        if model_key(related) in NAMESPACE_PATHS and "queryset" not in kwargs:
            kwargs["queryset"] = _filter_changeable(request_user_access(request), related._default_manager.all())
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_actions(self, request):
        return {
            name: (_guarded(func), name, description)
            for name, (func, name, description) in super().get_actions(request).items()
        }


def _guarded(func):
    """An admin action that refuses the whole selection when it holds an object the user may not change: by its
    namespace, or by the model admin's own `changeable_selection(request, queryset)` when it has one (a user's own
    API tokens, which no namespace role lets them change)."""

    def action(modeladmin, request, queryset):
        access = request_user_access(request)
        own_rule = getattr(modeladmin, "changeable_selection", None)
        changeable = own_rule(request, queryset) if own_rule is not None else _filter_changeable(access, queryset)
        refused = queryset.count() - changeable.count()
        if refused:
            plural = queryset.model._meta.verbose_name_plural
            messages.error(request, f"You may not change {refused} of the selected {plural}; nothing was done.")
            return None
        return func(modeladmin, request, queryset)

    for attr in ("short_description", "allowed_permissions", "__name__"):
        if hasattr(func, attr):
            setattr(action, attr, getattr(func, attr))
    return action


def _namespaced(cls: type) -> type:
    if issubclass(cls, NamespaceAdminMixin):
        return cls
    return type(f"Namespaced{cls.__name__}", (NamespaceAdminMixin, cls), {"__module__": cls.__module__})


class _InlineOfParent(_InlineBase):
    """Inlines follow their parent object: shown when it is viewable, editable when it is changeable."""

    def has_view_permission(self, request, obj=None) -> bool:
        access = request_user_access(request)
        if not access.administers_anything or not super().has_view_permission(request, obj):
            return False
        return obj is None or access.can_view(type(obj), namespace_of(obj))

    def _may_change_parent(self, request, obj) -> bool:
        access = request_user_access(request)
        return access.administers_anything and (obj is None or access.can_change(type(obj), namespace_of(obj)))

    def has_add_permission(self, request, obj=None) -> bool:
        return self._may_change_parent(request, obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None) -> bool:
        return self._may_change_parent(request, obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self._may_change_parent(request, obj) and super().has_delete_permission(request, obj)


class RowNamespaceInline(_InlineBase):
    """Inlines whose rows live in their own namespace, whatever the parent's (the namespace roles under a global
    user): each row follows the caller's access to the row's namespace, not to the parent. Listed are the rows
    of the namespaces the caller may change, else (read-only) of those it may view; the namespace field offers
    only the changeable ones. Put in front of such an inline's Django class; `install` leaves it as it is."""

    def get_queryset(self, request):
        access = request_user_access(request)
        queryset = super().get_queryset(request)
        if access.can_change_any(self.model):
            return _filter_changeable(access, queryset)
        return access.filter_visible(queryset)

    def has_view_permission(self, request, obj=None) -> bool:
        return request_user_access(request).administers_anything and super().has_view_permission(request, obj)

    def _may_change_rows(self, request) -> bool:
        access = request_user_access(request)
        return access.administers_anything and access.can_change_any(self.model)

    def has_add_permission(self, request, obj=None) -> bool:
        return self._may_change_rows(request) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None) -> bool:
        return self._may_change_rows(request) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self._may_change_rows(request) and super().has_delete_permission(request, obj)

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        return _narrowed_namespace_field(db_field, field, request_user_access(request), self.model)


def install(site: admin.AdminSite = admin.site) -> None:
    """Put the namespace checks in front of every model admin (and inline) registered on `site`."""
    for model_admin in site._registry.values():
        model_admin.__class__ = _namespaced(type(model_admin))
        model_admin.inlines = [  # type: ignore[misc]  # per instance: this admin's own inline classes
            inline
            if issubclass(inline, _InlineOfParent | RowNamespaceInline)
            else type(f"Namespaced{inline.__name__}", (_InlineOfParent, inline), {"__module__": inline.__module__})
            for inline in model_admin.inlines
        ]
