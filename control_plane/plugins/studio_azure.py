"""The studio's own LLM calls to Azure OpenAI: OpenAI's bodies and answers at a deployment's URL.

Azure differs from OpenAI only in where a call goes and how it is authorised, so `studio_vendor` builds the OpenAI
body and this module gives the URL and headers: `{resource}/openai/deployments/{deployment}/chat/completions
?api-version={version}` with the key in an `api-key` header (never `authorization`, which Azure reads as an Entra
token). The deployment is `metadata.deployments[model]` when the admin mapped the model, else the model's own name
(Azure's default); `metadata.api_version` picks the API version. The same rules as the edge's Azure provider, so an
LLM answers the studio as it answers an edge.
"""

from __future__ import annotations

from urllib.parse import quote

from .studio_upstream import Upstream

__all__ = ["AZURE_DEFAULT_API_VERSION", "azure_target"]

AZURE_DEFAULT_API_VERSION = "2024-10-21"
"""The GA data-plane version the edge also defaults to (it takes `stream_options`, so streams report usage)."""


def _deployment(upstream: Upstream, model: str) -> str:
    deployments = upstream.metadata.get("deployments")
    if isinstance(deployments, dict):
        mapped = deployments.get(model)
        if isinstance(mapped, str) and mapped:
            return mapped
    return model


def azure_target(upstream: Upstream, model: str) -> tuple[str, dict[str, str]]:
    """(url, headers) of a chat-completions call to `model`'s deployment."""
    base = upstream.base.partition("?")[0].rstrip("/")
    base = base.removesuffix("/openai")
    version = quote(str(upstream.metadata.get("api_version") or AZURE_DEFAULT_API_VERSION), safe="-.")
    deployment = quote(_deployment(upstream, model), safe="")
    headers = {"content-type": "application/json"}
    if upstream.key:
        headers["api-key"] = upstream.key
    return f"{base}/openai/deployments/{deployment}/chat/completions?api-version={version}", headers
