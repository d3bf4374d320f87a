"""The host's side of the service broker: serves one isolated plugin's `Services` over gRPC.

The reference SDK needed a session broker id, a warm-up call and "one connection per broker id"; here the
host starts the broker before the plugin and hands its socket path in the environment, so services work
from the plugin's first line of `initialize`.

A service call runs in a context of its own, never the one the plugin was loaded from: the broker's gRPC server
(and with it every task serving a call) starts in an empty context, and a call carrying the id of a live host call
gets the values the host recorded for that call (`calls.LiveCalls`), nothing else.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import grpc

from ..context import Services
from ..errors import FjordgateSDKError, ServiceScopeDenied
from ..messages import Event
from .calls import LiveCalls, call_id_from
from .wire import (
    BROKER_METHODS,
    BROKER_SERVICE,
    GRPC_OPTIONS,
    BrokerMethod,
    broker_arg_decoder,
    encode_error,
    encoder,
)

if TYPE_CHECKING:
    from .wire import RpcContext, StreamRpc, UnaryRpc

__all__ = ["BrokerServer"]

log = logging.getLogger("fjordgate.plugins.broker")

_SUBSCRIBED = b""  # first message of an event stream: the subscription is live


class BrokerServer:
    """A gRPC server on a Unix socket exposing `services` to one plugin process."""

    def __init__(self, services: Services, calls: LiveCalls | None = None) -> None:
        self.services = services
        self.calls = calls if calls is not None else LiveCalls()
        self._server: grpc.aio.Server | None = None

    async def start(self, address: str) -> None:
        # gRPC's serving task, and each call's task after it, copies the context the server was started in: that
        # is whatever call first loaded the plugin (a chat turn's user, say), which must not reach later calls
        await asyncio.create_task(self._start(address), context=contextvars.Context())

    async def _start(self, address: str) -> None:
        server = grpc.aio.server(options=GRPC_OPTIONS)
        handlers: dict[str, grpc.RpcMethodHandler[bytes, bytes]] = {}
        for name, m in BROKER_METHODS.items():
            if m.name == "events_subscribe":
                handlers[name] = grpc.unary_stream_rpc_method_handler(self._subscribe)
            elif m.streaming:
                handlers[name] = grpc.unary_stream_rpc_method_handler(self._stream_handler(m))
            else:
                handlers[name] = grpc.unary_unary_rpc_method_handler(self._unary_handler(m))
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(BROKER_SERVICE, handlers),))
        server.add_insecure_port(address)
        await server.start()
        self._server = server

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=0.2)
            self._server = None

    def _target(self, m: BrokerMethod) -> Any:
        service = getattr(self.services, m.service)  # raises RuntimeServiceUnavailable for the wrong runtime
        return getattr(service, m.method)

    def _unary_handler(self, m: BrokerMethod) -> UnaryRpc:
        decoder = broker_arg_decoder(m.name)
        n_kw = len(m.kwnames)

        async def handle(request: bytes, context: RpcContext) -> bytes:
            try:
                args = decoder.decode(request)
                fn = self._target(m)
                with self.calls.applied(call_id_from(context.invocation_metadata())):
                    if m.name == "logger_log":  # (level, message, fields) -> log(level, message, **fields)
                        result = fn(args[0], args[1], **args[2])
                    elif n_kw:
                        result = fn(*args[:-n_kw], **dict(zip(m.kwnames, args[-n_kw:], strict=True)))
                    else:
                        result = fn(*args)
                    if asyncio.iscoroutine(result):
                        result = await result
                return encoder.encode(result)
            except Exception as exc:
                if not isinstance(exc, FjordgateSDKError):
                    log.warning("broker %s failed: %s", m.name, exc)
                await _abort(context, exc)
                raise  # unreachable: abort raises

        return handle

    def _stream_handler(self, m: BrokerMethod) -> StreamRpc:
        decoder = broker_arg_decoder(m.name)
        n_kw = len(m.kwnames)

        async def handle(request: bytes, context: RpcContext) -> AsyncIterator[bytes]:
            try:
                args = decoder.decode(request)
                fn = self._target(m)
                with self.calls.applied(call_id_from(context.invocation_metadata())):
                    source = fn(*args[:-n_kw], **dict(zip(m.kwnames, args[-n_kw:], strict=True))) if n_kw else fn(*args)
                    async for item in source:
                        yield encoder.encode(item)
            except Exception as exc:
                await _abort(context, exc)

        return handle

    async def _subscribe(self, request: bytes, context: RpcContext) -> AsyncIterator[bytes]:
        """One event subscription of the plugin: subscribe on the real bus, forward until the plugin hangs up."""
        (topic,) = broker_arg_decoder("events_subscribe").decode(request)
        queue: asyncio.Queue[Event] = asyncio.Queue()
        events = self.services.events
        try:
            if topic is None:
                sub_id = await events.subscribe_all(queue.put_nowait)
            else:
                sub_id = await events.subscribe(topic, queue.put_nowait)
        except Exception as exc:
            await context.abort(grpc.StatusCode.ABORTED, encode_error(exc))
            return
        try:
            yield _SUBSCRIBED
            while True:
                yield encoder.encode(await queue.get())
        finally:
            await events.unsubscribe(sub_id)


async def _abort(context: RpcContext, exc: BaseException) -> None:
    """ABORTED with "ExcType: message"; a scope denial also carries its fields so the plugin re-raises it typed."""
    metadata: tuple[tuple[str, str], ...] = ()
    if isinstance(exc, ServiceScopeDenied):
        metadata = (("fj-scope", exc.scope), ("fj-operation", exc.operation), ("fj-plugin", exc.plugin))
    await context.abort(grpc.StatusCode.ABORTED, encode_error(exc), trailing_metadata=metadata)
