"""Policy checks between authentication and the upstream call: rate limits, then the budget pre-check.

The model allow-list is enforced by routing (`CompiledConfig.route`), the client-IP list and the
app-to-LLM link at authentication; what remains here is what costs state: requests and tokens per minute
(per app, and per user within the app) and budgets (see `budgets.py` for the reservation scheme). With leasing
on (the edge talks to NATS), rpm and tpm limits are also leased per fixed minute from the control plane's ledger:
a tpm lease takes the request's token bound before the call and gets back what the vendor did not count.
"""

from __future__ import annotations

from decimal import Decimal

import orjson

from shared_sdk.snapshot import DEFAULT_MAX_OUTPUT_TOKENS, ModelPriceConfig

from .budgets import LOW_WATER_UNITS, BudgetState, BudgetTracker, LeaseSource, Reservation
from .errors import GatewayError
from .exchange import Exchange
from .providers.base import estimate_tokens
from .rate_headers import rate_headers, refused_headers
from .ratelimit import RateLease, RateLimiter, Standing

__all__ = [
    "admit",
    "check_request_rate",
    "input_token_bound",
    "release_budget",
    "reservation_bound",
    "reserve_budget",
    "token_bound",
]

_MILLION = Decimal(1_000_000)
_MESSAGE_OVERHEAD_TOKENS = 8
"""Tokens a vendor may add per message (role, separators) on top of its text; 8 exceeds OpenAI's 3-4."""


DEFAULT_MAX_INPUT_TOKENS = 1_048_576
"""The input limit assumed for a model whose price names none (`ModelPriceConfig.max_input_tokens`): what a request
that gives media other than images by reference reserves for its input."""
IMAGE_REFERENCE_TOKENS = 50_000
"""What one image given by reference may cost at most: vendors scale an image down before counting it, and the
most any known model counts for one is gpt-4o-mini's 48,169 (high detail, 8 tiles; gpt-4o's 1,445, Claude's ~1,600,
Gemini's 258 per 768-pixel tile)."""
IMAGE, MEDIA = "image", "media"


def input_token_bound(value: object, media: list[str] | None = None) -> int:
    """A strict upper bound of a request's input tokens: the UTF-8 bytes of every string in it (no tokenizer
    makes more tokens than bytes), one per integer (a prompt given as token ids), plus a per-message overhead.
    The list of flat message objects, the common shape, is walked without recursion: this runs on every request
    under a budget or a tpm lease.

    What bytes do not bound: media given by reference (`media_reference`), whose tokens follow its pixels, pages or
    seconds. With `media`, the kind of each content part that is one is appended to it (the caller bounds an image
    by `IMAGE_REFERENCE_TOKENS`, other media by the model's input limit)."""
    if isinstance(value, str):
        return len(value) if value.isascii() else len(value.encode())
    if isinstance(value, list):
        total = 0
        for item in value:
            if not isinstance(item, dict):
                total += input_token_bound(item, media)
                continue
            inner = media if media is None or "role" in item else _found(item, media)  # a message is no media
            total += _MESSAGE_OVERHEAD_TOKENS
            for field in item.values():
                if isinstance(field, str):
                    total += len(field) if field.isascii() else len(field.encode())
                else:
                    total += input_token_bound(field, inner)
        return total
    if isinstance(value, dict):
        inner = media if media is None else _found(value, media)
        return _MESSAGE_OVERHEAD_TOKENS + sum(input_token_bound(item, inner) for item in value.values())
    if isinstance(value, int):  # a token id: embeddings' and legacy completions' `input` / `prompt` may be arrays
        return 1
    return 0


def _found(part: dict[str, object], media: list[str]) -> list[str] | None:
    """Append `part`'s kind to `media` if it is media by reference; what to look for inside it: nothing once it is
    (its `source` or `file` names the same media again), else `media`."""
    kind = media_reference(part)
    if kind is None:
        return media
    media.append(kind)
    return None


