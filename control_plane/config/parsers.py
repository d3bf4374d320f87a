"""The API's JSON parser: DRF's, with the nesting bound both tiers hold a client's JSON to.

DRF's `JSONParser` reads a body with Python's `json`, which recurses once per level: a body nested ~1,000 levels
deep raised a RecursionError, a 500 "Internal Server Error" on every JSON endpoint. A shallower one still reached
the serializers, `jsonschema` (plugin configs) and psycopg's JSON encoder, each recursive too. Here both are a 400
in the API's one error shape (`exceptions.api_exception_handler`); `shared_sdk.json_depth` gives the bound.
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from shared_sdk.json_depth import MAX_JSON_DEPTH, json_depth_exceeds

__all__ = ["BoundedJSONParser", "TOO_DEEP"]

TOO_DEEP = f"JSON nested deeper than {MAX_JSON_DEPTH} levels of arrays and objects."


class BoundedJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON parse error - {TOO_DEEP}") from None
        if json_depth_exceeds(data, MAX_JSON_DEPTH):
            raise ParseError(f"JSON parse error - {TOO_DEEP}")
        return data
