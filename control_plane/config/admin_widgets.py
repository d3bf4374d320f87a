"""Admin pieces shared by every domain's admin."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django import forms
from django.contrib.admin.widgets import AutocompleteSelect
from django.core.exceptions import ValidationError

__all__ = [
    "NamespacePickerMixin",
    "NamespaceWidget",
    "SafeAutocompleteMixin",
    "SafeAutocompleteSelect",
    "known_namespaces",
]


class SafeAutocompleteSelect(AutocompleteSelect):
    """Django's autocomplete select looks the submitted value up to render it again; a value that is no key at all
    (`null`, `abc`) made that lookup raise, so a form error became a server error. Such values are not shown."""

    def optgroups(self, name: str, value: Sequence[str], attr: dict[str, Any] | None = None) -> Any:
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


NEW_NAMESPACE = "__new__"
_NAMESPACE_MODELS = (("llms", "LLM"), ("applications", "App"), ("edges", "EdgeInstance"), ("plugins", "Plugin"))


def known_namespaces() -> list[str]:
    """Namespaces in use by LLMs, apps, edges and plugins (looked up by name: this module imports no domain app)."""
    from django.apps import apps

    found: set[str] = set()
    for app_label, model_name in _NAMESPACE_MODELS:
        try:
            model = apps.get_model(app_label, model_name)
        except LookupError:
            continue
        found.update(model.objects.exclude(namespace="").values_list("namespace", flat=True).distinct())
    return sorted(found)


class NamespaceWidget(forms.MultiWidget):
    """A select of the known namespaces ("(global)" first) with a "New…" entry and a text box for a new one.

    The value is still a plain string, validated by the model's namespace rule like a typed one, so a "new"
    namespace with bad characters is a form error, not a surprise at the edge."""

    template_name = "admin/fjordgate/namespace_widget.html"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        widgets = (forms.Select(), forms.TextInput(attrs={"placeholder": "new namespace", "class": "vTextField"}))
        super().__init__(widgets, attrs)

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        known = known_namespaces()
        choices = [("", "(global)"), *((ns, ns) for ns in known), (NEW_NAMESPACE, "New…")]
        select = self.widgets[0]
        assert isinstance(select, forms.Select)
        select.choices = choices
        self._known = known
        return super().get_context(name, value, attrs)

    def decompress(self, value: Any) -> list[str]:
        value = value or ""
        known = getattr(self, "_known", None) or known_namespaces()
        if value == "" or value in known:
            return [value, ""]
        return [NEW_NAMESPACE, value]

    def value_from_datadict(self, data: Any, files: Any, name: str) -> str:  # type: ignore[override]
        chosen, typed = (w.value_from_datadict(data, files, f"{name}_{i}") for i, w in enumerate(self.widgets))
        if chosen is None and typed is None:
            return str(data.get(name, ""))  # a plain `namespace=` post (scripts, older tests) still works
        if chosen == NEW_NAMESPACE:
            return str(typed or "").strip()
        return str(chosen or "")

    def value_omitted_from_data(self, data: Any, files: Any, name: str) -> bool:
        return name not in data and all(f"{name}_{i}" not in data for i in range(2))


class NamespacePickerMixin:
    """ModelAdmins whose `namespace` is a text field show it as a `NamespaceWidget`."""

    def formfield_for_dbfield(self, db_field: Any, request: Any, **kwargs: Any) -> Any:
        if db_field.name == "namespace" and db_field.get_internal_type() == "CharField" and not db_field.choices:
            kwargs["widget"] = NamespaceWidget()
        return super().formfield_for_dbfield(db_field, request, **kwargs)  # type: ignore[misc]