def media_reference(part: dict[str, object]) -> str | None:
    """`IMAGE` or `MEDIA` when a content part points at an image or other media (a video, audio, a document) that
    the vendor fetches or holds, else None; in any caller's shape: OpenAI's `image_url` (and `video_url`,
    `audio_url` of compatible servers) with an http(s) URL, the Responses API's `input_image` by URL or file id, a
    `file` / `input_file` by file id or URL, Anthropic's `image` / `document` with a `url` or `file` source,
    Gemini's `fileData` (an image by its MIME type), Bedrock's `s3Location` (of any kind). A `data:` URL or base64
    data is inline: its bytes count, and they exceed its tokens."""
    kind = part.get("type")
    if type(kind) is str:
        if kind == "input_image":
            url = part.get("image_url")
            return IMAGE if part.get("file_id") or (isinstance(url, str) and not url.startswith("data:")) else None
        if kind.endswith("_url"):
            url = part.get(kind)
            if isinstance(url, dict):
                url = url.get("url")
            if isinstance(url, str) and not url.startswith("data:"):
                return IMAGE if kind == "image_url" else MEDIA
            return None
        if kind == "file" or kind == "input_file":
            inner = part.get("file", part) if kind == "file" else part
            return MEDIA if isinstance(inner, dict) and (inner.get("file_id") or inner.get("file_url")) else None
        if kind == "image" or kind == "document":
            source = part.get("source")
            if isinstance(source, dict) and source.get("type") in ("url", "file"):
                return IMAGE if kind == "image" else MEDIA
            return None
    file_data = part.get("fileData") or part.get("file_data")
    if isinstance(file_data, dict):
        mime = file_data.get("mimeType") or file_data.get("mime_type")
        return IMAGE if isinstance(mime, str) and mime.startswith("image/") else MEDIA
    return MEDIA if isinstance(part.get("s3Location"), dict) else None


_NATIVE_MEDIA_MARKERS = (b"url", b"Url", b"file", b"File", b"uri", b"Uri", b"s3Location")
"""In a native body that is not a JSON object, any of these may name media by reference: such a body is bounded by
the model's input limit (a false alarm only reserves more)."""


def _prompt_bound(ex: Exchange) -> int:
    """The input's token bound, computed once per request (a fallback re-reserves with the same input)."""
    if ex.prompt_bound >= 0:
        return ex.prompt_bound
    call = ex.call
    assert call is not None
    if ex.kind == "native":  # any vendor's shape, maybe not JSON at all: every byte may be a token
        raw = call.raw
        bound = len(raw) + _MESSAGE_OVERHEAD_TOKENS
        media: list[str] = []
        if call.data:  # a JSON object in the vendor's own shape (Bedrock's `s3Location` sources too)
            input_token_bound(call.data, media)
        elif any(marker in raw for marker in _NATIVE_MEDIA_MARKERS):
            media.append(MEDIA)
    else:
        data = call.data
        media = []
        bound = input_token_bound(
            data.get("messages")
            or data.get("prompt")
            or data.get("input")
            or data.get("contents")
            or data.get("requests")  # Gemini's batchEmbedContents
            or data.get("content")  # and embedContent
            or "",
            media,
        )
        system = data.get("system") or data.get("systemInstruction") or data.get("instructions")
        bound += _MESSAGE_OVERHEAD_TOKENS + (input_token_bound(system, media) if system else 0)
        for field in _DEFINITIONS:
            definitions = data.get(field)
            if definitions:
                bound += len(orjson.dumps(definitions))
    if media:
        bound += media.count(IMAGE) * IMAGE_REFERENCE_TOKENS
        ex.prompt_media = MEDIA in media
    ex.prompt_bound = bound
    return bound


def _input_bound(ex: Exchange, price: ModelPriceConfig | None) -> int:
    """The input tokens the model can bill at most: the bytes' bound (with `IMAGE_REFERENCE_TOKENS` per image given
    by reference), capped by the model's input limit (a longer input is refused, not billed); an input with other
    media by reference (a video, a document), which nothing smaller bounds, the whole limit
    (`DEFAULT_MAX_INPUT_TOKENS` when the price names none)."""
    bound = _prompt_bound(ex)
    limit = price.max_input_tokens if price is not None else None
    if ex.prompt_media:
        return limit if limit else max(bound, DEFAULT_MAX_INPUT_TOKENS)
    return min(bound, limit) if limit else bound


