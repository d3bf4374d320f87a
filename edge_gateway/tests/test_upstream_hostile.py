"""Both upstream transports against a hostile or broken vendor (raw sockets, `hostile_vendor.py`).

Modelled on the cases h11's and aiohttp's own suites check (head size and count bounds, framing conflicts,
invalid lengths and chunk sizes, informational responses, bytes after a message), plus what a gateway adds:
a bound on the body it buffers (decoded, so gzip bombs count), an overall deadline per attempt, and a pool
that still serves once the vendor misbehaved. Each case checks, on each transport: the outcome the pipeline
maps to a clean 502/504 (or the right answer), the Python memory the exchange took (tracemalloc peak), and
that the next request on the same origin is served with a pool of ONE connection (a slot leaked by the
hostile exchange would make that request time out).
"""

from __future__ import annotations

import asyncio
import gzip
import tracemalloc

import pytest

from edge_gateway.errors import UpstreamError
from edge_gateway.upstream import AiohttpTransport, UpstreamReply, UpstreamRequest
from edge_gateway.upstream_h1 import H1Transport

from .hostile_vendor import HostileVendor, deflate, drip, endless, gzip_bomb, ok, raw

LIMIT = 1 << 20
"""`max_response_bytes` for the hostile cases."""
DEADLINE_S = 2.0
MEMORY_BOUND = 8 << 20
"""What one hostile exchange may allocate: the limit, one read and a join, with room to spare."""

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
TOO_LARGE = {"upstream_response_too_large"}
HEADERS = {"upstream_headers_too_large"}
INVALID = {"upstream_invalid_response", "upstream_unreachable"}
DEADLINE = {"upstream_deadline_exceeded"}


@pytest.fixture(params=["h1", "aiohttp"])
async def transport(request):
    if request.param == "h1":
        made = H1Transport(max_connections=1, deadline_s=DEADLINE_S)
    else:
        made = AiohttpTransport(max_connections=1, deadline_s=DEADLINE_S)
    tracemalloc.start()
    yield made
    tracemalloc.stop()
    await made.aclose()


def upstream_request(url: str, *, stream: bool = False, limit: int = LIMIT) -> UpstreamRequest:
    return UpstreamRequest("POST", url, {"content-type": "application/json"}, b'{"q":1}', stream, 2.0, 1.0, 1.0, limit)


async def exchange(transport, url: str, *, stream: bool = False, limit: int = LIMIT):
    """(reply with the whole body, or the UpstreamError raised; peak bytes allocated meanwhile)."""
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    reply = None
    try:
        async with asyncio.timeout(DEADLINE_S * 5):  # a hang fails here instead of stalling the suite
            reply = await transport.send(upstream_request(url, stream=stream, limit=limit))
            if reply.chunks is not None:
                body = b"".join([piece async for piece in reply.chunks])
                reply = UpstreamReply(reply.status_code, reply.headers, body)
        outcome: UpstreamReply | UpstreamError = reply
    except UpstreamError as exc:
        outcome = exc
    finally:
        if reply is not None:
            await reply.aclose()
    return outcome, tracemalloc.get_traced_memory()[1] - base


async def still_serves(transport, vendor: HostileVendor) -> None:
    # Let a vendor's FIN arrive first: aiohttp reuses a connection whose close is still in flight and fails that
    # request (a retryable 502 the pipeline retries); h1 sends it again on a new connection.
    await asyncio.sleep(0.05)
    reply = await transport.send(upstream_request(vendor.url("/ok")))
    assert (reply.status_code, reply.body) == (200, b'{"ok":true}')


def chunked(*pieces: bytes) -> bytes:
    return HEAD + b"transfer-encoding: chunked\r\n\r\n" + b"".join(pieces)


