"""Gemini 3's thought signatures on function calls: issued with each answer's first call, required back.

Why in the mock: Gemini 3 models answer 400 when a conversation replays, within the current turn, a model turn
whose first `functionCall` part lacks the `thoughtSignature` the model gave it; a gateway that translates
another SDK's tool calls to Gemini must carry the signature across, and only a vendor that checks it shows
whether it does. The mock signs and checks for models named `gemini-3...` only (Gemini 2.5 signs only when
thinking and never refuses), and its signature is a deterministic function of the call's name.
"""

from __future__ import annotations

import base64
from typing import Any

from .exchange import Invalid

__all__ = ["check_signatures", "signature_for", "signs"]

MISSING = (
    "Function call is missing a thought_signature in functionCall parts. This is required for tools to work "
    "correctly, and missing thought_signature may lead to degraded model performance. Additional data, function "
    "call `{name}` , position {position}. Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures "
    "for more details."
)


def signs(model: str) -> bool:
    return model.removeprefix("models/").startswith("gemini-3")


def signature_for(name: str) -> str:
    return base64.b64encode(f"mock-thought-signature:{name}".encode()).decode()


def _is_user_prompt(content: dict[str, Any]) -> bool:
    """A user turn that starts a new turn: one with a part other than function responses."""
    parts = content.get("parts") or []
    return content.get("role", "user") == "user" and any(
        isinstance(p, dict) and not (p.get("functionResponse") or p.get("function_response")) for p in parts
    )


def check_signatures(contents: list[Any]) -> None:
    """400 (Invalid) when a model turn of the current turn has a first function call without its signature."""
    start = max((i for i, c in enumerate(contents) if isinstance(c, dict) and _is_user_prompt(c)), default=0)
    for position, content in enumerate(contents[start:], start):
        if not isinstance(content, dict) or content.get("role") != "model":
            continue
        calls = [p for p in content.get("parts") or [] if isinstance(p, dict) and p.get("functionCall")]
        if not calls:
            continue
        name = str(calls[0]["functionCall"].get("name", ""))
        sent = calls[0].get("thoughtSignature") or calls[0].get("thought_signature")
        if sent != signature_for(name):
            raise Invalid(MISSING.format(name=name, position=position + 1))
