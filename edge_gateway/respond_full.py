"""Writing a full (non-streamed) response or an error: response hooks in reverse, then two ASGI messages (its
length in the head, the headers a plugin or vendor set checked by `response_headers`).

`Outlet` is where one request's answer goes. Errors the edge answers before a request was accepted go out
with `send_error` (no hooks: no plugin saw the request as a client's yet); every later error is a
`PluginError` passed through the response hooks of the plugins whose request phase ran, which may recover it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from shared_sdk import PluginError, ResponseWriteRequest
from shared_sdk.host import PluginHandle
from shared_sdk.pipeline import HookChain

from .errors import GatewayError, UpstreamError, error_for
from .exchange import Exchange
from .rate_headers import RATE_HEADER_PREFIXES, Header
from .response_headers import content_length, final_status, response_headers

__all__ = [
    "Executed",
    "Outlet",
    "Send",
    "Written",
    "as_plugin_error",
    "id_headers",
    "own_headers",
    "respond_error",
    "respond_full",
    "send_error",
    "send_full",
    "write_hooks",
]

Send = Callable[[dict[str, Any]], Awaitable[None]]
Executed = Sequence[PluginHandle]


@dataclass(slots=True)
class Outlet:
    """Where one request's answer goes: its `Exchange`, the ASGI `send`, and whether bodies are kept for logs."""

    ex: Exchange
    send: Send
    log_bodies: bool


@dataclass(slots=True)
class Written:
    """A full response after the response hooks ran over it (not sent yet)."""

    status: int
    headers: dict[str, str]
    body: bytes
    error: PluginError | None

    @property
    def recovered(self) -> bool:
        return self.error is None and self.status < 400


def as_plugin_error(error: GatewayError | UpstreamError) -> PluginError:
    """The edge's own errors as hooks see them; another LLM cannot fix them (`allow_fallbacks=False`)."""
    return PluginError(
        status_code=error.status_code,
        message=error.message,
        type=error.type,
        code=error.code,
        allow_fallbacks=False,
        headers=dict(error.headers),
        param=error.param,
        details=error.details if isinstance(error, UpstreamError) else None,
    )


def id_headers(request_id: str, dialect: str) -> list[tuple[bytes, bytes]]:
    """`x-request-id`, and for Anthropic callers also `request-id` (the header their SDK exposes as the id)."""
    value = request_id.encode()
    if dialect == "anthropic":
        return [(b"x-request-id", value), (b"request-id", value)]
    return [(b"x-request-id", value)]


def own_headers(ex: Exchange, given: list[Header]) -> list[Header]:
    """The edge's rate-limit headers (when the app has limits) after the headers a vendor or plugin `given`, whose
    rate-limit ones are dropped then: they would contradict the edge's (a vendor's describe the operator's account,
    shared by every tenant)."""
    if not ex.rate_headers:
        return given
    for name, _ in given:
        if name.startswith(RATE_HEADER_PREFIXES):
            given = [pair for pair in given if not pair[0].startswith(RATE_HEADER_PREFIXES)]
            break
    given += ex.rate_headers
    return given


def _invalid_status(dialect: str, status: int) -> tuple[int, bytes]:
    """A 502 in the caller's dialect for a plugin that answered with a status no HTTP client can read as final."""
    message = f"a plugin answered with HTTP status {status}, which is not a final status (200-599)"
    return error_for(dialect, 502, message, "plugin_error", "invalid_status", None)


async def send_error(
    send: Send,
    request_id: str,
    error: GatewayError | PluginError,
    dialect: str = "openai",
    rate: Sequence[Header] = (),
) -> None:
    """An error answered without hooks (the request was never accepted, or the edge failed), in the caller's
    `dialect`; `rate`: the rate-limit headers of a request whose limits were checked before the edge failed."""
    headers = [(b"content-type", b"application/json"), *id_headers(request_id, dialect)]
    headers += response_headers(error.headers)
    headers += rate
    param = error.param if isinstance(error, GatewayError) else None
    details = error.details if isinstance(error, PluginError) else None
    status, body = error_for(dialect, error.status_code, error.message, error.type, error.code, param, details)
    if not final_status(status):  # a plugin's error (an auth plugin's refusal) with a status that is not one
        status, body = _invalid_status(dialect, status)
        headers = [(b"content-type", b"application/json"), *id_headers(request_id, dialect)]
    headers += content_length(status, body)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def write_hooks(
    ex: Exchange,
    hooks: HookChain | None,
    executed: Executed,
    status: int,
    headers: dict[str, str],
    body: bytes,
    error: PluginError | None,
) -> Written:
    """Run the response hooks (reverse order, executed plugins only) over a full response or an error."""
    if hooks is not None and (hooks.hooks("on_before_write_headers") or hooks.hooks("on_before_write")):
        write = ResponseWriteRequest(
            request_id=ex.request_id,
            status_code=status,
            headers=headers,
            body=body,
            error=error,
            context=ex.ctx.info(),
        )
        write = await hooks.run_response_headers(ex.ctx, executed, write)
        write = await hooks.run_response_body(ex.ctx, executed, write)
        return Written(write.status_code, write.headers, write.body, write.error)
    return Written(status, headers, body, error)


async def send_full(out: Outlet, written: Written) -> None:
    """Send a response the hooks are done with; an error becomes the OpenAI error JSON."""
    ex = out.ex
    status, body, error = written.status, written.body, written.error
    head = id_headers(ex.request_id, ex.dialect)
    if error is not None:
        ex.error_type = ex.error_type or error.code or error.type
        status, body = error_for(
            ex.dialect, error.status_code, error.message, error.type, error.code, error.param, error.details
        )
        head.append((b"content-type", b"application/json"))
        head += own_headers(ex, response_headers(error.headers))
    else:
        if "content-type" not in written.headers:
            head.append((b"content-type", b"application/json"))
        head += own_headers(ex, response_headers(written.headers))
    if not final_status(status):  # a plugin's answer, error or hook chose it
        ex.error_type = "invalid_status"
        status, body = _invalid_status(ex.dialect, status)
        head = [*id_headers(ex.request_id, ex.dialect), (b"content-type", b"application/json"), *ex.rate_headers]
    head += content_length(status, body)
    ex.status_code = status
    ex.response_bytes = len(body)
    if out.log_bodies:
        ex.response_body = body
    await out.send({"type": "http.response.start", "status": status, "headers": head})
    await out.send({"type": "http.response.body", "body": body})


async def respond_full(
    out: Outlet,
    hooks: HookChain | None,
    executed: Executed,
    status: int,
    headers: dict[str, str],
    body: bytes,
    error: PluginError | None,
) -> None:
    """Response hooks over a full response (or error), then send it."""
    written = await write_hooks(out.ex, hooks, executed, status, headers, body, error)
    if out.ex.error_type and written.recovered:
        out.ex.error_type = ""  # a response hook recovered the error
    await send_full(out, written)


async def respond_error(
    out: Outlet, hooks: HookChain | None, executed: Executed, error: GatewayError | UpstreamError | PluginError
) -> None:
    """An error of an accepted request: through the response hooks (which may recover it), then sent."""
    plugin_error = error if isinstance(error, PluginError) else as_plugin_error(error)
    out.ex.error_type = plugin_error.code or plugin_error.type
    await respond_full(out, hooks, executed, plugin_error.status_code, {}, b"", plugin_error)
