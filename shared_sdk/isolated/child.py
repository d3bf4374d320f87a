"""The plugin process: `shared_sdk.serve(MyPlugin())` serves a plugin over gRPC to the host that started it.

Inside the process the plugin is driven by the very same `InProcessHandle` the host uses for in-process
plugins (sync handlers in threads, result checks, streaming), so the two ways of running a plugin cannot
drift apart. Its services are gRPC clients of the host's broker (`remote.py`). The id of the host call being served
(`calls.host_call_id`, from the call's metadata) is set for the length of each call, so the service calls made for
it tell the host whose call they are part of.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import grpc
import msgspec

from ..capabilities import discover
from ..context import Context
from ..errors import CapabilityNotImplemented, PluginCallError
from ..host.handle import InProcessHandle
from ..host.spec import PluginSpec
from ..methods import METHODS
from .calls import call_id_from, host_call_id
from .remote import BrokerClient, remote_services
from .wire import (
    ENV_BROKER_SOCKET,
    ENV_PLUGIN_SOCKET,
    ENV_RUNTIME,
    ENV_SLUG,
    ENV_SYNC_WORKERS,
    ENV_TIMEOUT,
    GRPC_OPTIONS,
    HANDSHAKE_PREFIX,
    PLUGIN_SERVICE,
    Describe,
    PingReply,
    encoder,
    request_decoder,
    runtime_from_env,
)

if TYPE_CHECKING:
    from .wire import RpcContext, StreamRpc, UnaryRpc

__all__ = ["serve"]

_STATUS = {
    "timeout": grpc.StatusCode.DEADLINE_EXCEEDED,
    "exception": grpc.StatusCode.ABORTED,
    "unavailable": grpc.StatusCode.FAILED_PRECONDITION,  # not loaded, or every worker thread stuck: no crash
    "crash": grpc.StatusCode.UNAVAILABLE,
}


def serve(plugin: Any) -> None:
    """Serve `plugin` until the host closes our stdin (or stops us). The program's entry point."""
    socket = os.environ.get(ENV_PLUGIN_SOCKET)
    if not socket:
        sys.stderr.write(
            f"{type(plugin).__name__} is a Fjordgate plugin: a Fjordgate host starts it (PluginSpec(command=[...])).\n"
            "To try it by hand, write a test with shared_sdk.testing instead.\n"
        )
        raise SystemExit(2)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(_serve(plugin, socket))


async def _serve(plugin: Any, socket: str) -> None:
    _, _, problems = discover(plugin)
    if problems:
        sys.stderr.write("plugin cannot be served: " + "; ".join(problems) + "\n")
        raise SystemExit(3)
    loop = asyncio.get_running_loop()
    slug = os.environ.get(ENV_SLUG) or getattr(plugin, "name", "") or type(plugin).__name__
    runtime = runtime_from_env(os.environ.get(ENV_RUNTIME))
    timeout_s = float(os.environ.get(ENV_TIMEOUT) or 30.0)

    broker = BrokerClient(f"unix:{os.environ[ENV_BROKER_SOCKET]}") if os.environ.get(ENV_BROKER_SOCKET) else None
    services = remote_services(runtime, slug, broker)
    # The host enforces the deadline; the child's own timeout is a little longer, so a handler that hangs is
    # cancelled here too instead of piling up.
    workers = int(os.environ.get(ENV_SYNC_WORKERS) or 0) or None
    spec = PluginSpec(slug=slug, import_path="isolated:child", timeout_s=timeout_s * 1.5 + 1, sync_workers=workers)
    handle = InProcessHandle(spec, runtime, services, plugin)

    stopped = asyncio.Event()
    server = grpc.aio.server(options=GRPC_OPTIONS)
    handlers: dict[str, grpc.RpcMethodHandler[bytes, bytes]] = {
        "_describe": grpc.unary_unary_rpc_method_handler(_describe(handle)),
        "_initialize": grpc.unary_unary_rpc_method_handler(_initialize(handle)),
        "_shutdown": grpc.unary_unary_rpc_method_handler(_shutdown(handle, stopped)),
        "_ping": grpc.unary_unary_rpc_method_handler(_ping(handle)),
    }
    for name in handle.methods:
        mspec = METHODS[name]
        if mspec.streaming:
            handlers[name] = grpc.unary_stream_rpc_method_handler(_stream(handle, name))
        else:
            handlers[name] = grpc.unary_unary_rpc_method_handler(_unary(handle, name))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(PLUGIN_SERVICE, handlers),))
    server.add_insecure_port(socket)
    await server.start()

    _watch_stdin(loop, stopped.set)
    sys.stdout.write(f"{HANDSHAKE_PREFIX}{socket}\n")
    sys.stdout.flush()
    try:
        await stopped.wait()
    finally:
        if handle.healthy:
            with contextlib.suppress(Exception):
                await handle.stop()
        await server.stop(grace=0.5)
        if broker is not None:
            await broker.close()


