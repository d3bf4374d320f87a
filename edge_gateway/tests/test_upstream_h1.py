"""The default upstream transport against real sockets: keep-alive reuse, a vendor that closed an idle connection,
framing (chunked, close-delimited), the connection limit, TLS, and refusing header injection.

The pipeline-level behaviour (timeouts, retries, streams, cancellation on disconnect) is covered through the
edge by the other test modules, which run on this transport by default."""

from __future__ import annotations

import asyncio
import datetime
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge_gateway.errors import UpstreamError
from edge_gateway.upstream import UpstreamRequest
from edge_gateway.upstream_h1 import H1Transport


class Vendor:
    """A scripted HTTP/1.1 server: `answer(n, conn_no)` returns the raw bytes for the n-th request (or None to
    close the connection without answering)."""

    def __init__(self, answer, tls: ssl.SSLContext | None = None) -> None:
        self.answer = answer
        self.tls = tls
        self.connections = 0
        self.open = 0
        self.most_open = 0
        self.requests: list[bytes] = []

    async def __aenter__(self) -> Vendor:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        conn_no = self.connections
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length) if length else b""
                self.requests.append(head + body)
                out = await self.answer(len(self.requests), conn_no)
                if out is None:
                    return
                writer.write(out)
                await writer.drain()
                if b"connection: close" in out:
                    return
        finally:
            self.open -= 1
            writer.close()


def ok(body: bytes = b'{"ok":true}') -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)


def request(url: str, *, stream: bool = False, headers: dict | None = None) -> UpstreamRequest:
    return UpstreamRequest("POST", url, headers or {"content-type": "application/json"}, b'{"q":1}', stream, 2, 2, 2)


async def test_keep_alive_connection_is_reused_and_request_is_framed():
    async def answer(n, conn):
        return ok()

    async with Vendor(answer) as vendor:
        transport = H1Transport()
        for _ in range(3):
            reply = await transport.send(request(f"http://127.0.0.1:{vendor.port}/v1/chat/completions?x=1"))
            assert reply.status_code == 200 and reply.body == b'{"ok":true}'
            assert reply.headers["content-type"] == "application/json"
        await transport.aclose()
    assert vendor.connections == 1
    first = vendor.requests[0]
    assert first.startswith(b"POST /v1/chat/completions?x=1 HTTP/1.1\r\nhost: 127.0.0.1:")
    assert b"content-length: 7\r\n" in first and first.endswith(b'{"q":1}')
    assert b"\r\naccept-encoding: identity\r\n" in first and b"user-agent" not in first.lower()


async def test_a_reused_connection_the_vendor_closed_is_retried_on_a_new_one():
    async def answer(n, conn):
        if n == 2:
            return None  # the vendor closes the idle connection as the next request arrives
        return ok(b'{"n":%d}' % n)

    async with Vendor(answer) as vendor:
        transport = H1Transport()
        url = f"http://127.0.0.1:{vendor.port}/x"
        assert (await transport.send(request(url))).body == b'{"n":1}'
        assert (await transport.send(request(url))).body == b'{"n":3}'
        await transport.aclose()
    assert vendor.connections == 2


async def test_a_fresh_connection_closed_without_answer_is_a_502_not_a_retry():
    async def answer(n, conn):
        return None

    async with Vendor(answer) as vendor:
        transport = H1Transport()
        with pytest.raises(UpstreamError) as err:
            await transport.send(request(f"http://127.0.0.1:{vendor.port}/x"))
        await transport.aclose()
    assert err.value.status_code == 502 and err.value.retryable
    assert len(vendor.requests) == 1


async def test_chunked_and_close_delimited_bodies():
    chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    close_delimited = b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end"

    async def answer(n, conn):
        return chunked if n == 1 else close_delimited

    async with Vendor(answer) as vendor:
        transport = H1Transport()
        url = f"http://127.0.0.1:{vendor.port}/x"
        assert (await transport.send(request(url))).body == b"hello world"
        reply = await transport.send(request(url, stream=True))
        assert reply.chunks is not None
        assert b"".join([piece async for piece in reply.chunks]) == b"until the end"
        await reply.aclose()
        await transport.aclose()


