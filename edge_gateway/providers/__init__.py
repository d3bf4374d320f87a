"""Vendor adapters. `provider_for(vendor)` picks the one that speaks a vendor's wire format."""

from __future__ import annotations

from .anthropic import AnthropicProvider
from .base import OpenAIRequest, Provider, StreamTranslator, UpstreamSpec, Usage
from .gemini import GeminiProvider
from .openai import OpenAIProvider

__all__ = ["OpenAIRequest", "Provider", "StreamTranslator", "UpstreamSpec", "Usage", "provider_for"]

_PROVIDERS: dict[str, Provider] = {
    "openai": OpenAIProvider("openai"),
    "azure": OpenAIProvider("azure"),
    "vllm": OpenAIProvider("vllm"),
    "ollama": OpenAIProvider("ollama"),
    "mock": OpenAIProvider("mock"),
    "anthropic": AnthropicProvider(),
    "google": GeminiProvider(),
}


def provider_for(vendor: str) -> Provider | None:
    """The adapter for `vendor`, or None for a vendor this edge cannot call (the LLM is then not loaded)."""
    return _PROVIDERS.get(vendor)
