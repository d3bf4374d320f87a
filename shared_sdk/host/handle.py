"""`PluginHandle`: the host's grip on one loaded plugin, and its in-process implementation.

Every call goes through `handle.call(method, ctx, *args)` (or `handle.stream(...)` for agents and streamed
endpoints), whatever the plugin runs in. The handle:

- binds the request's `Context` to this plugin (its slug and its own services);
- bounds the call by the spec's `timeout_s`;
- runs a plain-`def` handler in this plugin's own thread pool, an `async def` one directly on the loop;
- checks the result type (`shared_sdk.methods`), so a wrong return is an error here, not deep in the edge;
- turns every failure into one `PluginCallError(slug, method, kind, fail_open)`.

The in-process path is the edge's hot path: one dict lookup, the plugin's own coroutine, a type check, and a
deadline only for a hook that suspends (`_Deadlines`). No task, no thread hop, no copy of the request.

A plain-`def` handler that outlives its timeout cannot be interrupted: its worker thread stays busy until the
handler returns. The handle keeps track of such threads, logs each one when its call times out and when it
is freed, reports them in `health()`, and fails calls fast (`unavailable`) once every thread of the pool is
stuck rather than letting them queue behind the stuck ones until they time out too.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import time
import types
import weakref
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Generator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from ..capabilities import discover
from ..context import Context, Services
from ..errors import CapabilityNotImplemented, PluginCallError, PluginLoadError
from ..messages import PluginManifest, Runtime
from ..methods import DECLARATIONS, LIFECYCLE, METHODS, MethodSpec
from ..scopes import ScopeGuard
from ._subscriptions import TrackedEvents
from .health import PluginHealth
from .spec import PluginSpec

__all__ = ["DEFAULT_SYNC_WORKERS", "ChunkCall", "InProcessHandle", "PluginHandle"]

log = logging.getLogger("fjordgate.plugins.host")

_STOP = object()

DEFAULT_SYNC_WORKERS = 8
_DEADLINE_SLACK_S = 0.05
_CHUNK_METHOD = "on_before_write"

ChunkCall = Callable[[Any, float], Awaitable[Any]]
"""`await call(chunk, started)`: one stream's `on_before_write` (or `on_before_write_events`) of one plugin; `started`
is `time.monotonic()` at the call's start (its timeout counts from there). Same results and failures as
`handle.call(method, ctx, chunk)`; to be awaited in the task running the stream."""


class PluginHandle(ABC):
    """What callers use; subclasses implement how calls reach the plugin."""

    def __init__(self, spec: PluginSpec, runtime: Runtime, services: Services) -> None:
        self.slug = spec.slug
        self.spec = spec
        self.runtime = runtime
        self.services = services
        self.fail_open = spec.fail_open
        self.timeout_s = spec.timeout_s
        self.name = spec.slug
        self.version = ""
        self.description = ""
        self.capabilities: frozenset[str] = frozenset()
        self.methods: frozenset[str] = frozenset()
        self.config_schema: dict[str, Any] | None = None
        self.config: dict[str, Any] = {}
        self.healthy = False
        self.sync_workers = spec.sync_workers or DEFAULT_SYNC_WORKERS
        self.manifest: PluginManifest | None = None
        self.scope_guard: ScopeGuard | None = None
        """Set by the host: the service scopes this plugin holds (see `shared_sdk.scopes`)."""
        self.subscriptions: TrackedEvents | None = None
        """Set by the host: this load's event subscriptions, dropped when it is stopped."""
        self.restarts = 0
        self.last_error = ""
        self.last_exit_code: int | None = None
        self._default_ctx = Context(runtime=runtime, plugin_slug=spec.slug, services=services)

    def implements(self, method: str) -> bool:
        return method in self.methods

    @property
    def pid(self) -> int | None:
        """Process id of an isolated plugin; `None` in-process."""
        return None

    @abstractmethod
    async def call(self, method: str, ctx: Context | None, *args: Any) -> Any:
        """Call `method` and return its (type-checked) result; failures raise `PluginCallError`."""

    def chunk_caller(self, ctx: Context, method: str = _CHUNK_METHOD) -> ChunkCall:
        """`method` (`on_before_write` or `on_before_write_events`) for the chunks of one stream whose context is
        `ctx` (see `ChunkCall`).

        Made once per stream, so what `call` does per call and need not (binding the context, finding the method)
        is done once. This generic one is `call` itself; the in-process handle has a cheaper one.
        """

        def chunk_call(chunk: Any, started: float) -> Awaitable[Any]:
            return self.call(method, ctx, chunk)

        return chunk_call

    @abstractmethod
    def stream(self, method: str, ctx: Context | None, *args: Any) -> AsyncIterator[Any]:
        """Iterate a streaming method's items; failures raise `PluginCallError` from the iteration."""

    async def start(self) -> None:
        """Bring the plugin up to the point where its schema can be read (spawn + handshake when isolated)."""
        return None

    @abstractmethod
    async def read_config_schema(self) -> dict[str, Any] | None:
        """The plugin's JSON Schema, read before `initialize` so the host can validate config first."""

    @abstractmethod
    async def read_manifest(self) -> PluginManifest | None:
        """The plugin's manifest (`None` without one), read before `initialize`: it decides the service scopes."""

    # -- health --------------------------------------------------------------------------------------------

    def thread_stats(self) -> tuple[int, int]:
        """(busy, stuck) worker threads of plain-`def` handlers."""
        return 0, 0

    def health(self) -> PluginHealth:
        """A snapshot of this plugin's health, for `/ready` and the admin. Cheap: no I/O, no call to the plugin."""
        busy, stuck = self.thread_stats()
        degraded = self.healthy and stuck >= self.sync_workers
        guard = self.scope_guard
        return PluginHealth(
            slug=self.slug,
            healthy=self.healthy and not degraded,
            state=self._state(degraded),
            isolated=self.spec.runs_isolated,
            pid=self.pid,
            restarts=self.restarts,
            last_error=self.last_error,
            last_exit_code=self.last_exit_code,
            sync_workers=self.sync_workers,
            busy_threads=busy,
            stuck_threads=stuck,
            scopes=sorted(guard.scopes) if guard is not None else [],
            denied_scopes=dict(guard.denied) if guard is not None else {},
        )

    def _state(self, degraded: bool) -> str:
        if degraded:
            return "degraded"
        return "running" if self.healthy else "stopped"

    @abstractmethod
    async def initialize(self, config: dict[str, Any]) -> None:
        """Hand the validated config to the plugin and open its session (`on_session_ready`)."""

    @abstractmethod
    async def stop(self) -> None:
        """Tell the plugin the session is closing, shut it down, release its resources."""

    def _error(self, method: str, kind: str, detail: str = "") -> PluginCallError:
        return PluginCallError(self.slug, method, kind, self.fail_open, detail)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        state = "healthy" if self.healthy else "unhealthy"
        return f"<{type(self).__name__} {self.slug!r} {state} capabilities={sorted(self.capabilities)}>"


