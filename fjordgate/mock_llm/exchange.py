"""One vendor request from arrival to response: record, authenticate, parse, apply faults, answer.

Every vendor endpoint runs the same steps in the same order, so a fault or an auth failure looks the same on
every route:

1. record the request (headers whole, body parsed when it is JSON);
2. authenticate like the vendor (401 in its error shape) and check vendor-required headers;
3. reject a body that is not a JSON object (vendor-style 400);
4. resolve the fault plan (server flags < body `mock` < `x-mock-fault` header) and settle `fail_times`;
5. wait `latency_ms`, then drop the connection or answer the injected status if the plan says so;
6. hand over to the endpoint, which answers through `json()` or `stream()` (where `malformed` and the
   streaming faults apply) or `error()` for its own validation.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response

from .faults import FailCounter, FaultPlan, FaultSpecError, parse_spec, plan_from
from .recorder import Recorder
from .responses import DroppedConnection, EventStream, RawResponse
from .settings import MockSettings

FAULT_HEADER = "x-mock-fault"
JSON_TYPE = b"application/json"
SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]


class Invalid(Exception):
    """A request the vendor would reject with 400; carries OpenAI's `param`/`code` when they apply."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


class VendorFormat(Protocol):
    """What differs between vendors at the transport level: credentials, error shape, in-band stream errors."""

    request_id_header: bytes

    def reject(self, headers: Headers, require_key: str | None) -> tuple[int, str, str | None] | None:
        """(status, message, code) when the vendor would refuse these headers, else None."""

    def error_body(self, status: int, message: str, *, request_id: str, param: str | None, code: str | None) -> bytes:
        """The vendor's JSON error document for `status`."""

    def stream_error(self, request_id: str) -> bytes:
        """The event a vendor sends when generation fails after the stream began."""

    def invalid_json_message(self) -> str: ...

    def fault_message(self, status: int) -> str: ...


class Ids:
    """Cheap unique ids: a random per-process prefix plus a counter (no per-request randomness)."""

    def __init__(self) -> None:
        self.prefix = os.urandom(6).hex()
        self.counter = itertools.count(1)

    def next(self, kind: str) -> str:
        return f"{kind}{self.prefix}{next(self.counter):012x}"


class MockState:
    """Everything the mock remembers between requests."""

    def __init__(self, settings: MockSettings) -> None:
        self.settings = settings
        self.recorder = Recorder(settings.log_size)
        self.fail_counter = FailCounter()
        self.ids = Ids()
        server_plan = FaultPlan(
            latency_ms=settings.latency_ms,
            ttft_ms=settings.ttft_ms,
            chunk_delay_ms=settings.chunk_delay_ms,
            chunks=settings.chunks,
        )
        self.default_plan = plan_from(server_plan, parse_spec(settings.fault)) if settings.fault else server_plan

    def plan_for(self, header: str | None, body_option: Any) -> FaultPlan:
        plan = self.default_plan
        if body_option is not None:
            if isinstance(body_option, str):
                body_option = parse_spec(body_option)
            if not isinstance(body_option, dict):
                raise FaultSpecError("the 'mock' body field must be an object or an x-mock-fault string")
            plan = plan_from(plan, {str(name).lower(): value for name, value in body_option.items()})
        if header:
            plan = plan_from(plan, parse_spec(header))
        return self.fail_counter.settle(plan)

    def reset(self) -> None:
        self.recorder.reset()
        self.fail_counter.reset()


