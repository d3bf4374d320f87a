"""Vendor adapters. `provider_for(vendor)` picks the one that speaks a vendor's wire format."""

from __future__ import annotations

from shared_sdk.vendors import VENDORS

from .anthropic import AnthropicProvider
from .azure import AzureProvider
from .base import OpenAIRequest, Provider, StreamTranslator, UpstreamSpec, Usage
from .bedrock import BedrockProvider
from .gemini import GeminiProvider
from .openai import OpenAIProvider
from .vertex import VertexProvider

__all__ = ["OpenAIRequest", "Provider", "StreamTranslator", "UpstreamSpec", "Usage", "provider_for"]

_PROVIDERS: dict[str, Provider] = {
    "openai": OpenAIProvider("openai"),
    "azure": AzureProvider(),
    "bedrock": BedrockProvider(),
    "vllm": OpenAIProvider("vllm"),
    "ollama": OpenAIProvider("ollama"),
    "mock": OpenAIProvider("mock"),
    "anthropic": AnthropicProvider(),
    "google": GeminiProvider(),
    "vertex": VertexProvider(),
}
# The OpenAI-compatible presets (Mistral, Groq, Together, DeepSeek, OpenRouter, ...) share the OpenAI provider.
_PROVIDERS.update({v: OpenAIProvider(v) for v, p in VENDORS.items() if p.wire == "openai" and v not in _PROVIDERS})


def provider_for(vendor: str) -> Provider | None:
    """The adapter for `vendor`, or None for a vendor this edge cannot call (the LLM is then not loaded)."""
    return _PROVIDERS.get(vendor)
