"""Per-request behaviour switches: latency, faults and usage shaping, parsed from a header or the body.

A request chooses its faults in the `x-mock-fault` header, e.g. `x-mock-fault: status=503; latency_ms=200`, or in a
`mock` field of its JSON body, either as the same string or as an object (`"mock": {"status": 429}`). Options are
`name=value` pairs separated by `;` or `,`; flags may be bare (`drop_connection`) or `=true|false|1|0`. Precedence,
lowest first: server flags (`--latency-ms` ..., `--fault`), the body's `mock`, the header.

Options (integers unless noted):
  status=CODE            answer with CODE in the vendor's error JSON (429 adds `retry-after`/`retry-after-ms`)
  retry_after=SECONDS    float; `retry-after` (rounded up) and `retry-after-ms` headers on the error (429: 1)
  latency_ms=N           wait N ms before the response starts (also before errors)
  ttft_ms=N              streams: wait N ms after the headers, before the first event
  chunk_delay_ms=N       streams: wait N ms between events
  chunks=N               streams: merge content (and tool-argument) deltas into at most N events each
  burst                  streams: send every event in one write (a vendor that had the whole answer at once)
  fail_after_chunks=N    streams: send N events, then close the connection abruptly (no [DONE]/message_stop)
  error_after_chunks=N   streams: send N events, then the vendor's in-band error event, then end the stream
  done_after_error       with error_after_chunks: send the stream's end marker after the error event (an
                         OpenAI-compatible server that ends a failed stream with `data: [DONE]` all the same)
  drop_connection        close the connection without any response
  malformed              answer 200 with a body that is not valid JSON (streams: an invalid first event)
  fail_times=N, key=K    apply the failure options above only to the first N requests carrying key K
                         (counted across routes until POST /_mock/reset); with no failure option, status=503
  reply_tokens=N         pad or cut the reply to exactly N tokens (before max_tokens applies)
  cached_tokens=N        report N prompt tokens as read from cache (OpenAI cached_tokens, Anthropic cache_read)
  cache_write_tokens=N   Anthropic: report N prompt tokens as written to cache (cache_creation_input_tokens)
  name_stop              OpenAI chat: name the stop sequence that ended the reply in the choice's `stop_reason`,
                         as vLLM's OpenAI-compatible server does (OpenAI itself never says which one matched)
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

_INT_OPTIONS = frozenset(
    {
        "status",
        "latency_ms",
        "ttft_ms",
        "chunk_delay_ms",
        "chunks",
        "fail_after_chunks",
        "error_after_chunks",
        "fail_times",
        "reply_tokens",
        "cached_tokens",
        "cache_write_tokens",
    }
)
_FLAG_OPTIONS = frozenset({"drop_connection", "malformed", "burst", "name_stop", "done_after_error"})
_FLOAT_OPTIONS = frozenset({"retry_after"})
_STR_OPTIONS = frozenset({"key"})
_KNOWN = _INT_OPTIONS | _FLAG_OPTIONS | _FLOAT_OPTIONS | _STR_OPTIONS
_TRUE = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


class FaultSpecError(ValueError):
    """A fault option the mock cannot honour; answered as a vendor-style 400."""


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """Everything a request asked of the mock. Unset options are None/False/0."""

    status: int | None = None
    retry_after: float | None = None
    latency_ms: int = 0
    ttft_ms: int = 0
    chunk_delay_ms: int = 0
    chunks: int | None = None
    burst: bool = False
    fail_after_chunks: int | None = None
    error_after_chunks: int | None = None
    done_after_error: bool = False
    drop_connection: bool = False
    malformed: bool = False
    fail_times: int | None = None
    key: str | None = None
    reply_tokens: int | None = None
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    name_stop: bool = False

    @property
    def fails(self) -> bool:
        """Whether the plan carries any failure (as opposed to only latency or usage shaping)."""
        return (
            self.status is not None
            or self.drop_connection
            or self.malformed
            or self.fail_after_chunks is not None
            or self.error_after_chunks is not None
        )

    def without_failures(self) -> FaultPlan:
        """The same plan with every failure option cleared: what a request past its `fail_times` gets."""
        return replace(
            self,
            status=None,
            drop_connection=False,
            malformed=False,
            fail_after_chunks=None,
            error_after_chunks=None,
        )

    def describe(self) -> dict[str, Any]:
        """The options that differ from an empty plan, for the request log."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != f.default}


EMPTY_PLAN = FaultPlan()


def parse_spec(spec: str) -> dict[str, Any]:
    """Options from the header syntax: `name=value` or bare flags, separated by `;` or `,`."""
    options: dict[str, Any] = {}
    for part in spec.replace(",", ";").split(";"):
        part = part.strip()
        if not part:
            continue
        name, has_value, value = part.partition("=")
        name, value = name.strip().lower(), value.strip()
        options[name] = value if has_value else True
    return options


def plan_from(base: FaultPlan, options: dict[str, Any]) -> FaultPlan:
    """`base` with `options` applied, every value checked; raises FaultSpecError with a readable reason."""
    if not options:
        return base
    changes: dict[str, Any] = {}
    for name, raw in options.items():
        if name not in _KNOWN:
            known = ", ".join(sorted(_KNOWN))
            raise FaultSpecError(f"unknown mock fault option {name!r}; known options: {known}")
        changes[name] = _coerce(name, raw)
    plan = replace(base, **changes)
    if plan.status is not None and not 400 <= plan.status <= 599:
        raise FaultSpecError(f"mock fault status must be between 400 and 599, got {plan.status}")
    if plan.chunks is not None and plan.chunks < 1:
        raise FaultSpecError("mock fault option 'chunks' must be >= 1")
    if plan.fail_times is not None and not plan.key:
        raise FaultSpecError("mock fault option 'fail_times' needs a 'key' naming the requests it counts")
    return plan


def _coerce(name: str, raw: Any) -> Any:
    if name in _FLAG_OPTIONS:
        if isinstance(raw, bool):
            return raw
        flag = _TRUE.get(str(raw).strip().lower())
        if flag is None:
            raise FaultSpecError(f"mock fault option {name!r} is a flag: use it bare or with true/false")
        return flag
    if name in _STR_OPTIONS:
        if not isinstance(raw, str | int) or isinstance(raw, bool) or str(raw) == "":
            raise FaultSpecError(f"mock fault option {name!r} needs a non-empty value")
        return str(raw)
    if isinstance(raw, bool):
        raise FaultSpecError(f"mock fault option {name!r} needs a number, got {raw!r}")
    try:
        value = float(raw) if name in _FLOAT_OPTIONS else int(raw)
    except (TypeError, ValueError):
        raise FaultSpecError(f"mock fault option {name!r} needs a number, got {raw!r}") from None
    if value < 0:
        raise FaultSpecError(f"mock fault option {name!r} must be >= 0, got {raw!r}")
    return value


class FailCounter:
    """Counts requests per `fail_times` key, so the first N fail and the rest succeed (retry tests)."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    def settle(self, plan: FaultPlan) -> FaultPlan:
        """The plan this request really gets once its `fail_times` budget is taken into account."""
        if plan.fail_times is None or plan.key is None:
            return plan
        count = self.seen.get(plan.key, 0) + 1
        self.seen[plan.key] = count
        if count > plan.fail_times:
            return plan.without_failures()
        return plan if plan.fails else replace(plan, status=503)

    def reset(self) -> None:
        self.seen.clear()
