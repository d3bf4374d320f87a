"""The shape of an Anthropic Messages request's fields, checked where the translation reads them.

Why: translated for another vendor (`messages_request.py`), a field of the wrong type or shape was dropped or
mangled and the client got a 200 (`system: 5`, `tools: "x"`, a text block without text, an image of base64 that
does not decode), where Anthropic itself answers 400 `invalid_request_error` naming the field. The same SDK must
get the same answer whatever vendor serves the LLM, so each field is held to the type Anthropic's API documents,
and a misfit is reported with its path as Anthropic spells it (`messages.0.content.1.text: Field required`).

The checks run inside the translator's one walk over the request: a helper raises `Misfit` with the field's path
relative to what it was given, and each enclosing level (a block in a turn, a turn in `messages`) puts its own
part in front as the exception passes through its `try` (free until something is wrong), so a well-formed
request builds no path string. `messages_to_chat` turns the `Misfit` into the client's 400 (`GatewayError`).
"""

from __future__ import annotations

from typing import Any

from ..errors import GatewayError

__all__ = [
    "FIELD_REQUIRED",
    "Misfit",
    "base64_data",
    "check_cache_control",
    "check_request_fields",
    "one_of",
    "optional_string",
    "required_dict",
    "required_string",
    "string_misfit",
]

FIELD_REQUIRED = "Field required"
IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
"""The image types Anthropic's API takes (`source.media_type` of a base64 image)."""
THINKING_KINDS = ("enabled", "disabled", "adaptive", "between_tools")
SERVICE_TIERS = ("auto", "standard_only")
MIN_THINKING_BUDGET = 1024
"""Anthropic's floor for `thinking.budget_tokens` (and it must stay below `max_tokens`)."""


class Misfit(Exception):
    """A field of the wrong type or shape: `path` its parts from the innermost level that knew them outward."""

    def __init__(self, path: str | int, reason: str) -> None:
        super().__init__(reason)
        self.parts: list[str | int] = [path]
        self.reason = reason

    def under(self, *outer: str | int) -> Misfit:
        """This misfit seen from an enclosing level (`under("messages", 0)`): its parts go in front."""
        self.parts[:0] = outer
        return self

    def error(self) -> GatewayError:
        """The client's 400, the message in Anthropic's words: `<path>: <what is wrong>`."""
        path = ".".join(str(part) for part in self.parts if part != "")
        return GatewayError.bad_request(f"{path}: {self.reason}" if path else self.reason, param=path or None)


def one_of(options: tuple[str, ...]) -> str:
    """Pydantic's wording of an enumeration, as Anthropic's errors carry it: `Input should be 'a', 'b' or 'c'`."""
    quoted = [f"'{option}'" for option in options]
    return "Input should be " + (f"{', '.join(quoted[:-1])} or {quoted[-1]}" if len(quoted) > 1 else quoted[0])


def required_string(holder: dict[str, Any], key: str) -> str:
    value = holder.get(key)
    if isinstance(value, str):
        return value
    raise string_misfit(key, value)


def string_misfit(key: str, value: object) -> Misfit:
    """What is wrong with `value` where a string is required (the walk tests a block's `text` inline, a call
    less per block, and asks this only when it is not one)."""
    return Misfit(key, FIELD_REQUIRED if value is None else "Input should be a valid string")


def optional_string(holder: dict[str, Any], key: str) -> str | None:
    value = holder.get(key)
    if value is None or isinstance(value, str):
        return value
    raise Misfit(key, "Input should be a valid string")


def required_dict(holder: dict[str, Any], key: str) -> dict[str, Any]:
    value = holder.get(key)
    if isinstance(value, dict):
        return value
    raise Misfit(key, FIELD_REQUIRED if value is None else "Input should be a valid dictionary")


def check_cache_control(block: dict[str, Any]) -> None:
    """`cache_control` (dropped in translation: Chat Completions caches on its own) is `{"type": "ephemeral"}`;
    callers look it up first (`"cache_control" in block`): most blocks have none."""
    control = block.get("cache_control")
    if control is None:
        return
    if not isinstance(control, dict):
        raise Misfit("cache_control", "Input should be a valid dictionary")
    if control.get("type") != "ephemeral":
        raise Misfit("type", one_of(("ephemeral",))).under("cache_control")


