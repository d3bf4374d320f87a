"""Server-wide settings of the mock upstream, fixed when the app is built."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_AWS_CREDENTIALS = "AKIDMOCKBEDROCK:mock-bedrock-secret"


@dataclass(frozen=True, slots=True)
class MockSettings:
    """What `python -m fjordgate.mock_llm` flags set; every field is a default a request may override.

    `fault` uses the `x-mock-fault` syntax (see `faults.py`) and applies to every request before the
    request's own header and `mock` body field, so an operator can start an upstream that is always slow
    or always failing, for fallback tests.
    """

    latency_ms: int = 0
    ttft_ms: int = 0
    chunk_delay_ms: int = 0
    chunks: int | None = None
    require_key: str | None = None
    fault: str = ""
    log_size: int = 1000
    aws_credentials: str = DEFAULT_AWS_CREDENTIALS
    """The one AWS key pair (`ACCESS_KEY_ID:SECRET`) the Bedrock routes verify SigV4 signatures against."""
    vertex_public_key: str | None = None
    """PEM public key (or certificate) `POST /token` verifies service-account assertions against (Vertex AI)."""
    vertex_token_ttl_s: int = 3600
    """How long an access token issued by `POST /token` lives."""

    def __post_init__(self) -> None:
        for name in ("latency_ms", "ttft_ms", "chunk_delay_ms", "log_size"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.chunks is not None and self.chunks < 1:
            raise ValueError("chunks must be >= 1")
        key_id, sep, secret = self.aws_credentials.partition(":")
        if not (key_id and sep and secret):
            raise ValueError("aws_credentials must be ACCESS_KEY_ID:SECRET")
        if self.vertex_token_ttl_s < 1:
            raise ValueError("vertex_token_ttl_s must be >= 1")
        if self.require_key == "":
            raise ValueError("require_key must be a non-empty key or None")
