"""A JSON text box that becomes a form generated from its JSON Schema in the browser (vendored
`@json-editor/json-editor` 2.17.2, MIT, `static/plugins/jsoneditor.min.js`).

Used for the object and array properties of a plugin's config schema (scalars are plain Django fields). The form
writes JSON back into the text box on every change, so what is posted is the same JSON a person could have typed;
the server validates it against the schema (jsonschema) and shows the errors on the form. Without JavaScript the
text box is all there is, and works.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.utils.html import format_html, json_script


class SchemaJSONWidget(forms.Textarea):
    def __init__(self, schema: dict[str, Any], attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs={"rows": 6, "class": "vLargeTextField fj-json-source", **(attrs or {})})
        self.schema = schema

    class Media:
        js = ("plugins/jsoneditor.min.js", "plugins/schema-form.js")

    def render(self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None) -> Any:
        text = super().render(name, value, attrs, renderer)
        element_id = (attrs or {}).get("id") or f"id_{name}"
        schema_id = f"{element_id}-schema"
        return format_html(
            '{}{}<div class="fj-json-editor" data-source="{}" data-schema="{}"></div>',
            text,
            json_script(json.loads(json.dumps(self.schema, default=str)), schema_id),
            element_id,
            schema_id,
        )
