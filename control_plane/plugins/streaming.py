"""Iterate a studio plugin's streaming method (an agent's chunks) from async code on another event loop.

The studio host lives on its own loop thread (`runtime`); the portal's chat streams from the web server's loop.
Each item is fetched by running the host's iterator one step on the host loop and awaiting that from the caller's
loop. Cancellation crosses over too: when the caller is cancelled (the user closed the page and the server
cancelled the response), the pending step is cancelled on the host loop, which throws into the plugin's iterator
(in-process) or cancels the gRPC stream (isolated), and the host's iterator is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async

from shared_sdk import Context

from .runtime import plugin_stream_handle

__all__ = ["plugin_stream"]

_END = object()


async def _step(iterator: AsyncIterator[Any]) -> Any:
    """One item, or `_END`: StopAsyncIteration must not travel through a future."""
    try:
        return await iterator.__anext__()
    except StopAsyncIteration:
        return _END


async def plugin_stream(slug: str, method: str, *args: Any, ctx: Context | None = None) -> AsyncIterator[Any]:
    """Yield the items of `method` of plugin `slug`; failures raise the host's `PluginCallError` (each item is
    bounded by the plugin's own timeout; the caller bounds the whole stream)."""
    handle, loop = await sync_to_async(plugin_stream_handle, thread_sensitive=False)(slug, method)
    iterator = handle.stream(method, ctx, *args)
    try:
        while True:
            item = await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(_step(iterator), loop))
            if item is _END:
                return
            yield item
    finally:
        closing = asyncio.run_coroutine_threadsafe(iterator.aclose(), loop)  # type: ignore[attr-defined]
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.shield(asyncio.wrap_future(closing))
