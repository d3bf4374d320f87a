"""The vendors an LLM may name, in one table both tiers read.

Why here: the control plane fills an LLM's base URL from its vendor's preset (admin form, API, snapshot), and the
edge picks the provider that speaks the vendor's wire format from the same row. Keeping the table in the SDK (which
imports neither tier) means a vendor added here is offered by the admin and callable by the edge at once.

`wire` names the provider family at the edge: `openai` (Chat Completions and friends, Bearer key), `azure`
(deployments, `api-version`, `api-key` header), `anthropic` (Messages), `bedrock` (Converse, SigV4), `google` (Gemini's generateContent, `x-goog-api-key`), `vertex`
(the same Gemini body on Vertex AI, an OAuth2 token from a service account). A preset `base_url` containing
`{region}` is completed from the LLM's `metadata.region`, checked against the vendor's cloud's region names (AWS's
`us-east-1` for Bedrock, Google Cloud's `us-central1` for Vertex AI).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["VENDORS", "VendorPreset", "preset_base_url", "valid_region", "vendor_preset"]


@dataclass(frozen=True, slots=True)
class VendorPreset:
    vendor: str
    label: str
    wire: str
    base_url: str = ""
    """The default endpoint; empty when every account has its own (Azure resource, the mock) and one must be given."""
    needs_key: bool = True
    """False for self-hosted servers (Ollama, vLLM) that usually run without a key."""


VENDORS: dict[str, VendorPreset] = {
    p.vendor: p
    for p in (
        VendorPreset("openai", "OpenAI", "openai", "https://api.openai.com/v1"),
        VendorPreset("anthropic", "Anthropic", "anthropic", "https://api.anthropic.com"),
        VendorPreset("azure", "Azure OpenAI", "azure"),
        VendorPreset("bedrock", "AWS Bedrock", "bedrock", "https://bedrock-runtime.{region}.amazonaws.com"),
        VendorPreset("google", "Google Gemini (AI Studio key)", "google", "https://generativelanguage.googleapis.com"),
        VendorPreset("vertex", "Google Vertex AI (Gemini)", "vertex", "https://{region}-aiplatform.googleapis.com"),
        VendorPreset("mistral", "Mistral", "openai", "https://api.mistral.ai/v1"),
        VendorPreset("groq", "Groq", "openai", "https://api.groq.com/openai/v1"),
        VendorPreset("together", "Together AI", "openai", "https://api.together.xyz/v1"),
        VendorPreset("deepseek", "DeepSeek", "openai", "https://api.deepseek.com/v1"),
        VendorPreset("openrouter", "OpenRouter", "openai", "https://openrouter.ai/api/v1"),
        VendorPreset("ollama", "Ollama", "openai", "http://localhost:11434/v1", needs_key=False),
        VendorPreset("vllm", "vLLM", "openai", "http://localhost:8000/v1", needs_key=False),
        VendorPreset("mock", "Mock", "openai"),
    )
}

_REGION = re.compile(r"[a-z]{2}(-gov)?-[a-z]+-\d{1,2}")
_GCP_REGION = re.compile(r"[a-z]+-[a-z]+\d{1,2}")


def vendor_preset(vendor: str) -> VendorPreset | None:
    return VENDORS.get(vendor)


def preset_base_url(vendor: str, region: object = None) -> str:
    """The preset endpoint of `vendor` ("" when it has none, or needs a region and `region` is not a valid one)."""
    preset = VENDORS.get(vendor)
    if preset is None or not preset.base_url:
        return ""
    if "{region}" not in preset.base_url:
        return preset.base_url
    if not valid_region(region, vendor):
        return ""
    return preset.base_url.replace("{region}", str(region))


def valid_region(region: object, vendor: str = "bedrock") -> bool:
    """A region name as the vendor's cloud spells them: AWS's (`us-east-1`, `eu-central-2`, `us-gov-west-1`) for
    Bedrock, Google Cloud's (`us-central1`, `europe-west4`, `northamerica-northeast1`) for Vertex AI."""
    pattern = _GCP_REGION if vendor == "vertex" else _REGION
    return isinstance(region, str) and pattern.fullmatch(region) is not None
