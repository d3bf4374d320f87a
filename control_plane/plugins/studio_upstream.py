"""Where a studio LLM call goes (`Upstream`) and what a finished stream reports (`StreamEnd`), shared by the
vendor wire modules (`studio_vendor`, `studio_gemini`, `studio_azure`, `studio_vertex`, `studio_bedrock`)."""

from __future__ import annotations

import dataclasses
from typing import Any

from shared_sdk.vendors import VENDORS

__all__ = ["StreamEnd", "Upstream"]


@dataclasses.dataclass(frozen=True, slots=True)
class Upstream:
    id: int
    slug: str
    vendor: str
    namespace: str
    base: str
    key: str = dataclasses.field(repr=False)
    """The clear vendor key (an API key, Bedrock's `ACCESS_KEY_ID:SECRET`, Vertex AI's service-account JSON): kept
    out of `repr` so a logged or raised upstream never shows it."""
    default_model: str
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    """The LLM's metadata: Azure's `deployments` and `api_version`, Bedrock's `region`, Vertex AI's `region` and
    `project`."""

    @property
    def anthropic(self) -> bool:
        return self.vendor == "anthropic"

    @property
    def wire(self) -> str:
        """The vendor's wire format (`shared_sdk.vendors`): `openai`, `azure`, `anthropic`, `google`, `vertex`,
        `bedrock`; an unknown vendor is spoken to as OpenAI."""
        preset = VENDORS.get(self.vendor)
        return preset.wire if preset else "openai"


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