@dataclass(slots=True)
class Exchange:
    """A request that passed the common checks; the endpoint answers through one of its methods."""

    state: MockState
    vendor: VendorFormat
    request_id: str
    body: dict[str, Any]
    plan: FaultPlan
    entry: dict[str, Any]

    def id(self, kind: str) -> str:
        return self.state.ids.next(kind)

    def error(
        self, status: int, message: str, *, param: str | None = None, code: str | None = None, extra: Any = ()
    ) -> Response:
        return error_response(self.state, self.vendor, self.entry, self.request_id, status, message, param, code, extra)

    def invalid(self, problem: Invalid) -> Response:
        return self.error(400, problem.message, param=problem.param, code=problem.code)

    def json(self, payload: dict[str, Any], *, prompt_tokens: int = 0, completion_tokens: int = 0) -> Response:
        body = orjson.dumps(payload)
        if self.plan.malformed:
            body = body[: len(body) // 2]
            self.state.recorder.fault(self.entry, "malformed", self.plan.describe())
        self.state.recorder.close(self.entry, 200)
        self.state.recorder.usage(prompt_tokens, completion_tokens)
        return RawResponse(200, body, self._headers(JSON_TYPE))

    def stream(
        self,
        events: list[bytes],
        *,
        prompt_tokens: int,
        completion_tokens: int,
        content_type: bytes | None = None,
        error_event: bytes | None = None,
    ) -> Response:
        """The events as a stream; `content_type` replaces SSE's (Gemini's JSON-array stream), `error_event` the
        vendor's in-band error (a route whose error event differs from its vendor's chat one: Responses)."""
        plan = self.plan
        recorder = self.state.recorder
        if plan.malformed:
            events = [_malform(events[0]), *events[1:]]
            recorder.fault(self.entry, "malformed", plan.describe())
        elif plan.fail_after_chunks is not None:
            recorder.fault(self.entry, "fail_after_chunks", plan.describe())
        elif plan.error_after_chunks is not None:
            recorder.fault(self.entry, "error_after_chunks", plan.describe())
        recorder.close(self.entry, 200, stream=True)
        recorder.usage(prompt_tokens, completion_tokens)
        head = SSE_HEADERS if content_type is None else [(b"content-type", content_type)]
        headers = [*head, (self.vendor.request_id_header, self.request_id.encode())]
        if error_event is None:
            error_event = self.vendor.stream_error(self.request_id)
        return EventStream(events, plan=plan, error_event=error_event, headers=headers)

    def _headers(self, content_type: bytes) -> list[tuple[bytes, bytes]]:
        return [(b"content-type", content_type), (self.vendor.request_id_header, self.request_id.encode())]


async def begin(
    state: MockState, vendor: VendorFormat, request: Request, *, has_body: bool = True
) -> Exchange | Response:
    """Run steps 1-5; an Exchange means the endpoint should answer, a Response is already the answer."""
    request_id = state.ids.next("req_")
    body: Any = {}
    parse_failed = False
    if has_body:
        raw = await request.body()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body, parse_failed = raw.decode("utf-8", "replace"), True
    entry = state.recorder.open(request, request_id, body)

    def fail(status: int, message: str, code: str | None = None, extra: Any = ()) -> Response:
        return error_response(state, vendor, entry, request_id, status, message, None, code, extra)

    rejected = vendor.reject(request.headers, state.settings.require_key)
    if rejected is not None:
        return fail(*rejected)
    if parse_failed:
        return fail(400, vendor.invalid_json_message())
    if not isinstance(body, dict):
        return fail(400, "The request body must be a JSON object.")
    try:
        plan = state.plan_for(request.headers.get(FAULT_HEADER), body.get("mock"))
    except FaultSpecError as exc:
        return fail(400, str(exc), "invalid_mock_fault")
    if plan.latency_ms:
        await asyncio.sleep(plan.latency_ms / 1000)
    if plan.drop_connection:
        state.recorder.fault(entry, "drop_connection", plan.describe())
        state.recorder.close(entry, "dropped")
        return DroppedConnection()
    if plan.status is not None:
        state.recorder.fault(entry, "status", plan.describe())
        return fail(plan.status, vendor.fault_message(plan.status), None, _retry_headers(plan))
    return Exchange(state, vendor, request_id, body, plan, entry)


def error_response(
    state: MockState,
    vendor: VendorFormat,
    entry: dict[str, Any],
    request_id: str,
    status: int,
    message: str,
    param: str | None,
    code: str | None,
    extra: Any,
) -> Response:
    state.recorder.close(entry, status)
    body = vendor.error_body(status, message, request_id=request_id, param=param, code=code)
    headers = [(b"content-type", JSON_TYPE), (vendor.request_id_header, request_id.encode()), *extra]
    return RawResponse(status, body, headers)


def _retry_headers(plan: FaultPlan) -> list[tuple[bytes, bytes]]:
    seconds = plan.retry_after if plan.retry_after is not None else (1.0 if plan.status == 429 else None)
    if seconds is None:
        return []
    whole = int(-(-seconds // 1))
    return [(b"retry-after", str(whole).encode()), (b"retry-after-ms", str(int(seconds * 1000)).encode())]


def _malform(event: bytes) -> bytes:
    """The event with its JSON cut in half: still framed as SSE, no longer parseable."""
    start = event.find(b"data: ") + len(b"data: ")
    payload = event[start:].rstrip(b"\n")
    return event[:start] + payload[: len(payload) // 2] + b"\n\n"
