"""What a vendor's API accepts where the dialects differ: the edge's check of a translated request's values.

Why: a value valid in the client's dialect can be beyond the range of the vendor it is translated for (an
OpenAI `temperature` of 1.5 to Anthropic, which takes 0 to 1; five Anthropic `stop_sequences` to OpenAI, which
takes at most 4). Sent as is, the vendor refuses it in its own words, naming a field of another API, after
the edge spent an attempt on it. Each translation compares the value where it builds the field (one comparison)
and raises the client's 400 in the client's words, before any upstream call; nothing is clamped or rescaled.

Bedrock's bounds are those of its Converse API (`inferenceConfig`, the same for every model behind it: AWS's API
reference for `InferenceConfiguration` gives `temperature` and `topP` 0 to 1 and at most 2500 `stopSequences`).

A vendor missing from `VENDOR_RANGES` (vLLM, Ollama, the OpenAI-compatible presets: their limits are their
servers') is not checked: the request goes as is and the vendor answers.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["ANTHROPIC_USER_ID_MAX", "VENDOR_RANGES", "VendorRange", "stops_beyond", "temperature_beyond"]

_UNBOUNDED = 1 << 30


class VendorRange(NamedTuple):
    """The bounds of one vendor's request fields that another dialect may exceed."""

    name: str
    """The vendor as errors name it ("Anthropic")."""
    max_temperature: float
    max_stops: int
    """How many stop sequences the vendor takes."""


_OPENAI = VendorRange("OpenAI", 2.0, 4)
_GOOGLE = VendorRange("Google", 2.0, 5)

VENDOR_RANGES: dict[str, VendorRange] = {
    "openai": _OPENAI,
    "azure": _OPENAI,
    "mock": _OPENAI,  # the mock LLM's OpenAI routes hold requests to OpenAI's ranges
    "anthropic": VendorRange("Anthropic", 1.0, _UNBOUNDED),
    "google": _GOOGLE,
    "vertex": _GOOGLE,
    "bedrock": VendorRange("Bedrock", 1.0, 2500),
}

ANTHROPIC_USER_ID_MAX = 256
"""The longest `metadata.user_id` Anthropic takes."""


def temperature_beyond(target: VendorRange, value: float) -> str:
    """Why a temperature above the target's bound is refused, in words each dialect's error wraps."""
    bound = target.max_temperature
    return (
        f"above {bound:g} is not supported by this model (its vendor, {target.name}, accepts 0 to {bound:g}); "
        f"got {value:g}"
    )


def stops_beyond(target: VendorRange, count: int) -> str:
    """Why more stop sequences than the target takes are refused."""
    return (
        f"more than {target.max_stops} stop sequences are not supported by this model (its vendor, {target.name}, "
        f"accepts at most {target.max_stops}); got {count}"
    )
