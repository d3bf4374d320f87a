"""The edge's side of preparing an attempt (`shared_sdk.attempt.prepare_attempt`), for the routed LLM and for
every fallback LLM alike:

    pre_auth hooks -> auth (auth plugins, else the app key; 401) -> [routed LLM: client IP (403), the route's
    own errors, app-LLM link and model allow-list (403)] [fallback: the same app and user again]
    -> [routed LLM: requests-per-minute windows already full (429)]
    -> post_auth hooks -> `upstream_model` override -> policy (routed LLM: rate limits then budget, 429/402;
    fallback: the primary's budget reservation swapped for its own)

Refusals before the caller is accepted raise `Rejected` (answered without hooks, never accounted); later
ones raise `GatewayError`, which the caller passes through the response hooks of the attempt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from shared_sdk import AuthRequest, EnrichedRequest
from shared_sdk.host import PluginHandle
from shared_sdk.pipeline import AuthResult, HookChain

from .auth import accept_caller
from .config_store import CompiledLLM
from .errors import GatewayError
from .exchange import Exchange, Rejected
from .intake import Caller, adopt, enriched_request
from .policy import admit, check_request_rate, release_budget, reserve_budget
from .providers import OpenAIRequest
from .runtime import EdgeRuntime

_MODEL_KINDS = ("models", "model")
"""Model listings: no LLM is called, so neither rate limits nor budgets apply."""

__all__ = ["Attempt", "EdgeSteps"]


@dataclass(slots=True)
class Attempt:
    """One try at answering: the LLM and model, its plugin chain, and what that chain's request phase made."""

    llm: CompiledLLM
    model: str
    hooks: HookChain | None
    executed: Sequence[PluginHandle]
    req: EnrichedRequest | None
    call: OpenAIRequest


class EdgeSteps:
    """`AttemptSteps` at the edge. `route_error` is the routed LLM's routing failure, reported once the caller
    is accepted (routing runs before authentication so the LLM's chain can authenticate)."""

    __slots__ = ("ex", "rt", "caller", "call", "fallback", "route_error")

    def __init__(
        self,
        ex: Exchange,
        rt: EdgeRuntime,
        caller: Caller,
        *,
        fallback: bool = False,
        route_error: GatewayError | None = None,
    ) -> None:
        self.ex = ex
        self.rt = rt
        self.caller = caller
        self.call = caller.call
        self.fallback = fallback
        self.route_error = route_error

    def request(self) -> EnrichedRequest:
        return enriched_request(self.ex, self.caller, self.call)

    def adopt(self, before: EnrichedRequest, after: EnrichedRequest) -> EnrichedRequest:
        self.call = adopt(self.ex, self.call, before, after)
        return after

    def auth_request(self, req: EnrichedRequest) -> AuthRequest | None:
        caller = self.caller
        return AuthRequest(
            credential=caller.credential,
            auth_type=caller.auth_type or "bearer",
            request=req,
            context=self.ex.ctx.info(),
        )

    async def accept(self, auth: AuthResult, req: EnrichedRequest | None) -> EnrichedRequest | None:
        ex = self.ex
        app, user_id, claims = accept_caller(ex.cfg, auth, self.caller.credential, self.caller.found)
        if claims is not None:
            ex.ctx.metadata.setdefault("auth_claims", claims)
        if self.fallback:
            if ex.app is None or app.id != ex.app.id or user_id != ex.user_id:
                raise GatewayError.forbidden("the fallback LLM identifies another caller")
            return req
        scope = self.caller.scope
        client_ip = scope["client"][0] if scope.get("client") else ""
        if not app.ip_allowed(client_ip):
            raise Rejected(
                GatewayError.forbidden(
                    f"client address {client_ip} is not allowed for this app", code="ip_not_allowed"
                ),
                "ip_not_allowed",
            )
        # Accepted from here on: everything below is accounted.
        ex.app, ex.user_id = app, user_id
        ex.ctx.app = app.message
        if user_id is not None:
            ex.ctx.user = ex.cfg.user_messages.get(user_id)
        self._check_route()
        if ex.kind not in _MODEL_KINDS:
            check_request_rate(ex, self.rt.limiter)  # before the post-auth plugins spend anything on it
        return req

    def _check_route(self) -> None:
        """The routed LLM's own refusals, once the caller is known (403/404)."""
        ex, llm = self.ex, self.ex.llm
        if self.route_error is not None:
            raise self.route_error
        assert ex.app is not None
        if llm is not None and llm.id not in ex.app.llm_ids:
            raise GatewayError.forbidden(f"this app may not use the LLM {llm.slug!r}", code="llm_not_allowed")
        if llm is not None and not ex.cfg.user_may_use(llm, ex.app, ex.user_id):
            raise GatewayError.forbidden(f"no group of this user grants the LLM {llm.slug!r}", code="llm_not_granted")
        if ex.kind == "native" and llm is not None and ex.model and not llm.allows(ex.model):
            raise GatewayError.forbidden(
                f"the model {ex.model!r} is not allowed on LLM {llm.slug!r}", code="model_not_allowed"
            )

    def authenticated(self, req: EnrichedRequest) -> EnrichedRequest:
        ex = self.ex
        assert ex.app is not None
        return msgspec.structs.replace(
            req, app_id=ex.app.id, user_id=ex.user_id, authenticated=True, context=ex.ctx.info()
        )

    async def admit(self) -> None:
        ex, rt = self.ex, self.rt
        if ex.kind in _MODEL_KINDS:
            return
        override = ex.ctx.metadata.get("upstream_model")
        if isinstance(override, str) and override:
            ex.model = override
        if self.fallback:
            release_budget(ex, rt.budgets)
            await reserve_budget(ex, rt.budgets)
        else:
            await admit(ex, rt.limiter, rt.budgets)
