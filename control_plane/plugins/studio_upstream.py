"""Where a studio LLM call goes (`Upstream`) and what a finished stream reports (`StreamEnd`), shared by the
vendor wire modules (`studio_vendor`, `studio_gemini`)."""

from __future__ import annotations

import dataclasses

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
    """What a finished stream reports after its text deltas: usage and why it stopped."""

    finish_reason: str = ""
    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
