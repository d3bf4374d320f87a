"""Service scopes: which host services a plugin may call, decided by its manifest.

A plugin declares the scopes it needs in `get_manifest().permissions.services`; the host wraps the `Services`
it hands the plugin so that every other call raises `ServiceScopeDenied` naming the scope and the plugin.
The same wrapped services back an isolated plugin's broker, so the rule holds whichever way a plugin runs.

The rule:

- **Baseline, always granted**: the plugin's own KV namespace (`kv.*`), its logger, events published with
  `Direction.LOCAL`, and event subscriptions. These touch nothing outside the plugin and its node, and almost
  every plugin uses them, so requiring a declaration would only add noise.
- **Everything else needs a scope**: reading apps, users, LLMs, tools or budgets, changing app metadata,
  calling an LLM (it spends budget), sending payloads to the control plane (`control.send`; `events.publish`
  also allows it), and publishing events that leave the node (`UP` or `DOWN`).
- **No manifest means baseline only.** Scopes exist so an operator can review what a plugin may do before
  enabling it. "No manifest = everything" would make the least documented plugin the most powerful one, and
  the admin would show "no scopes" for a plugin able to spend LLM budget. The failure is loud and immediate
  (the error names the scope to declare), and `shared_sdk.testing.PluginHarness` applies the same rule, so a
  plugin author meets it in the plugin's unit test, not in production.
- **The operator can grant more** without changing the plugin: `PluginSpec.extra_scopes` (`"*"` grants every
  scope, for a trusted plugin that predates manifests).

Scopes a manifest may name (an unknown one fails the load, so a typo never silently removes a permission):
see `SCOPES`. `apps.write` includes `apps.read`, `llms.write` includes `llms.read`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from .context import EventBus, EventHandler, Services
from .errors import PluginLoadError, ServiceScopeDenied
from .messages import Direction, Event, PluginManifest
from .service_table import SERVICE_METHODS, ServiceMethod, build_service_class

__all__ = [
    "ALL_SCOPES",
    "BASELINE_SCOPES",
    "OPERATION_SCOPES",
    "SCOPES",
    "ScopeGuard",
    "ScopedEvents",
    "ScopedGateway",
    "ScopedStudio",
    "declared_scopes",
    "guarded_class",
    "scoped_services",
]

log = logging.getLogger("fjordgate.plugins.scopes")

ALL_SCOPES = "*"
"""In `PluginSpec.extra_scopes` only: grant every scope (a trusted plugin without a manifest)."""

SCOPES: dict[str, str] = {
    "kv.readwrite": "the plugin's own KV store (baseline: always granted; declaring it documents the use)",
    "apps.read": "read apps: get_app, list_apps, validate_credential",
    "apps.write": "change app metadata: update_app_metadata, patch_app_metadata (includes apps.read)",
    "users.read": "read users: get_user",
    "llms.read": "read LLM definitions: get_llm, list_llms",
    "llms.write": "reserved for LLM management (includes llms.read); no SDK service needs it yet",
    "llms.proxy": "call an LLM through the platform: call_llm, stream_llm (spends budget)",
    "tools.read": "read tools: list_tools",
    "budget.read": "read an app's budget status: get_budget_status",
    "events.publish": "publish events that leave this node (Direction.UP or Direction.DOWN)",
    "control.send": "send to the control plane only: gateway.send_payload and events published Direction.UP",
    "scheduler.manage": "reserved for schedule management; no SDK service needs it yet",
}

BASELINE_SCOPES: frozenset[str] = frozenset({"kv.readwrite"})

_IMPLIES: dict[str, tuple[str, ...]] = {"apps.write": ("apps.read",), "llms.write": ("llms.read",)}

OPERATION_SCOPES: dict[str, tuple[str, ...]] = {
    **{m.operation: m.scopes for m in SERVICE_METHODS.values() if m.scopes},
    "events.publish(up)": ("events.publish", "control.send"),
    "events.publish(down)": ("events.publish",),
}
"""Operation -> the scopes that allow it (any one of them). Operations not listed are baseline."""


def declared_scopes(slug: str, manifest: PluginManifest | None) -> frozenset[str]:
    """The scopes a manifest declares; `PluginLoadError` for a scope this SDK does not know."""
    if manifest is None:
        return frozenset()
    return _checked(slug, manifest.permissions.services, "its manifest declares")


def _checked(slug: str, scopes: Iterable[str], where: str, allow_all: bool = False) -> frozenset[str]:
    result = frozenset(s.strip() for s in scopes if s and s.strip())
    unknown = sorted(s for s in result if s not in SCOPES and not (allow_all and s == ALL_SCOPES))
    if unknown:
        raise PluginLoadError(
            slug, f"{where} unknown service scope(s) {', '.join(unknown)} (known: {', '.join(sorted(SCOPES))})"
        )
    return result


def _expand(scopes: Iterable[str]) -> frozenset[str]:
    out = set(BASELINE_SCOPES)
    for scope in scopes:
        if scope == ALL_SCOPES:
            return frozenset(SCOPES)
        out.add(scope)
        out.update(_IMPLIES.get(scope, ()))
    return frozenset(out)


class ScopeGuard:
    """The scopes one loaded plugin holds, and a record of what it was denied.

    Created with the baseline only; the host calls `grant` once it has read the plugin's manifest (before
    `initialize`), so nothing the plugin runs at load time escapes the check.
    """

    __slots__ = ("plugin", "scopes", "declared", "extra", "denied")

    def __init__(self, plugin: str) -> None:
        self.plugin = plugin
        self.scopes: frozenset[str] = BASELINE_SCOPES
        self.declared: frozenset[str] = frozenset()
        self.extra: frozenset[str] = frozenset()
        self.denied: dict[str, int] = {}
        """Scope -> number of denied calls, for the plugin's health (an operator sees what it tried)."""

    def grant(self, manifest: PluginManifest | None, extra: Iterable[str] = ()) -> frozenset[str]:
        self.declared = declared_scopes(self.plugin, manifest)
        self.extra = _checked(self.plugin, extra, "extra_scopes grants", allow_all=True)
        self.scopes = _expand(self.declared | self.extra)
        return self.scopes

    def check(self, operation: str) -> None:
        needed = OPERATION_SCOPES[operation]
        scopes = self.scopes
        for scope in needed:
            if scope in scopes:
                return
        scope = needed[0]
        count = self.denied.get(scope, 0)
        self.denied[scope] = count + 1
        if count == 0:  # once per scope: a plugin retrying on every request must not flood the log
            log.warning(
                "plugin %s denied %s: missing service scope %s",
                self.plugin,
                operation,
                scope,
                extra={"plugin": self.plugin, "fields": {"scope": scope, "operation": operation}},
            )
        raise ServiceScopeDenied(self.plugin, scope, operation)


