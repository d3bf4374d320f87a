"""`PluginHarness`: one plugin behind the real `PluginHost`, in-process or isolated, with in-memory services.

    async with PluginHarness(MyPlugin(), config={...}) as h:
        resp = await h.call("handle_post_auth", make_request("hi"))

The same test can run against the isolated process by passing `isolated=True` (the plugin class must be
importable by its module path then), which is how the SDK checks that a plugin behaves the same both ways.

Service scopes apply as in production: a plugin reaches only the services its manifest declares (plus the
baseline: KV, logger, local events), so a missing scope fails the plugin's own test. `extra_scopes` grants
more, as an operator's `PluginSpec.extra_scopes` would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ..context import Context, Services
from ..host import PluginHandle, PluginHost, PluginSpec
from ..messages import EdgePayload, Runtime
from .builders import make_context
from .services import InMemoryEventHub, make_services

__all__ = ["PluginHarness"]


class PluginHarness:
    def __init__(
        self,
        plugin: Any,
        *,
        runtime: Runtime | str = Runtime.GATEWAY,
        config: dict[str, Any] | None = None,
        isolated: bool = False,
        slug: str | None = None,
        failure_policy: str = "open",
        timeout_s: float = 5.0,
        services: Services | None = None,
        extra_scopes: tuple[str, ...] | list[str] = (),
        ping_interval_s: float | None = None,
        sync_workers: int | None = None,
    ) -> None:
        self.plugin = plugin
        self.runtime = Runtime(runtime)
        self.hub = InMemoryEventHub()
        if isinstance(plugin, str):
            self.slug = slug or plugin.rpartition(":")[2].lower()
        else:
            self.slug = slug or getattr(plugin, "name", "") or type(plugin).__name__
        self.services = services or make_services(self.runtime, self.slug, hub=self.hub)
        self.spec = PluginSpec(
            slug=self.slug,
            import_path=plugin if isinstance(plugin, str) else f"{type(plugin).__module__}:{type(plugin).__qualname__}",
            config=config or {},
            isolated=isolated,
            failure_policy=failure_policy,  # type: ignore[arg-type]
            timeout_s=timeout_s,
            extra_scopes=tuple(extra_scopes),
            ping_interval_s=ping_interval_s,
            sync_workers=sync_workers,
        )
        self.host = PluginHost(self.runtime, lambda slug: self.services)
        self.handle: PluginHandle | None = None

    async def __aenter__(self) -> PluginHarness:
        if self.spec.isolated or isinstance(self.plugin, str):
            self.handle = await self.host.load(self.spec)
        else:
            self.handle = await self.host.load_instance(self.plugin, self.spec)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.host.aclose()

    @property
    def payloads(self) -> list[EdgePayload]:
        """What the plugin sent with `ctx.services.gateway.send_payload` (in-memory services), oldest first."""
        return self.hub.payloads

    def context(self, **fields: Any) -> Context:
        return make_context(self.runtime, services=self.services, plugin_slug=self.slug, **fields)

    async def call(self, method: str, *args: Any, ctx: Context | None = None) -> Any:
        assert self.handle is not None, "use `async with PluginHarness(...)`"
        return await self.handle.call(method, ctx or self.context(), *args)

    async def stream(self, method: str, *args: Any, ctx: Context | None = None) -> AsyncIterator[Any]:
        assert self.handle is not None, "use `async with PluginHarness(...)`"
        async for item in self.handle.stream(method, ctx or self.context(), *args):
            yield item

    async def collect(self, method: str, *args: Any, ctx: Context | None = None) -> list[Any]:
        return [item async for item in self.stream(method, *args, ctx=ctx)]
