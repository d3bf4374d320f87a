"""Preparing an attempt: the request-phase sequence that comes before any upstream call, written once.

    pre_auth hooks -> authentication (auth plugins, else the tier's own check) -> post_auth hooks -> admission

The edge runs it for the routed LLM and again for every fallback LLM (each with that LLM's chain), and
`shared_sdk.testing.PipelineRunner` runs it for plugin authors' tests, so the testing kit cannot drift from the
edge. What differs between them is supplied as `AttemptSteps`: how the request the hooks see is built, what a
rewritten request means, who the caller is when no auth plugin decided, and the policy checks (budgets) at the
end. Hook rules themselves (order, short-circuits, failure policy) are `HookChain`'s.

A step refuses by raising: `AttemptRefused` becomes a short-circuit error of the attempt (the response hooks of
the plugins reached so far then see it); any other exception propagates to the caller, who knows what it means
(the edge raises its own errors for refusals that never reach a plugin).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from .context import Context
from .errors import PluginCallError
from .host.handle import PluginHandle
from .messages import AuthRequest, EnrichedRequest, PluginError, ShortCircuit
from .pipeline import AuthResult, HookChain, HookTiming, RequestPhaseResult

__all__ = ["AttemptRefused", "AttemptSteps", "Prepared", "prepare_attempt"]

_NO_PLUGIN_DECISION = AuthResult(handled=False)


class AttemptRefused(Exception):
    """Raised by a step to end the attempt with `error` as a short-circuit by `by` (a plugin slug, or None)."""

    def __init__(self, error: PluginError, by: str | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.by = by


@dataclass(slots=True)
class Prepared:
    """What preparing an attempt came to: a request ready for the upstream, or a short-circuit."""

    request: EnrichedRequest | None
    """The request after the hooks (None when no hook needed one built)."""
    executed: tuple[PluginHandle, ...]
    """The plugins whose request phase ran: response hooks run over them in reverse."""
    short_circuit: ShortCircuit | None = None
    short_circuited_by: str | None = None
    phase: str = ""
    """Where a short-circuit happened: pre_auth | auth | post_auth | admit."""
    timings: list[HookTiming] = field(default_factory=list)
    errors: list[PluginCallError] = field(default_factory=list)

    def _absorb(self, result: RequestPhaseResult, phase: str) -> bool:
        """Take a request phase's outcome; True when it short-circuited."""
        self.timings += result.timings
        self.errors += result.errors
        self.executed = result.executed
        if result.short_circuit is None:
            return False
        self.request = result.request
        self.short_circuit = result.short_circuit
        self.short_circuited_by = result.short_circuited_by
        self.phase = phase
        return True


class AttemptSteps(Protocol):
    """The tier-specific parts of an attempt (see the module docstring)."""

    def request(self) -> EnrichedRequest:
        """The request as hooks see it; called only when a hook needs it (building it costs)."""
        ...

    def adopt(self, before: EnrichedRequest, after: EnrichedRequest) -> EnrichedRequest:
        """Take the request a phase's hooks returned (the edge decodes a rewritten body again)."""
        ...

    def auth_request(self, req: EnrichedRequest) -> AuthRequest | None:
        """What auth plugins are asked; None skips them (no credential to check)."""
        ...

    async def accept(self, auth: AuthResult, req: EnrichedRequest | None) -> EnrichedRequest | None:
        """Decide the caller from the auth plugins' outcome; `auth.handled` is False when none decided (no auth
        plugin, or every one declined), and the tier's own check applies. Returns the request as post-auth hooks
        see it (stamped with the caller) or None when none was built and no post-auth hook needs one."""
        ...

    def authenticated(self, req: EnrichedRequest) -> EnrichedRequest:
        """The request stamped with the accepted caller, for the post-auth hooks."""
        ...

    async def admit(self) -> None:
        """Policy once the chain passed the request (rate limits, budget); raise to refuse."""
        ...


async def prepare_attempt(chain: HookChain | None, ctx: Context, steps: AttemptSteps) -> Prepared:
    """Run pre_auth -> auth -> post_auth -> admission for one attempt; stop at the first short-circuit."""
    prepared = Prepared(None, chain.handles if chain is not None else ())
    req: EnrichedRequest | None = None
    stage = "pre_auth"
    try:
        if chain is not None and chain.hooks("handle_pre_auth"):
            req = steps.request()
            result = await chain.run_request_phase("pre_auth", ctx, req)
            if prepared._absorb(result, "pre_auth"):
                return prepared
            req = steps.adopt(req, result.request)
        stage = "auth"
        auth = _NO_PLUGIN_DECISION
        if chain is not None and chain.hooks("handle_auth"):
            auth_req = steps.auth_request(req if req is not None else steps.request())
            if auth_req is not None:
                auth = await chain.run_auth(ctx, auth_req)
        req = await steps.accept(auth, req)
        if chain is not None and chain.hooks("handle_post_auth"):
            stage = "post_auth"
            req = steps.authenticated(req if req is not None else steps.request())
            result = await chain.run_request_phase("post_auth", ctx, req)
            if prepared._absorb(result, "post_auth"):
                return prepared
            req = steps.adopt(req, result.request)
        stage = "admit"
        await steps.admit()
    except AttemptRefused as refused:
        prepared.request = req
        prepared.short_circuit = ShortCircuit(error=refused.error)
        prepared.short_circuited_by = refused.by
        prepared.phase = stage
        return prepared
    prepared.request = req
    return prepared