class _Scoped:
    """A service as one plugin sees it: each method of the service table checks the plugin's scopes first.

    Nothing else of the wrapped implementation is reachable (no attribute delegation): an implementation's
    extras, such as the edge's config store behind its gateway services, would otherwise bypass every scope.
    """

    __slots__ = ("_inner", "_guard")

    def __init__(self, inner: Any, guard: ScopeGuard) -> None:
        self._inner = inner
        self._guard = guard


def _guarded(row: ServiceMethod) -> Callable[..., Any]:
    operation, method, scoped = row.operation, row.method, bool(row.scopes)
    if row.streaming:  # checked at the call, not at the first item: the error points at the plugin's line

        def stream(self: _Scoped, *args: Any, **kwargs: Any) -> Any:
            if scoped:
                self._guard.check(operation)
            return getattr(self._inner, method)(*args, **kwargs)

        return stream

    async def call(self: _Scoped, *args: Any, **kwargs: Any) -> Any:
        if scoped:
            self._guard.check(operation)
        return await getattr(self._inner, method)(*args, **kwargs)

    return call


def guarded_class(service: str, table: Iterable[ServiceMethod] | None = None) -> type[Any]:
    """The scope-checking wrapper class of `service`, derived from the service table (or `table`)."""
    return build_service_class(service, f"Scoped{service.capitalize()}", (_Scoped,), _guarded, table)


ScopedGateway = guarded_class("gateway")
ScopedStudio = guarded_class("studio")


class ScopedEvents(EventBus):
    """Local publishing and subscriptions are baseline; events leaving the node need `events.publish`."""

    def __init__(self, inner: EventBus, guard: ScopeGuard) -> None:
        self._inner = inner
        self._guard = guard
        self.source = inner.source

    async def publish_event(self, event: Event) -> None:
        if event.direction is not Direction.LOCAL:
            self._guard.check("events.publish(up)" if event.direction is Direction.UP else "events.publish(down)")
        await self._inner.publish_event(event)

    async def subscribe(self, topic: str, handler: EventHandler) -> str:
        return await self._inner.subscribe(topic, handler)

    async def subscribe_all(self, handler: EventHandler) -> str:
        return await self._inner.subscribe_all(handler)

    async def unsubscribe(self, subscription_id: str) -> bool:
        return await self._inner.unsubscribe(subscription_id)


def scoped_services(services: Services, guard: ScopeGuard) -> Services:
    """`services` as the plugin guarded by `guard` sees them (built once per load, never per call)."""
    gateway = services._gateway  # noqa: SLF001 - the wrapper must not trigger the runtime check itself
    studio = services._studio  # noqa: SLF001
    return Services(
        runtime=services.runtime,
        kv=services.kv,
        logger=services.logger,
        events=ScopedEvents(services.events, guard),
        gateway=ScopedGateway(gateway, guard) if gateway is not None else None,
        studio=ScopedStudio(studio, guard) if studio is not None else None,
    )
