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
    """What a finished stream reports after its text deltas: usage and why it stopped."""

    finish_reason: str = ""
    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
