"""Admin pieces shared by every domain's admin."""

from __future__ import annotations

from typing import Any

from django.contrib.admin.widgets import AutocompleteSelect
from django.core.exceptions import ValidationError

__all__ = ["SafeAutocompleteMixin", "SafeAutocompleteSelect"]


class SafeAutocompleteSelect(AutocompleteSelect):
    """Django's autocomplete select looks the submitted value up to render it again; a value that is no key at all
    (`null`, `abc`) made that lookup raise, so a form error became a server error. Such values are not shown."""

    def optgroups(self, name: str, value: list[Any], attr: dict | None = None):
        target = self.field.remote_field.model._meta.get_field(self.field.remote_field.field_name)
        keys = []
        for item in value:
            try:
                target.to_python(item)
            except ValidationError:
                continue
            keys.append(item)
        return super().optgroups(name, keys, attr)


class SafeAutocompleteMixin:
    """For ModelAdmins and inlines: their `autocomplete_fields` use `SafeAutocompleteSelect`."""

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if "widget" not in kwargs and db_field.name in self.get_autocomplete_fields(request):
            kwargs["widget"] = SafeAutocompleteSelect(db_field, self.admin_site, using=kwargs.get("using"))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)
