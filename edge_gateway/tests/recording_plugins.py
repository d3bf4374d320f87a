"""Plugins for pipeline tests: each records the hooks it ran into `CALLS` (the edge runs in this process)."""

from __future__ import annotations

import asyncio
from typing import Any

from shared_sdk import (
    App,
    AuthRequest,
    AuthResponse,
    BasePlugin,
    Context,
    EndpointRegistration,
    EndpointRequest,
    EndpointResponse,
    EnrichedRequest,
    PluginError,
    PluginResponse,
    ResponseWriteRequest,
    ResponseWriteResponse,
    SessionAware,
    ShortCircuit,
    StreamCompleteRequest,
    StreamCompleteResponse,
    StreamEventsRequest,
    StreamEventsResponse,
    UpstreamResponse,
)

CALLS: list[tuple[str, str]] = []


class Recorder(BasePlugin):
    """Config: `label`, `short_circuit_at` ("pre_auth"/"post_auth"), `mode` ("response"/"error"/"stream"/
    "block"/"text_stream"),
    `fail_at` (hook name that raises), `sleep_s` (post-auth delay), `upper_chunks` (uppercase stream text),
    `drop_chunk_containing` (drop chunks whose bytes contain it)."""

    name = "recorder"

    async def initialize(self, ctx: Context, config: dict[str, Any]) -> None:
        self.config = config
        self.label = config.get("label", "rec")

    async def shutdown(self, ctx: Context) -> None:
        CALLS.append((self.label, f"shutdown v{self.config.get('v', 1)}"))

    def _note(self, method: str) -> None:
        CALLS.append((self.label, method))
        if self.config.get("fail_at") == method:
            raise RuntimeError(f"{self.label} failed in {method}")

    def _maybe_stop(self, phase: str) -> PluginResponse:
        if self.config.get("short_circuit_at") != phase:
            return PluginResponse()
        mode = self.config.get("mode", "response")
        if mode == "error":
            return PluginResponse(
                short_circuit=ShortCircuit(
                    error=PluginError(
                        status_code=451, message=f"stopped by {self.label}", type="blocked", code="stopped"
                    )
                )
            )
        if mode == "stream":
            return PluginResponse(
                short_circuit=ShortCircuit(
                    stream_chunks=[
                        b'{"choices":[{"index":0,"delta":{"content":"from "}}]}',
                        b'{"choices":[{"index":0,"delta":{"content":"plugin"},"finish_reason":"stop"}]}',
                    ]
                )
            )
        if mode == "text_stream":  # not the OpenAI chunk shape: cannot be collected into a chat.completion
            return PluginResponse(short_circuit=ShortCircuit(stream_chunks=[b"plain words", b"more words"]))
        if mode == "block":
            return PluginResponse(block=True, status_code=403, error_message=f"blocked by {self.label}")
        return PluginResponse(
            short_circuit=ShortCircuit(
                response=UpstreamResponse(
                    status_code=200,
                    headers={"content-type": "application/json"},
                    body=b'{"object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant",'
                    b'"content":"short-circuited by ' + self.label.encode() + b'"},"finish_reason":"stop"}]}',
                )
            )
        )

    async def handle_pre_auth(self, ctx: Context, req: EnrichedRequest) -> PluginResponse:
        self._note("pre_auth")
        return self._maybe_stop("pre_auth")

    async def handle_post_auth(self, ctx: Context, req: EnrichedRequest) -> PluginResponse:
        self._note("post_auth")
        if self.config.get("sleep_s"):
            await asyncio.sleep(self.config["sleep_s"])
        return self._maybe_stop("post_auth")

    async def on_before_write_headers(self, ctx: Context, req: ResponseWriteRequest) -> ResponseWriteResponse:
        self._note("headers")
        return ResponseWriteResponse(modified=True, headers={**req.headers, f"x-{self.label}": "seen"})

    async def on_before_write(self, ctx: Context, req: ResponseWriteRequest) -> ResponseWriteResponse:
        self._note("chunk" if req.is_stream_chunk else "body")
        if req.is_stream_chunk:
            needle = self.config.get("drop_chunk_containing")
            if needle and needle.encode() in req.body:
                return ResponseWriteResponse(drop_chunk=True)
            if self.config.get("upper_chunks") and req.body.startswith(b"data: {"):
                return ResponseWriteResponse(modified=True, body=req.body.replace(b"Echo", b"ECHO"))
        return ResponseWriteResponse()

    async def on_stream_complete(self, ctx: Context, req: StreamCompleteRequest) -> StreamCompleteResponse:
        self._note("complete")
        return StreamCompleteResponse(handled=True)


class EventsRecorder(BasePlugin):
    """A stream chunk hook that takes a read's events in one call (`on_before_write_events` only): records
    ("events", n) per call and writes "ECHO" for "Echo" in every event; `drop_containing` drops events holding it;
    `answer_text` answers str events from event `answer_text_from` on (1: after the first; a bug the edge must
    contain)."""

    name = "events-recorder"

    async def initialize(self, ctx: Context, config: dict[str, Any]) -> None:
        self.config = config
        self.label = config.get("label", "events")

    async def on_before_write_events(self, ctx: Context, req: StreamEventsRequest) -> StreamEventsResponse:
        CALLS.append((self.label, f"events:{len(req.events)}"))
        needle = self.config.get("drop_containing", "").encode()
        kept = [e.replace(b"Echo", b"ECHO") for e in req.events if not (needle and needle in e)]
        if self.config.get("answer_text") and req.first_index >= self.config.get("answer_text_from", 1):  # a bug
            return StreamEventsResponse(modified=True, events=[e.decode() for e in kept])  # type: ignore[misc]
        return StreamEventsResponse(modified=True, events=kept)


class PickyAuth(BasePlugin):
    """Authenticates `tok-plugin` (app 1), refuses `tok-refused` explicitly, declines every other credential
    (returns None: not its kind of credential). Serves `GET /whoami` (require_auth) naming the caller's app."""

    name = "picky-auth"

    async def handle_auth(self, ctx: Context, req: AuthRequest) -> AuthResponse | None:
        if req.credential == "tok-plugin":
            return AuthResponse(authenticated=True, app_id=1, claims={"via": "picky"})
        if req.credential == "tok-refused":
            return AuthResponse(error_message="this token is revoked")
        return None

    async def get_app_by_credential(self, ctx: Context, credential: str) -> App | None:
        return App(id=1, name="app-one") if credential == "tok-plugin" else None

    async def get_user_by_credential(self, ctx: Context, credential: str) -> None:
        return None

    def get_endpoint_registrations(self) -> list[EndpointRegistration]:
        return [EndpointRegistration(path="/whoami", methods=["GET"], require_auth=True)]

    async def handle_endpoint_request(self, ctx: Context, req: EndpointRequest) -> EndpointResponse:
        app_id = req.app.id if req.app is not None else None
        return EndpointResponse(body=b'{"app_id": %d}' % (app_id or 0))


RECEIVED: list[tuple[str, str]] = []
"""(config label, event id) for every `counter.ping` event an `EventCounter` instance handled."""


class EventCounter(BasePlugin, SessionAware):
    """Subscribes to `counter.ping` when its session opens and never unsubscribes (as most plugins do)."""

    name = "event-counter"

    async def on_session_ready(self, ctx: Context) -> None:
        assert ctx.services is not None
        await ctx.services.events.subscribe("counter.ping", self._count)

    async def _count(self, event: Any) -> None:
        RECEIVED.append((str(self.config.get("label", "")), event.id))
