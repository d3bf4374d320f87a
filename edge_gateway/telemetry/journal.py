"""A memory-mapped ring of telemetry records: durable against a SIGKILL the moment the request path wrote them.

Why: a response may end only once its records would survive the edge being killed (`shipper.py`). Through the
SQLite spool alone that costs every request a round trip to the spool's writer thread and back (a queue put, a
transaction, a `call_soon_threadsafe`), the largest part of what the deployed edge added to a request at
concurrency 1 (p50 0.11 ms, p99 0.9 ms of waiting; `bench/README.md`). A store into a shared file mapping
(`MAP_SHARED`) is in the kernel's page cache as soon as the CPU made it: the process can die, the page stays and
is written back. That is the same promise the spool makes (WAL with `synchronous=NORMAL`: survives a SIGKILL, not
a power loss), kept with a memory copy on the event loop and no system call. The records then go to the spool in
groups in the background (`TelemetryShipper`), and their ring space is released once the spool committed them.

Layout: a 64-byte header (magic, a random journal id, `head` and `tail` as ever-growing logical positions), then
the ring. A record is `<u32 length><u32 crc32><u8 kind><3 pad>` and its body, never split across the ring's end:
where it would not fit, a wrap mark (length 0xFFFFFFFF, or fewer than 12 bytes left) sends it to the next lap.
Only the event loop's thread touches the mapping. On start, what lies between the spool's last committed mark and
`head` is read back (each record checked by its CRC; the first bad one ends the replay) and spooled again.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
import uuid
import zlib
from pathlib import Path

_MAGIC = b"FJJ1"
_HEADER = struct.Struct("<4s4x16sQQ")  # magic, journal id, head, tail
_HEADER_SIZE = 64
_HEAD_AT = 24
_TAIL_AT = 32
_RECORD = struct.Struct("<IIB3x")  # body length, crc32 of the body, kind
_WRAP = 0xFFFFFFFF
MIN_BYTES = 64 * 1024


class Journal:
    """The ring in one file; `append` on the event loop, `release` once the spool committed up to a position."""

    def __init__(self, path: str | Path, *, size: int) -> None:
        self.path = Path(path)
        self.size = max(size, MIN_BYTES)
        self.capacity = self.size - _HEADER_SIZE
        self.journal_id = ""
        self.head = 0
        """Logical position after the last record written (never wraps; the ring offset is `head % capacity`)."""
        self.tail = 0
        """Logical position up to which the spool has committed what the ring held."""
        self._map: mmap.mmap | None = None
        self._fd: int | None = None
        self._max_record = self.capacity // 4

    # -- lifecycle ------------------------------------------------------------------------------------------

    def open(self) -> None:
        """Map the file, creating it (or re-creating it at the configured size when it holds no record)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # one process per journal (BlockingIOError otherwise)
            existing = os.fstat(fd).st_size
            if existing < _HEADER_SIZE + MIN_BYTES or (existing != self.size and _empty(os.pread(fd, _HEADER_SIZE, 0))):
                existing = 0  # new, too small to be ours, or resized by the operator with nothing in it
            size = existing or self.size
            if not existing:
                os.ftruncate(fd, size)
                os.posix_fallocate(fd, 0, size)  # blocks allocated now, not on a page fault in a request
            self._map = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd  # held open: its lock lasts as long as the mapping
        self.size, self.capacity = size, size - _HEADER_SIZE
        self._max_record = self.capacity // 4
        magic, raw_id, head, tail = _HEADER.unpack_from(self._map, 0)
        if magic != _MAGIC or tail > head or head - tail > self.capacity:
            self._reset(uuid.uuid4().hex[:16], 0)
            return
        self.journal_id, self.head, self.tail = raw_id.decode("ascii", "replace").rstrip("\x00"), head, tail

    def close(self) -> None:
        if self._map is not None:
            self._map.flush()
            self._map.close()
            self._map = None
        if self._fd is not None:
            os.close(self._fd)  # releases the lock
            self._fd = None

    @property
    def is_open(self) -> bool:
        return self._map is not None

    # -- the request path -----------------------------------------------------------------------------------

    def append(self, kind: int, body: bytes) -> bool:
        """Write one record; False (nothing written) when the ring has no room for it or is not open."""
        mapped = self._map
        if mapped is None:
            return False
        need = _RECORD.size + len(body)
        if need > self._max_record:
            return False
        capacity = self.capacity
        at = self.head
        offset = at % capacity
        left = capacity - offset
        start = at if need <= left else at + left  # a record is never split across the ring's end
        if start + need - self.tail > capacity:
            return False
        if start != at and left >= _RECORD.size:
            _RECORD.pack_into(mapped, _HEADER_SIZE + offset, _WRAP, 0, 0)
        where = _HEADER_SIZE + start % capacity
        _RECORD.pack_into(mapped, where, len(body), zlib.crc32(body), kind)
        mapped[where + _RECORD.size : where + need] = body
        self.head = start + need
        struct.pack_into("<Q", mapped, _HEAD_AT, self.head)
        return True

    def release(self, position: int) -> None:
        """The spool committed every record before `position`: their space may be written again."""
        if self._map is None or position <= self.tail:
            return
        self.tail = min(position, self.head)
        struct.pack_into("<Q", self._map, _TAIL_AT, self.tail)

    # -- start-up -------------------------------------------------------------------------------------------

    def unreleased(self, committed: int | None = None) -> list[tuple[int, bytes]]:
        """(kind, body) of the records from `max(tail, committed)` to `head`: what a killed edge left unspooled.
        Stops at the first record whose length or CRC is wrong (a torn write), ending the ring there."""
        mapped = self._map
        if mapped is None:
            return []
        capacity = self.capacity
        at = self.tail if committed is None or not (self.tail <= committed <= self.head) else committed
        found: list[tuple[int, bytes]] = []
        while at < self.head:
            offset = at % capacity
            left = capacity - offset
            if left < _RECORD.size:
                at += left
                continue
            length, crc, kind = _RECORD.unpack_from(mapped, _HEADER_SIZE + offset)
            if length == _WRAP:
                at += left
                continue
            end = offset + _RECORD.size + length
            if end > capacity or at + _RECORD.size + length > self.head:
                break
            body = bytes(mapped[_HEADER_SIZE + offset + _RECORD.size : _HEADER_SIZE + end])
            if zlib.crc32(body) != crc:
                break
            found.append((kind, body))
            at += _RECORD.size + length
        if at < self.head:  # a torn record: what follows it is not trusted
            self.head = at
            struct.pack_into("<Q", mapped, _HEAD_AT, at)
        return found

    def _reset(self, journal_id: str, position: int) -> None:
        assert self._map is not None
        self.journal_id, self.head, self.tail = journal_id, position, position
        _HEADER.pack_into(self._map, 0, _MAGIC, journal_id.encode("ascii"), position, position)


def _empty(header: bytes) -> bool:
    """Whether a journal header says nothing is held (or is not a journal's)."""
    magic, _, head, tail = _HEADER.unpack_from(header, 0)
    return bool(magic != _MAGIC or head == tail)
