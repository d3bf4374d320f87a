"""The API's JSON parser: DRF's, refusing what PostgreSQL cannot store and what nests past the bound.

- Nesting: DRF's `JSONParser` reads a body with Python's `json`, which recurses once per level: a body nested
  ~1,000 levels deep raised a RecursionError, a 500 "Internal Server Error" on every JSON endpoint. A shallower one
  still reached the serializers, `jsonschema` (plugin configs) and psycopg's JSON encoder, each recursive too. Past
  `shared_sdk.json_depth.MAX_JSON_DEPTH` it is a parse error.
- Characters: JSON may carry `\\u0000` and lone surrogates (`\\ud800`); PostgreSQL's text and jsonb cannot hold the
  first and UTF-8 cannot encode the second. DRF's CharField refuses a NUL, but a JSON column (metadata, a plugin's
  config, a schedule's), a slug looked up in a related table (an LLM's plugin chain, a user's groups) and any
  surrogate went through to the database: a 500 on a dozen endpoints. Such a string anywhere in a field's value is
  a validation error naming that (top-level) field, in the API's one error shape (`exceptions.py`).
"""

from __future__ import annotations

import re
from typing import Any

from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import JSONParser

from shared_sdk.json_depth import MAX_JSON_DEPTH, json_depth_exceeds

__all__ = ["TOO_DEEP", "UNSTORABLE", "BoundedJSONParser", "json_refusal", "unstorable_text"]

TOO_DEEP = f"JSON nested deeper than {MAX_JSON_DEPTH} levels of arrays and objects."
UNSTORABLE = "Text cannot contain NUL (\\u0000) or unpaired surrogate (\\ud800-\\udfff) characters."
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable_text(value: Any) -> bool:
    """Whether a string anywhere in `value` (parsed JSON: keys included) holds a character PostgreSQL refuses."""
    pending = [value]
    search = _UNSTORABLE.search
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind is str:
            if search(item):
                return True
        elif kind is dict:
            pending.extend(item.keys())
            pending.extend(item.values())
        elif kind is list:
            pending.extend(item)
    return False


def json_refusal(value: Any) -> str | None:
    """Why parsed JSON cannot be taken (TOO_DEEP, UNSTORABLE), or None: the one check of the API and the admin."""
    if json_depth_exceeds(value, MAX_JSON_DEPTH):
        return TOO_DEEP
    if unstorable_text(value):
        return UNSTORABLE
    return None


class BoundedJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON parse error - {TOO_DEEP}") from None
        refusal = json_refusal(data)
        if refusal == TOO_DEEP:
            raise ParseError(f"JSON parse error - {TOO_DEEP}")
        if refusal is not None:
            raise ValidationError(_unstorable_fields(data))
        return data


def _unstorable_fields(data: Any) -> dict[str, list[str]]:
    """The top-level fields holding such text, each with the message (a key holding it: a non-field error)."""
    if not isinstance(data, dict):
        return {"non_field_errors": [UNSTORABLE]}
    return {
        "non_field_errors" if unstorable_text(key) else key: [UNSTORABLE]
        for key, value in data.items()
        if unstorable_text(key) or unstorable_text(value)
    }
