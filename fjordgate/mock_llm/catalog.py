"""The models the mock lists, per vendor. Generation endpoints accept any model name and echo it back;
only `GET /v1/models/{id}` answers 404 for a name that is not listed here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class OpenAIModel:
    id: str
    created: int
    embedding_dimensions: int | None = None  # native size for embedding models
    shortenable: bool = True  # whether `dimensions` may ask for fewer


@dataclass(frozen=True, slots=True)
class AnthropicModel:
    id: str
    display_name: str
    created_at: str


OPENAI_MODELS: tuple[OpenAIModel, ...] = (
    OpenAIModel("gpt-4o", 1715367049),
    OpenAIModel("gpt-4o-mini", 1721172741),
    OpenAIModel("gpt-4.1", 1744316542),
    OpenAIModel("gpt-4.1-mini", 1744318173),
    OpenAIModel("o3-mini", 1737146383),
    OpenAIModel("gpt-3.5-turbo-instruct", 1692901427),
    OpenAIModel("text-embedding-3-small", 1705948997, embedding_dimensions=1536),
    OpenAIModel("text-embedding-3-large", 1705953180, embedding_dimensions=3072),
    OpenAIModel("text-embedding-ada-002", 1671217299, embedding_dimensions=1536, shortenable=False),
)
OPENAI_BY_ID = {model.id: model for model in OPENAI_MODELS}
DEFAULT_EMBEDDING_DIMENSIONS = 1536

ANTHROPIC_MODELS: tuple[AnthropicModel, ...] = (
    AnthropicModel("claude-opus-4-20250514", "Claude Opus 4", "2025-05-22T00:00:00Z"),
    AnthropicModel("claude-sonnet-4-20250514", "Claude Sonnet 4", "2025-05-22T00:00:00Z"),
    AnthropicModel("claude-3-7-sonnet-20250219", "Claude Sonnet 3.7", "2025-02-24T00:00:00Z"),
    AnthropicModel("claude-3-5-haiku-20241022", "Claude Haiku 3.5", "2024-10-22T00:00:00Z"),
)
ANTHROPIC_BY_ID = {model.id: model for model in ANTHROPIC_MODELS}
