"""Services inside an isolated plugin: the SDK interfaces implemented as calls to the host's broker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import grpc

from ..context import (
    EventBus,
    EventHandler,
    KVStore,
    PluginLogger,
    Services,
    StdlibPluginLogger,
    deliver,
)
from ..errors import ServiceError, ServiceScopeDenied
from ..messages import Event, Runtime
from ..service_table import ServiceMethod, build_service_class
from ..sync_protocol import edge_payload_problem
from .calls import CALL_ID_METADATA, host_call_id
from .wire import (
    BROKER_METHODS,
    BROKER_SERVICE,
    GRPC_OPTIONS,
    broker_result_decoder,
    decode_error,
    encoder,
)

__all__ = ["BrokerClient", "RemoteGateway", "RemoteKV", "RemoteStudio", "proxy_class", "remote_services"]

log = logging.getLogger("fjordgate.plugins.child")


def _service_error(exc: grpc.aio.AioRpcError) -> Exception:
    if exc.code() == grpc.StatusCode.ABORTED:
        kind, message = decode_error(exc.details())
        if kind == ServiceScopeDenied.__name__:
            fields = dict(exc.trailing_metadata() or ())
            if {"fj-scope", "fj-operation", "fj-plugin"} <= fields.keys():
                return ServiceScopeDenied(fields["fj-plugin"], fields["fj-scope"], fields["fj-operation"])
        return ServiceError(f"{kind}: {message}" if message else kind)
    return ServiceError(f"host service unreachable: {exc.code().name} {exc.details() or ''}".strip())


def _metadata() -> tuple[tuple[str, str], ...] | None:
    """The id of the host call being served (`calls.host_call_id`), for the host to tell whose call this is."""
    call_id = host_call_id.get()
    return None if call_id is None else ((CALL_ID_METADATA, call_id),)


class BrokerClient:
    """One channel to the host's broker, shared by every service of the plugin."""

    def __init__(self, target: str) -> None:
        self._channel = grpc.aio.insecure_channel(target, options=GRPC_OPTIONS)
        self._unary: dict[str, grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]] = {
            name: self._channel.unary_unary(f"/{BROKER_SERVICE}/{name}")
            for name, m in BROKER_METHODS.items()
            if not m.streaming
        }
        self._streams: dict[str, grpc.aio.UnaryStreamMultiCallable[bytes, bytes]] = {
            name: self._channel.unary_stream(f"/{BROKER_SERVICE}/{name}")
            for name, m in BROKER_METHODS.items()
            if m.streaming
        }
        self._pending: set[asyncio.Task[Any]] = set()

    async def call(self, name: str, *args: Any) -> Any:
        try:
            data = await self._unary[name](encoder.encode(args), metadata=_metadata())
        except grpc.aio.AioRpcError as exc:
            raise _service_error(exc) from None
        return broker_result_decoder(name).decode(data)

    def call_soon(self, name: str, *args: Any) -> None:
        """Fire and forget (logging): never blocks the caller, keeps the task referenced until done."""
        task = asyncio.ensure_future(self.call(name, *args))
        self._pending.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("broker call failed: %s", task.exception())

    async def stream(self, name: str, *args: Any) -> AsyncIterator[Any]:
        decoder = broker_result_decoder(name)
        call = self._streams[name](encoder.encode(args), metadata=_metadata())
        try:
            async for data in call:
                yield decoder.decode(data)
        except grpc.aio.AioRpcError as exc:
            raise _service_error(exc) from None
        finally:
            call.cancel()

    def raw_stream(self, name: str, *args: Any) -> Any:
        return self._streams[name](encoder.encode(args))

    async def close(self) -> None:
        if self._pending:
            await asyncio.wait(self._pending, timeout=1.0)
        await self._channel.close()


class _Remote:
    """A service of the host, reached through the broker; its methods are derived from the service table."""

    __slots__ = ("_b",)

    def __init__(self, broker: BrokerClient) -> None:
        self._b = broker


def _payload_check(payload: bytes, correlation_id: str, metadata: dict[str, str] | None) -> None:
    """A payload over the limit fails before its bytes cross the socket (the host checks again)."""
    problem = edge_payload_problem(payload, metadata, correlation_id)
    if problem is not None:
        raise ServiceError(problem)


_CHECKS: dict[str, Callable[..., None]] = {"gateway_send_payload": _payload_check}
"""Broker method -> a check of its wire arguments run in the plugin's process first."""


