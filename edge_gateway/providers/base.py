"""What every provider does: turn an OpenAI-shaped call into a vendor request, and the vendor's answer back.

A provider is stateless and shared by every LLM of its vendor; per-LLM facts (base URL, decrypted key,
extra headers, timeouts) come in the `UpstreamSpec` the config store compiled. The pipeline only ever
sees OpenAI shapes: translation in both directions lives here, per vendor, and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from ..upstream import DEFAULT_MAX_RESPONSE_BYTES, UpstreamRequest

__all__ = [
    "MISSHAPEN",
    "CallKind",
    "OpenAIRequest",
    "Provider",
    "StreamTranslator",
    "UpstreamSpec",
    "Usage",
    "client_headers",
    "estimate_tokens",
    "join_url",
    "token_count",
    "MAX_TOKEN_COUNT",
]

CallKind = str
"""One of "chat", "completions", "embeddings", "responses" (translated by `providers.responses`)."""

MISSHAPEN = (TypeError, AttributeError, KeyError, IndexError)
"""What translating a client's body into another vendor's format raises where a field has a type or shape its
format does not allow (Anthropic's `system: 5`, Gemini's `functionDeclarations: 5`): the translators read fields
with `.get` and iterate them. The upstream phase answers these from a provider's `build` as the client's 400
(`fallbacks.upstream_request`); a `build` that does more than translate turns them into its own error for that part
(Bedrock's signing: `SigningFailed`, a 500), so a fault of the edge never reads as the client's."""


@dataclass(frozen=True, slots=True)
class UpstreamSpec:
    """Everything about one LLM that is needed to call it, compiled once per config."""

    llm_id: int
    slug: str
    vendor: str
    api_base: str
    api_key: str
    extra_headers: dict[str, str]
    connect_timeout_s: float
    first_byte_timeout_s: float
    idle_stream_timeout_s: float
    metadata: dict[str, Any] = field(default_factory=dict)
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES


@dataclass(slots=True)
class OpenAIRequest:
    """The client's request body, decoded once. `data` is the OpenAI-shaped JSON object."""

    kind: CallKind
    raw: bytes
    data: dict[str, Any]
    model: str
    stream: bool
    client_wants_usage: bool
    max_tokens: int | None
    choices: int = 1
    """Replies asked for (`n`, legacy Completions' `best_of`, Gemini's `candidateCount`): each may use
    `max_tokens`, so a budget reserves that many times it."""

    @classmethod
    def from_data(cls, kind: CallKind, raw: bytes, data: dict[str, Any]) -> OpenAIRequest:
        stream = data.get("stream") is True
        options = data.get("stream_options")
        wants_usage = bool(stream and isinstance(options, dict) and options.get("include_usage"))
        max_tokens = data.get("max_completion_tokens", data.get("max_tokens", data.get("max_output_tokens")))
        if type(max_tokens) is not int or max_tokens < 1:
            max_tokens = None  # budgets then reserve the model's output limit; never less than nothing
        n = data.get("n")
        choices = n if type(n) is int and n > 1 else 1
        if kind == "completions":
            best_of = data.get("best_of")
            if type(best_of) is int and best_of > choices:
                choices = best_of
        return cls(kind, raw, data, str(data.get("model") or ""), stream, wants_usage, max_tokens, choices)


MAX_TOKEN_COUNT = 1 << 31
"""The largest token count a vendor may report for one reply (no model's context comes near it)."""


def token_count(value: Any) -> int:
    """A vendor-reported token count as accounting takes it: an int (or a whole float) in [0, MAX_TOKEN_COUNT], None
    or absent as 0.

    Why: the count becomes the request's cost and a budget's spend. A string crashed accounting (the record was
    lost), a negative count credited the budget, a float of 1e300 or a count past 64 bits broke the cost's
    arithmetic. Anything else raises `ValueError`, which the upstream phase answers as the vendor's 502
    `upstream_bad_response` (`upstream_call._MISSHAPEN_REPLY`). One type check and a comparison per field."""
    if type(value) is int and 0 <= value <= MAX_TOKEN_COUNT:
        return value
    if value is None:
        return 0
    if type(value) is float and value.is_integer() and 0 <= value <= MAX_TOKEN_COUNT:
        return int(value)  # `12.0`, as some OpenAI-compatible servers write counts: a count all the same
    raise ValueError(f"invalid token count from the vendor: {str(value)[:40]!r}")


@dataclass(slots=True)
class Usage:
    """Token counts in OpenAI's meaning: `prompt_tokens` includes cached prompt tokens."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    tool_calls: int = 0
    choices: int = 0
    reported: bool = False
    """True when the vendor reported the counts; False when the edge estimated them."""

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class StreamTranslator(Protocol):
    """Turns one vendor SSE event into zero or more OpenAI SSE events (each a complete `data: ...\\n\\n`)."""

    usage: Usage

    def feed(self, event: bytes) -> list[bytes]: ...

    def finish(self) -> list[bytes]:
        """Called once the vendor stream ended normally; returns trailing events (e.g. the `[DONE]` marker)."""
        ...

    @property
    def done(self) -> bool:
        """Whether the vendor signalled the end of the stream ([DONE] / message_stop)."""
        ...


class Provider(Protocol):
    vendor: str

    def build(self, spec: UpstreamSpec, call: OpenAIRequest, model: str) -> UpstreamRequest: ...

    def parse(self, call: OpenAIRequest, model: str, body: bytes) -> tuple[bytes, Usage]:
        """Translate a successful non-streamed vendor body into the OpenAI body the client gets, plus usage."""
        ...

    def stream_translator(self, call: OpenAIRequest, model: str) -> StreamTranslator: ...

    def error_message(self, body: bytes) -> str:
        """The human-readable message inside a vendor error body (empty when there is none)."""
        ...

    def native_request(
        self, spec: UpstreamSpec, method: str, path: str, query: str, headers: dict[str, str], body: bytes, stream: bool
    ) -> UpstreamRequest:
        """The vendor-native pass-through (`/llm/call/{slug}/{path}`): same body, vendor auth injected."""
        ...

    def native_usage(self, body: bytes) -> Usage: ...

    def native_stream_usage(self, event: bytes, usage: Usage) -> None: ...


def json_reply_usage(body: bytes, field: str, read: Callable[[Any, Usage], object]) -> Usage:
    """A native (pass-through) reply's usage: `read(reply[field], usage)` when the body is a JSON object, else
    none (a vendor's non-JSON answer is relayed as it is and costs what it reported: nothing)."""
    usage = Usage()
    try:
        reply = orjson.loads(body)
    except orjson.JSONDecodeError:
        return usage
    if isinstance(reply, dict):
        read(reply.get(field), usage)
    return usage


CLIENT_FORWARD: dict[str, tuple[str, ...]] = {
    "anthropic": ("anthropic-version", "anthropic-beta"),
    "google": (),
    "vertex": (),
}
"""Client headers forwarded on the translated routes (`/v1/*`), per vendor; other vendors get `OPENAI_FORWARD`.

Why these only: they select API features the client's code relies on (beta tools, a newer Messages version).
Never forwarded: the client's key (`authorization`, `x-api-key`; the LLM's key is injected), hop-by-hop and
body framing headers, `openai-organization` / `openai-project` (they name the account of a key, and the key
upstream is the edge's, not the client's), SDK telemetry (`x-stainless-*`, `user-agent`), and any header of one
vendor family sent to the other. An LLM's own `extra_headers` win over the client's."""
OPENAI_FORWARD = ("openai-beta",)


def client_headers(spec: UpstreamSpec, headers: dict[str, str]) -> dict[str, str]:
    """The client's headers that go upstream with a translated call (`CLIENT_FORWARD`)."""
    names = CLIENT_FORWARD.get(spec.vendor, OPENAI_FORWARD)
    return {n: headers[n] for n in names if n in headers and n not in spec.extra_headers}


NATIVE_FORWARD = frozenset({"content-type", "accept", "anthropic-version", "anthropic-beta", "openai-beta"})
"""Client headers a native pass-through forwards (the vendor's auth headers are the edge's, never the client's)."""


def native_request(
    spec: UpstreamSpec,
    request: tuple[str, str, str, bytes, bool],
    client_headers: dict[str, str],
    vendor_headers: dict[str, str],
    client_wins: tuple[str, ...] = (),
) -> UpstreamRequest:
    """The one builder of vendor-native pass-through requests (`/llm/call/{slug}/{path}`), for every provider.

    `request` is (method, path, query string, body, stream). Forwarded client headers, then the vendor's
    (auth, content type), then the `client_wins` headers the client chose (e.g. its `anthropic-version`).
    The query string is joined with `?`, or `&` when the base URL already has one; none gives no `?`.
    """
    method, path, query, body, stream = request
    forward = {k: v for k, v in client_headers.items() if k in NATIVE_FORWARD}
    forward.update(vendor_headers)
    for name in client_wins:
        if name in client_headers:
            forward[name] = client_headers[name]
    url = join_url(spec.api_base, path)
    if query:
        url = f"{url}{'&' if '?' in url else '?'}{query}"
    return UpstreamRequest(
        method,
        url,
        forward,
        body,
        stream,
        spec.connect_timeout_s,
        spec.first_byte_timeout_s,
        spec.idle_stream_timeout_s,
        spec.max_response_bytes,
    )


def join_url(base: str, path: str) -> str:
    """`base` + `path` without doubling a version segment (`.../v1` + `v1/messages` -> `.../v1/messages`); a
    query string on the base (`...?api-version=...`) stays after the joined path."""
    base, _, base_query = base.partition("?")
    base = base.rstrip("/")
    path = path.lstrip("/")
    if base.endswith("/v1") and (path == "v1" or path.startswith("v1/")):
        base = base[:-3]
    url = f"{base}/{path}"
    return f"{url}?{base_query}" if base_query else url


def estimate_tokens(value: Any) -> int:
    """A cheap token estimate (4 characters per token) over every string inside a JSON value."""
    return (_chars(value) + 3) // 4


def _chars(value: Any) -> int:
    """Characters of every string inside `value`. The common shape, a list of flat message objects, is counted in
    loops, without a generator or a call per string: it runs on every request under a tokens-per-minute limit."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        total = 0
        for item in value:
            if isinstance(item, dict):
                for field in item.values():
                    total += len(field) if isinstance(field, str) else _chars(field)
            else:
                total += len(item) if isinstance(item, str) else _chars(item)
        return total
    if isinstance(value, dict):
        total = 0
        for field in value.values():
            total += len(field) if isinstance(field, str) else _chars(field)
        return total
    return 0