def _describe_exception(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class InProcessHandle(PluginHandle):
    """A plugin object living in the host's process."""

    def __init__(self, spec: PluginSpec, runtime: Runtime, services: Services, plugin: Any) -> None:
        super().__init__(spec, runtime, services)
        self.plugin = plugin
        self.name = getattr(plugin, "name", "") or spec.slug
        self.version = getattr(plugin, "version", "") or ""
        self.description = getattr(plugin, "description", "") or ""
        caps, methods, problems = discover(plugin)
        if problems:
            raise PluginLoadError(spec.slug, "; ".join(problems))
        self.capabilities = caps
        self.methods = methods
        self._executor: ThreadPoolExecutor | None = None
        self._jobs: dict[int, _Job] = {}  # plain-def handlers running in a worker thread, by id
        # method name -> (bound function, spec, is_async); built once so a call is a single dict lookup.
        self._entries: dict[str, tuple[Callable[..., Any], MethodSpec, bool]] = {}
        for name in methods:
            fn = getattr(plugin, name)
            self._entries[name] = (fn, METHODS[name], _is_async(fn))
        for name, mspec in LIFECYCLE.items():
            fn = getattr(plugin, name, None)
            if callable(fn):
                self._entries[name] = (fn, mspec, _is_async(fn))

    # -- calls ---------------------------------------------------------------------------------------------

    async def call(self, method: str, ctx: Context | None, *args: Any) -> Any:
        entry = self._entries.get(method)
        if entry is None or (method not in self.methods and method not in LIFECYCLE):
            raise CapabilityNotImplemented(self.slug, method, self.fail_open)
        if not self.healthy and method not in LIFECYCLE and method not in DECLARATIONS:
            raise self._error(method, "unavailable", "plugin is not loaded")
        fn, mspec, is_async = entry
        bound = self._default_ctx if ctx is None else ctx.bind(self.slug, self.services)
        if not is_async:
            return await self._call_sync(method, fn, mspec, bound, args)
        # The hook's first step runs here, before any deadline exists: most hooks return without suspending, and
        # for them the deadline (a running-loop and a current-task lookup, each a getpid() syscall on CPython
        # 3.11, and the in-flight set) was three quarters of what this call cost (`bench/README.md`). A hook that
        # suspends gets its deadline then, counted from the call's start, and is finished inside this task.
        started = time.monotonic()
        deadline: _Deadline | None = None
        try:
            coro = fn(bound, *args) if mspec.takes_ctx else fn(*args)
            try:
                step = coro.send(None)
            except StopIteration as returned:
                result = returned.value
            else:
                deadline = _deadlines().enter_at(started + self.timeout_s)
                result = await cast(Awaitable[Any], _finish(coro, step))
            return mspec.normalize(result)
        except BaseException as exc:
            failure = self._failure(method, exc, deadline)
            if failure is None:
                raise
            raise failure from (exc if failure.kind == "exception" else None)
        finally:
            if deadline is not None:
                deadline.close()

    async def _call_sync(
        self, method: str, fn: Callable[..., Any], mspec: MethodSpec, bound: Context, args: tuple[Any, ...]
    ) -> Any:
        """`call` for a plain-`def` handler: run in this plugin's thread pool, bounded by the timeout."""
        deadline = _deadlines().enter(self.timeout_s)
        try:
            result = await self._run_sync(method, fn, mspec.takes_ctx, bound, args)
            return mspec.normalize(result)
        except BaseException as exc:
            failure = self._failure(method, exc, deadline)
            if failure is None:
                raise
            if failure.kind == "timeout":
                self._note_stuck()  # its thread runs on: nothing can interrupt it
            raise failure from (exc if failure.kind == "exception" else None)
        finally:
            deadline.close()

    def _failure(self, method: str, exc: BaseException, deadline: _Deadline | None) -> PluginCallError | None:
        """What a call that raised `exc` raises instead: a `timeout` when its own deadline cancelled it, an
        `exception` for whatever the plugin raised; None (raise it as it is) for a cancellation from elsewhere (the
        client left), a `PluginCallError` already made and what is not an `Exception` (but `SystemExit`)."""
        if isinstance(exc, asyncio.CancelledError):
            if deadline is not None and deadline.expired:
                deadline.task.uncancel()
                return self._error(method, "timeout", f"no answer within {self.timeout_s:g}s")
            return None
        if isinstance(exc, PluginCallError) or not isinstance(exc, Exception | SystemExit):
            return None
        return self._error(method, "exception", _describe_exception(exc))

    def chunk_caller(self, ctx: Context, method: str = _CHUNK_METHOD) -> ChunkCall:
        entry = self._entries.get(method)
        if entry is None or method not in self.methods or not entry[2] or not entry[1].takes_ctx:
            return super().chunk_caller(ctx, method)  # a plain-def handler runs in the thread pool: `call` does that
        return _InProcessChunkCall(self, entry[0], ctx.bind(self.slug, self.services), entry[1])

    def _run_sync(
        self, method: str, fn: Callable[..., Any], takes_ctx: bool, ctx: Context, args: tuple[Any, ...]
    ) -> Any:
        loop = asyncio.get_running_loop()
        if takes_ctx:
            blocking_ctx = ctx.bind(self.slug, self.services.blocking(loop))
            return self._submit(loop, method, fn, blocking_ctx, *args)
        return self._submit(loop, method, fn, *args)

    def _submit(
        self, loop: asyncio.AbstractEventLoop, method: str, fn: Callable[..., Any], *args: Any
    ) -> asyncio.Future[Any]:
        """Run `fn(*args)` in this plugin's pool, tracked so a thread stuck past its call's timeout is seen."""
        if len(self._jobs) >= self.sync_workers:
            _, stuck = self.thread_stats()
            if stuck >= self.sync_workers:
                detail = (
                    f"all {self.sync_workers} worker threads are stuck in handlers that outlived their timeout "
                    f"({self._oldest_stuck()})"
                )
                self.last_error = detail
                raise self._error(method, "unavailable", detail)
        job = _Job(method, time.monotonic() + self.timeout_s)
        run = contextvars.copy_context().run
        return loop.run_in_executor(self._pool(), self._run_job, job, run, fn, args)

    def _run_job(self, job: _Job, run: Callable[..., Any], fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        key = id(job)
        job.started = time.monotonic()
        self._jobs[key] = job
        try:
            return run(fn, *args)
        finally:
            del self._jobs[key]
            if job.reported:
                log.warning(
                    "plugin %s: worker thread freed: %s returned after %.1fs, %.1fs past its timeout",
                    self.slug,
                    job.method,
                    time.monotonic() - job.started,
                    time.monotonic() - job.deadline,
                    extra={"plugin": self.slug, "fields": {"method": job.method}},
                )

    def thread_stats(self) -> tuple[int, int]:
        jobs = list(self._jobs.values())
        now = time.monotonic()
        return len(jobs), sum(1 for j in jobs if j.reported or now >= j.deadline)

    def _oldest_stuck(self) -> str:
        now = time.monotonic()
        stuck = [j for j in list(self._jobs.values()) if now >= j.deadline]
        if not stuck:
            return "none"
        oldest = min(stuck, key=lambda j: j.started)
        return f"oldest: {oldest.method}, running for {now - oldest.started:.1f}s"

    def _note_stuck(self) -> None:
        """A plain-def call timed out: log each thread now stuck past its timeout (once per thread)."""
        now = time.monotonic() + _DEADLINE_SLACK_S  # the call's deadline and the job's differ by microseconds
        jobs = list(self._jobs.values())
        stuck = [j for j in jobs if now >= j.deadline]
        for job in stuck:
            if job.reported:
                continue
            job.reported = True
            self.last_error = (
                f"a worker thread is stuck in {job.method} past its {self.timeout_s:g}s timeout "
                f"({len(stuck)} of {self.sync_workers} threads stuck)"
            )
            log.warning(
                "plugin %s: %s",
                self.slug,
                self.last_error,
                extra={
                    "plugin": self.slug,
                    "fields": {"method": job.method, "stuck_threads": len(stuck), "sync_workers": self.sync_workers},
                },
            )

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self.sync_workers, thread_name_prefix=f"plugin-{self.slug}")
        return self._executor

    async def stream(self, method: str, ctx: Context | None, *args: Any) -> AsyncIterator[Any]:
        """Yield the items of a streaming method (agent chunks, endpoint chunks), each within `timeout_s`."""
        entry = self._entries.get(method)
        if entry is None or method not in self.methods:
            raise CapabilityNotImplemented(self.slug, method, self.fail_open)
        if not self.healthy:
            raise self._error(method, "unavailable", "plugin is not loaded")
        fn, mspec, _ = entry
        bound = self._default_ctx if ctx is None else ctx.bind(self.slug, self.services)
        loop = asyncio.get_running_loop()
        source = await self._open_stream(method, fn, bound, args)
        if _is_single(source):
            # A single response (an endpoint answering without streaming): one item.
            try:
                yield mspec.normalize(source)
            except Exception as exc:
                raise self._error(method, "exception", _describe_exception(exc)) from exc
            return
        is_async_iter = hasattr(source, "__aiter__")
        iterator = source.__aiter__() if is_async_iter else iter(source)
        try:
            while True:
                item = await self._next_item(loop, method, mspec, iterator, is_async_iter)
                if item is _STOP:
                    return
                yield item
        finally:
            if is_async_iter and hasattr(iterator, "aclose"):
                try:
                    await iterator.aclose()
                except Exception:  # the plugin's own cleanup failing must not mask the stream's outcome
                    pass

    async def _open_stream(self, method: str, fn: Callable[..., Any], bound: Context, args: tuple[Any, ...]) -> Any:
        """What a streaming method returned (an async or sync iterable, or one response), within `timeout_s`;
        a plain `def` runs in the plugin's thread pool."""
        try:
            async with asyncio.timeout(self.timeout_s):
                if inspect.isasyncgenfunction(fn) or inspect.iscoroutinefunction(fn):
                    source = fn(bound, *args)
                    return (await source) if inspect.isawaitable(source) else source
                return await self._run_sync(method, fn, True, bound, args)
        except TimeoutError:
            self._note_stuck()
            raise self._error(method, "timeout", f"no answer within {self.timeout_s:g}s") from None
        except PluginCallError:
            raise
        except (Exception, SystemExit) as exc:
            raise self._error(method, "exception", _describe_exception(exc)) from exc

    async def _next_item(
        self, loop: asyncio.AbstractEventLoop, method: str, mspec: MethodSpec, iterator: Any, is_async_iter: bool
    ) -> Any:
        """The iterator's next item, normalised, within `timeout_s` (a sync iterator is advanced in the thread
        pool); `_STOP` at its end."""
        timeout = asyncio.timeout(self.timeout_s)
        try:
            async with timeout:
                if is_async_iter:
                    item = await iterator.__anext__()
                else:
                    item = await self._submit(loop, method, next, iterator, _STOP)
                    if item is _STOP:
                        return _STOP
            return mspec.normalize(item)
        except StopAsyncIteration:
            return _STOP
        except TimeoutError as exc:
            if timeout.expired():
                if not is_async_iter:
                    self._note_stuck()
                raise self._error(method, "timeout", f"no item within {self.timeout_s:g}s") from None
            raise self._error(method, "exception", _describe_exception(exc)) from exc
        except (Exception, SystemExit) as exc:
            raise self._error(method, "exception", _describe_exception(exc)) from exc

    # -- lifecycle -----------------------------------------------------------------------------------------

    async def read_config_schema(self) -> dict[str, Any] | None:
        if "get_config_schema" not in self.methods:
            return None
        self.healthy = True  # allow the schema call before initialize
        try:
            schema: dict[str, Any] | None = await self.call("get_config_schema", None)
            return schema
        finally:
            self.healthy = False

    async def read_manifest(self) -> PluginManifest | None:
        if "get_manifest" not in self.methods:
            return None
        self.healthy = True  # allow the manifest call before initialize
        try:
            manifest: PluginManifest | None = await self.call("get_manifest", None)
            return manifest
        finally:
            self.healthy = False

    async def initialize(self, config: dict[str, Any]) -> None:
        self.config = config
        if "initialize" in self._entries:
            await self.call("initialize", None, config)
        self.healthy = True
        if "on_session_ready" in self.methods:
            await self.call("on_session_ready", None)

    async def stop(self) -> None:
        try:
            if self.healthy and "on_session_closing" in self.methods:
                await self.call("on_session_closing", None)
            if "shutdown" in self._entries:
                await self.call("shutdown", None)
        finally:
            self.healthy = False
            if self._executor is not None:
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = None


class _InProcessChunkCall:
    """An in-process `async def on_before_write` (or `on_before_write_events`) for one stream: what `call` does per call done once per stream.

    The context is bound and the method looked up once; the call's deadline is one `_Deadline` per stream, armed
    (due time set, put in the in-flight set) for each call rather than made anew; a result of exactly the declared type skips
    `normalize`. The rules are `call`'s: the plugin's `timeout_s` from `started`, every failure a `PluginCallError`.

    Why not drive a hook that does not suspend with `coro.send(None)` and skip the deadline: on CPython 3.11 the
    `StopIteration` that ends such a send costs more than arming the deadline and awaiting (about 290 ns against
    80 ns for the bare await of a hook that returns at once).
    """

    __slots__ = ("handle", "slug", "method", "fn", "ctx", "mspec", "result_type", "deadline")

    def __init__(self, handle: InProcessHandle, fn: Callable[..., Any], ctx: Context, mspec: MethodSpec) -> None:
        self.handle = handle
        self.slug = handle.slug
        self.method = mspec.name
        """With the local `method`, what names this call to the loop watchdog (`watchdog._PLUGIN_CALLS`)."""
        self.fn = fn
        self.ctx = ctx
        self.mspec = mspec
        self.result_type = mspec.result_type
        self.deadline: _Deadline | None = None
        """Made at the first call, in the task running the stream (the task a timeout cancels)."""

    async def __call__(self, chunk: Any, started: float) -> Any:
        handle = self.handle
        method = self.method  # read from this frame by the loop watchdog, as `call`'s own `method`
        if not handle.healthy:
            raise handle._error(method, "unavailable", "plugin is not loaded")
        deadline = self.deadline
        if deadline is None:
            deadline = self.deadline = _deadlines().parked()
        # armed inline, not by a method: the call would be a third of what arming costs, per event and plugin
        deadline.at = started + handle.timeout_s
        deadline.expired = False
        owner = deadline._owner
        owner.calls.add(deadline)
        if owner._ticker is None:
            owner._ticker = deadline.task.get_loop().create_task(owner._tick())
        try:
            result = await self.fn(self.ctx, chunk)
        except BaseException as exc:
            failure = handle._failure(method, exc, deadline)
            if failure is None:
                raise
            raise failure from (exc if failure.kind == "exception" else None)
        finally:
            owner.calls.discard(deadline)
        if type(result) is self.result_type:
            return result
        try:
            return self.mspec.normalize(result)
        except Exception as exc:
            raise handle._error(method, "exception", _describe_exception(exc)) from exc


class _Job:
    """One plain-def handler run in a worker thread: what it is, when it started, when its call gave up."""

    __slots__ = ("method", "deadline", "started", "reported")

    def __init__(self, method: str, deadline: float) -> None:
        self.method = method
        self.deadline = deadline
        self.started = deadline
        self.reported = False


class _Deadline:
    __slots__ = ("task", "at", "expired", "_owner")

    def __init__(self, owner: _Deadlines, task: asyncio.Task[Any], at: float) -> None:
        self._owner = owner
        self.task = task
        self.at = at
        self.expired = False

    def close(self) -> None:
        self._owner.calls.discard(self)


class _Deadlines:
    """Per-call timeouts without a timer per call.

    `asyncio.timeout()` schedules (and cancels) one timer handle per call; at the edge's call rates the
    loop's timer heap fills with cancelled handles and each call costs several microseconds. Here one
    ticker task per loop checks the in-flight calls every `TICK_S` and cancels the task of any call past
    its deadline (the call turns that cancellation into a `timeout`), so a call costs a set insert and
    remove. Timeouts are therefore precise to about `TICK_S`. The ticker stops after a tick with nothing in
    flight.
    """

    TICK_S = 0.01

    def __init__(self) -> None:
        # No reference to the loop: `_by_loop` is keyed weakly by the loop, and a value holding its key would
        # keep every loop a process ever served (each test's, say) alive.
        self.calls: set[_Deadline] = set()
        self._ticker: asyncio.Task[None] | None = None

    def parked(self) -> _Deadline:
        """A deadline for the current task, not in flight: a stream's chunk caller puts it in `calls`, due at each
        call's start plus the timeout, for each call (`_InProcessChunkCall`)."""
        task = asyncio.current_task()
        assert task is not None, "plugin calls must run inside an asyncio task"
        return _Deadline(self, task, float("inf"))

    def enter(self, timeout_s: float) -> _Deadline:
        return self.enter_at(time.monotonic() + timeout_s)

    def enter_at(self, at: float) -> _Deadline:
        """A deadline for the current task, due at `at` (`time.monotonic()`), in flight until `close()`."""
        task = asyncio.current_task()
        assert task is not None, "plugin calls must run inside an asyncio task"
        deadline = _Deadline(self, task, at)
        self.calls.add(deadline)
        if self._ticker is None:
            self._ticker = task.get_loop().create_task(self._tick())
        return deadline

    async def _tick(self) -> None:
        # Sleep first, and stop only after a tick that found nothing in flight: most calls (a stream's chunk
        # hooks, say) end before the ticker's task first runs, and a ticker that checked first would exit at
        # once and leave the next call to start another task: one task per call.
        try:
            while True:
                await asyncio.sleep(self.TICK_S)
                if not self.calls:
                    return
                now = time.monotonic()
                for d in list(self.calls):
                    if not d.expired and now >= d.at:
                        d.expired = True
                        d.task.cancel()
        finally:
            self._ticker = None


_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Deadlines] = weakref.WeakKeyDictionary()


