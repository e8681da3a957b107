"""Document deduplication: exact (on normalised text) and MinHash near-duplicates.

Both take ``(doc_id, text)`` pairs in a deterministic order and return
``{duplicate_id: kept_id}``, keeping the first document of each group in that order.
Ids must be unique; results are keyed by id, never by position.

FineWeb itself only runs MinHash (per crawl dump: 5-grams, 14 buckets of 8 hashes,
64-bit hashes). The exact pass is this project's cheap first step; ``minhash_dedup``
follows FineWeb's parameters, with its own shingling (normalised text split on
whitespace) rather than datatrove's NLTK word tokens.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence, Iterator
from functools import lru_cache

import numpy as np
import regex
import xxhash

_PUNCTUATION_RE = regex.compile(r"\p{P}+")
_WHITESPACE_RE = regex.compile(r"\s+")


def normalize_for_dedup(text: str) -> str:
    """NFKC, lower-case, punctuation removed, whitespace collapsed to single spaces.

    Punctuation is deleted, not replaced by a space ("don't" and "dont" match); symbols
    such as "$" or "+" are content and stay.
    """
    text = unicodedata.normalize("NFKC", text).lower()
    text = _PUNCTUATION_RE.sub("", text)
    return _WHITESPACE_RE.sub(" ", text).strip()


def _unique_ids(docs: Iterable[tuple[str, str]]) -> Iterator[tuple[str, str]]:
    seen: set[str] = set()
    for doc_id, text in docs:
        if doc_id in seen:
            raise ValueError(f"duplicate document id {doc_id!r}: ids must be unique")
        seen.add(doc_id)
        yield doc_id, text


def exact_dedup(docs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """{duplicate_id: kept_id} for documents whose normalised texts are identical."""
    first_with: dict[bytes, str] = {}
    duplicates: dict[str, str] = {}
    for doc_id, text in _unique_ids(docs):
        key = xxhash.xxh3_128_digest(normalize_for_dedup(text).encode("utf-8"))
        kept = first_with.setdefault(key, doc_id)
        if kept != doc_id:
            duplicates[doc_id] = kept
    return duplicates


# -------------------------------------------------------------------- MinHash

_MERSENNE_PRIME = np.uint64((1 << 61) - 1)


@lru_cache(maxsize=8)
def _permutations(n_hashes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The (a, b) of each hash function h(x) = (a*x + b) mod p, from the seed."""
    rng = np.random.default_rng(seed)
    a = rng.integers(1, int(_MERSENNE_PRIME), size=n_hashes, dtype=np.uint64)
    b = rng.integers(0, int(_MERSENNE_PRIME), size=n_hashes, dtype=np.uint64)
    return a, b


def _shingle_hashes(text: str, n_grams: int) -> np.ndarray:
    words = normalize_for_dedup(text).split()
    if not words:
        return np.empty(0, dtype=np.uint64)
    # A text shorter than one shingle is one shingle, so short identical texts still meet.
    width = min(n_grams, len(words))
    shingles = {" ".join(words[i : i + width]) for i in range(len(words) - width + 1)}
    return np.fromiter((xxhash.xxh3_64_intdigest(s.encode('utf-8')) for s in shingles), dtype=np.uint64, count=len(shingles))


def minhash_signatures(
    text: str, n_grams: int = 5, buckets: int = 14, hashes_per_bucket: int = 8, seed: int = 1
) -> np.ndarray | None:
    """The text's MinHash signature (buckets x hashes_per_bucket uint64), None if it has no words.

    Products wrap modulo 2**64 before the reduction modulo 2**61-1, as in datatrove:
    still a good hash family, and it stays in fast uint64 numpy arithmetic.
    """
    hashes = _shingle_hashes(text, n_grams)
    if hashes.size == 0:
        return None
    a, b = _permutations(buckets * hashes_per_bucket, seed)
    with np.errstate(over="ignore"):
        values = (hashes[:, None] * a[None, :] + b[None, :]) % _MERSENNE_PRIME
    return values.min(axis=0).reshape(buckets, hashes_per_bucket)


class _UnionFind:
    """Disjoint sets over 0..n-1 whose root is always the smallest index."""

    def __init__(self) -> None:
        self.parent: list[int] = []

    def add(self) -> int:
        self.parent.append(len(self.parent))
        return len(self.parent) - 1

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:  # path compression
            self.parent[i], i = root, self.parent[i]
        return root

    def union(self, i: int, j: int) -> None:
        ri, rj = self.find(i), self.find(j)
        if ri != rj:
            self.parent[max(ri, rj)] = min(ri, rj)


def band_hashes(signature: np.ndarray | None) -> list[int] | None:
    """One 64-bit hash per LSH bucket: what the global step needs to find candidate pairs.

    Computed next to the text (in the per-shard tasks) so the global step reads
    14 integers per document instead of its text.
    """
    if signature is None:
        return None
    return [xxhash.xxh3_64_intdigest(band.tobytes()) for band in signature]


def cluster_by_bands(docs: Iterable[tuple[str, Sequence[int] | None]]) -> dict[str, str]:
    """{duplicate_id: kept_id}: documents sharing any bucket hash (directly or through a chain)
    form a cluster, and its first document in the given order is kept."""
    sets = _UnionFind()
    ids: list[str] = []
    first_in_bucket: list[dict[int, int]] = []
    for doc_id, bands in _unique_ids(docs):
        index = sets.add()
        ids.append(doc_id)
        if not bands:
            continue
        while len(first_in_bucket) < len(bands):
            first_in_bucket.append({})
        for bucket, band in enumerate(bands):
            other = first_in_bucket[bucket].setdefault(band, index)
            if other != index:
                sets.union(other, index)
    return {ids[i]: ids[sets.find(i)] for i in range(len(ids)) if sets.find(i) != i}


def minhash_dedup(
    docs: Iterable[tuple[str, str]],
    n_grams: int = 5,
    buckets: int = 14,
    hashes_per_bucket: int = 8,
    seed: int = 1,
) -> dict[str, str]:
    """{duplicate_id: kept_id} for near-duplicates among (id, text) pairs."""
    return cluster_by_bands(
        (doc_id, band_hashes(minhash_signatures(text, n_grams, buckets, hashes_per_bucket, seed)))
        for doc_id, text in docs
    )
