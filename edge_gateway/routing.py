"""Model routing: which LLM (deployment) answers a request's `model`, before authentication.

Forms of a model name:

- `llm-slug/model`: that LLM, that model (pinned: no balancing, no other deployment).
- `llm-slug`: that LLM's default model (pinned).
- a bare model name: the deployments serving it (an LLM naming it as default model or a literal allow-list
  entry; else LLMs whose allow-list regexes match it), balanced by `DeploymentGroup.pick` over the healthy
  ones of the best priority. Deployments linked to the caller's app win; when only unlinked LLMs serve the
  model the answer is 403, when none 404 `model_not_found`.

The group comes back with the pick so the upstream phase can move to the next healthy deployment of the same
model, within the request, before any configured fallback (`fallbacks.UpstreamPhase`).
"""

from __future__ import annotations

from .compiled import CompiledApp, CompiledConfig, CompiledLLM
from .deployments import DeploymentGroup
from .errors import GatewayError

__all__ = ["MAX_PATTERN_GROUPS", "resolve"]

MAX_PATTERN_GROUPS = 256
"""Pattern-matched groups kept per config. The key is the set of matching LLMs (not the client's model name),
so it stays small; the bound only stops a config with many regex LLMs from growing without limit."""


def resolve(
    cfg: CompiledConfig, model: str, app: CompiledApp | None
) -> tuple[CompiledLLM, str, DeploymentGroup | None]:
    """The LLM and upstream model for `model` as `app` may use it, and the group it was balanced in (None when
    the name pins one LLM). Raises `GatewayError` 400 / 403 / 404 (see the module docstring)."""
    if not model:
        raise GatewayError.bad_request("'model' is required", param="model", code="missing_model")
    slug, sep, rest = model.partition("/")
    explicit = cfg.llms_by_slug.get(slug) if sep else None
    if explicit is not None:
        target = rest or explicit.config.default_model
        return _check(explicit, target, app), target, None
    by_slug = cfg.llms_by_slug.get(model)
    if by_slug is not None and by_slug.config.default_model:
        return _check(by_slug, by_slug.config.default_model, app), by_slug.config.default_model, None
    app_ids = app.llm_ids if app is not None else None
    group = cfg.exact_models.get(model)
    if group is not None:
        picked = group.pick(app_ids)
        if picked is not None:
            return picked, model, group
    matching = _pattern_group(cfg, model)
    if matching is not None:
        picked = matching.pick(app_ids)
        if picked is not None:
            return picked, model, matching
    if group is None and matching is None:
        raise GatewayError.not_found(f"the model {model!r} does not exist or is not served here", param="model")
    raise GatewayError.forbidden(f"this app may not use the model {model!r}", code="model_not_allowed")


def _pattern_group(cfg: CompiledConfig, model: str) -> DeploymentGroup | None:
    """The LLMs whose allow-list regexes (compiled once per config) match `model`, as a group."""
    if not cfg.pattern_llms:
        return None
    key = tuple(llm.id for llm in cfg.pattern_llms if llm.allows(model))
    if not key:
        return None
    group = cfg.pattern_groups.get(key)
    if group is None:
        group = DeploymentGroup([cfg.llms_by_id[i] for i in key])
        if len(cfg.pattern_groups) < MAX_PATTERN_GROUPS:
            cfg.pattern_groups[key] = group
    return group


def _check(llm: CompiledLLM, model: str, app: CompiledApp | None) -> CompiledLLM:
    if app is not None and llm.id not in app.llm_ids:
        raise GatewayError.forbidden(f"this app may not use the LLM {llm.slug!r}", code="llm_not_allowed")
    if not model:
        raise GatewayError.bad_request(f"LLM {llm.slug!r} has no default model; name one", param="model")
    if not llm.allows(model):
        raise GatewayError.forbidden(
            f"the model {model!r} is not allowed on LLM {llm.slug!r}", code="model_not_allowed"
        )
    return llm
