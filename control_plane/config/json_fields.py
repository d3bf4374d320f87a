"""JSON columns that hold one shape: an object (`JSONObjectField`) or a list (`JSONListField`).

A plain `JSONField` stores any JSON value, so `"metadata": [1]` or `"config": "x"` used to be saved and then broke
whoever read it as a dict (object hooks merging metadata, the snapshot builder, plugins reading their config).
The shape is checked by a default validator, so every write path refuses it the same way: the services'
`full_clean()`, the admin's model forms (a form error on the field) and DRF's model serializers (a 400 naming the
field; DRF copies model validators). Both fields deconstruct as `django.db.models.JSONField`: the database column and
the migration state are unchanged, only validation is added.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db import models
from django.forms.fields import InvalidJSONInput

from .parsers import TOO_DEEP, json_refusal, unstorable_text

__all__ = [
    "BoundedJSONFormField",
    "JSONListField",
    "JSONObjectField",
    "ShapedJSONFormField",
    "validate_json_list",
    "validate_json_object",
]


def validate_json_object(value: Any) -> None:
    if not isinstance(value, dict):
        raise ValidationError("Give a JSON object ({...}).", code="json_object")


def validate_json_list(value: Any) -> None:
    if not isinstance(value, list):
        raise ValidationError("Give a JSON list ([...]).", code="json_list")


class BoundedJSONFormField(forms.JSONField):
    """Django's JSON form field, with the API's bounds (`parsers.py`): Django's field catches only `JSONDecodeError`,
    so a value nested ~1,000 levels deep was a 500 in the admin instead of a form error, and so was a `\u0000`
    (jsonb cannot hold it)."""

    def to_python(self, value: Any) -> Any:
        try:
            converted = super().to_python(value)
        except RecursionError:
            raise ValidationError(TOO_DEEP, code="too_deep") from None
        refusal = json_refusal(converted)
        if refusal is not None:
            raise ValidationError(refusal, code="too_deep" if refusal == TOO_DEEP else "unstorable")
        return converted

    def bound_data(self, data: Any, initial: Any) -> Any:
        """What the form shows again after an error: the text as posted when it cannot be read back, or when what
        it reads back could not be written into the page (an unpaired surrogate cannot be encoded as UTF-8)."""
        try:
            bound = super().bound_data(data, initial)
        except RecursionError:
            return InvalidJSONInput(data)
        if not isinstance(bound, InvalidJSONInput) and unstorable_text(bound):
            return InvalidJSONInput(data)
        return bound


class ShapedJSONFormField(BoundedJSONFormField):
    """The admin's input for a shaped column: empty means the empty shape; `null` or another shape is refused
    here, because Django skips model validation of a blank-allowed field whose value is None."""

    def __init__(self, *args: Any, shape: type, **kwargs: Any) -> None:
        self.shape = shape
        super().__init__(*args, **kwargs)

    def to_python(self, value: Any) -> Any:
        if value in self.empty_values:
            return self.shape()
        converted = super().to_python(value)
        if not isinstance(converted, self.shape):
            raise ValidationError(
                "Give a JSON object ({...})." if self.shape is dict else "Give a JSON list ([...]).", code="shape"
            )
        return converted


class _ShapedJSONField(models.JSONField):
    shape: type = dict

    def deconstruct(self):
        name, _path, args, kwargs = super().deconstruct()
        return name, "django.db.models.JSONField", args, kwargs

    def formfield(self, **kwargs: Any) -> forms.Field | None:  # type: ignore[override]  # stubs: Field only
        return super().formfield(**{"form_class": ShapedJSONFormField, "shape": self.shape, **kwargs})


class JSONObjectField(_ShapedJSONField):
    """A JSON object (`default=dict` unless given)."""

    default_validators = [validate_json_object]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("default", dict)
        super().__init__(*args, **kwargs)


class JSONListField(_ShapedJSONField):
    """A JSON list (`default=list` unless given)."""

    default_validators = [validate_json_list]
    shape = list

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("default", list)
        super().__init__(*args, **kwargs)