# name: (script, stream, expected status, expected codes)
REFUSED = {
    "oversized-header": (
        raw(HEAD + b"x-big: " + b"a" * 100_000 + b"\r\ncontent-length: 2\r\n\r\nok"),
        False,
        502,
        HEADERS,
    ),
    "too-many-headers": (
        raw(HEAD + b"".join(b"x-h%d: v\r\n" % i for i in range(500)) + b"content-length: 2\r\n\r\nok"),
        False,
        502,
        HEADERS,
    ),
    "endless-headers": (endless(HEAD, b"x-h: vvvvvvvv\r\n"), False, 502, HEADERS),
    "endless-headers-stream": (endless(HEAD, b"x-h: vvvvvvvv\r\n"), True, 502, HEADERS),
    "endless-header-value": (endless(HEAD + b"x-h: ", b"v" * 64), False, 502, HEADERS),
    "endless-status-line": (endless(b"HTTP/1.1 200 ", b"O" * 64), False, 502, HEADERS),
    "endless-body": (endless(HEAD + b"\r\n", b"x" * 1024), False, 502, TOO_LARGE),
    "endless-body-stream": (endless(HEAD + b"\r\n", b"data: x\n\n"), True, 502, TOO_LARGE),
    "endless-chunked-body": (endless(chunked(), b"400\r\n" + b"x" * 1024 + b"\r\n"), False, 502, TOO_LARGE),
    "huge-content-length": (raw(HEAD + b"content-length: 1000000000000\r\n\r\nabc"), False, 502, TOO_LARGE),
    "gzip-bomb": (
        raw(HEAD + b"content-encoding: gzip\r\ncontent-length: %d\r\n\r\n" % len(gzip_bomb()) + gzip_bomb()),
        False,
        502,
        TOO_LARGE,
    ),
    "gzip-bomb-stream": (
        raw(HEAD + b"content-encoding: gzip\r\ncontent-length: %d\r\n\r\n" % len(gzip_bomb()) + gzip_bomb()),
        True,
        502,
        TOO_LARGE,
    ),
    "unsupported-encoding": (
        raw(HEAD + b"content-encoding: br\r\ncontent-length: 2\r\n\r\nok"),
        False,
        502,
        {"upstream_unsupported_encoding"},
    ),
    "short-body": (raw(HEAD + b"content-length: 100\r\n\r\nonly ten b"), False, 502, INVALID),
    "short-body-stream": (
        raw(HEAD + b"content-length: 100\r\n\r\nonly ten b"),
        True,
        502,
        INVALID | {"upstream_stream_broken"},
    ),
    "short-chunked-body": (raw(chunked(b"64\r\nonly ten b")), False, 502, INVALID),
    "truncated-gzip": (
        raw(HEAD + b"content-encoding: gzip\r\n\r\n" + gzip.compress(b"x" * 1000)[:20]),
        False,
        502,
        INVALID,
    ),
    "transfer-encoding-and-content-length": (
        raw(HEAD + b"content-length: 5\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        False,
        502,
        INVALID,
    ),
    "cr-in-header-value": (raw(HEAD + b"x-a: b\rc\r\ncontent-length: 2\r\n\r\nok"), False, 502, INVALID),
    "nul-in-header-value": (raw(HEAD + b"x-a: b\x00c\r\ncontent-length: 2\r\n\r\nok"), False, 502, INVALID),
    "invalid-status-code": (raw(b"HTTP/1.1 abc OK\r\ncontent-length: 2\r\n\r\nok"), False, 502, INVALID),
    "four-digit-status": (raw(b"HTTP/1.1 2000 OK\r\ncontent-length: 2\r\n\r\nok"), False, 502, INVALID),
    "not-http": (raw(b"SSH-2.0-OpenSSH_9.6\r\n\r\n"), False, 502, INVALID),
    "negative-content-length": (raw(HEAD + b"content-length: -1\r\n\r\nok"), False, 502, INVALID),
    "non-numeric-content-length": (raw(HEAD + b"content-length: abc\r\n\r\nok"), False, 502, INVALID),
    "overflowing-content-length": (
        raw(HEAD + b"content-length: 99999999999999999999999\r\n\r\nok"),
        False,
        502,
        INVALID | TOO_LARGE,
    ),
    "conflicting-content-lengths": (
        raw(HEAD + b"content-length: 2\r\ncontent-length: 3\r\n\r\nok!"),
        False,
        502,
        INVALID,
    ),
    "invalid-chunk-size": (raw(chunked(b"zz\r\nhello\r\n0\r\n\r\n")), False, 502, INVALID),
    "negative-chunk-size": (raw(chunked(b"-5\r\nhello\r\n0\r\n\r\n")), False, 502, INVALID),
    "overflowing-chunk-size": (raw(chunked(b"fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n")), False, 502, INVALID),
    "drip-body": (drip(HEAD + b"content-length: 1000\r\n\r\n", b"x", 0.25), False, 504, DEADLINE),
    "drip-stream": (drip(HEAD + b"\r\n", b"data: x\n\n", 0.25), True, 504, DEADLINE),
    "drip-chunked-stream": (drip(chunked(), b"1\r\nx\r\n", 0.25), True, 504, DEADLINE),
    # h1 ends these at the first-byte timeout or the head bound, aiohttp (whose read timeout restarts on every
    # byte) at the deadline: a clean error either way.
    "drip-headers": (drip(HEAD, b"x-a: b\r\n", 0.25), False, 504, DEADLINE | {"upstream_timeout"}),
    "endless-1xx": (endless(b"", b"HTTP/1.1 100 Continue\r\n\r\n"), False, None, DEADLINE | HEADERS),
}


@pytest.mark.parametrize("case", list(REFUSED))
async def test_hostile_reply_is_a_clean_error_with_bounded_memory_and_the_pool_recovers(transport, case):
    script, stream, status, codes = REFUSED[case]
    async with HostileVendor({"/hostile": script}) as vendor:
        outcome, peak = await exchange(transport, vendor.url("/hostile"), stream=stream)
        assert isinstance(outcome, UpstreamError), f"{case}: answered {outcome!r}"
        assert outcome.code in codes, f"{case}: {outcome.code} {outcome.message}"
        assert outcome.status_code == (status or outcome.status_code) and outcome.status_code in (502, 504)
        assert peak < MEMORY_BOUND, f"{case}: {peak} bytes allocated"
        await still_serves(transport, vendor)


async def test_a_large_valid_body_is_read_whole(transport):
    """A 3 MiB reply under the default 32 MiB bound (h1 used to pause reading above 1 MiB and time out)."""
    body = b'{"data":"' + b"x" * (3 << 20) + b'"}'
    async with HostileVendor({"/big": raw(ok(body), keep=True)}) as vendor:
        reply, _ = await exchange(transport, vendor.url("/big"), limit=32 << 20)
        assert isinstance(reply, UpstreamReply) and reply.status_code == 200 and reply.body == body
        streamed, _ = await exchange(transport, vendor.url("/big"), stream=True, limit=32 << 20)
        assert isinstance(streamed, UpstreamReply) and streamed.body == body
        await still_serves(transport, vendor)


@pytest.mark.parametrize(
    "encoding, encode",
    [
        ("gzip", gzip.compress),
        ("deflate", deflate),
        ("deflate", lambda data: deflate(data, raw_deflate=True)),
    ],
    ids=["gzip", "deflate", "raw-deflate"],
)
async def test_a_compressed_reply_reaches_the_caller_decoded(transport, encoding, encode):
    payload = b'{"choices":[{"message":{"content":"' + b"compressible " * 2000 + b'"}}]}'
    packed = encode(payload)
    reply_bytes = ok(packed, b"content-encoding: %s\r\n" % encoding.encode())
    async with HostileVendor({"/z": raw(reply_bytes, keep=True)}) as vendor:
        for stream in (False, True):
            reply, _ = await exchange(transport, vendor.url("/z"), stream=stream)
            assert isinstance(reply, UpstreamReply) and reply.body == payload
            assert "content-encoding" not in reply.headers and "content-length" not in reply.headers
        assert all(b"\r\naccept-encoding: identity\r\n" in head.lower() for head in vendor.requests)


async def test_informational_flood_before_the_answer_is_skipped(transport):
    flood = b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n" * 300
    async with HostileVendor({"/1xx": raw(flood + ok(b'{"final":1}'), keep=True)}) as vendor:
        reply, peak = await exchange(transport, vendor.url("/1xx"))
        assert isinstance(reply, UpstreamReply) and reply.body == b'{"final":1}' and "link" not in reply.headers
        assert peak < MEMORY_BOUND
        await still_serves(transport, vendor)


async def test_a_keep_alive_connection_the_vendor_closed_between_requests(transport):
    """The vendor closes every connection after answering, without saying `connection: close`."""
    async with HostileVendor({"/once": raw(ok(b'{"n":1}'), keep=False)}) as vendor:
        for _ in range(3):
            reply, _ = await exchange(transport, vendor.url("/once"))
            assert isinstance(reply, UpstreamReply) and reply.body == b'{"n":1}'
            await asyncio.sleep(0.05)  # the FIN arrives while the connection is idle
        assert vendor.connections == 3


async def test_bytes_after_the_response_never_answer_the_next_request(transport):
    """A response followed by an unsolicited second one (a desynchronised or smuggling vendor)."""
    evil = b'HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\n"evil"'
    async with HostileVendor({"/two": raw(ok(b'{"a":1}') + evil, keep=True)}) as vendor:
        reply, _ = await exchange(transport, vendor.url("/two"))
        assert isinstance(reply, UpstreamReply) and reply.body == b'{"a":1}'
        await asyncio.sleep(0.05)
        await still_serves(transport, vendor)