def _forward(row: ServiceMethod) -> Callable[..., Any]:
    name = row.name
    check = _CHECKS.get(name)
    if row.streaming:

        def stream(self: _Remote, *args: Any, **kwargs: Any) -> Any:
            return self._b.stream(name, *row.wire_args(args, kwargs))

        return stream

    async def call(self: _Remote, *args: Any, **kwargs: Any) -> Any:
        wire = row.wire_args(args, kwargs)
        if check is not None:
            check(*wire)
        return await self._b.call(name, *wire)

    return call


def proxy_class(service: str, table: Iterable[ServiceMethod] | None = None) -> type[Any]:
    """The gRPC proxy class of `service`, derived from the service table (or `table`)."""
    return build_service_class(service, f"Remote{service.capitalize()}", (_Remote,), _forward, table)


RemoteKV = proxy_class("kv")
RemoteGateway = proxy_class("gateway")
RemoteStudio = proxy_class("studio")


class RemoteLogger(PluginLogger):
    """Records go to the host's logger (bound to this plugin there); never blocks the handler."""

    def __init__(self, broker: BrokerClient, loop: asyncio.AbstractEventLoop) -> None:
        self._b = broker
        self._loop = loop

    def log(self, level: int, message: str, **fields: Any) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._b.call_soon("logger_log", level, message, fields)
        else:  # from a sync handler's worker thread
            self._loop.call_soon_threadsafe(self._b.call_soon, "logger_log", level, message, fields)


class RemoteEvents(EventBus):
    def __init__(self, broker: BrokerClient, source: str) -> None:
        self._b = broker
        self.source = source
        self._subs: dict[str, asyncio.Task[None]] = {}

    async def publish_event(self, event: Event) -> None:
        await self._b.call("events_publish_event", event)

    async def subscribe(self, topic: str, handler: EventHandler) -> str:
        return await self._open(topic, handler)

    async def subscribe_all(self, handler: EventHandler) -> str:
        return await self._open(None, handler)

    async def _open(self, topic: str | None, handler: EventHandler) -> str:
        call = self._b.raw_stream("events_subscribe", topic)
        try:
            first = await call.read()  # the host confirms the subscription is live before we return
        except grpc.aio.AioRpcError as exc:
            raise _service_error(exc) from None
        if first is grpc.aio.EOF:
            raise ServiceError("the host closed the event subscription")
        decoder = broker_result_decoder("events_subscribe")

        async def pump() -> None:
            try:
                while (data := await call.read()) is not grpc.aio.EOF:
                    await deliver(handler, decoder.decode(data))
            except (grpc.aio.AioRpcError, asyncio.CancelledError):
                pass
            except Exception as exc:
                log.warning("event handler failed: %s", exc)
            finally:
                call.cancel()

        sub_id = uuid.uuid4().hex
        self._subs[sub_id] = asyncio.create_task(pump())
        return sub_id

    async def unsubscribe(self, subscription_id: str) -> bool:
        task = self._subs.pop(subscription_id, None)
        if task is None:
            return False
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return True


class _NoBroker(KVStore, EventBus):
    """Services when a plugin process runs without a broker (never in production): every call says so."""

    source = ""

    def _fail(self) -> ServiceError:
        return ServiceError("no service broker: this plugin process was started without FJORDGATE_BROKER_SOCKET")

    async def read(self, key: str) -> bytes | None:
        raise self._fail()

    async def write(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        raise self._fail()

    async def delete(self, key: str) -> bool:
        raise self._fail()

    async def list(self, prefix: str = "") -> list[str]:
        raise self._fail()

    async def publish_event(self, event: Event) -> None:
        raise self._fail()

    async def subscribe(self, topic: str, handler: EventHandler) -> str:
        raise self._fail()

    async def subscribe_all(self, handler: EventHandler) -> str:
        raise self._fail()

    async def unsubscribe(self, subscription_id: str) -> bool:
        raise self._fail()


def remote_services(runtime: Runtime, slug: str, broker: BrokerClient | None) -> Services:
    if broker is None:
        none = _NoBroker()
        return Services(runtime=runtime, kv=none, logger=StdlibPluginLogger(slug), events=none)
    loop = asyncio.get_running_loop()
    return Services(
        runtime=runtime,
        kv=RemoteKV(broker),
        logger=RemoteLogger(broker, loop),
        events=RemoteEvents(broker, slug),
        gateway=RemoteGateway(broker) if runtime is Runtime.GATEWAY else None,
        studio=RemoteStudio(broker) if runtime is Runtime.STUDIO else None,
    )
