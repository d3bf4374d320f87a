"""The 400 a translator raises for a client's field of the wrong type or shape, in the words of the client's API.

Why: a translated request (Gemini or Responses in front of a chat vendor) is read field by field, and a field the
translation reads with the wrong type either broke it (a Python error reached the client) or was skipped (the
client got a 200 that ignored what it asked for). The vendor whose API the client speaks answers 400 naming the
field; so does the edge, in that vendor's words:

- OpenAI: `Invalid type for 'temperature': expected a decimal, but got a string instead.` (`code`
  `invalid_type`, `param` the field), `Missing required parameter: 'input[0].content[0].text'.`
  (`missing_required_parameter`), `Invalid value: 'x'. Supported values are: ...` (`invalid_value`).
- Google: `Invalid value at 'generation_config.temperature' (TYPE_FLOAT), "hot"` (snake_case path; Google's
  error document carries no param, so the path is in the message), `* GenerateContentRequest.<path>: <why>`.

The checks are `isinstance` tests the translators make inline as they read a field; these helpers only build
the error, off the hot path.
"""

from __future__ import annotations

import orjson

from ..errors import GatewayError

__all__ = [
    "google_invalid",
    "google_refused",
    "is_base64",
    "is_integer",
    "is_number",
    "openai_invalid_type",
    "openai_invalid_value",
    "openai_missing",
    "openai_out_of_range",
    "openai_unsupported_value",
]

_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_="
_ECHOED = 80
"""How many characters of a refused value an error message repeats (an inline image can be megabytes)."""


def is_number(value: object) -> bool:
    """A JSON number (a boolean is not one, though Python's `bool` is an `int`)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_base64(text: str) -> bool:
    """Whether `text` is base64 as Google's JSON reads bytes: the standard or URL-safe alphabet, padding optional.
    One pass in C over the bytes (`bytes.translate` deleting the alphabet), ~1.3 ms per MB of data; a regex is
    four times that."""
    if not text.isascii():
        return False
    raw = text.encode()
    if raw.translate(None, _BASE64_ALPHABET):
        return False
    pad = raw.find(b"=")
    if pad < 0:
        return len(raw) % 4 != 1
    return len(raw) % 4 == 0 and len(raw) - pad <= 2 and raw.count(b"=", pad) == len(raw) - pad


def _json_type(value: object) -> str:
    """A value's JSON type in OpenAI's words ("a string", "an integer", ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _echo(value: object) -> str:
    shown = orjson.dumps(value).decode()
    return shown if len(shown) <= _ECHOED else shown[:_ECHOED] + "..."


def openai_invalid_type(param: str, expected: str, value: object) -> GatewayError:
    """`expected` in OpenAI's words: "a string", "a decimal", "an integer", "a boolean", "an object", ..."""
    return GatewayError.bad_request(
        f"Invalid type for '{param}': expected {expected}, but got {_json_type(value)} instead.",
        param=param,
        code="invalid_type",
    )


def openai_missing(param: str) -> GatewayError:
    return GatewayError.bad_request(
        f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
    )


def openai_invalid_value(param: str, value: object, supported: tuple[str, ...]) -> GatewayError:
    allowed = ", ".join(f"'{s}'" for s in supported)
    return GatewayError.bad_request(
        f"Invalid value: {_echo(value)}. Supported values are: {allowed}.", param=param, code="invalid_value"
    )


def openai_out_of_range(param: str, value: float, low: float, high: float) -> GatewayError:
    side, bound, word, code = (
        ("below minimum", low, ">=", "decimal_below_min_value")
        if value < low
        else ("above maximum", high, "<=", "decimal_above_max_value")
    )
    return GatewayError.bad_request(
        f"Invalid '{param}': decimal {side} value. Expected a value {word} {bound:g}, but got {value:g} instead.",
        param=param,
        code=code,
    )


def openai_unsupported_value(param: str, why: str) -> GatewayError:
    """OpenAI's words for a value its API takes but this model does not (`why` says which and why)."""
    return GatewayError.bad_request(f"Unsupported value: '{param}' {why}.", param=param, code="unsupported_value")


def google_invalid(path: str, expected: str, value: object) -> GatewayError:
    """Google's words for a value of the wrong type: `expected` is a proto type (`TYPE_FLOAT`) or message name
    (`Content` is written as Google writes it, `type.googleapis.com/google.ai.generativelanguage.v1beta.Content`)."""
    if expected[0].isupper() and not expected.startswith("TYPE_"):
        expected = f"type.googleapis.com/google.ai.generativelanguage.v1beta.{expected}"
    return GatewayError.bad_request(f"Invalid value at '{path}' ({expected}), {_echo(value)}", param=path)


def google_refused(path: str, why: str) -> GatewayError:
    """Google's words for a value of the right type that is not allowed (an unknown role, a missing name)."""
    return GatewayError.bad_request(f"* GenerateContentRequest.{path}: {why}", param=path)
