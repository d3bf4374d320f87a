"""Which of the host's calls an isolated plugin's service call belongs to: call ids the host hands out.

In-process, a plugin's service calls run inside the host's call, in its task and context, so a context variable the
caller set (the studio's `serving_chat_user`: whose chat turn an agent is answering) reaches the services. An
isolated plugin's service calls arrive on the broker's own gRPC tasks instead, out of any caller's context. So:

- the host gives each call to the plugin a call id (random and unguessable) when the caller's context holds a value
  of one of the host's *carried* context variables, records those values under the id (`LiveCalls.open`) and sends
  the id as gRPC metadata `fj-call` with the call; the record is dropped when the call ends (`LiveCalls.close`);
- the plugin process keeps the id in `host_call_id` while it serves that call (tasks the handler starts and the
  worker thread of a plain-`def` handler inherit it), and `BrokerClient` sends it back as metadata `fj-call` on
  every service call;
- the broker runs the service call with the recorded values (`LiveCalls.applied`). An id it does not hold (made up,
  another plugin's, or of a call that has ended) carries nothing: the service call is the plugin's own.

The id only points at what the host recorded; nothing the plugin sends becomes a value. It travels as metadata, not
in the msgpack body, so either side may be older: a plugin built before call ids sends none (its service calls are
its own, as before), and a host that sends none leaves `host_call_id` unset.
"""

from __future__ import annotations

import contextlib
import contextvars
import secrets
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["CALL_ID_METADATA", "LiveCalls", "call_id_from", "host_call_id"]

CALL_ID_METADATA = "fj-call"
"""The gRPC metadata key of a call id, both ways (host -> plugin on a plugin call, plugin -> host on a service call)."""

host_call_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("fjordgate_host_call_id", default=None)
"""In the plugin process: the id of the host's call being served, sent back on every service call made for it."""

_UNSET = object()


def call_id_from(metadata: Any) -> str | None:
    """The call id among a gRPC call's invocation metadata (pairs of key and value), if any."""
    for key, value in metadata or ():
        if key == CALL_ID_METADATA and isinstance(value, str):
            return value
    return None


class LiveCalls:
    """The host's record of one plugin's calls in flight: call id -> the caller's values of the carried variables.

    One per isolated plugin handle, so an id is only ever looked up among the calls made to the plugin that sends it.
    """

    def __init__(self, carried: Sequence[contextvars.ContextVar[Any]] = ()) -> None:
        self.carried = tuple(carried)
        self._calls: dict[str, tuple[tuple[contextvars.ContextVar[Any], Any], ...]] = {}

    def __len__(self) -> int:
        return len(self._calls)

    def open(self) -> str | None:
        """A fresh call id for a call made from the current context, or `None` when it sets no carried variable
        (then the call carries nothing, and costs nothing)."""
        values = tuple((var, value) for var in self.carried if (value := var.get(_UNSET)) is not _UNSET)
        if not values:
            return None
        call_id = secrets.token_urlsafe(18)
        self._calls[call_id] = values
        return call_id

    def close(self, call_id: str | None) -> None:
        """The call ended: its id carries nothing any more."""
        if call_id is not None:
            self._calls.pop(call_id, None)

    @contextlib.contextmanager
    def applied(self, call_id: str | None) -> Iterator[None]:
        """Within the block, the carried variables hold the values recorded for `call_id` when it is a live call;
        otherwise nothing is set."""
        values = self._calls.get(call_id) if call_id is not None else None
        tokens = [(var, var.set(value)) for var, value in values or ()]
        try:
            yield
        finally:
            for var, token in reversed(tokens):
                with contextlib.suppress(ValueError):  # an async generator closed from another context
                    var.reset(token)
