"""The upstream phase: one call, retried with jittered exponential backoff; the LLM's fallbacks in order.

Rules (Bifrost's, made explicit):
- Retry on network errors, timeouts, 408/429/5xx (`UpstreamError.retryable`), up to the LLM's `max_retries`,
  sleeping `min(max, initial * 2**n)` scaled by a random factor in [0.5, 1] (a vendor's `Retry-After` is
  honoured when it is shorter than the maximum backoff).
- Never retry or fall back on the gateway's own errors (`GatewayError` is not caught here) or when a plugin
  set `allow_fallbacks=False` in the context.
- Fall back (next `FallbackTarget`) after the retries of a target are exhausted on a retryable error or a 5xx.
  A vendor's 4xx other than 408/429 describes the client's request and is returned as is. The pipeline drives
  the fallbacks, because each one is a whole attempt: the fallback LLM's own plugin chain, the app's link to
  it, its model allow-list and its budget are checked again before `call_with_retries` runs for it.
- A stream counts as failed until its first chunk arrived: a failure before that moves on (retry, then
  fallback); after it, the client already has data and the stream ends with an error event instead.
- When every target failed, the client gets the primary target's error.
- Each call's outcome feeds the LLM's circuit breaker (`deployments.DeploymentHealth`): a failure that another
  deployment could fix counts, anything the vendor answered resets the streak; once the breaker opens while
  another deployment of the model is healthy, the retries here stop and the pipeline moves on to that one.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import orjson

from .config_store import CompiledConfig, CompiledLLM
from .errors import UpstreamError
from .providers import OpenAIRequest, Provider, Usage
from .providers.base import MISSHAPEN
from .providers.sse import SSESplitter
from .upstream import UpstreamReply, UpstreamRequest, UpstreamTransport, status_is_retryable
from .vendor_errors import VendorFields, vendor_fields

if TYPE_CHECKING:  # imported at run time only when tracing is configured
    from .tracing import EdgeTracing

__all__ = [
    "Attempted",
    "Backoff",
    "FullResult",
    "StreamResult",
    "call_with_retries",
    "fallback_targets",
    "may_fall_back",
]


@dataclass(slots=True)
class Backoff:
    initial_s: float = 0.5
    max_s: float = 5.0

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        if retry_after:
            try:
                hinted = float(retry_after)
            except ValueError:
                hinted = -1.0
            if 0 <= hinted <= self.max_s:
                return hinted
        cap: float = min(self.max_s, self.initial_s * (2**attempt))
        return cap * (0.5 + random.random() / 2)


@dataclass(slots=True)
class Attempted:
    """What the upstream phase did, for accounting and metrics."""

    llm: CompiledLLM
    model: str
    attempts: int = 0
    retries: int = 0
    fallbacks: list[str] = field(default_factory=list)
    upstream_s: float = 0.0


@dataclass(slots=True)
class FullResult:
    status_code: int
    headers: dict[str, str]
    body: bytes
    usage: Usage


class Closable(Protocol):
    async def aclose(self) -> None: ...


@dataclass(slots=True)
class StreamResult:
    """A stream whose first chunk arrived. `first` are the translated events read so far; `rest` yields the
    others in batches, one list per network read (see `_translated_events`)."""

    status_code: int
    headers: dict[str, str]
    first: list[bytes]
    rest: AsyncIterator[list[bytes]]
    usage: Usage
    reply: Closable
    """What to close when the stream ends (the upstream reply; nothing for a replayed short-circuit)."""


def _upstream_error(
    llm: CompiledLLM, status: int, body: bytes, headers: dict[str, str], untranslated: str = ""
) -> UpstreamError:
    """A vendor's error answer as the client will get it. `untranslated`: the dialect both sides speak when the
    request reached the vendor as the client sent it ("" when translated); then a 4xx keeps the vendor's own
    `type`, `param` and `code` (Google's `status`), each bounded and typed (`vendor_errors`)."""
    provider = llm.provider
    message = provider.error_message(body) if provider is not None else ""
    code_of = getattr(provider, "error_code", None)  # optional: the vendor's own code (Azure, Bedrock)
    vendor_code = code_of(body, headers) if code_of is not None else None
    retryable = status_is_retryable(status)
    if status in (401, 403) or (status == 400 and b"API_KEY_INVALID" in body):
        # The vendor rejected *our* key (Google says so with a 400 API_KEY_INVALID): the client can do nothing
        # about it. A vendor with expiring tokens drops a token it calls invalid (401; a 403 is a missing
        # permission, which a new token would not fix), so the next call fetches a new one.
        rejected = getattr(provider, "credentials_rejected", None)
        if rejected is not None and status == 401:
            rejected(llm.spec)
        return UpstreamError(
            502,
            f"upstream rejected the gateway's credentials for LLM {llm.slug!r}",
            retryable=False,
            code="upstream_auth_failed",
        )
    if status >= 500:
        return UpstreamError(
            502,
            f"upstream error {status}: {message or 'no message'}",
            retryable=retryable,
            code="upstream_error",
            body=body,
        )
    out_headers = {}
    if status == 429 and "retry-after" in headers:
        out_headers["retry-after"] = headers["retry-after"]
    kind = _KINDS.get(status, "invalid_request_error")
    fields = vendor_fields(untranslated, body) if untranslated else _NO_FIELDS
    return UpstreamError(
        status,
        message or f"upstream returned {status}",
        retryable=retryable,
        type=fields.type or kind,
        code=fields.code or vendor_code or f"upstream_{status}",
        body=body,
        headers=out_headers,
        param=fields.param,
        details=fields.details,
    )


_NO_FIELDS = VendorFields()
_KINDS = {429: "rate_limit_error", 402: "insufficient_quota"}
"""The edge's `type` of a vendor's 4xx where the vendor gave none usable: a 402 (credit or payment, e.g.
OpenRouter's) is the `insufficient_quota` of the edge's own 402 (its budgets), so a client sees one kind."""


def _untranslated(provider: Provider, call: OpenAIRequest) -> str:
    """The dialect in which `call` reached the vendor as the client sent it, "" when it was translated (a
    provider without `untranslated` always translates)."""
    dialect_of = getattr(provider, "untranslated", None)
    return dialect_of(call) if dialect_of is not None else ""


_TOO_DEEP = (orjson.JSONEncodeError, RecursionError)
"""What translating a vendor's reply into the caller's dialect raises when the reply nests too deeply: its walks
recurse and orjson re-encodes at most 255 levels (a vendor's tool-call arguments sent as a nested structure)."""


def _too_deep() -> UpstreamError:
    """The vendor's fault, told as such: a 502 (a stream already under way ends with an error event), not a 500."""
    return UpstreamError(
        502, "upstream sent a response nested too deeply to translate", retryable=True, code="upstream_bad_response"
    )


_MISSHAPEN_REPLY = (*MISSHAPEN, ValueError)
"""What reading a vendor's reply raises where it has a shape its format does not allow: the readers use `.get`
and iterate (a list or `null` where an object goes, a string in `content`), convert counts with `int()` (a
string token count) and decode text (invalid UTF-8 is a `ValueError`). Caught after `_TOO_DEEP` (orjson's encode
error is a `TypeError`), around the reader only: a well-behaved reply costs nothing more (no pass over it)."""


def _misshapen() -> UpstreamError:
    """A vendor reply of the wrong shape: the vendor's fault, a 502 in the caller's dialect (an error event once a
    stream is under way), where it used to be a 500 "internal error in the edge gateway"."""
    return UpstreamError(
        502, "upstream sent a response of an unexpected shape", retryable=True, code="upstream_bad_response"
    )


async def _attempt(
    transport: UpstreamTransport,
    llm: CompiledLLM,
    request: UpstreamRequest,
    call: OpenAIRequest,
    model: str,
    native: bool,
    provider: Provider,
) -> FullResult | StreamResult:
    authorize = getattr(llm.provider, "authorize", None)  # optional: a vendor whose tokens expire (Vertex AI)
    if authorize is not None:
        request.headers["authorization"] = await authorize(llm.spec)
    reply = await transport.send(request)
    if reply.status_code >= 400:
        await reply.aclose()
        err = _upstream_error(llm, reply.status_code, reply.body, reply.headers, _untranslated(provider, call))
        err.upstream_status = reply.status_code
        raise err
    if reply.chunks is None:
        try:
            if native:
                return FullResult(reply.status_code, reply.headers, reply.body, provider.native_usage(reply.body))
            body, usage = provider.parse(call, model, reply.body)
        except _TOO_DEEP:
            raise _too_deep() from None
        except _MISSHAPEN_REPLY:
            raise _misshapen() from None
        return FullResult(reply.status_code, reply.headers, body, usage)
    events = (
        _native_events(reply, provider)
        if native
        else _translated_events(reply, provider.stream_translator(call, model))
    )
    usage_holder: Usage = events.usage
    iterator = events.__aiter__()
    try:
        first = await iterator.__anext__()  # never empty
    except StopAsyncIteration:
        await reply.aclose()
        raise UpstreamError(
            502, "upstream stream ended before its first chunk", retryable=True, code="upstream_empty_stream"
        ) from None
    except BaseException:
        await reply.aclose()
        raise
    return StreamResult(reply.status_code, reply.headers, first, iterator, usage_holder, reply)


class _translated_events:
    """OpenAI SSE events from a vendor stream, one non-empty list per network read; raises `UpstreamError` if it
    breaks before its end marker.

    Why lists: a vendor (or the network) often delivers several events in one read. The pipeline runs the chunk
    hooks on each event but relays a read's events to the client with one `send`, and one step of this iterator
    per read instead of per event; TTFB is unchanged (the first read goes out as soon as it is in)."""

    def __init__(self, reply: UpstreamReply, translator: object) -> None:
        self.reply = reply
        self.translator = translator
        self.usage = translator.usage  # type: ignore[attr-defined]

    async def __aiter__(self) -> AsyncIterator[list[bytes]]:
        splitter = _splitter_of(self.translator)
        translate = self.translator.feed  # type: ignore[attr-defined]
        assert self.reply.chunks is not None
        started = False
        try:
            async for piece in self.reply.chunks:
                batch: list[bytes] = []
                try:
                    for event in splitter.feed(piece):
                        batch.extend(translate(event))
                except UpstreamError:  # a vendor's in-band error: what its read held before it goes out first
                    if batch and started:  # (before the stream's start, the call is retried or falls back)
                        yield batch
                    raise
                if batch:
                    started = True
                    yield batch
            batch = self.translator.finish()  # type: ignore[attr-defined]
        except _TOO_DEEP:
            raise _too_deep() from None
        except _MISSHAPEN_REPLY:
            raise _misshapen() from None
        if batch:
            yield batch
        if not self.translator.done:  # type: ignore[attr-defined]
            raise UpstreamError(
                502, "upstream stream ended without its end marker", retryable=True, code="upstream_stream_broken"
            )


def _splitter_of(translator: object) -> SSESplitter:
    """How a vendor's stream is cut into events: SSE, unless the translator (or one it wraps, as a Responses
    stream wraps the vendor's) brings its own `splitter` (Bedrock's binary event stream)."""
    while translator is not None:
        splitter = getattr(translator, "splitter", None)
        if splitter is not None:
            return splitter  # type: ignore[no-any-return]
        translator = getattr(translator, "inner", None)
    return SSESplitter()


class _native_events:
    """A vendor-native stream relayed event by event (in per-read lists, as above), reading usage on the way."""

    def __init__(self, reply: UpstreamReply, provider: object) -> None:
        self.reply = reply
        self.provider = provider
        self.usage = Usage()

    async def __aiter__(self) -> AsyncIterator[list[bytes]]:
        native_splitter = getattr(self.provider, "native_splitter", None)  # Bedrock: binary event-stream frames
        splitter = native_splitter() if native_splitter is not None else SSESplitter()
        assert self.reply.chunks is not None
        read_usage = self.provider.native_stream_usage  # type: ignore[attr-defined]
        usage = self.usage
        try:
            async for piece in self.reply.chunks:
                batch = splitter.feed(piece)
                for event in batch:
                    read_usage(event, usage)
                if batch:
                    yield batch
        except _MISSHAPEN_REPLY:
            raise _misshapen() from None
        tail = splitter.tail()
        if tail.strip():
            yield [tail]


def may_fall_back(err: UpstreamError) -> bool:
    """Whether an upstream failure is one a fallback target could fix (not the client's own 4xx)."""
    return err.retryable or err.status_code >= 500


def fallback_targets(cfg: CompiledConfig, llm: CompiledLLM, model: str) -> list[tuple[CompiledLLM, str]]:
    """The LLM's fallbacks in order, each with the model to ask it for (its own, else its default)."""
    out: list[tuple[CompiledLLM, str]] = []
    for fb in llm.config.fallbacks:
        other = cfg.llms_by_slug.get(fb.llm_slug)
        if other is not None and other is not llm:
            out.append((other, fb.model or other.config.default_model or model))
    return out


async def call_with_retries(
    *,
    transport: UpstreamTransport,
    target: CompiledLLM,
    model: str,
    request: UpstreamRequest,
    call: OpenAIRequest,
    native: bool,
    backoff: Backoff,
    attempted: Attempted,
    on_retry: Callable[[CompiledLLM], None] | None = None,
    provider: Provider | None = None,
    move_on: Callable[[], bool] | None = None,
    tracing: EdgeTracing | None = None,
    kind: str = "chat",
) -> FullResult | StreamResult:
    """Call one target, retrying retryable failures; raises the last `UpstreamError` when the retries ran out.

    `provider` replaces the target's own (a Responses request's adapter, `providers.responses`). `move_on`
    says whether another deployment of the model is ready: when the target's breaker opens and it is, the
    retries stop here (an LLM with no healthy sibling keeps its retries). `tracing` (None when off) spans each
    attempt of a sampled request; `kind` is the request's (its GenAI operation name).
    Fallbacks are the pipeline's business: each fallback attempt re-runs the fallback LLM's plugin chain and
    policy checks before it comes back here (see `pipeline.py`).
    """
    attempted.llm, attempted.model = target, model
    if target.unavailable or target.provider is None:
        raise UpstreamError(
            502,
            f"LLM {target.slug!r} is unavailable at this edge: {target.unavailable}",
            retryable=False,
            code="llm_unavailable",
        )
    provider = provider or target.provider
    retries = target.config.max_retries
    health = target.health
    for retry in range(retries + 1):
        attempted.attempts += 1
        call_once = _attempt(transport, target, request, call, model, native, provider)
        if tracing is not None:
            span = tracing.start_attempt(target.spec, model, kind, attempted.attempts, retry, request.url)
            call_once = span.around(call_once) if span is not None else call_once
        # perf_counter, not loop.time(): uvloop's clock counts whole milliseconds, read once per loop turn
        started = time.perf_counter()
        try:
            result = await call_once
            attempted.upstream_s += time.perf_counter() - started
            health.succeeded()
            return result
        except UpstreamError as err:
            attempted.upstream_s += time.perf_counter() - started
            opened = False
            if may_fall_back(err):
                opened = health.failed(time.monotonic())
            else:
                health.succeeded()  # the vendor answered; the request was the problem
            if not err.retryable or retry == retries or (opened and move_on is not None and move_on()):
                raise  # an open breaker with a healthy sibling: that one, rather than more of the same
            attempted.retries += 1
            if on_retry is not None:
                on_retry(target)
            await asyncio.sleep(backoff.delay(retry, err.headers.get("retry-after")))
    raise AssertionError("unreachable: the loop returns or raises")