_EMBEDDING_KINDS = frozenset({"embeddings", "gemini_embed", "gemini_batch_embed"})
"""Kinds whose answer is vectors: nothing generated, so no completion tokens to reserve."""
_DEFINITIONS = ("tools", "functions", "tool_choice", "response_format", "text", "toolConfig", "generationConfig")
"""Fields the vendor reads as prompt tokens besides the messages: tool and function definitions, the tool choice,
structured-output schemas (`response_format`, the Responses API's `text.format`, Gemini's `responseSchema` in
`generationConfig`). Their keys count too (a schema's property names), so each is bounded by its JSON bytes. Left
out, 60 KB of tool schemas under a two-word message reserved the message only."""


def _completion_bound(ex: Exchange, price: ModelPriceConfig | None) -> int:
    """`max_tokens`, else the model's output limit (a default without a price), for each reply asked for (`n`);
    none for embeddings."""
    call = ex.call
    assert call is not None
    if ex.kind in _EMBEDDING_KINDS:
        return 0
    if call.max_tokens is not None:
        return call.max_tokens * call.choices
    return (price.max_output_tokens if price is not None else DEFAULT_MAX_OUTPUT_TOKENS) * call.choices


def _price(ex: Exchange) -> ModelPriceConfig | None:
    llm = ex.llm
    return ex.cfg.price(llm.config.vendor, ex.model) if llm is not None else None


def token_bound(ex: Exchange) -> int:
    """What the request can use at most in tokens (input bound + `max_tokens` or the model's output limit): what a
    tokens-per-minute lease takes before the call; settlement gives back what the vendor did not count."""
    if ex.call is None:
        return 0
    price = _price(ex)
    return _input_bound(ex, price) + _completion_bound(ex, price)


def reservation_bound(ex: Exchange) -> Decimal:
    """What the request can cost at most: its input bound at the prompt price plus `max_tokens` (else the
    model's output limit) at the completion price. Settlement replaces it with the real cost."""
    if ex.llm is None or ex.call is None:
        return Decimal(0)
    return _bound_at(ex, _price(ex))


def _bound_at(ex: Exchange, price: ModelPriceConfig | None) -> Decimal:
    if price is None or ex.call is None:
        return Decimal(0)
    prompt = _input_bound(ex, price)
    completion = _completion_bound(ex, price)
    return (prompt * price.prompt_per_million + completion * price.completion_per_million) / _MILLION


_Limit = tuple[str, int, str, bool]
"""(window key, limit, what it counts for the message, counts tokens)"""


def _limits(ex: Exchange) -> list[_Limit]:
    """The request's rate limits: requests and tokens per minute, per app and per user within the app (built once
    per request: the caller does not change between `check_request_rate` and `admit`)."""
    if ex.limits is not None:
        return ex.limits
    app = ex.app
    assert app is not None
    cfg, user = app.config, ex.user_id
    found: list[_Limit] = []
    if cfg.rate_limit_rpm:
        found.append((f"app:{app.id}:rpm", cfg.rate_limit_rpm, "requests per minute for this app", False))
    if cfg.user_rate_limit_rpm and user is not None:
        found.append((f"user:{app.id}:{user}:rpm", cfg.user_rate_limit_rpm, "requests per minute for this user", False))
    if cfg.rate_limit_tpm:
        found.append((f"app:{app.id}:tpm", cfg.rate_limit_tpm, "tokens per minute for this app", True))
    if cfg.user_rate_limit_tpm and user is not None:
        found.append((f"user:{app.id}:{user}:tpm", cfg.user_rate_limit_tpm, "tokens per minute for this user", True))
    ex.limits = found
    return found