def base64_data(source: dict[str, Any]) -> str:
    """A base64 source's `data`, checked to be base64 (Anthropic refuses what does not decode, and a vendor
    behind the edge would fail on it later, or read garbage)."""
    data = required_string(source, "data")
    if not _is_base64(data):
        raise Misfit("data", "Input should be valid base64 data")
    return data


_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _is_base64(data: str) -> bool:
    """Whether `data` decodes as base64 written as RFC 4648 has it (the alphabet, no line breaks, a length in
    fours, at most two `=` at the end). Not by decoding: `bytes.translate` deleting the alphabet is one C loop
    over the bytes, 4x faster than `binascii.a2b_base64(strict_mode=True)` (200 us for a 135 KB image where
    measured, against 900), and nothing is left of a valid image but its padding."""
    if len(data) % 4 or not data.isascii():
        return False
    rest = data.encode().translate(None, _BASE64_ALPHABET)
    return not rest or (rest in (b"=", b"==") and data.endswith("=" * len(rest)))


def check_request_fields(data: dict[str, Any]) -> None:
    """The top-level fields the translation reads or drops (`system`, `messages` and `tools` are checked by the
    walk that translates them): each is absent, null, or of the type Anthropic's API documents (`Misfit`). An
    absent field costs one lookup: most requests set two or three of these."""
    for key in ("temperature", "top_p"):
        value = data.get(key)
        if value is not None and (value.__class__ not in _NUMBERS or not 0 <= value <= 1):
            raise _unit_misfit(key, value)
    top_k = data.get("top_k")
    if top_k is not None and (top_k.__class__ is not int or top_k < 0):
        raise Misfit("top_k", "Input should be a valid integer" if top_k.__class__ is not int else _AT_LEAST_0)
    stops = data.get("stop_sequences")
    if stops is not None:
        _check_stop_sequences(stops)
    if data.get("thinking") is not None:
        _check_thinking(data)
    metadata = data.get("metadata")
    if metadata is not None:
        _check_metadata(metadata)
    tier = data.get("service_tier")
    if tier is not None and tier not in SERVICE_TIERS:
        raise Misfit("service_tier", one_of(SERVICE_TIERS))


_NUMBERS = (int, float)
"""The classes of a JSON number as decoded (a bool is neither: `True.__class__` is `bool`)."""
_AT_LEAST_0 = "Input should be greater than or equal to 0"


def _unit_misfit(key: str, value: object) -> Misfit:
    """`temperature` / `top_p`: a number from 0 to 1."""
    if value.__class__ not in _NUMBERS:
        return Misfit(key, "Input should be a valid number")
    return Misfit(key, _AT_LEAST_0 if value < 0 else "Input should be less than or equal to 1")  # type: ignore[operator]


def _check_stop_sequences(stops: object) -> None:
    if not isinstance(stops, list):
        raise Misfit("stop_sequences", "Input should be a valid list")
    for index, stop in enumerate(stops):
        if not isinstance(stop, str):
            raise Misfit(index, "Input should be a valid string").under("stop_sequences")


def _check_thinking(data: dict[str, Any]) -> None:
    thinking = data.get("thinking")
    if not isinstance(thinking, dict):
        raise Misfit("thinking", "Input should be a valid dictionary")
    kind = thinking.get("type")
    if kind not in THINKING_KINDS:
        raise Misfit("type", FIELD_REQUIRED if kind is None else one_of(THINKING_KINDS)).under("thinking")
    if kind != "enabled":
        return
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or isinstance(budget, bool):
        reason = FIELD_REQUIRED if budget is None else "Input should be a valid integer"
        raise Misfit("budget_tokens", reason).under("thinking")
    if budget < MIN_THINKING_BUDGET:
        raise Misfit("budget_tokens", f"Input should be greater than or equal to {MIN_THINKING_BUDGET}").under(
            "thinking"
        )
    max_tokens = data.get("max_tokens")
    if isinstance(max_tokens, int) and budget >= max_tokens:
        raise Misfit("", "`max_tokens` must be greater than `thinking.budget_tokens`")


def _check_metadata(metadata: object) -> None:
    if not isinstance(metadata, dict):
        raise Misfit("metadata", "Input should be a valid dictionary")
    try:
        optional_string(metadata, "user_id")
    except Misfit as misfit:
        raise misfit.under("metadata") from None
