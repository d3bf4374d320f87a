"""`Exchange`: the state of one request as it moves through the pipeline's phases.

Each phase writes what it learnt here (the caller, the LLM and model, status, usage, timings); accounting
(`edge_gateway.accounting.account`) reads it once, as the last step. `Rejected` ends a request refused before
it was accepted (no app yet): answered, never accounted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared_sdk import Context, PluginError

from .budgets import Reservation
from .config_store import CompiledApp, CompiledConfig, CompiledLLM
from .deployments import DeploymentGroup, DeploymentHealth
from .errors import GatewayError
from .providers import OpenAIRequest, Usage
from .providers.responses import ResponsesSession
from .ratelimit import RateLease

__all__ = ["Exchange", "Rejected"]


class Rejected(Exception):
    """A request refused before it was accepted (no app yet): answered with `error`, never accounted;
    `reason` labels `fjordgate_edge_rejected_requests_total`."""

    def __init__(self, error: GatewayError | PluginError, reason: str) -> None:
        super().__init__(reason)
        self.error = error
        self.reason = reason


@dataclass(slots=True)
class Exchange:
    """One request: what arrived, who sent it, which LLM answered, and what was sent back."""

    request_id: str
    started: float
    """`time.perf_counter()` at arrival."""
    timestamp: float
    cfg: CompiledConfig
    ctx: Context
    kind: str
    method: str
    path: str
    call: OpenAIRequest | None = None
    request_bytes: int = 0
    app: CompiledApp | None = None
    user_id: int | None = None
    llm: CompiledLLM | None = None
    model: str = ""
    group: DeploymentGroup | None = None
    """The deployments the routed LLM was balanced among (None: the model name pinned one LLM)."""
    probe: tuple[DeploymentHealth, float] | None = None
    """The half-open probe this request was routed as (released if it ends before an upstream call)."""
    status_code: int = 0
    error_type: str = ""
    usage: Usage = field(default_factory=Usage)
    streamed: bool = False
    ttft_s: float | None = None
    upstream_s: float = 0.0
    response_bytes: int = 0
    response_body: bytes = b""
    reservation: Reservation | None = None
    limits: list[tuple[str, int, str, bool]] | None = None
    """The caller's rate limits (`policy._limits`), built once the caller is known."""
    rate_keys: tuple[str, ...] = ()
    rate_headers: list[tuple[bytes, bytes]] | tuple[()] = ()
    """The caller's rate-limit headers (`rate_headers`), set once its limits were checked; empty without limits."""
    token_holds: tuple[tuple[RateLease, int], ...] = ()
    """Token bounds taken from tpm leases (`policy.settle_rate_tokens` swaps them for the tokens used)."""
    prompt_bound: int = -1
    """The input's token bound by its bytes and images once computed (`policy._prompt_bound`), -1 before."""
    prompt_media: bool = False
    """Whether the input gives media other than images by reference (a video, a document): only the model's input
    limit bounds it."""
    short_circuited: bool = False
    client_disconnected: bool = False
    accounted: bool = False
    dialect: str = "openai"
    """The caller's API family ("openai" | "anthropic", `errors.dialect_of`): the shape of answers and errors."""
    responses: ResponsesSession | None = None
    """Set for `POST /v1/responses`: the session the provider adapters share (`providers.responses`)."""

    @property
    def accepted(self) -> bool:
        return self.app is not None
