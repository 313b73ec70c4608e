"""Stable placement: which partition owns a key or an orchestration instance.

Never uses ``hash()``, which is salted per process: placement must agree across every
process and Python version that runs the application.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

_JUMP_MULTIPLIER = 2862933555777941757
_MASK64 = (1 << 64) - 1


def stable_digest(text: str) -> int:
    """A 64-bit integer from the UTF-8 bytes of ``text`` (first 8 bytes of BLAKE2b)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


def jump_hash(key: int, buckets: int) -> int:
    """Lamping and Veach's jump consistent hash: moves few keys when ``buckets`` grows."""
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * _JUMP_MULTIPLIER + 1) & _MASK64
        j = int((b + 1) * ((1 << 31) / ((key >> 33) + 1)))
    return b


@lru_cache(maxsize=1 << 16)  # pure; hosts place the same instance ids over and over
def place_text(text: str, partitions: int) -> int:
    return jump_hash(stable_digest(text), partitions)
