"""Deterministic embedding vectors: the same input always maps to the same unit vector.

Components come from SHAKE-256 of the UTF-8 input, so a shorter `dimensions` is the prefix of the longer vector,
renormalised, which is how OpenAI's shortened `text-embedding-3` vectors relate to the full ones. Results are
cached because benchmarks send the same inputs over and over.
"""

from __future__ import annotations

import base64
import hashlib
import math
import sys
from array import array
from functools import lru_cache

_SCALE = 2.0 / 4294967296.0


@lru_cache(maxsize=4096)
def embedding_vector(text: str, dimensions: int) -> tuple[float, ...]:
    """A unit vector of `dimensions` float32-representable components for `text`."""
    raw = array("I", hashlib.shake_256(text.encode("utf-8")).digest(4 * dimensions))
    if sys.byteorder == "big":
        raw.byteswap()
    values = [word * _SCALE - 1.0 for word in raw]
    norm = math.sqrt(math.fsum(value * value for value in values)) or 1.0
    rounded = array("f", [value / norm for value in values])
    return tuple(rounded)


@lru_cache(maxsize=4096)
def embedding_base64(text: str, dimensions: int) -> str:
    """The vector as OpenAI's `encoding_format: "base64"` sends it: little-endian float32, base64-encoded."""
    packed = array("f", embedding_vector(text, dimensions))
    if sys.byteorder == "big":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")