_last: list[Any] = [None, None]
"""(weak reference to the loop, its _Deadlines) of the last lookup. A process serves from one loop, so this skips
the weak-dict lookup (a weakref hash per plugin call: ~8% of the edge's CPU for a stream, whose chunk hooks make a
call per event). Weak, so a finished loop is not kept alive by this cache."""


def _deadlines() -> _Deadlines:
    loop = asyncio.get_running_loop()
    ref = _last[0]
    if ref is not None and ref() is loop:
        cached: _Deadlines = _last[1]
        return cached
    d = _by_loop.get(loop)
    if d is None:
        d = _by_loop[loop] = _Deadlines()
    _last[0], _last[1] = weakref.ref(loop), d
    return d


@types.coroutine
def _finish(coro: Coroutine[Any, Any, Any], step: Any) -> Generator[Any, Any, Any]:
    """Run `coro`, whose first step already ran and yielded `step`, to its end inside the awaiting task: what
    `await coro` would have done from there (`yield from`'s rules: what the task sends or throws goes to `coro`)."""
    while True:
        try:
            sent = yield step
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # a cancellation (a timeout's included): the hook sees it where it waits
            try:
                step = coro.throw(exc)
            except StopIteration as returned:
                return returned.value
        else:
            try:
                step = coro.send(sent)
            except StopIteration as returned:
                return returned.value


def _is_async(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)


def _is_single(source: Any) -> bool:
    """A streaming method's result that is one response, not items (bytes, str and dicts are not iterated)."""
    return not hasattr(source, "__aiter__") and not (
        hasattr(source, "__iter__") and not isinstance(source, bytes | str | dict)
    )