async def admit(ex: Exchange, limiter: RateLimiter, budgets: BudgetTracker) -> None:
    """Raise 429 (with Retry-After) or 402, or record the request against its limits and budgets.

    Rate limits are about the client's request and count once; the budget check is about the LLM that will
    answer, so a fallback attempt calls `release_budget` then `reserve_budget` for its own LLM and model.
    """
    limits = _limits(ex)
    if limits:
        standings = _check_windows(ex, limiter, limits)
        if limiter.leasing and budgets.source is not None:
            await _take_rate_leases(ex, limiter, budgets.source, limits)
        for key, _, _, tokens in limits:
            if not tokens:
                limiter.add(key, 1)
        ex.rate_keys = tuple(key for key, _, _, tokens in limits if tokens)
        ex.rate_headers = rate_headers(limiter, limits, standings, ex.dialect)  # on every answer from here on
    await reserve_budget(ex, budgets)


def check_request_rate(ex: Exchange, limiter: RateLimiter) -> None:
    """429 when the caller's requests-per-minute windows are full already: checked as soon as the caller is known,
    before the post-auth plugins run, so a client over its limit costs the edge no plugin call (a plugin may call
    out to a service of its own, or redact a large body) on each refused request. Counts nothing: `admit` counts
    the request once the plugins passed it, and checks again with the tokens and the leases."""
    limits = _limits(ex)
    if limits:
        _check_windows(ex, limiter, limits, requests_only=True)


def _check_windows(
    ex: Exchange, limiter: RateLimiter, limits: list[_Limit], requests_only: bool = False
) -> list[Standing]:
    """This edge's sliding windows (its counts plus its peers' shared ones): the check that also decides alone
    while the ledger is unreachable. A TPM window takes the request's input estimate (its output is unknown);
    `requests_only`: the rpm windows alone (`check_request_rate`). Returns what each window has left once the
    request counts, for its rate-limit headers."""
    estimate = -1
    standings: list[Standing] = []
    for key, limit, what, tokens in limits:
        if not tokens:
            amount = 1
        elif requests_only:
            continue
        else:
            if estimate < 0:
                estimate = _prompt_estimate(ex)
            amount = min(estimate, limit)
        if requests_only:  # what remains is told once `admit` checks again
            wait = limiter.check(key, limit, amount)
        else:
            standing = limiter.standing(key, limit, amount)
            wait = limiter.check(key, limit, amount) if standing[0] < 0 else 0.0
            standings.append(standing)
        if wait:
            ex.rate_headers = refused_headers(limiter, limits, ex.dialect, key, wait)
            raise GatewayError.rate_limited(f"rate limit reached: {limit} {what}; retry later", wait)
    return standings


async def _take_rate_leases(ex: Exchange, limiter: RateLimiter, source: LeaseSource, limits: list[_Limit]) -> None:
    """Take one request of each rpm limit's lease and the token bound (capped at the limit) of each tpm one; a
    refusal (or a cancellation) gives back the tokens already taken."""
    bound = token_bound(ex) if any(tokens for _, _, _, tokens in limits) else 0
    holds: list[tuple[RateLease, int]] = []
    try:
        for key, limit, what, tokens in limits:
            amount = min(bound, limit) if tokens else 1
            try:
                lease = await _take_rate_lease(limiter, source, (key, limit, what, tokens), amount)
            except GatewayError:  # the namespace's minute has no more of this limit
                wait = limiter.seconds_to_next_window()
                ex.rate_headers = refused_headers(limiter, limits, ex.dialect, key, wait)
                raise
            if tokens and lease is not None and amount:
                holds.append((lease, amount))
    except BaseException:  # a 429, or the client left while a round trip was pending: nothing stays taken
        for lease, amount in holds:
            lease.settle(amount, 0)
        raise
    ex.token_holds = tuple(holds)


