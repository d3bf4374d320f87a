"""Where a studio LLM call goes (`Upstream`) and what a finished stream reports (`StreamEnd`), shared by the
vendor wire modules (`studio_vendor`, `studio_gemini`)."""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["StreamEnd", "Upstream"]


@dataclasses.dataclass(frozen=True, slots=True)
class Upstream:
    id: int
    slug: str
    vendor: str
    namespace: str
    base: str
    key: str
    default_model: str

    @property
    def anthropic(self) -> bool:
        return self.vendor == "anthropic"


@dataclasses.dataclass(slots=True)
class StreamEnd:
    """What a finished stream reports after its text deltas: usage, why it stopped, and the tool calls it asked
    for (OpenAI's shape, assembled from the vendor's fragments as they arrive)."""

    finish_reason: str = ""
    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tool_calls: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def tool_call(self, position: int) -> dict[str, Any]:
        """The call at `position`, created empty when it is the first fragment of that call."""
        while len(self.tool_calls) <= position:
            self.tool_calls.append({"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
        return self.tool_calls[position]

    def whole_tool_calls(self) -> list[dict[str, Any]]:
        """The calls once the stream ended: an id for each, and `{}` for a call whose arguments never came."""
        calls = []
        for position, call in enumerate(self.tool_calls):
            function = call["function"]
            calls.append(
                {
                    "id": call["id"] or f"call_{position}",
                    "type": "function",
                    "function": {"name": function["name"], "arguments": function["arguments"] or "{}"},
                }
            )
        return calls
