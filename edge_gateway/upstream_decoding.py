"""Bounded decoding of a vendor's `content-encoding`, shared by both upstream transports.

Both transports ask vendors for `accept-encoding: identity`, but a vendor (or a proxy in front of it) may
compress anyway. The edge parses replies as JSON (usage, cost, translation) and hands the client an identity
body without `content-encoding`, so a compressed reply is decoded here, with the reply's byte bound applied
to the *decoded* size: a gzip bomb (a few KiB expanding to gigabytes) ends with `response_too_large` after at
most the bound plus one piece, never in memory. Encodings other than gzip and deflate (br, zstd, stacked
codings) are refused: we asked for identity, and decoding them would need a dependency for a vendor bug.

The same decoder reads a client's compressed request body (`intake.request_decoder`): it raises what its
`too_large` and `invalid` factories make, the edge's own 413 and 400 there instead of a vendor's 502.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator

from .errors import UpstreamError

__all__ = ["DECODABLE", "ContentDecoder", "content_decoder", "decode_body", "response_too_large"]

_PIECE = 1 << 20
"""At most this many decoded bytes come out of one step (so a stream's bomb never expands in one go)."""
_GZIP_WBITS = 16 + zlib.MAX_WBITS
_ZLIB_WBITS = zlib.MAX_WBITS
_RAW_DEFLATE_WBITS = -zlib.MAX_WBITS
_IDENTITY = frozenset({"", "identity"})
DECODABLE = frozenset({"gzip", "x-gzip", "deflate"})
"""The content codings `ContentDecoder` reads (lower-cased, single: no stacked codings)."""


def response_too_large(limit: int) -> UpstreamError:
    """The vendor's reply (decoded) exceeded the LLM's `max_response_bytes`; a retry would only repeat it."""
    return UpstreamError(
        502,
        f"upstream response exceeds the limit of {limit} bytes",
        retryable=False,
        code="upstream_response_too_large",
    )


def _invalid(what: str) -> UpstreamError:
    return UpstreamError(
        502, f"upstream sent an invalid encoded body ({what})", retryable=True, code="upstream_invalid_response"
    )


class ContentDecoder:
    """Incremental gzip / deflate decoding with a bound on the total decoded size.

    `too_large(limit)` and `invalid(what)` make the exceptions raised past the bound and on corrupt data (by
    default the upstream's 502s)."""

    __slots__ = ("encoding", "limit", "total", "_z", "_head", "_too_large", "_invalid")

    def __init__(
        self,
        encoding: str,
        limit: int,
        too_large: Callable[[int], Exception] = response_too_large,
        invalid: Callable[[str], Exception] = _invalid,
    ) -> None:
        self.encoding = encoding
        self.limit = limit
        self.total = 0
        self._head = b""
        self._too_large = too_large
        self._invalid = invalid
        self._z: zlib._Decompress | None = (
            zlib.decompressobj(_GZIP_WBITS) if encoding in ("gzip", "x-gzip") else None  # deflate: see feed
        )

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The decoded bytes of `data`, in pieces of at most 1 MiB; `too_large` past the bound."""
        z = self._z
        if z is None:
            # "deflate" is zlib-wrapped per RFC 9110, but some servers send raw deflate: look at the header.
            data = self._head + data
            if len(data) < 2:
                self._head = data
                return
            wrapped = len(data) >= 2 and data[0] & 0x0F == 8 and ((data[0] << 8) | data[1]) % 31 == 0
            z = self._z = zlib.decompressobj(_ZLIB_WBITS if wrapped else _RAW_DEFLATE_WBITS)
        pending = data
        while pending:
            try:
                out = z.decompress(pending, _PIECE)
            except zlib.error as exc:
                raise self._invalid(f"{self.encoding}: {exc}") from None
            pending = z.unconsumed_tail
            if out:
                self.total += len(out)
                if self.total > self.limit:
                    raise self._too_large(self.limit)
                yield out
            if z.eof:
                return  # trailing bytes after the compressed stream are ignored, as browsers do

    def finish(self) -> None:
        """The body ended: a compressed stream cut short is an error, not a silently truncated reply."""
        if self._z is None or not self._z.eof:
            raise self._invalid(f"{self.encoding}: truncated")


def content_decoder(headers: dict[str, str], limit: int) -> ContentDecoder | None:
    """A decoder for the reply's `content-encoding` (None for identity). Removes `content-encoding` and
    `content-length` from `headers` when decoding: they describe the encoded body, not what the client gets."""
    encoding = headers.get("content-encoding")
    if encoding is None:
        return None
    encoding = encoding.strip().lower()
    if encoding in _IDENTITY:
        del headers["content-encoding"]
        return None
    if encoding not in DECODABLE:
        raise UpstreamError(
            502,
            f"upstream sent an unsupported content-encoding {encoding[:40]!r} (the edge asks for identity)",
            retryable=False,
            code="upstream_unsupported_encoding",
        )
    del headers["content-encoding"]
    headers.pop("content-length", None)
    return ContentDecoder(encoding, limit)


def decode_body(decoder: ContentDecoder, body: bytes) -> bytes:
    """A whole (encoded) body, decoded within the decoder's bound."""
    out = b"".join(decoder.feed(body))
    decoder.finish()
    return out
