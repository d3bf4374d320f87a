"""The OpenAI endpoints' option fields (sampling, output, bookkeeping), checked as api.openai.com checks them.

Each endpoint has a table from field name to check; `check_fields` walks the request's own keys once, so a
typical small request costs one dict lookup per key it sends. `null` is accepted for every optional field, as
OpenAI accepts it. Messages follow OpenAI's wording (`Invalid type for 'x': expected a decimal, but got a string
instead.`) with `param` naming the field and `code` its kind (`invalid_type`, `decimal_above_max_value`, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .exchange import Invalid

Check = Callable[[str, Any], None]
_NUMBER = (int, float)

MAX_METADATA_KEYS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
SERVICE_TIERS = ("auto", "default", "flex", "scale", "priority")


def json_type(value: Any) -> str:
    """The JSON type name OpenAI's messages use for a value it did not expect."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "decimal"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def wrong_type(param: str, expected: str, value: Any) -> Invalid:
    return Invalid(
        f"Invalid type for '{param}': expected {expected}, but got {_article(json_type(value))} instead.",
        param=param,
        code="invalid_type",
    )


def missing(param: str) -> Invalid:
    return Invalid(f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")


def unsupported(param: str, value: Any, supported: tuple[str, ...]) -> Invalid:
    quoted = [repr(item) for item in supported]
    listed = " and ".join(quoted) if len(quoted) <= 2 else f"{', '.join(quoted[:-1])}, and {quoted[-1]}"
    return Invalid(f"Invalid value: {value!r}. Supported values are: {listed}.", param=param, code="invalid_value")


def string(param: str, value: Any) -> None:
    if not isinstance(value, str):
        raise wrong_type(param, "a string", value)


def boolean(param: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise wrong_type(param, "a boolean", value)


def number(minimum: float, maximum: float) -> Check:
    """A decimal in [minimum, maximum] (integers are decimals too)."""

    def check(param: str, value: Any) -> None:
        if not isinstance(value, _NUMBER) or isinstance(value, bool):
            raise wrong_type(param, "a decimal", value)
        if value < minimum:
            raise _bound(param, "decimal", "below minimum", ">=", minimum, value)
        if value > maximum:
            raise _bound(param, "decimal", "above maximum", "<=", maximum, value)

    return check


def integer(minimum: int | None = None, maximum: int | None = None) -> Check:
    def check(param: str, value: Any) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            raise wrong_type(param, "an integer", value)
        if minimum is not None and value < minimum:
            raise _bound(param, "integer", "below minimum", ">=", minimum, value)
        if maximum is not None and value > maximum:
            raise _bound(param, "integer", "above maximum", "<=", maximum, value)

    return check


def one_of(*supported: str) -> Check:
    def check(param: str, value: Any) -> None:
        if value not in supported:
            raise unsupported(param, value, supported)

    return check


def metadata(param: str, value: Any) -> None:
    """At most 16 pairs, keys up to 64 characters, values strings up to 512."""
    if not isinstance(value, dict):
        raise wrong_type(param, "an object", value)
    if len(value) > MAX_METADATA_KEYS:
        raise Invalid(
            f"Invalid '{param}': too many properties. Expected an object with at most {MAX_METADATA_KEYS} "
            f"properties, but got an object with {len(value)} properties instead.",
            param=param,
            code="object_above_max_properties",
        )
    for key, item in value.items():
        if len(key) > MAX_METADATA_KEY:
            raise _too_long(f"{param}.{key}", MAX_METADATA_KEY, len(key))
        string(f"{param}.{key}", item)
        if len(item) > MAX_METADATA_VALUE:
            raise _too_long(f"{param}.{key}", MAX_METADATA_VALUE, len(item))


def logit_bias(param: str, value: Any) -> None:
    """Token ids (as strings of digits) to biases in [-100, 100]."""
    if not isinstance(value, dict):
        raise wrong_type(param, "an object", value)
    for key, bias in value.items():
        if not key.isdigit():
            raise Invalid(
                f"Invalid key in '{param}': {key}. You should only be submitting non-negative integers.",
                param=param,
                code="invalid_value",
            )
        _BIAS(f"{param}.{key}", bias)


def chat_response_format(param: str, value: Any) -> None:
    """`{"type": "text" | "json_object"}` or `{"type": "json_schema", "json_schema": {"name", "schema"?, ...}}`."""
    if not isinstance(value, dict):
        raise wrong_type(param, "an object", value)
    kind = value.get("type")
    if kind is None:
        raise missing(f"{param}.type")
    if kind not in _FORMATS:
        raise unsupported(f"{param}.type", kind, _FORMATS)
    if kind == "json_schema":
        spec = value.get("json_schema")
        if spec is None:
            raise missing(f"{param}.json_schema")
        if not isinstance(spec, dict):
            raise wrong_type(f"{param}.json_schema", "an object", spec)
        json_schema_spec(f"{param}.json_schema", spec)


def responses_text(param: str, value: Any) -> None:
    """The Responses API's `text`: `format` is `{"type": "text" | "json_object"}` or a json_schema with `name`."""
    if not isinstance(value, dict):
        raise wrong_type(param, "an object", value)
    wanted = value.get("format")
    if wanted is None:
        return
    if not isinstance(wanted, dict):
        raise wrong_type(f"{param}.format", "an object", wanted)
    kind = wanted.get("type")
    if kind is None:
        raise missing(f"{param}.format.type")
    if kind not in _FORMATS:
        raise unsupported(f"{param}.format.type", kind, _FORMATS)
    if kind == "json_schema":
        json_schema_spec(f"{param}.format", wanted)


def json_schema_spec(param: str, spec: dict[str, Any]) -> None:
    """A structured-output format's `name` (required, tool-name pattern), `schema` (object) and `strict`."""
    name = spec.get("name")
    if name is None:
        raise missing(f"{param}.name")
    name_pattern(f"{param}.name", name)
    schema = spec.get("schema")
    if schema is not None and not isinstance(schema, dict):
        raise wrong_type(f"{param}.schema", "an object", schema)
    if spec.get("strict") is not None:
        boolean(f"{param}.strict", spec["strict"])


def name_pattern(param: str, name: Any) -> None:
    """A function or schema name: `^[a-zA-Z0-9_-]{1,64}$`, checked without a regex."""
    string(param, name)
    if len(name) > MAX_NAME:
        raise _too_long(param, MAX_NAME, len(name))
    if not name or not _NAME_CHARACTERS.issuperset(name):
        raise Invalid(
            f"Invalid '{param}': string does not match pattern. Expected a string that matches the pattern "
            "'^[a-zA-Z0-9_-]+$'.",
            param=param,
            code="invalid_value",
        )


def check_fields(body: Mapping[str, Any], checks: Mapping[str, Check]) -> None:
    """Run the table's check for each field the request sends (null passes)."""
    for name, value in body.items():
        check = checks.get(name)
        if check is not None and value is not None:
            check(name, value)


def _article(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _bound(param: str, kind: str, where: str, sign: str, limit: float, value: Any) -> Invalid:
    return Invalid(
        f"Invalid '{param}': {kind} {where} value. Expected a value {sign} {limit}, but got {value} instead.",
        param=param,
        code=f"{kind}_{where.replace(' ', '_').replace('imum', '')}_value",
    )


def _too_long(param: str, limit: int, length: int) -> Invalid:
    return Invalid(
        f"Invalid '{param}': string too long. Expected a string with maximum length {limit}, but got a string "
        f"with length {length} instead.",
        param=param,
        code="string_above_max_length",
    )


MAX_NAME = 64
_NAME_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
_FORMATS = ("text", "json_object", "json_schema")
_BIAS = number(-100, 100)
_TEMPERATURE = number(0, 2)
_TOP_P = number(0, 1)
_PENALTY = number(-2, 2)
_SEED = integer()

SAMPLING: dict[str, Check] = {
    "temperature": _TEMPERATURE,
    "top_p": _TOP_P,
    "presence_penalty": _PENALTY,
    "frequency_penalty": _PENALTY,
    "seed": _SEED,
    "logit_bias": logit_bias,
    "user": string,
    "stream": boolean,
}
CHAT: dict[str, Check] = {
    **SAMPLING,
    "logprobs": boolean,
    "top_logprobs": integer(0, 20),
    "response_format": chat_response_format,
    "parallel_tool_calls": boolean,
    "service_tier": one_of(*SERVICE_TIERS),
    "metadata": metadata,
    "store": boolean,
}
COMPLETIONS: dict[str, Check] = {
    **SAMPLING,
    "logprobs": integer(0, 5),
    "best_of": integer(0, 20),
    "echo": boolean,
    "suffix": string,
}
EMBEDDINGS: dict[str, Check] = {"user": string, "encoding_format": one_of("float", "base64")}
RESPONSES: dict[str, Check] = {
    "temperature": _TEMPERATURE,
    "top_p": _TOP_P,
    "top_logprobs": integer(0, 20),
    "user": string,
    "stream": boolean,
    "instructions": string,
    "parallel_tool_calls": boolean,
    "service_tier": one_of(*SERVICE_TIERS),
    "metadata": metadata,
    "store": boolean,
    "background": boolean,
    "truncation": one_of("auto", "disabled"),
    "previous_response_id": string,
    "text": responses_text,
}
