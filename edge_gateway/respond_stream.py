"""Writing a streamed response: headers once the first event is in, chunk hooks per read, one send per read.

    headers hooks (reverse) -> response start -> per upstream read: the chunk hooks over its events (a plugin
    with `on_before_write_events` once, one with `on_before_write` per event), then one `send`
    -> end of body, with the read that held `[DONE]` (or an SSE error event when the upstream or a fail-closed
       chunk hook breaks mid-stream)
    -> stream-complete hooks with the accumulated response

The first event goes out on its own, before the hooks run over the rest of its read: time to first byte must
not grow with how many events the vendor's first packet held. A client that leaves cancels the request's task
(`edge_gateway.disconnects`); the `finally` closes the upstream reply either way.
"""

from __future__ import annotations

import sys
import time

import orjson

from shared_sdk import PluginCallError, ResponseWriteRequest, StreamCompleteRequest, result_fields
from shared_sdk.pipeline import ChunkRun, HookChain

from .errors import UpstreamError, error_for
from .providers.responses import ResponsesSession
from .respond_full import Executed, Outlet, Written, id_headers, own_headers, send_full
from .response_headers import response_headers
from .upstream_call import StreamResult

__all__ = ["DONE", "respond_stream"]

DONE = b"data: [DONE]\n\n"
_SSE_TAIL = [(b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]


class _Relay:
    """One stream's pump: runs the chunk hooks over each read's events and sends what they pass, in one send."""

    __slots__ = ("out", "hooks", "keep", "sent", "count", "size", "info", "last", "limit")

    def __init__(self, out: Outlet, hooks: HookChain | None, executed: Executed, keep: bool) -> None:
        self.out = out
        run = hooks.chunk_run(out.ex.ctx, executed) if hooks is not None and hooks.chunk_hooks() else None
        self.hooks: ChunkRun | None = run if run else None
        self.keep = keep
        self.sent: list[bytes] = []
        self.count = 0
        self.size = 0
        self.info = out.ex.ctx.info() if self.hooks is not None else None
        self.last = b""
        """The read that ended the stream (`[DONE]`): sent with the end of the body, in one message (`respond_stream`)."""
        self.limit = result_fields.body_limit() if self.hooks is not None else sys.maxsize
        """What the chunk hooks may make of one read (a vendor's own reads are bounded by `max_response_bytes`)."""

    def finish(self) -> None:
        """Report the chunk hooks' time for this stream (`ChunkRun.finish`), however the stream ended."""
        if self.hooks is not None:
            self.hooks.finish()

    async def send(self, events: list[bytes], final: bool = False) -> None:
        """One `send` for the events of one upstream read (after the chunk hooks); `final`: the read that ended the
        stream, kept for the end of the body (one message, one write to the socket, instead of two)."""
        ex = self.out.ex
        try:
            body = events[0] if len(events) == 1 else b"".join(events)
        except TypeError:
            body = None
        if type(body) is not bytes:  # an in-process chunk hook's answer is not decoded: checked here, once per read
            raise self._not_bytes()
        if len(body) > self.limit:  # what the hooks made of one read: bounded as a hook's body is
            raise self._too_large(len(body))
        if ex.ttft_s is None:
            ex.ttft_s = time.perf_counter() - ex.started
        self.size += len(body)
        if self.keep:
            self.sent.append(body)
        if self.last:  # a vendor that sent more after `[DONE]`: it follows, in order
            body, self.last = self.last + body, b""
        if final:
            self.last = body
            return
        await self.out.send({"type": "http.response.body", "body": body, "more_body": True})

    def _too_large(self, size: int) -> PluginCallError:
        slugs = ", ".join(h.slug for h in self.hooks.plugins) if self.hooks is not None else ""
        detail = f"the chunk hooks made one read {size} bytes, over the {self.limit} a plugin may return"
        return PluginCallError(slugs, "on_before_write_events", "exception", False, detail)

    def _not_bytes(self) -> PluginCallError:
        slugs = ", ".join(h.slug for h in self.hooks.plugins) if self.hooks is not None else ""
        return PluginCallError(slugs, "on_before_write_events", "exception", False, "a chunk hook returned non-bytes")

    async def relay(self, batch: list[bytes]) -> None:
        hooks = self.hooks
        if not batch:
            return
        final = batch[-1] == DONE
        if hooks is None:
            await self.send(batch, final)
            return
        first = self.count
        self.count += len(batch)
        passed, failure = await hooks.run_events(batch, first, self.out.ex.request_id, final, self.info)
        if passed:  # after a fail-closed failure too: what the hooks passed before it still goes out
            await self.send(passed, final and failure is None)
        if failure is not None:
            raise failure

    async def pump(self, result: StreamResult) -> None:
        batch, held, rest = result.first[:1], result.first[1:], result.rest
        while True:
            await self.relay(batch)
            if held:
                batch, held = held, []
                continue
            try:
                batch = await rest.__anext__()
            except StopAsyncIteration:
                return


async def _start(
    out: Outlet, hooks: HookChain | None, executed: Executed, result: StreamResult
) -> dict[str, str] | None:
    """Run the headers hooks and send the response start; None when a hook turned the stream into an error."""
    ex = out.ex
    content_type = result.headers.get("content-type", "text/event-stream")
    headers = {"content-type": content_type}
    start = id_headers(ex.request_id, ex.dialect)
    if hooks is not None and hooks.hooks("on_before_write_headers"):
        write = await hooks.run_response_headers(
            ex.ctx,
            executed,
            ResponseWriteRequest(request_id=ex.request_id, status_code=200, headers=headers, context=ex.ctx.info()),
        )
        if write.error is not None:
            ex.error_type = write.error.code or write.error.type
            await send_full(out, Written(write.error.status_code, {}, b"", write.error))
            return None
        headers = write.headers
        start += own_headers(ex, response_headers(headers))
        if "cache-control" not in headers:
            start += _SSE_TAIL
    else:
        start += [(b"content-type", content_type.encode("latin-1")), *_SSE_TAIL, *ex.rate_headers]
    await out.send({"type": "http.response.start", "status": 200, "headers": start})
    ex.status_code = 200
    return headers


async def _error_event(out: Outlet, err: UpstreamError | PluginCallError, sent: bool) -> None:
    """A stream that breaks after its start ends with one SSE error event (the status is already sent); a
    vendor's in-band error is told with its type and message, in the client's dialect, and not told twice when
    the client already has it as the vendor sent it (`providers.stream_errors`). `sent`: whether any of the
    stream went out before (a Responses stream then needs its `response.created` first)."""
    shape = 0
    if isinstance(err, UpstreamError):
        message, kind, code, status = err.message, err.type, err.code, err.status_code
        shape = err.upstream_status  # an in-band error: Anthropic's type and Google's status name follow it
    else:
        message, kind, code, status = f"plugin '{err.slug}' failed", "plugin_error", "plugin_failed", 500
    out.ex.status_code = status
    out.ex.error_type = code or kind
    if isinstance(err, UpstreamError) and err.relayed:
        return
    if out.ex.kind == "responses":  # Responses' `error` and `response.failed`, numbered after what went out
        payload = (out.ex.responses or ResponsesSession()).failure(message, kind, code, shape, sent)
    elif out.ex.dialect == "gemini":  # Google's error document as one more SSE chunk
        payload = b"data: " + error_for(out.ex.dialect, shape or status, message, kind, code)[1] + b"\n\n"
    elif out.ex.dialect == "anthropic":  # Anthropic's own mid-stream error event
        _, body = error_for(out.ex.dialect, shape or status, message, kind, code)
        payload = b"event: error\ndata: " + body + b"\n\n"
    else:
        payload = b"data: " + orjson.dumps({"error": {"message": message, "type": kind, "code": code}}) + b"\n\n"
    await out.send({"type": "http.response.body", "body": payload, "more_body": True})


async def respond_stream(out: Outlet, hooks: HookChain | None, executed: Executed, result: StreamResult) -> None:
    """Relay a stream whose first event is in (see the module docstring)."""
    ex = out.ex
    ex.streamed = True
    ex.usage = result.usage
    complete_hooks = hooks is not None and bool(hooks.hooks("on_stream_complete"))
    relay = _Relay(out, hooks, executed, complete_hooks or out.log_bodies)
    try:
        headers = await _start(out, hooks, executed, result)
        if headers is None:
            return
        try:
            await relay.pump(result)
        except (UpstreamError, PluginCallError) as err:
            if relay.last:  # the read that held `[DONE]` came first: it goes out first
                await out.send({"type": "http.response.body", "body": relay.last, "more_body": True})
                relay.last = b""
            await _error_event(out, err, relay.size > 0)
        await out.send({"type": "http.response.body", "body": relay.last, "more_body": False})
    finally:
        relay.finish()
        await result.reply.aclose()
        ex.response_bytes = relay.size
    if out.log_bodies:
        ex.response_body = b"".join(relay.sent)
    if complete_hooks and hooks is not None:
        await hooks.run_stream_complete(
            ex.ctx,
            executed,
            StreamCompleteRequest(
                request_id=ex.request_id,
                accumulated_response=b"".join(relay.sent),
                headers=headers,
                status_code=ex.status_code,
                chunk_count=relay.count,
                request_body=ex.call.raw if ex.call is not None else b"",
                context=ex.ctx.info(),
            ),
        )