async def _take_rate_lease(limiter: RateLimiter, source: LeaseSource, limit_: _Limit, amount: int) -> RateLease | None:
    """`amount` of this minute's lease of a limit; one round trip when it lacks some, then 429. None when the
    ledger is unreachable: the local check that already passed decides (rate limits fail open)."""
    key, limit, what, _ = limit_
    lease = limiter.rate_lease(key, limit)
    if not lease.take(amount):
        if not await source.obtain_rate(lease, lease.lacks(amount), max(amount, 1)):
            return None
        if not lease.take(amount):
            raise GatewayError.rate_limited(
                f"rate limit reached: {limit} {what} across the namespace; retry later",
                limiter.seconds_to_next_window(),
            )
    # Low water: a quarter of what this minute's grant is (at most 1/16 of the limit), so an edge whose share is
    # small (many edges, or late in a busy minute) does not ask again on every request.
    if lease.granted - lease.used < max(amount, min(limit // 16, lease.granted // 4), 1):
        source.top_up_rate(lease, max(amount, 1))
    return lease


async def reserve_budget(ex: Exchange, budgets: BudgetTracker) -> None:
    """Reserve the upper-bound cost of calling `ex.llm` / `ex.model` on every applicable budget; 402 if one blocks.

    A leased budget whose lease cannot take the bound costs one lease round trip (bounded) before the answer."""
    states = _applicable(ex, budgets)
    if not states:
        return
    price = _price(ex)
    currency = price.currency if price is not None else ""  # no price: the request costs nothing, in no currency
    estimate = _bound_at(ex, price)
    source = budgets.source
    blocking = budgets.reserve(states, estimate, currency=currency)  # the common case: every lease has room, no I/O
    if blocking is not None and source is not None and blocking.config.currency == currency:
        beyond = await _obtain_budget_leases(budgets, source, states, estimate)
        # A snapshot applied during the round trip replaced the budgets' states (the grant went to the new ones):
        # reserve on those in force, which is where settlement gives it back.
        states = _applicable(ex, budgets)
        blocking = budgets.reserve(states, estimate, beyond, currency)
    if blocking is not None:
        b = blocking.config
        if currency and b.currency != currency:
            raise GatewayError.budget_exceeded(
                f"{b.scope} budget in {b.currency} cannot count this request: model {ex.model} is priced in "
                f"{currency}, and a budget counts only prices in its own currency (an administrator must give the "
                "budget and the price the same currency)"
            )
        raise GatewayError.budget_exceeded(
            f"{b.scope} budget exhausted: {b.limit} {b.currency} this period, {blocking.spent:.4f} spent and the "
            f"rest held by requests in flight across the namespace (this request could cost up to {estimate:.4f})"
        )
    ex.reservation = Reservation(states, estimate, currency=currency)
    if source is not None:
        for state in states:
            if state.leased and state.headroom < LOW_WATER_UNITS * estimate:
                source.top_up(state, estimate)


def _applicable(ex: Exchange, budgets: BudgetTracker) -> list[BudgetState]:
    app = ex.app
    assert app is not None
    user = ex.cfg.users.get(ex.user_id) if ex.user_id is not None else None
    return budgets.applicable(
        app.id,
        ex.user_id,
        ex.llm.id if ex.llm is not None else None,
        user.group_ids if user is not None else None,
    )


async def _obtain_budget_leases(
    budgets: BudgetTracker, source: LeaseSource, states: list[BudgetState], estimate: Decimal
) -> frozenset[int]:
    """One round trip for the leases that cannot take `estimate`; returns the budgets that may be served beyond
    their lease (the ledger unreachable and the budget `fail_open`)."""
    short = budgets.short(states, estimate)
    if not short or await source.obtain(short, estimate):
        return frozenset()
    return frozenset(state.config.id for state, _ in short if source.unreachable_open(state))


def release_budget(ex: Exchange, budgets: BudgetTracker) -> None:
    """Give back what the request holds (an attempt that failed costs nothing), before a fallback re-reserves."""
    if ex.reservation is not None:
        budgets.settle(ex.reservation, Decimal(0))
        ex.reservation = None


def _prompt_estimate(ex: Exchange) -> int:
    call = ex.call
    if call is None:
        return 0
    data = call.data
    return estimate_tokens(
        data.get("messages") or data.get("prompt") or data.get("input") or data.get("contents") or ""
    )
