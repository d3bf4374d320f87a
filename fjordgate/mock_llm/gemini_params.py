"""Gemini `generateContent` request fields, checked as generativelanguage.googleapis.com checks them.

Google parses the body as proto3 JSON, so a field of the wrong type is `Invalid value at '<snake_case path>'
(TYPE_FLOAT), "hot"`, an unknown one `Invalid JSON payload received. Unknown name "x" at '<path>': Cannot find
field.`, and then validates values (`* GenerateContentRequest.<path>: ...`), all 400 INVALID_ARGUMENT. Either
spelling of a field name (camelCase or proto snake_case) is accepted; numbers may arrive as JSON strings, as
proto3 JSON allows. Checks walk only the keys a request sends: a text part costs one set lookup.
"""

from __future__ import annotations

import binascii
import math
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from .exchange import Invalid

Check = Callable[[str, Any], None]
_NUMBER = (int, float)

CONTENT_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.Content"
CONFIG_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerationConfig"
PART_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.Part"
ROLES = frozenset(("user", "model"))
MIME_TYPES = ("text/plain", "application/json", "application/xml", "application/yaml", "text/x.enum")


def snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def invalid_value(path: str, kind: str, value: Any) -> Invalid:
    shown = orjson.dumps(value).decode() if not isinstance(value, dict | list) else "{...}"
    return Invalid(f"Invalid value at '{path}' ({kind}), {shown}", param=path)


def unknown_name(name: str, path: str) -> Invalid:
    return Invalid(
        f"Invalid JSON payload received. Unknown name \"{name}\" at '{path}': Cannot find field.", param=path
    )


def out_of_range(path: str, value: Any, minimum: float, maximum: float) -> Invalid:
    return Invalid(
        f"* GenerateContentRequest.{path}: {value} is out of range; the supported range is from {minimum} "
        f"(inclusive) to {maximum} (inclusive)."
    )


def _as_number(value: Any) -> float | None:
    """A proto3 JSON number: a JSON number or a string holding one; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, _NUMBER):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def floating(minimum: float, maximum: float) -> Check:
    def check(path: str, value: Any) -> None:
        number = _as_number(value)
        if number is None or math.isnan(number):
            raise invalid_value(path, "TYPE_FLOAT", value)
        if not minimum <= number <= maximum:
            raise out_of_range(path, value, minimum, maximum)

    return check


def integer(minimum: int, maximum: int = 2**31 - 1) -> Check:
    def check(path: str, value: Any) -> None:
        number = _as_number(value)
        if number is None or not number.is_integer():
            raise invalid_value(path, "TYPE_INT32", value)
        if not minimum <= number <= maximum:
            raise out_of_range(path, value, minimum, maximum)

    return check


def boolean(path: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise invalid_value(path, "TYPE_BOOL", value)


def string(path: str, value: Any) -> None:
    if not isinstance(value, str):
        raise invalid_value(path, "TYPE_STRING", value)


def message(path: str, value: Any) -> None:
    """A nested object (schema, speech config, ...), its own fields not checked here."""
    if not isinstance(value, dict):
        raise invalid_value(path, "TYPE_MESSAGE", value)


def anything(path: str, value: Any) -> None:
    """A `google.protobuf.Value` (a JSON schema, a list of parts): any JSON is well typed."""


def strings(path: str, value: Any) -> None:
    if not isinstance(value, list):
        raise invalid_value(path, "TYPE_STRING", value)
    for index, item in enumerate(value):
        string(f"{path}[{index}]", item)


def _stop_sequences(path: str, value: Any) -> None:
    strings(path, value)
    if len(value) > 5:
        raise Invalid(f"* GenerateContentRequest.{path}: at most 5 stop sequences are allowed, got {len(value)}.")


def _mime_type(path: str, value: Any) -> None:
    string(path, value)
    if value not in MIME_TYPES:
        raise Invalid(
            f"* GenerateContentRequest.{path}: allowed mimetypes are `text/plain`, `application/json`, "
            "`application/xml`, `application/yaml` and `text/x.enum`."
        )


def _thinking_config(path: str, value: Any) -> None:
    _fields(path, value, _THINKING)


def _fields(path: str, value: Any, table: Mapping[str, tuple[str, Check]]) -> None:
    """An object whose every key must be one of the table's (either spelling), each value passing its check."""
    if not isinstance(value, dict):
        raise invalid_value(path, "TYPE_MESSAGE", value)
    for name, item in value.items():
        entry = table.get(name)
        if entry is None:
            raise unknown_name(name, path)
        if item is not None:
            entry[1](f"{path}.{entry[0]}", item)


def _table(checks: Mapping[str, Check]) -> dict[str, tuple[str, Check]]:
    """camelCase names to (snake_case name, check), under both spellings."""
    table: dict[str, tuple[str, Check]] = {}
    for camel, check in checks.items():
        table[camel] = table[snake(camel)] = (snake(camel), check)
    return table


