"""O(1) hashes of any substring of one text, for the repetition filters' n-gram checks."""

from __future__ import annotations

import numpy as np

_HASH_BASE = 0x9E3779B97F4A7C15  # odd, so invertible modulo 2**64
_HASH_LENGTH_MIX = np.uint64(0xC2B2AE3D27D4EB4F)


def _power_tables(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(base**-t for t < n, base**t for t <= n), modulo 2**64."""
    inverse = np.uint64(pow(_HASH_BASE, -1, 1 << 64))
    with np.errstate(over="ignore"):
        weights = np.cumprod(np.concatenate(([np.uint64(1)], np.full(max(n - 1, 0), inverse, np.uint64))))
        scale = np.cumprod(np.concatenate(([np.uint64(1)], np.full(n, np.uint64(_HASH_BASE), np.uint64))))
    return weights, scale


_POWERS_KEPT = 1 << 20  # the longest power tables kept between texts (16 MiB)
_powers: tuple[np.ndarray, np.ndarray] = _power_tables(0)


def _hash_powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Power tables for a text of ``n`` characters (longer is fine: callers slice or index).

    The powers are the same for every text, so they are computed once, for the longest text
    so far (up to _POWERS_KEPT), rather than with two cumulative products per text.
    """
    global _powers
    if len(_powers[1]) > n:
        return _powers
    if n >= _POWERS_KEPT:
        return _power_tables(n)
    _powers = _power_tables(min(max(n + 1, 2 * len(_powers[1])), _POWERS_KEPT))
    return _powers


class SubstringHashes:
    """O(1) polynomial hashes of any substring of one string, after O(len) numpy setup.

    Equal substrings always get equal hashes, so "no two hashes equal" proves a set of
    substrings distinct without building them; the repetition filters use this to skip
    their exact (string-building) pass when nothing repeats. Arithmetic wraps modulo
    2**64, which keeps "equal strings, equal hashes" true.
    """

    def __init__(self, text: str):
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.uint64)
        n = len(codes)
        # weight of character t is base**-t; a substring [a, b) is rescaled by base**a
        weights, self._scale = _hash_powers(n)
        with np.errstate(over="ignore"):
            self._prefix = np.concatenate(([np.uint64(0)], np.cumsum(codes * weights[:n], dtype=np.uint64)))

    def hashes(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Hash of text[starts[i]:ends[i]] for every i (length mixed in)."""
        with np.errstate(over="ignore"):
            body = (self._prefix[ends] - self._prefix[starts]) * self._scale[starts]
            return body ^ ((ends - starts).astype(np.uint64) * _HASH_LENGTH_MIX)

