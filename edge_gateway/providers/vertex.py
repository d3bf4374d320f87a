"""Gemini on Google Vertex AI behind the edge: the Gemini API's bodies at Vertex AI's URLs, with an OAuth2 token.

Calls: `POST {base}/v1/projects/{project}/locations/{region}/publishers/google/models/{model}:generateContent`
(`:streamGenerateContent?alt=sse` for streams, `:countTokens` for a Gemini-format client's count), where the base
is `https://{region}-aiplatform.googleapis.com` (the preset, from `metadata.region`) and the project is
`metadata.project`. Bodies and answers are the Gemini API's, so everything but the URL and the auth is
`GeminiProvider`'s (translation in `gemini_format` / `gemini_stream`, shared, not copied). Embeddings are refused
(400): Vertex AI embeds through `:predict` in another shape, which this provider does not speak.

Auth: the LLM's key is a service-account JSON (stored and shipped encrypted like every vendor key). The request
is built without credentials; `authorize` (awaited by the upstream phase before each attempt is sent) adds
`authorization: Bearer <token>` from `vertex_auth.ServiceAccountTokens`, which refreshes tokens in a thread and
caches them, so a request never waits while a valid token exists. A 401/403 from Vertex AI is the client's 502
`upstream_auth_failed`, like a refused token exchange; a 401 also drops the cached token (`credentials_rejected`).
"""

from __future__ import annotations

from urllib.parse import quote

from ..upstream import UpstreamRequest
from .base import OpenAIRequest, UpstreamSpec
from .gemini import GeminiProvider, _refused
from .vertex_auth import ServiceAccountTokens

__all__ = ["VertexProvider", "vertex_url"]


def vertex_url(spec: UpstreamSpec, model: str, method: str, stream: bool = False) -> str:
    """The Vertex AI URL of a publisher model's method, for the LLM's project and region."""
    project = quote(str(spec.metadata.get("project") or ""), safe="")
    region = quote(str(spec.metadata.get("region") or ""), safe="")
    name = model.rsplit("/", 1)[-1]  # `models/x` or `publishers/google/models/x`: the model's own name
    base = spec.api_base.partition("?")[0].rstrip("/")
    if base.endswith("/v1"):
        base = base[: -len("/v1")]
    url = (
        f"{base}/v1/projects/{project}/locations/{region}/publishers/google/models/{quote(name, safe='.-_@')}:{method}"
    )
    return f"{url}?alt=sse" if stream else url


class VertexProvider(GeminiProvider):
    vendor = "vertex"

    def __init__(self, tokens: ServiceAccountTokens | None = None) -> None:
        self.tokens = tokens or ServiceAccountTokens()

    def _headers(self, spec: UpstreamSpec) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if spec.extra_headers:
            headers.update(spec.extra_headers)
        return headers

    def _url(self, spec: UpstreamSpec, model: str, method: str, stream: bool = False) -> str:
        return vertex_url(spec, model, method, stream)

    def _build(self, spec: UpstreamSpec, call: OpenAIRequest, model: str) -> UpstreamRequest:
        if call.kind == "embeddings":
            raise _refused(
                f"LLM {spec.slug!r} (Vertex AI) does not offer embeddings through this edge", "unsupported_operation"
            )
        return super()._build(spec, call, model)

    async def authorize(self, spec: UpstreamSpec) -> str:
        """The `authorization` header value of the LLM's next call (see `vertex_auth`)."""
        return await self.tokens.authorization(spec)

    def credentials_rejected(self, spec: UpstreamSpec) -> None:
        self.tokens.forget(spec)