def _watch_stdin(loop: asyncio.AbstractEventLoop, stop: Callable[[], None]) -> None:
    """Exit when the host goes away: it holds our stdin open, so EOF means it closed it or died."""

    def wait_eof() -> None:
        with contextlib.suppress(Exception):
            while sys.stdin.buffer.read(65536):
                pass
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(stop)

    threading.Thread(target=wait_eof, name="host-watch", daemon=True).start()


def _context(data: Any, handle: InProcessHandle) -> Context | None:
    return None if data is None else Context.from_data(data, handle.services)


async def _fail(context: RpcContext, err: PluginCallError) -> None:
    if isinstance(err, CapabilityNotImplemented):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, err.detail)
    await context.abort(_STATUS.get(err.kind, grpc.StatusCode.ABORTED), err.detail)


async def _decode(decoder: Any, request: bytes, context: RpcContext) -> tuple[Any, list[Any]]:
    try:
        ctx_data, *args = decoder.decode(request)
    except msgspec.ValidationError as exc:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid arguments: {exc}")
    return ctx_data, args


def _unary(handle: InProcessHandle, method: str) -> UnaryRpc:
    decoder = request_decoder(method)

    async def call(request: bytes, context: RpcContext) -> bytes:
        ctx_data, args = await _decode(decoder, request, context)
        token = host_call_id.set(call_id_from(context.invocation_metadata()))
        try:
            result = await handle.call(method, _context(ctx_data, handle), *args)
        except PluginCallError as err:
            await _fail(context, err)
        finally:
            host_call_id.reset(token)
        return encoder.encode(result)

    return call


def _stream(handle: InProcessHandle, method: str) -> StreamRpc:
    decoder = request_decoder(method)

    async def call(request: bytes, context: RpcContext) -> AsyncIterator[bytes]:
        ctx_data, args = await _decode(decoder, request, context)
        token = host_call_id.set(call_id_from(context.invocation_metadata()))
        try:
            async for item in handle.stream(method, _context(ctx_data, handle), *args):
                yield encoder.encode(item)
        except PluginCallError as err:
            await _fail(context, err)
        finally:
            with contextlib.suppress(ValueError):  # closed from another context: that one never had it
                host_call_id.reset(token)

    return call


def _describe(handle: InProcessHandle) -> UnaryRpc:
    async def call(request: bytes, context: RpcContext) -> bytes:
        try:
            schema = await handle.read_config_schema()
            manifest = await handle.read_manifest()
        except PluginCallError as err:
            await _fail(context, err)
        return encoder.encode(
            Describe(
                name=handle.name,
                version=handle.version,
                description=handle.description,
                methods=sorted(handle.methods),
                capabilities=sorted(handle.capabilities),
                config_schema=schema,
                pid=os.getpid(),
                manifest=manifest,
            )
        )

    return call


def _initialize(handle: InProcessHandle) -> UnaryRpc:
    decoder = request_decoder("initialize")

    async def call(request: bytes, context: RpcContext) -> bytes:
        _, config = decoder.decode(request)
        try:
            await handle.initialize(config)
        except PluginCallError as err:
            await _fail(context, err)
        return encoder.encode(None)

    return call


def _shutdown(handle: InProcessHandle, stopped: asyncio.Event) -> UnaryRpc:
    async def call(request: bytes, context: RpcContext) -> bytes:
        try:
            await handle.stop()
        finally:
            asyncio.get_running_loop().call_later(0.05, stopped.set)
        return encoder.encode(None)

    return call


def _ping(handle: InProcessHandle) -> UnaryRpc:
    """Answered on the event loop: a loop blocked by the plugin (or a deadlock) leaves the host's ping unanswered,
    which is how the host tells a hung process from a busy one."""

    async def call(request: bytes, context: RpcContext) -> bytes:
        busy, stuck = handle.thread_stats()
        return encoder.encode(PingReply(sync_workers=handle.sync_workers, busy_threads=busy, stuck_threads=stuck))

    return call