async def test_open_connections_are_bounded_per_origin():
    async def answer(n, conn):
        await asyncio.sleep(0.05)
        return ok()

    async with Vendor(answer) as vendor:
        transport = H1Transport(max_connections=2)
        url = f"http://127.0.0.1:{vendor.port}/x"
        replies = await asyncio.gather(*(transport.send(request(url)) for _ in range(6)))
        await transport.aclose()
    assert all(r.status_code == 200 for r in replies)
    assert vendor.most_open == 2


async def test_header_injection_is_refused_before_anything_is_sent():
    async def answer(n, conn):
        return ok()

    async with Vendor(answer) as vendor:
        transport = H1Transport()
        bad = request(f"http://127.0.0.1:{vendor.port}/x", headers={"x-tag": "a\r\nx-admin: 1"})
        with pytest.raises(UpstreamError) as err:
            await transport.send(bad)
        await transport.aclose()
    assert err.value.code == "invalid_upstream_header" and vendor.requests == []


def _self_signed(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


async def test_tls_upstream_is_verified(tmp_path):
    cert, key = _self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)

    async def answer(n, conn):
        return ok(b'{"tls":true}')

    async with Vendor(answer, tls=server_tls) as vendor:
        url = f"https://localhost:{vendor.port}/x"
        untrusting = H1Transport()  # the system store does not know this certificate
        with pytest.raises(UpstreamError) as err:
            await untrusting.send(request(url))
        assert err.value.status_code == 502
        await untrusting.aclose()
        trusting = H1Transport(tls=ssl.create_default_context(cafile=str(cert)))
        reply = await trusting.send(request(url))
        await trusting.aclose()
    assert reply.status_code == 200 and reply.body == b'{"tls":true}'


async def test_informational_responses_are_skipped_and_expired_idle_connections_pruned():
    early_hints = b"HTTP/1.1 103 Early Hints\r\nlink: </x>; rel=preload\r\n\r\n"

    async def answer(n, conn):
        return early_hints + ok(b'{"final":true}')

    async with Vendor(answer) as vendor:
        transport = H1Transport(keepalive_expiry_s=0.05)
        reply = await transport.send(request(f"http://127.0.0.1:{vendor.port}/x"))
        assert reply.status_code == 200 and reply.body == b'{"final":true}' and "link" not in reply.headers
        assert transport.prune_idle() == 0  # fresh
        await asyncio.sleep(0.1)
        assert transport.prune_idle() == 1
        await asyncio.sleep(0.05)
        assert vendor.open == 0  # the vendor saw the connection close
        await transport.aclose()


@pytest.mark.timeout(30)
async def test_a_stream_times_out_after_its_idle_gap_however_long_it_ran_and_whatever_the_header_wait():
    """The connection keeps one timer and moves it: a stream that ran past its idle timeout in total, one event
    at a time, is not cut; once it stalls it ends after one idle gap, although the headers were allowed 120 s."""
    stalled = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(7)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        for n in range(12):
            event = b"data: %d\n\n" % n
            writer.write(b"%x\r\n%s\r\n" % (len(event), event))
            await writer.drain()
            await asyncio.sleep(0.1)
        stalled.set()
        await asyncio.sleep(60)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = H1Transport()
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    slow_head = UpstreamRequest("POST", url, {"content-type": "application/json"}, b'{"q":1}', True, 2, 120, 0.4)
    reply = await transport.send(slow_head)
    assert reply.chunks is not None
    received = b""
    with pytest.raises(UpstreamError) as stopped:
        async for piece in reply.chunks:
            received += piece
    assert stalled.is_set() and received.count(b"data: ") == 12, "1.2 s of events, none more than 0.4 s apart"
    assert stopped.value.status_code == 504 and "idle timeout" in stopped.value.message
    await reply.aclose()
    await transport.aclose()
    server.close()
