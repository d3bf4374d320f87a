"""Iterate a studio plugin's streaming method (an agent's chunks) from async code on another event loop.

The studio host lives on its own loop thread (`runtime`); the portal's chat streams from the web server's loop.
Each item is fetched by running the host's iterator one step on the host loop and awaiting that from the caller's
loop. Cancellation crosses over too: when the caller is cancelled (the user closed the page and the server
cancelled the response), the pending step is cancelled on the host loop, which throws into the plugin's iterator
(in-process) or cancels the gRPC stream (isolated), and the host's iterator is closed.

The stream holds the plugin's instance from its first item to its end (`runtime.plugin_release` once the host's
iterator is closed, however the stream ended): a reload meanwhile (the plugin edited) stops the replaced instance
only then, so an agent's answer never loses its plugin halfway.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async

from shared_sdk import Context

from .handle_users import taken
from .runtime import plugin_release, plugin_stream_handle

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
    fetch = sync_to_async(plugin_stream_handle, thread_sensitive=False)(slug, method)
    handle, loop = await taken(fetch, lambda got: plugin_release(got[0]))
    iterator: AsyncIterator[Any] | None = None
    try:
        iterator = handle.stream(method, ctx, *args)
        while True:
            item = await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(_step(iterator), loop))
            if item is _END:
                return
            yield item
    finally:
        if iterator is None:
            plugin_release(handle)
        else:
            closing = asyncio.run_coroutine_threadsafe(iterator.aclose(), loop)  # type: ignore[attr-defined]
            # released once the host's iterator is closed, even when this task is cancelled while it waits
            closing.add_done_callback(lambda _: plugin_release(handle))
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.shield(asyncio.wrap_future(closing))
