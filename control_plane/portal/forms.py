"""Portal forms. Choices come from the user's catalogue, so anything else is refused as an invalid choice."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from django import forms

from .selectors import catalogue_datasources, catalogue_llms, catalogue_tools, default_range

MAX_RANGE_DAYS = 366


class AppRequestForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False, max_length=5000)
    llms: forms.ModelMultipleChoiceField[Any] = forms.ModelMultipleChoiceField(
        queryset=None, widget=forms.CheckboxSelectMultiple, label="LLMs"
    )
    tools: forms.ModelMultipleChoiceField[Any] = forms.ModelMultipleChoiceField(
        queryset=None, widget=forms.CheckboxSelectMultiple, required=False
    )
    datasources: forms.ModelMultipleChoiceField[Any] = forms.ModelMultipleChoiceField(
        queryset=None, widget=forms.CheckboxSelectMultiple, required=False
    )

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, queryset in (
            ("llms", catalogue_llms(user)),
            ("tools", catalogue_tools(user)),
            ("datasources", catalogue_datasources(user)),
        ):
            field = cast("forms.ModelMultipleChoiceField[Any]", self.fields[name])
            field.queryset = queryset
            field.label_from_instance = lambda obj: f"{obj.name} ({obj.slug}, privacy {obj.privacy_score})"  # type: ignore[method-assign]
        self._resource_field(user)

    def _resource_field(self, user: Any) -> None:
        """Plugin resources (e.g. document collections) to request with the app, when any plugin offers some: those
        of the plugins of "" and of the namespace the app will live in (the owner's)."""
        from control_plane.applications.services import app_owner_namespace, app_owner_resource_plugins
        from control_plane.plugins.resources import resource_choices

        plugins = app_owner_resource_plugins(app_owner_namespace(user))
        self.resource_choices = {c.value: c for c in resource_choices(plugins)}
        if self.resource_choices:
            self.fields["resources"] = forms.MultipleChoiceField(
                choices=[(v, c.label) for v, c in self.resource_choices.items()],
                widget=forms.CheckboxSelectMultiple,
                required=False,
                label="Plugin resources",
                help_text="Your LLMs need a privacy score at least as high as each resource's.",
            )

    def plugin_resources(self) -> list[dict[str, Any]]:
        return [self.resource_choices[v].as_resource() for v in self.cleaned_data.get("resources") or []]


class KeyForm(forms.Form):
    name = forms.CharField(max_length=200, required=False, help_text="What the key is for, e.g. 'laptop'.")


class RangeForm(forms.Form):
    """A date range for usage; defaults to the last 14 days, at most a year, the start not after the end."""

    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = default_range()
        data["start"] = data.get("start") or (data["end"] - dt.timedelta(days=13) if data.get("end") else start)
        data["end"] = data.get("end") or end
        if data["start"] > data["end"]:
            raise forms.ValidationError("The start must not be after the end.")
        if (data["end"] - data["start"]).days >= MAX_RANGE_DAYS:
            raise forms.ValidationError(f"Choose at most {MAX_RANGE_DAYS} days.")
        return data
