"""`IsolatedHandle`: a plugin in its own process, spawned, handshaken, called over gRPC, and supervised.

Lifecycle:
    start        broker up -> spawn the command -> wait for the handshake line -> `_describe`
    initialize   `_initialize(config)` (the plugin runs `initialize` + `on_session_ready`)
    crash        the process exits unexpectedly: the handle turns unhealthy at once (calls raise
                 `PluginCallError(kind="unavailable")`; calls in flight get `kind="crash"`), and a restart
                 loop spawns it again with exponential backoff (restart_backoff_initial_s .. _max_s),
                 re-initializing it with the same config; healthy again only once that succeeded.
    hang         every `ping_interval_s` the host pings the process (`_ping`, answered on its event loop).
                 `ping_failures` pings in a row unanswered within `ping_timeout_s` mean the process is alive
                 but hung (a handler blocking its loop, a deadlock): the handle turns unhealthy, the process
                 is killed, and the crash path above restarts it with the same backoff.
    stop         `_shutdown` (on_session_closing + shutdown), close stdin, wait, then SIGTERM / SIGKILL.

Calls:
    Each call made from a context that sets one of the host's carried context variables gets a call id, sent as
    gRPC metadata; the plugin's service calls made while serving it send it back, and the broker runs them with
    the caller's values of those variables, as an in-process plugin's would see them (`calls`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
import msgspec

from ..context import Context, Services
from ..errors import CapabilityNotImplemented, PluginCallError, PluginLoadError
from ..host.handle import PluginHandle
from ..host.health import PluginHealth
from ..host.spec import PluginSpec
from ..messages import PluginManifest, Runtime
from ..methods import METHODS
from .broker import BrokerServer
from .calls import CALL_ID_METADATA, LiveCalls
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
    decode_error,
    encoder,
    result_decoder,
)

__all__ = ["IsolatedHandle"]

log = logging.getLogger("fjordgate.plugins.isolated")

_CONTROL_TIMEOUT_S = 15.0
DEFAULT_PING_INTERVAL_S = 30.0


class IsolatedHandle(PluginHandle):
    def __init__(
        self,
        spec: PluginSpec,
        runtime: Runtime,
        services: Services,
        *,
        carried: Sequence[contextvars.ContextVar[Any]] = (),
        import_roots: Sequence[str] | None = None,
    ) -> None:
        super().__init__(spec, runtime, services)
        self.import_roots = tuple(import_roots) if import_roots is not None else None
        """The host's allowed import roots, checked again in the child against where the named object is defined."""
        self.ping_interval_s = spec.ping_interval_s or DEFAULT_PING_INTERVAL_S
        self.ping_failures = 0
        """Consecutive unanswered health pings."""
        self.last_ping_at: float | None = None
        self.last_ping_ms: float | None = None
        self._last_ping: PingReply | None = None
        self._hung_reason = ""
        self._restarting = False
        self._proc: asyncio.subprocess.Process | None = None
        self._channel: grpc.aio.Channel | None = None
        self._unary: dict[str, Any] = {}
        self._streams: dict[str, Any] = {}
        self._tmpdir = tempfile.mkdtemp(prefix="fjp-")
        self._generation = 0
        self.calls = LiveCalls(carried)
        """This plugin's calls in flight that carry the caller's context variables, by call id."""
        self._broker = BrokerServer(services, self.calls)
        self._closing = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stderr_tail: deque[str] = deque(maxlen=40)
        self._describe: Describe | None = None
        self._initialized = False

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    # -- process management --------------------------------------------------------------------------------

    def _command(self) -> list[str]:
        if self.spec.command:
            return list(self.spec.command)
        assert self.spec.import_path is not None
        command = [sys.executable, "-m", "shared_sdk.isolated.run", self.spec.import_path]
        if self.import_roots is not None:
            command += ["--import-roots", ",".join(self.import_roots)]
        return command

    async def start(self) -> None:
        await self._broker.start(f"unix:{os.path.join(self._tmpdir, 'broker.sock')}")
        await self._spawn()
        self.name = self._describe.name or self.slug if self._describe else self.slug

    async def _spawn(self) -> None:
        # A fresh socket path per process: gRPC keeps per-address connection backoff state, which would make
        # the first calls to a restarted plugin fail fast against the dead one's address.
        self._generation += 1
        socket_path = os.path.join(self._tmpdir, f"plugin-{self._generation}.sock")
        env = dict(os.environ)
        env.update(self.spec.env)
        env.update(
            {
                ENV_PLUGIN_SOCKET: f"unix:{socket_path}",
                ENV_BROKER_SOCKET: os.path.join(self._tmpdir, "broker.sock"),
                ENV_SLUG: self.slug,
                ENV_RUNTIME: self.runtime.value,
                ENV_TIMEOUT: str(self.timeout_s),
                ENV_SYNC_WORKERS: str(self.sync_workers),
                "PYTHONUNBUFFERED": "1",
            }
        )
        command = self._command()
        try:
            proc = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                cwd=self.spec.cwd,
                start_new_session=True,  # a Ctrl-C to the host's terminal is the host's to handle
            )
        except OSError as exc:
            raise PluginLoadError(self.slug, f"cannot start {command[0]!r}: {exc}") from exc
        self._proc = proc
        self._stderr_tail.clear()
        self._track(self._pump_stderr(proc))
        try:
            address = await asyncio.wait_for(self._handshake(proc), self.spec.startup_timeout_s)
        except (TimeoutError, PluginLoadError) as exc:
            await self._kill(proc)
            detail = str(exc) if isinstance(exc, PluginLoadError) else "no handshake"
            raise PluginLoadError(
                self.slug,
                f"{detail} within {self.spec.startup_timeout_s:g}s from {' '.join(command)}; stderr: {self._tail()}",
            ) from None
        self._track(self._pump_stdout(proc))
        await self._connect(address)
        try:
            data = await self._unary["_describe"](b"", timeout=_CONTROL_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            await self._kill(proc)
            raise PluginLoadError(self.slug, f"describe failed: {exc.details()}; stderr: {self._tail()}") from None
        self._describe = result_decoder("_describe").decode(data)
        d = self._describe
        self.version, self.description = d.version, d.description
        self.methods = frozenset(m for m in d.methods if m in METHODS)
        self.capabilities = frozenset(d.capabilities)
        self._track(self._watch(proc))

    async def _handshake(self, proc: asyncio.subprocess.Process) -> str:
        assert proc.stdout is not None
        while True:
            line = await proc.stdout.readline()
            if not line:
                await asyncio.sleep(0.05)  # let the stderr pump catch the reason
                raise PluginLoadError(self.slug, f"process exited (code {await proc.wait()}) before the handshake")
            text = line.decode(errors="replace").strip()
            if text.startswith(HANDSHAKE_PREFIX):
                return text.removeprefix(HANDSHAKE_PREFIX)
            if text:
                log.info("%s", text, extra={"plugin": self.slug, "fields": {"stream": "stdout"}})

    async def _connect(self, address: str) -> None:
        if self._channel is not None:
            await self._channel.close()
        channel = grpc.aio.insecure_channel(address, options=GRPC_OPTIONS)
        self._channel = channel
        names = [*METHODS, "_describe", "_initialize", "_shutdown", "_ping"]
        self._unary = {n: channel.unary_unary(f"/{PLUGIN_SERVICE}/{n}") for n in names}
        self._streams = {n: channel.unary_stream(f"/{PLUGIN_SERVICE}/{n}") for n, m in METHODS.items() if m.streaming}

    def _track(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _pump_stderr(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        while line := await proc.stderr.readline():
            text = line.decode(errors="replace").rstrip()
            self._stderr_tail.append(text)
            log.info("%s", text, extra={"plugin": self.slug, "fields": {"stream": "stderr"}})

    async def _pump_stdout(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            log.info("%s", line.decode(errors="replace").rstrip(), extra={"plugin": self.slug})

    def _tail(self) -> str:
        return " | ".join(list(self._stderr_tail)[-5:]) or "(empty)"

    async def _watch(self, proc: asyncio.subprocess.Process) -> None:
        code = await proc.wait()
        if self._closing or proc is not self._proc:
            return
        self.healthy = False
        self.last_exit_code = code
        if self._hung_reason:
            self.last_error = f"{self._hung_reason}; killed (exit code {code})"
            self._hung_reason = ""
        else:
            self.last_error = f"process exited with code {code}: {self._tail()}"
            log.error("isolated plugin %s crashed (exit %s); restarting", self.slug, code)
        self._restarting = True
        self._track(self._restart_loop())

    async def _restart_loop(self) -> None:
        delay = self.spec.restart_backoff_initial_s
        self._restarting = True
        try:
            while not self._closing:
                await asyncio.sleep(delay)
                if self._closing:
                    return
                try:
                    await self._spawn()
                    if self._initialized:
                        await self._control("_initialize", None, self.config)
                    self.restarts += 1
                    self.ping_failures = 0
                    self._last_ping = None
                    self.healthy = True
                    log.warning("isolated plugin %s restarted (restart #%d)", self.slug, self.restarts)
                    return
                except Exception as exc:
                    self.last_error = str(exc)
                    log.error("restarting plugin %s failed: %s; next try in %.1fs", self.slug, exc, delay)
                    if self._proc is not None:
                        await self._kill(self._proc)
                    delay = min(delay * 2, self.spec.restart_backoff_max_s)
        finally:
            self._restarting = False

    # -- health --------------------------------------------------------------------------------------------

    async def _health_loop(self) -> None:
        """Ping the process every `ping_interval_s`; kill it when `ping_failures` pings in a row go unanswered.

        Only a live process that looks healthy is pinged: a crashed one is already handled by `_watch`, and
        a restarting one has no process to ask. Killing hands over to `_watch`, so a hang and a crash share
        one restart path and one backoff.
        """
        spec = self.spec
        while not self._closing:
            await asyncio.sleep(self.ping_interval_s)
            proc = self._proc
            if self._closing or not self.healthy or proc is None or proc.returncode is not None:
                continue
            started = time.monotonic()
            try:
                data = await self._unary["_ping"](b"", timeout=spec.ping_timeout_s)
            except grpc.aio.AioRpcError as exc:
                if self._closing or proc is not self._proc or proc.returncode is not None or not self.healthy:
                    continue  # it exited (the crash path has it) or was replaced meanwhile
                self.ping_failures += 1
                log.warning(
                    "isolated plugin %s missed a health ping (%d of %d): %s",
                    self.slug,
                    self.ping_failures,
                    spec.ping_failures,
                    exc.code().name,
                    extra={"plugin": self.slug, "fields": {"ping_failures": self.ping_failures}},
                )
                if self.ping_failures >= spec.ping_failures:
                    await self._kill_hung(proc)
                continue
            self.ping_failures = 0
            self.last_ping_at = time.time()
            self.last_ping_ms = (time.monotonic() - started) * 1000
            try:
                self._last_ping = result_decoder("_ping").decode(data)
            except Exception:  # a plugin built with an older SDK echoes the request: alive, no thread stats
                self._last_ping = None

    async def _kill_hung(self, proc: asyncio.subprocess.Process) -> None:
        self.healthy = False
        self._hung_reason = (
            f"hung: {self.ping_failures} health pings in a row unanswered within {self.spec.ping_timeout_s:g}s "
            f"(pid {proc.pid} alive)"
        )
        self.last_error = self._hung_reason
        self.ping_failures = 0
        log.error(
            "isolated plugin %s is %s; killing and restarting it",
            self.slug,
            self._hung_reason,
            extra={"plugin": self.slug, "fields": {"pid": proc.pid}},
        )
        await self._kill(proc)

    def thread_stats(self) -> tuple[int, int]:
        reply = self._last_ping
        return (reply.busy_threads, reply.stuck_threads) if reply is not None else (0, 0)

    def health(self) -> PluginHealth:
        health = super().health()
        health.last_ping_at = self.last_ping_at
        health.last_ping_ms = self.last_ping_ms
        health.ping_failures = self.ping_failures
        return health

    def _state(self, degraded: bool) -> str:
        if not self.healthy and not self._closing and (self._restarting or self._hung_reason):
            return "restarting"
        return super()._state(degraded)

    async def _kill(self, proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGKILL)
        with contextlib.suppress(Exception):
            await proc.wait()

    # -- lifecycle -----------------------------------------------------------------------------------------

    async def _control(self, method: str, ctx: Any, *args: Any) -> Any:
        data = await self._unary[method](encoder.encode((ctx, *args)), timeout=max(self.timeout_s, _CONTROL_TIMEOUT_S))
        return result_decoder(method).decode(data)

    async def read_config_schema(self) -> dict[str, Any] | None:
        return self._describe.config_schema if self._describe is not None else None

    async def read_manifest(self) -> PluginManifest | None:
        return self._describe.manifest if self._describe is not None else None

    async def initialize(self, config: dict[str, Any]) -> None:
        self.config = config
        try:
            await self._control("_initialize", None, config)
        except grpc.aio.AioRpcError as exc:
            _, message = decode_error(exc.details())
            raise PluginLoadError(self.slug, f"initialize failed: {message or exc.details()}") from None
        self._initialized = True
        self.healthy = True
        self._track(self._health_loop())

    async def stop(self) -> None:
        self._closing = True
        self.healthy = False
        proc = self._proc
        try:
            if proc is not None and proc.returncode is None:
                with contextlib.suppress(grpc.aio.AioRpcError, asyncio.TimeoutError):
                    await self._unary["_shutdown"](encoder.encode((None,)), timeout=min(self.timeout_s, 5.0))
                if proc.stdin is not None:
                    with contextlib.suppress(Exception):
                        proc.stdin.close()
                try:
                    await asyncio.wait_for(proc.wait(), 3.0)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        proc.terminate()
                    try:
                        await asyncio.wait_for(proc.wait(), 2.0)
                    except TimeoutError:
                        await self._kill(proc)
        finally:
            if self._channel is not None:
                await self._channel.close()
                self._channel = None
            await self._broker.stop()
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            shutil.rmtree(self._tmpdir, ignore_errors=True)

    # -- calls ---------------------------------------------------------------------------------------------

    def _rpc_error(self, method: str, exc: grpc.aio.AioRpcError) -> PluginCallError:
        code = exc.code()
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return self._error(method, "timeout", f"no answer within {self.timeout_s:g}s")
        if code in (grpc.StatusCode.ABORTED, grpc.StatusCode.INVALID_ARGUMENT):
            return self._error(method, "exception", exc.details() or "")
        if code == grpc.StatusCode.UNIMPLEMENTED:
            return CapabilityNotImplemented(self.slug, method, self.fail_open)
        if code == grpc.StatusCode.FAILED_PRECONDITION:
            return self._error(method, "unavailable", exc.details() or "")
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN):
            return self._error(method, "crash", f"plugin process lost ({code.name})")
        return self._error(method, "exception", f"{code.name}: {exc.details()}")

    async def call(self, method: str, ctx: Context | None, *args: Any) -> Any:
        if method not in self.methods:
            raise CapabilityNotImplemented(self.slug, method, self.fail_open)
        if not self.healthy:
            raise self._error(method, "unavailable", self.last_error or "plugin is not running")
        ctx_data = None if ctx is None else ctx.bind(self.slug, self.services).to_data()
        try:
            payload = encoder.encode((ctx_data, *args))
        except (TypeError, ValueError) as exc:
            raise self._error(method, "exception", f"arguments cannot be sent to the plugin: {exc}") from exc
        call_id = self.calls.open()
        try:
            data = await self._unary[method](payload, timeout=self.timeout_s, metadata=_metadata(call_id))
        except grpc.aio.AioRpcError as exc:
            raise self._rpc_error(method, exc) from None
        finally:
            self.calls.close(call_id)
        return self._result(method, result_decoder(method), data)

    def _result(self, method: str, decoder: msgspec.msgpack.Decoder[Any], data: bytes) -> Any:
        """The plugin's answer, decoded and its fields checked as in process (`MethodSpec.check`): a plugin process
        of another SDK version (or a program of its own) may send what its side let through. Before, a header value
        that was an int failed decoding here, outside any plugin's failure: a 500 naming no plugin."""
        try:
            result = decoder.decode(data)
        except msgspec.ValidationError as exc:
            raise self._error(
                method, "exception", f"ResultTypeError: {method} returned a result its type cannot hold ({exc})"
            ) from None
        mspec = METHODS.get(method)
        check = mspec.check if mspec is not None else None
        if check is not None and result is not None:
            problem = check(result)
            if problem is not None:
                raise self._error(method, "exception", f"ResultTypeError: {method} returned {problem}")
        return result

    async def stream(self, method: str, ctx: Context | None, *args: Any) -> AsyncIterator[Any]:
        if method not in self.methods:
            raise CapabilityNotImplemented(self.slug, method, self.fail_open)
        if not self.healthy:
            raise self._error(method, "unavailable", self.last_error or "plugin is not running")
        ctx_data = None if ctx is None else ctx.bind(self.slug, self.services).to_data()
        decoder = result_decoder(method)
        call_id = self.calls.open()
        call = self._streams[method](encoder.encode((ctx_data, *args)), metadata=_metadata(call_id))
        try:
            while True:
                timeout = asyncio.timeout(self.timeout_s)
                try:
                    async with timeout:
                        data = await call.read()
                except TimeoutError:
                    raise self._error(method, "timeout", f"no item within {self.timeout_s:g}s") from None
                except grpc.aio.AioRpcError as exc:
                    raise self._rpc_error(method, exc) from None
                if data is grpc.aio.EOF:
                    return
                yield self._result(method, decoder, data)
        finally:
            self.calls.close(call_id)
            call.cancel()


def _metadata(call_id: str | None) -> tuple[tuple[str, str], ...] | None:
    return None if call_id is None else ((CALL_ID_METADATA, call_id),)
