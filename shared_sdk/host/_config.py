"""Config validation: a plugin's config is checked against its JSON Schema before `initialize` ever sees it.

Tyk never validates plugin config on the server; we refuse to start a plugin with bad config and list
every problem (path + reason) at once. Defaults declared in the schema are filled in, so a plugin reads
`config["rate_limit"]` without repeating the default.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
from jsonschema.validators import validator_for

from ..errors import PluginConfigError, PluginLoadError

__all__ = ["apply_defaults", "validate_config"]


def apply_defaults(schema: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of `config` with the `default` of every absent property filled in (nested objects too)."""
    result = copy.deepcopy(config)
    _fill(schema, result)
    return result


def _fill(schema: dict[str, Any], value: Any) -> None:
    if not isinstance(value, dict):
        return
    for key, sub in (schema.get("properties") or {}).items():
        if not isinstance(sub, dict):
            continue
        if key not in value and "default" in sub:
            value[key] = copy.deepcopy(sub["default"])
        if key in value:
            _fill(sub, value[key])


def validate_config(slug: str, schema: dict[str, Any] | None, config: dict[str, Any]) -> dict[str, Any]:
    """Validate and default `config`; raise `PluginConfigError` listing every error."""
    if not schema:
        return dict(config)
    cls = validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise PluginLoadError(slug, f"its config schema is not valid JSON Schema: {exc.message}") from None
    config = apply_defaults(schema, config)
    errors = sorted(cls(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        raise PluginConfigError(slug, [f"{_path(e)}: {e.message}" for e in errors])
    return config


def _path(error: jsonschema.ValidationError) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
