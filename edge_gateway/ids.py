"""Ids the edge mints per request (request ids, telemetry record ids).

Why not `uuid.uuid4().hex`: it makes a `getrandom` syscall and a UUID object per id, and the edge mints four
per request; together that was ~4% of its CPU per request (`bench/bench_edge.py`, py-spy). These ids must be
unique, not secret, so 128 bits from a Mersenne Twister seeded once from `os.urandom` do (same format: 32 hex
digits). `to_bytes(16).hex()` rather than a `032x` format: the same 32 digits, a third of the time.
"""

from __future__ import annotations

import random

__all__ = ["new_id"]

_bits = random.Random().getrandbits


def new_id() -> str:
    return _bits(128).to_bytes(16, "big").hex()
