"""Azure OpenAI: OpenAI's wire format behind deployments, an `api-version` query and an `api-key` header.

The LLM's base URL is the resource endpoint (`https://<resource>.openai.azure.com`); each call goes to
`{endpoint}/openai/deployments/{deployment}/{operation}?api-version={version}`. The deployment is
`metadata.deployments[model]` when the admin mapped the model name, else the model name itself (Azure's default
when a deployment is named after its model). Bodies and answers are OpenAI's, so the OpenAI provider does the rest;
Azure's additions pass through: `content_filter` finish reasons, `prompt_filter_results` and
`content_filter_results` in answers and chunks. Azure's errors (`{"error": {"code", "message"}}`, a filtered
prompt being 400 `content_filter`) reach the client with Azure's `code`, in the caller's format.
"""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import quote

import orjson

from ..upstream import UpstreamRequest
from .base import UpstreamSpec, native_request
from .openai import OpenAIProvider

__all__ = ["AZURE_DEFAULT_API_VERSION", "AzureProvider", "azure_deployment"]

AZURE_DEFAULT_API_VERSION = "2024-10-21"
"""The latest GA data-plane version when this was written; `metadata.api_version` picks another."""


def azure_deployment(spec: UpstreamSpec, model: str) -> str:
    deployments = spec.metadata.get("deployments")
    if isinstance(deployments, dict):
        mapped = deployments.get(model)
        if isinstance(mapped, str) and mapped:
            return mapped
    return model


def _resource_base(api_base: str) -> str:
    """The resource endpoint, tolerating a base URL that already ends in `/openai`."""
    base = api_base.partition("?")[0].rstrip("/")
    return base[: -len("/openai")] if base.endswith("/openai") else base


class AzureProvider(OpenAIProvider):
    def __init__(self) -> None:
        super().__init__("azure")

    def _auth_headers(self, spec: UpstreamSpec) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if spec.api_key:
            headers["api-key"] = spec.api_key
        if spec.extra_headers:
            headers.update(spec.extra_headers)
        return headers

    def _url(self, spec: UpstreamSpec, path: str, model: str) -> str:
        version = quote(str(spec.metadata.get("api_version") or AZURE_DEFAULT_API_VERSION), safe="-.")
        deployment = quote(azure_deployment(spec, model), safe="")
        return f"{_resource_base(spec.api_base)}/openai/deployments/{deployment}/{path}?api-version={version}"

    def native_request(
        self, spec: UpstreamSpec, method: str, path: str, query: str, headers: dict[str, str], body: bytes, stream: bool
    ) -> UpstreamRequest:
        """`/llm/call/{slug}/openai/deployments/...`: the client's path under the resource; `api-version` added
        when the client did not send one (every Azure data-plane call needs it)."""
        if "api-version=" not in query:
            version = quote(str(spec.metadata.get("api_version") or AZURE_DEFAULT_API_VERSION), safe="-.")
            query = f"{query}&api-version={version}" if query else f"api-version={version}"
        base = replace(spec, api_base=_resource_base(spec.api_base))
        return native_request(base, (method, path, query, body, stream), headers, self._auth_headers(spec), ())

    def error_code(self, body: bytes, headers: dict[str, str]) -> str | None:
        """Azure's own error code (`content_filter`, `DeploymentNotFound`, ...) for the client's error."""
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        error = data.get("error") if isinstance(data, dict) else None
        code = error.get("code") if isinstance(error, dict) else None
        return code if isinstance(code, str) and code.replace("_", "").isalnum() and len(code) <= 64 else None
