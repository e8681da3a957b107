"""Document deduplication: exact (on normalised text) and MinHash near-duplicates.

Both take ``(doc_id, text)`` pairs in a deterministic order and return
``{duplicate_id: kept_id}``, keeping the first document of each group in that order.
Ids must be unique; results are keyed by id, never by position.

FineWeb itself only runs MinHash (per crawl dump: 5-grams, 14 buckets of 8 hashes,
64-bit hashes). The exact pass is this project's cheap first step; ``minhash_dedup``
follows FineWeb's parameters, with its own shingling (normalised text split on
whitespace) rather than datatrove's NLTK word tokens.

With these parameters a pair of documents whose shingle sets have Jaccard similarity s
shares at least one LSH bucket with probability 1 - (1 - s**8)**14: about 5% at s = 0.5,
56% at 0.7, 92% at 0.8 and 98.8% at 0.85 (``tests/test_dedup_quality.py`` measures it).
The optional verification step (off by default, as in FineWeb) merges a candidate pair
only if the exact Jaccard similarity of its shingle sets reaches a threshold.
"""

from __future__ import annotations

import itertools
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
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
    return np.fromiter(
        (xxhash.xxh3_64_intdigest(s.encode("utf-8")) for s in shingles), dtype=np.uint64, count=len(shingles)
    )


def minhash_signatures(
    text: str, n_grams: int = 5, buckets: int = 14, hashes_per_bucket: int = 8, seed: int = 1
) -> np.ndarray | None:
    """The text's MinHash signature (buckets x hashes_per_bucket uint64), None if it has no words.

    Each of the buckets x hashes_per_bucket values is min over the text's shingles of
    h(x) = ((a*x + b) mod 2**64) mod (2**61 - 1), x the shingle's 64-bit xxh3 hash.
    Products wrap modulo 2**64 before the reduction modulo 2**61-1, as in datatrove:
    still a good hash family, and it stays in fast uint64 numpy arithmetic.
    """
    return minhash_signatures_batch([text], n_grams, buckets, hashes_per_bucket, seed)[0]


# Elements of the (shingles x hash functions) work array computed at once: 2**19 uint64
# values are 4 MiB, so memory stays flat whatever the texts' lengths, the block stays in
# cache between the multiply, add and remainder passes, and numpy's per-call overhead is
# still negligible.
_BLOCK_VALUES = 1 << 19


