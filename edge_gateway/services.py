"""The services gateway-runtime plugins get: KV (local SQLite), logger, event bus, read-only gateway views.

`EdgeEventHub` is the edge's local bus. `Direction.LOCAL` events go to local subscribers; `UP` events go to
local subscribers *and* to the uplink the sync client installs (`hub.uplink = async callable(event)`);
events arriving from the control plane are handed to `hub.deliver_from_remote(event)`, which delivers them
locally as LOCAL (never sent back up: no loops).

Edge payloads: `ctx.services.gateway.send_payload(...)` (each plugin's `EdgeGatewayServices` is bound to its
slug and the hub) hands the bytes to `hub.send_payload`, which gives them to `payload_sink` (the sync service's
shipper: written to the spool before it returns, kept until the control plane acknowledged it). The older form,
an UP event on `sync_protocol.EDGE_PAYLOAD_TOPIC` (made with `edge_payload_event`), takes the same path and is
never delivered to local subscribers.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal

import msgspec

from shared_sdk import (
    LLM,
    App,
    BudgetStatus,
    Direction,
    Event,
    EventBus,
    GatewayServices,
    Runtime,
    ServiceError,
    Services,
    User,
)
from shared_sdk.context import EventHandler, StdlibPluginLogger, deliver, topic_matches
from shared_sdk.sync_protocol import EDGE_PAYLOAD_TOPIC, EdgePayloadRequest, decode, edge_payload_problem

from .auth import find_credential
from .config_store import ConfigStore
from .kv import EdgeKV

__all__ = ["EdgeEventHub", "EdgeGatewayServices", "services_factory"]

log = logging.getLogger("fjordgate.edge.events")


class EdgeEventHub:
    def __init__(self) -> None:
        self.subscriptions: dict[str, tuple[str | None, EventHandler]] = {}
        self.uplink: Callable[[Event], Awaitable[None]] | None = None
        self.payload_sink: Callable[..., Awaitable[str]] | None = None
        """`TelemetryShipper.submit_payload` when the edge runs with NATS."""

    async def publish(self, event: Event) -> None:
        if event.topic == EDGE_PAYLOAD_TOPIC:
            await self._send_payload(event)
            return
        await self._deliver_local(event)
        if event.direction is Direction.UP:
            if self.uplink is not None:
                await self.uplink(event)
            else:
                log.debug("event %s for the control plane dropped: no sync client is running", event.topic)

    async def send_payload(
        self, plugin_slug: str, payload: bytes, *, correlation_id: str = "", metadata: dict[str, str] | None = None
    ) -> str:
        """Persist `payload` for the control plane (`ServiceError` when it is invalid or there is no control plane
        connection); returns the correlation id, the record id when none was given."""
        problem = edge_payload_problem(payload, metadata, correlation_id)
        if problem is not None:
            raise ServiceError(problem)
        if self.payload_sink is None:
            raise ServiceError("payload not sent: this edge has no control plane connection (NATS not configured)")
        record_id = await self.payload_sink(
            plugin_slug=plugin_slug, payload=bytes(payload), correlation_id=correlation_id, metadata=metadata
        )
        return correlation_id or record_id

    async def _send_payload(self, event: Event) -> None:
        """The event form: raises (to the publishing plugin) for a malformed or oversized payload; drops it,
        logged, without NATS (as it always did: an event is not expected to fail for want of a connection)."""
        request = decode(event.payload, EdgePayloadRequest)
        if self.payload_sink is None:
            log.warning("payload of plugin %s dropped: this edge has no control plane connection", event.source)
            return
        await self.send_payload(
            event.source, request.payload, correlation_id=request.correlation_id, metadata=request.metadata
        )

    async def deliver_from_remote(self, event: Event) -> None:
        await self._deliver_local(msgspec.structs.replace(event, direction=Direction.LOCAL))

    async def _deliver_local(self, event: Event) -> None:
        for topic, handler in list(self.subscriptions.values()):
            if topic is None or topic_matches(topic, event.topic):
                try:
                    await deliver(handler, event)
                except Exception:
                    log.exception("event handler for %s failed", event.topic)

    def bus(self, source: str) -> EdgeEventBus:
        return EdgeEventBus(self, source)


class EdgeEventBus(EventBus):
    def __init__(self, hub: EdgeEventHub, source: str) -> None:
        self.hub = hub
        self.source = source

    async def publish_event(self, event: Event) -> None:
        if event.source != self.source:  # an event (a payload too) names the plugin that sent it, never one it claims
            event = msgspec.structs.replace(event, source=self.source)
        await self.hub.publish(event)

    async def subscribe(self, topic: str, handler: EventHandler) -> str:
        sub_id = uuid.uuid4().hex
        self.hub.subscriptions[sub_id] = (topic, handler)
        return sub_id

    async def subscribe_all(self, handler: EventHandler) -> str:
        sub_id = uuid.uuid4().hex
        self.hub.subscriptions[sub_id] = (None, handler)
        return sub_id

    async def unsubscribe(self, subscription_id: str) -> bool:
        return self.hub.subscriptions.pop(subscription_id, None) is not None


class EdgeGatewayServices(GatewayServices):
    """Views over the current compiled config (no I/O), and `send_payload` for the plugin they are bound to."""

    def __init__(self, store: ConfigStore, hub: EdgeEventHub | None = None, plugin_slug: str = "") -> None:
        self.store = store
        self.hub = hub
        self.plugin_slug = plugin_slug

    def bound(self, hub: EdgeEventHub, plugin_slug: str) -> EdgeGatewayServices:
        """These services as plugin `plugin_slug` gets them: its payloads carry its slug."""
        return EdgeGatewayServices(self.store, hub, plugin_slug)

    async def send_payload(
        self, payload: bytes, *, correlation_id: str = "", metadata: dict[str, str] | None = None
    ) -> str:
        if self.hub is None:
            raise ServiceError("payload not sent: these gateway services are not bound to a plugin")
        return await self.hub.send_payload(self.plugin_slug, payload, correlation_id=correlation_id, metadata=metadata)

    async def get_app(self, app_id: int) -> App | None:
        cfg = self.store.current
        app = cfg.apps.get(app_id) if cfg is not None else None
        return app.message if app is not None else None

    async def list_apps(self) -> list[App]:
        cfg = self.store.current
        return [a.message for a in cfg.apps.values()] if cfg is not None else []

    async def get_user(self, user_id: int) -> User | None:
        cfg = self.store.current
        return cfg.user_messages.get(user_id) if cfg is not None else None

    async def get_llm(self, llm_id: int) -> LLM | None:
        cfg = self.store.current
        llm = cfg.llms_by_id.get(llm_id) if cfg is not None else None
        return llm.message if llm is not None else None

    async def get_budget_status(self, app_id: int) -> BudgetStatus:
        states = self.store.budgets.for_app(app_id)
        if not states:
            return BudgetStatus(app_id=app_id, spent=Decimal("0"))
        state = min(states, key=lambda s: s.remaining)
        return BudgetStatus(
            app_id=app_id,
            limit=state.config.limit,
            spent=state.spent,
            remaining=state.remaining,
            currency=state.config.currency,
            period_start=state.period_start,
            period_end=state.config.period_end,
            exceeded=state.remaining <= 0,
        )

    async def validate_credential(self, credential: str) -> bool:
        cfg = self.store.current
        return cfg is not None and find_credential(cfg, credential) is not None


def services_factory(
    kv: EdgeKV, hub: EdgeEventHub, gateway: Callable[[], GatewayServices]
) -> Callable[[str], Services]:
    """What `PluginHost` calls once per plugin load. `slug@llm` variants share the base plugin's KV."""

    def make(slug: str) -> Services:
        base = slug.split("@", 1)[0]
        services = gateway()
        if isinstance(services, EdgeGatewayServices):
            services = services.bound(hub, base)  # a payload names the plugin that sent it
        return Services(
            runtime=Runtime.GATEWAY,
            kv=kv.for_plugin(base),
            logger=StdlibPluginLogger(base),
            events=hub.bus(base),
            gateway=services,
        )

    return make