_THINKING = _table(
    {"includeThoughts": boolean, "thinkingBudget": integer(-1), "thinkingLevel": string},
)
GENERATION_CONFIG = _table(
    {
        "stopSequences": _stop_sequences,
        "responseMimeType": _mime_type,
        "responseSchema": message,
        "responseJsonSchema": anything,
        "responseModalities": strings,
        "candidateCount": integer(1, 8),
        "maxOutputTokens": integer(1),
        "temperature": floating(0.0, 2.0),
        "topP": floating(0.0, 1.0),
        "topK": integer(1),
        "seed": integer(-(2**31)),
        "presencePenalty": floating(-2.0, 2.0),
        "frequencyPenalty": floating(-2.0, 2.0),
        "responseLogprobs": boolean,
        "logprobs": integer(0, 20),
        "enableEnhancedCivicAnswers": boolean,
        "speechConfig": message,
        "thinkingConfig": _thinking_config,
        "imageConfig": message,
        "mediaResolution": string,
        "audioTimestamp": boolean,
        "routingConfig": message,
        "modelSelectionConfig": message,
    }
)


def generation_config(value: Any) -> None:
    if not isinstance(value, dict):
        raise Invalid(f"Invalid value at 'generation_config' ({CONFIG_TYPE}), {orjson.dumps(value).decode()}")
    _fields("generation_config", value, GENERATION_CONFIG)


def content(value: Any, position: int | None = None) -> None:
    """A `Content` (`contents[position]`, or the system instruction when None): a role ("user" or "model"; the
    system instruction's is ignored) and non-empty parts. Paths are formatted only for what they name."""
    if not isinstance(value, dict):
        raise Invalid(f"Invalid value at '{_where(position)}' ({CONTENT_TYPE}), {orjson.dumps(value).decode()}")
    role = value.get("role")
    if position is not None and role is not None and role not in ROLES:
        raise Invalid("Please use a valid role: user, model.")
    parts = value.get("parts")
    if parts is None or parts == []:
        raise Invalid(f"* GenerateContentRequest.{_where(position)}.parts: contents.parts must not be empty.")
    if not isinstance(parts, list):
        raise Invalid(f"Invalid value at '{_where(position)}.parts' ({PART_TYPE}), {orjson.dumps(parts).decode()}")
    for index, part in enumerate(parts):
        if part.__class__ is dict and len(part) == 1 and part.get("text").__class__ is str:
            continue  # a plain text part, the common case
        _part(f"{_where(position)}.parts[{index}]", part)


def _where(position: int | None) -> str:
    return "system_instruction" if position is None else f"contents[{position}]"


def _part(path: str, part: Any) -> None:
    if not isinstance(part, dict):
        raise Invalid(f"Invalid value at '{path}' ({PART_TYPE}), {orjson.dumps(part).decode()}")
    data = 0
    for name, value in part.items():
        entry = _PART_FIELDS.get(name)
        if entry is None:
            raise unknown_name(name, path)
        field, check, is_data = entry
        if is_data:
            data += 1
        if value is not None:
            check(f"{path}.{field}", value)
    if data == 0:
        raise Invalid(
            f"* GenerateContentRequest.{path}.data: required oneof field 'data' must have one initialized field"
        )


def _bytes(path: str, value: Any) -> None:
    """Base64 (standard or URL-safe alphabet, padding optional), as proto3 JSON reads `bytes`."""
    if not isinstance(value, str):
        raise invalid_value(path, "TYPE_BYTES", value)
    text = value.rstrip("=")
    if not _BASE64.issuperset(text) or len(text) % 4 == 1:
        raise Invalid(
            f"Invalid value at '{path}' (TYPE_BYTES), Base64 decoding failed for {orjson.dumps(value).decode()}"
        )
    try:
        binascii.a2b_base64(text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4))
    except binascii.Error:
        raise Invalid(
            f"Invalid value at '{path}' (TYPE_BYTES), Base64 decoding failed for {orjson.dumps(value).decode()}"
        ) from None


def _blob(path: str, value: Any) -> None:
    _fields(path, value, _BLOB)
    if value.get("data") is None:
        raise Invalid(f"* GenerateContentRequest.{path}.data: required field is not set")


def _file(path: str, value: Any) -> None:
    _fields(path, value, _FILE)
    if not value.get("fileUri", value.get("file_uri")):
        raise Invalid(f"* GenerateContentRequest.{path}.file_uri: file_uri is not specified")


def _named(field: str) -> Check:
    """A function call (`args`) or response (`response`): a name and an object."""
    table = _table(
        {"id": string, "name": string, field: message, "willContinue": boolean, "scheduling": string, "parts": anything}
    )

    def check(path: str, value: Any) -> None:
        _fields(path, value, table)
        if not value.get("name"):
            raise Invalid(f"* GenerateContentRequest.{path}.name: name is not specified")

    return check


_BASE64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_")
_BLOB = _table({"mimeType": string, "data": _bytes})
_FILE = _table({"mimeType": string, "fileUri": string})
_PART_FIELDS: dict[str, tuple[str, Check, bool]] = {}
for _camel, _check, _is_data in (
    ("text", string, True),
    ("inlineData", _blob, True),
    ("fileData", _file, True),
    ("functionCall", _named("args"), True),
    ("functionResponse", _named("response"), True),
    ("executableCode", message, True),
    ("codeExecutionResult", message, True),
    ("thought", boolean, False),
    ("thoughtSignature", _bytes, False),
    ("videoMetadata", message, False),
    ("partMetadata", message, False),
    ("mediaResolution", message, False),
):
    _PART_FIELDS[_camel] = _PART_FIELDS[snake(_camel)] = (snake(_camel), _check, _is_data)