def minhash_signatures_batch(
    texts: Iterable[str], n_grams: int = 5, buckets: int = 14, hashes_per_bucket: int = 8, seed: int = 1
) -> list[np.ndarray | None]:
    """``minhash_signatures`` of many texts at once, in order; bit-identical to it.

    The shingles of all texts are hashed into one array and processed in fixed-size
    blocks (a text may span blocks), so short texts don't each pay numpy's call
    overhead and a huge text doesn't need a huge temporary array.
    """
    per_text = [_shingle_hashes(text, n_grams) for text in texts]
    n_hashes = buckets * hashes_per_bucket
    a, b = _permutations(n_hashes, seed)
    counts = np.fromiter((h.size for h in per_text), dtype=np.int64, count=len(per_text))
    if counts.sum() == 0:
        return [None] * len(per_text)
    shingles = np.concatenate(per_text)
    owner = np.repeat(np.arange(len(per_text)), counts)  # text index of each shingle, non-decreasing
    # The maximum never survives a min over a non-empty text: values are < 2**61 - 1.
    minima = np.full((len(per_text), n_hashes), np.iinfo(np.uint64).max, dtype=np.uint64)
    rows = max(1, _BLOCK_VALUES // n_hashes)
    work = np.empty((min(rows, shingles.size), n_hashes), dtype=np.uint64)
    for lo in range(0, shingles.size, rows):
        block, block_owner = shingles[lo : lo + rows], owner[lo : lo + rows]
        values = work[: block.size]
        # In place, no temporaries; uint64 multiply and add wrap modulo 2**64 (intended).
        np.multiply(block[:, None], a[None, :], out=values)
        values += b
        np.remainder(values, _MERSENNE_PRIME, out=values)
        # Rows of one text are contiguous: reduce each run, then fold into that text's
        # running minimum (a text cut by a block boundary gets one partial min per block).
        starts = np.flatnonzero(np.r_[True, block_owner[1:] != block_owner[:-1]])
        texts_here = block_owner[starts]
        minima[texts_here] = np.minimum(minima[texts_here], np.minimum.reduceat(values, starts, axis=0))
    shaped = minima.reshape(len(per_text), buckets, hashes_per_bucket)
    return [shaped[i] if counts[i] else None for i in range(len(per_text))]


def shingle_set(text: str, n_grams: int = 5) -> np.ndarray:
    """The sorted, distinct 64-bit hashes of the text's shingles: the set MinHash estimates
    Jaccard similarity on (same normalisation, same short-text rule)."""
    return np.unique(_shingle_hashes(text, n_grams))


def _jaccard_of_sets(a: np.ndarray, b: np.ndarray) -> float:
    if a.size == 0 and b.size == 0:
        return 1.0  # both texts normalise to nothing: identical, though MinHash never pairs them
    common = np.intersect1d(a, b, assume_unique=True).size
    return common / (a.size + b.size - common)


def shingle_jaccard(text_a: str, text_b: str, n_grams: int = 5) -> float:
    """Exact Jaccard similarity of the two texts' shingle sets (the quantity MinHash-LSH
    estimates). Computed on 64-bit shingle hashes: a collision, ~n**2 / 2**64, is negligible."""
    return _jaccard_of_sets(shingle_set(text_a, n_grams), shingle_set(text_b, n_grams))


class JaccardVerifier:
    """``verify(id_a, id_b)`` for ``cluster_by_bands``: exact shingle Jaccard >= threshold.

    Texts are fetched through ``texts`` only when a pair is actually checked, i.e. only
    for documents in candidate pairs, and each document's shingle set is cached so a
    cluster's representative, checked against every newcomer, is read and shingled once.
    The cache is an LRU of ``cache_size`` documents (None: unbounded). ``lookups``,
    ``checked`` and ``rejected`` count text fetches and verified / rejected pairs.
    """

    def __init__(
        self,
        texts: Mapping[str, str] | Callable[[str], str],
        threshold: float,
        n_grams: int = 5,
        cache_size: int | None = 100_000,
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be within [0, 1], got {threshold}")
        self._lookup: Callable[[str], str] = texts.__getitem__ if isinstance(texts, Mapping) else texts
        self.threshold = threshold
        self.n_grams = n_grams
        self.cache_size = cache_size
        self._sets: OrderedDict[str, np.ndarray] = OrderedDict()
        self.lookups = 0
        self.checked = 0
        self.rejected = 0

    def shingles(self, doc_id: str) -> np.ndarray:
        cached = self._sets.get(doc_id)
        if cached is not None:
            self._sets.move_to_end(doc_id)
            return cached
        self.lookups += 1
        shingles = shingle_set(self._lookup(doc_id), self.n_grams)
        self._sets[doc_id] = shingles
        if self.cache_size is not None and len(self._sets) > self.cache_size:
            self._sets.popitem(last=False)
        return shingles

    def jaccard(self, id_a: str, id_b: str) -> float:
        return _jaccard_of_sets(self.shingles(id_a), self.shingles(id_b))

    def __call__(self, id_a: str, id_b: str) -> bool:
        self.checked += 1
        merge = self.jaccard(id_a, id_b) >= self.threshold
        self.rejected += not merge
        return merge


def jaccard_verifier(
    texts: Mapping[str, str] | Callable[[str], str],
    threshold: float = 0.8,
    n_grams: int = 5,
    cache_size: int | None = 100_000,
) -> JaccardVerifier:
    """A verifier for ``cluster_by_bands`` that merges a candidate pair only if the exact
    Jaccard similarity of the texts' shingle sets is at least ``threshold``.

    ``texts`` maps a document id to its text (a dict, or a function that reads it on
    demand); it is called lazily, only for documents that appear in candidate pairs.
    ``n_grams`` must be the one the signatures were computed with.
    """
    return JaccardVerifier(texts, threshold, n_grams, cache_size)


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


def cluster_by_bands(
    docs: Iterable[tuple[str, Sequence[int] | None]],
    verify: Callable[[str, str], bool] | None = None,
) -> dict[str, str]:
    """{duplicate_id: kept_id}: documents sharing any bucket hash (directly or through a chain)
    form a cluster, and its first document in the given order is kept.

    Without ``verify`` every document is merged with the first document that had the same
    hash in the same bucket (FineWeb's behaviour). With ``verify(id_a, id_b) -> bool``
    (e.g. ``jaccard_verifier``), a candidate pair is merged only if it returns True; ``id_a``
    is the earlier document. Which pairs are checked, and why:

    - Each (bucket, hash) keeps a list of representatives: its first document, plus every
      later document that was merged with none of the representatives before it.
    - A newcomer is checked against each representative of each of its buckets, in order
      of arrival, skipping those already in its cluster (joined through an earlier bucket
      or representative); it is merged with every one that passes.

    Why representatives rather than only the bucket's first document, or all its members:

    - First only: once a newcomer fails against the first document, the newcomer's own
      near-copies arriving later in that bucket are again compared only with the first
      document, never with the newcomer, so they are missed.
    - All members: a newcomer that matches nobody is checked against every member, and
      buckets of templated pages can hold thousands of similar-but-not-duplicate
      documents: quadratic.
    - Representatives: one per group of mutually dissimilar documents in the bucket
      (usually just one), each the earliest of its group, i.e. the document its cluster
      keeps unless the group joins an earlier cluster elsewhere. A newcomer is therefore
      compared with what would be kept, at about one check per candidate document; a
      pair that meets in several buckets is checked once.

    Clusters are still transitive across buckets (A~B in one bucket and B~C in another put
    C with A, each link verified). Deterministic: the result depends only on the order of
    ``docs``, not on how they were split into shards.
    """
    clusters = _BandClusters(verify)
    for doc_id, bands in _unique_ids(docs):
        clusters.add(doc_id, bands)
    return clusters.duplicates()


class _BandClusters:
    """``cluster_by_bands``'s state while documents arrive in order."""

    def __init__(self, verify: Callable[[str, str], bool] | None) -> None:
        self.verify = verify
        self.sets = _UnionFind()
        self.ids: list[str] = []
        self.first_in_bucket: list[dict[int, int]] = []
        # Representatives after the first, per (bucket, hash); only verification adds any,
        # so the unverified path keeps one int per bucket and document.
        self.more_representatives: dict[tuple[int, int], list[int]] = {}

    def add(self, doc_id: str, bands: Sequence[int] | None) -> None:
        index = self.sets.add()
        self.ids.append(doc_id)
        if not bands:
            return
        while len(self.first_in_bucket) < len(bands):
            self.first_in_bucket.append({})
        rejected: set[int] = set()  # representatives that failed against this document
        for bucket, band in enumerate(bands):
            first = self.first_in_bucket[bucket].setdefault(band, index)
            if first == index:
                continue
            if self.verify is None:
                self.sets.union(first, index)
            else:
                self._join_verified(self.verify, (bucket, band), first, index, rejected)

    def _join_verified(
        self, verify: Callable[[str, str], bool], key: tuple[int, int], first: int, index: int, rejected: set[int]
    ) -> None:
        """Merge the newcomer with every representative of the bucket that it passes against;
        it becomes a representative itself when it joined none of them."""
        represented = False
        for representative in [first, *self.more_representatives.get(key, ())]:
            if self.sets.find(representative) == self.sets.find(index):
                represented = True
            elif representative in rejected:
                continue  # met again in another bucket: one check per pair
            elif verify(self.ids[representative], self.ids[index]):
                self.sets.union(representative, index)
                represented = True
            else:
                rejected.add(representative)
        if not represented:
            self.more_representatives.setdefault(key, []).append(index)

    def duplicates(self) -> dict[str, str]:
        ids, find = self.ids, self.sets.find
        return {ids[i]: ids[find(i)] for i in range(len(ids)) if find(i) != i}


def candidate_ids(docs: Iterable[tuple[str, Sequence[int] | None]]) -> set[str]:
    """Ids of the documents that share at least one bucket hash with another document.

    The only documents ``cluster_by_bands`` can pass to ``verify``: a caller that reads
    texts from storage can fetch exactly these, in one pass, before clustering.
    """
    first_in_bucket: list[dict[int, str]] = []
    found: set[str] = set()
    for doc_id, bands in docs:
        if not bands:
            continue
        while len(first_in_bucket) < len(bands):
            first_in_bucket.append({})
        for bucket, band in enumerate(bands):
            first = first_in_bucket[bucket].setdefault(band, doc_id)
            if first != doc_id:
                found.update((first, doc_id))
    return found


def minhash_dedup(
    docs: Iterable[tuple[str, str]],
    n_grams: int = 5,
    buckets: int = 14,
    hashes_per_bucket: int = 8,
    seed: int = 1,
    verify_threshold: float | None = None,
) -> dict[str, str]:
    """{duplicate_id: kept_id} for near-duplicates among (id, text) pairs.

    ``verify_threshold``: if set, candidate pairs are merged only if their exact shingle
    Jaccard similarity reaches it (see ``cluster_by_bands``); None (default) is FineWeb's
    plain MinHash-LSH.
    """
    texts: dict[str, str] = {}  # kept only for verification

    def bands() -> Iterator[tuple[str, list[int] | None]]:
        # Signed in chunks: batch speed without holding every text when not verifying.
        chunk: list[tuple[str, str]] = []
        for doc in itertools.chain(docs, [None]):
            if doc is not None:
                chunk.append(doc)
                if verify_threshold is not None:
                    texts.setdefault(*doc)
            if chunk and (doc is None or len(chunk) == 1024):
                signatures = minhash_signatures_batch((t for _, t in chunk), n_grams, buckets, hashes_per_bucket, seed)
                yield from ((doc_id, band_hashes(sig)) for (doc_id, _), sig in zip(chunk, signatures))
                chunk = []

    verify = jaccard_verifier(texts, verify_threshold, n_grams) if verify_threshold is not None else None
    return cluster_by_bands(bands(), verify)
