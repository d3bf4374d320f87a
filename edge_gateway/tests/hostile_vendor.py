"""A scripted raw-socket vendor for the hostile-upstream tests: each request's path picks a misbehaviour.

Why raw sockets: the cases (endless headers, a byte per interval, two framings at once, bytes after the end)
are exactly what a well-behaved HTTP server library refuses to send. `/ok` always answers a small 200, so a
test can check that the transport still serves after the hostile exchange.
"""

from __future__ import annotations

import asyncio
import gzip
import threading
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from functools import cache

Script = Callable[[asyncio.StreamWriter], Awaitable[bool]]
"""Writes a reply; returns whether the connection stays open for the next request."""

ENDLESS_CAP_S = 20.0
"""An endless script stops on its own after this long, so a transport bug cannot make a test run forever."""


def ok(body: bytes = b'{"ok":true}', *extra: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n" % len(body)
    return head + b"".join(extra) + b"\r\n" + body


def raw(data: bytes, keep: bool = False) -> Script:
    async def script(writer: asyncio.StreamWriter) -> bool:
        writer.write(data)
        await writer.drain()
        return keep

    return script


def endless(prefix: bytes, piece: bytes) -> Script:
    """`prefix`, then `piece` again and again until the client goes away (or `ENDLESS_CAP_S`)."""
    batch = piece * max(1, 65536 // len(piece))

    async def script(writer: asyncio.StreamWriter) -> bool:
        writer.write(prefix)
        loop = asyncio.get_running_loop()
        stop = loop.time() + ENDLESS_CAP_S
        while loop.time() < stop:
            writer.write(batch)
            await writer.drain()
        return False

    return script


def drip(prefix: bytes, piece: bytes, every_s: float) -> Script:
    """`prefix`, then `piece` every `every_s` (under any idle timeout) until the client goes away."""

    async def script(writer: asyncio.StreamWriter) -> bool:
        writer.write(prefix)
        loop = asyncio.get_running_loop()
        stop = loop.time() + ENDLESS_CAP_S
        while loop.time() < stop:
            await writer.drain()
            await asyncio.sleep(every_s)
            writer.write(piece)
        return False

    return script


def trickle(head: bytes, body: bytes, piece: int = 1024) -> Script:
    """`head`, then `body` in `piece`-byte writes (a vendor trickling one huge event in small TCP segments), then
    the connection closes. After each write the vendor's thread gives up the GIL (`time.sleep(0)`), so an edge
    running in the test's process reads the pieces one by one instead of a backlog of them at once."""

    async def script(writer: asyncio.StreamWriter) -> bool:
        writer.write(head)
        for start in range(0, len(body), piece):
            writer.write(body[start : start + piece])
            await writer.drain()
            time.sleep(0)
        return False

    return script


@cache
def gzip_bomb() -> bytes:
    """64 MiB of zeros, gzipped to ~64 KiB."""
    return gzip.compress(bytes(64 << 20), compresslevel=9)


def deflate(data: bytes, raw_deflate: bool = False) -> bytes:
    if not raw_deflate:
        return zlib.compress(data)
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


class HostileVendor:
    """Serves `scripts[path]` for each request (`/ok` is always a 200); records what it received."""

    def __init__(self, scripts: dict[str, Script]) -> None:
        self.scripts = {"/ok": raw(ok(), keep=True), **scripts}
        self.requests: list[bytes] = []
        self.connections = 0
        self.open = 0

    async def __aenter__(self) -> HostileVendor:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if length:
                    await reader.readexactly(length)
                self.requests.append(head)
                path = head.split(b" ", 2)[1].decode()
                try:
                    async with asyncio.timeout(ENDLESS_CAP_S + 1):
                        keep = await self.scripts[path](writer)
                except (ConnectionError, TimeoutError):
                    return
                if not keep:
                    return
        finally:
            self.open -= 1
            writer.close()


@contextmanager
def vendor_thread(scripts: dict[str, Script]) -> Iterator[HostileVendor]:
    """A `HostileVendor` answering `scripts` (by path) on its own loop and thread, for an edge in another thread or
    process."""
    vendor = HostileVendor(scripts)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="hostile-vendor", daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(vendor.__aenter__(), loop).result(10)
    try:
        yield vendor
    finally:
        asyncio.run_coroutine_threadsafe(vendor.__aexit__(None, None, None), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
