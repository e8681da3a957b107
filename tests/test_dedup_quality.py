"""MinHash-LSH detection quality against theory, with and without exact-Jaccard verification.

Near-duplicate pairs are built from random word sequences so that the exact Jaccard
similarity s of their 5-gram shingle sets is (within half a percent) a chosen value. With
14 buckets of 8 hashes, a pair shares at least one bucket with probability
P(s) = 1 - (1 - s**8)**14, so the measured detection rate at each s must match the mean
of P over the pairs' measured similarities, up to binomial noise.

Run as a script (``python tests/test_dedup_quality.py``) to print the detection table.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pytest

from tasks.data.dedup import (
    JaccardVerifier,
    band_hashes,
    candidate_ids,
    cluster_by_bands,
    jaccard_verifier,
    minhash_signatures_batch,
    normalize_for_dedup,
    shingle_jaccard,
)

N_GRAMS, BUCKETS, HASHES_PER_BUCKET = 5, 14, 8
LEVELS = (0.3, 0.5, 0.7, 0.8, 0.85, 0.9)
# 1000 pairs per level: the binomial standard error is at most 1.6 points (at s = 0.7,
# where P(s) is near 1/2), and the corpus (12,000 documents) is signed in a few seconds.
PAIRS_PER_LEVEL = 1000
VERIFY_THRESHOLD = 0.8
SEED = 20240522
SHARD_SIZE = 1000  # signatures are computed per shard, as in the data stage


def lsh_probability(s: np.ndarray | float) -> np.ndarray | float:
    """Probability that two sets with Jaccard similarity s share at least one bucket."""
    return 1 - (1 - np.asarray(s, dtype=float) ** HASHES_PER_BUCKET) ** BUCKETS


def _vocabulary(rng: random.Random, size: int = 4000) -> list[str]:
    # Lower-case letter words: normalisation leaves them alone, so a document's words are
    # exactly the tokens MinHash shingles. 4000 of them make an accidental repeated
    # 5-gram (which would shift the Jaccard similarity) practically impossible.
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9))))
    return sorted(words)


def _near_duplicate_pair(rng: random.Random, vocabulary: list[str], target: float) -> tuple[str, str]:
    """Two texts whose 5-gram shingle sets have Jaccard similarity close to target.

    Both have L words, hence n = L - 4 shingles. Substituting words in the second destroys
    exactly the shingles covering a substituted position (d of them) and creates d new
    ones, so J = (n - d) / (n + d); d is chosen for the target and substitution sites are
    drawn at random, rejecting any that would overshoot d (sites next to earlier ones, or
    at the ends, destroy fewer, so d is always reached exactly).
    """
    length = rng.randint(150, 300)
    first = [rng.choice(vocabulary) for _ in range(length)]
    n_shingles = length - N_GRAMS + 1
    wanted = round(n_shingles * (1 - target) / (1 + target))
    destroyed: set[int] = set()  # start positions of the first text's shingles that are gone
    sites: set[int] = set()
    while len(destroyed) < wanted:
        site = rng.randrange(length)
        if site in sites:
            continue
        covering = {i for i in range(site - N_GRAMS + 1, site + 1) if 0 <= i < n_shingles}
        if len(destroyed | covering) > wanted:
            continue
        sites.add(site)
        destroyed |= covering
    second = list(first)
    for site in sites:
        while second[site] == first[site]:
            second[site] = rng.choice(vocabulary)
    return " ".join(first), " ".join(second)


def _exact_jaccard(text_a: str, text_b: str) -> float:
    """Reference shingle Jaccard on word tuples, independent of tasks.data.dedup's hashing."""

    def shingles(text: str) -> set[tuple[str, ...]]:
        words = text.split()
        return {tuple(words[i : i + N_GRAMS]) for i in range(len(words) - N_GRAMS + 1)}

    a, b = shingles(text_a), shingles(text_b)
    return len(a & b) / len(a | b)


@dataclass(frozen=True)
class Pair:
    level: float
    original: str  # id of the text the other was derived from
    edited: str
    jaccard: float  # exact, measured


@dataclass
class Corpus:
    texts: dict[str, str]  # id -> text, in corpus order (shuffled: pairs are not adjacent)
    pairs: list[Pair]

    @cached_property
    def position(self) -> dict[str, int]:
        return {doc_id: i for i, doc_id in enumerate(self.texts)}

    @cached_property
    def signatures(self) -> dict[str, np.ndarray | None]:
        ids = list(self.texts)
        out: dict[str, np.ndarray | None] = {}
        for lo in range(0, len(ids), SHARD_SIZE):
            shard = ids[lo : lo + SHARD_SIZE]
            signatures = minhash_signatures_batch(
                (self.texts[i] for i in shard), N_GRAMS, BUCKETS, HASHES_PER_BUCKET
            )
            out.update(zip(shard, signatures))
        return out

    @cached_property
    def bands(self) -> list[tuple[str, list[int] | None]]:
        return [(doc_id, band_hashes(sig)) for doc_id, sig in self.signatures.items()]

    def level(self, level: float) -> list[Pair]:
        return [pair for pair in self.pairs if pair.level == level]


def build_corpus(seed: int = SEED, pairs_per_level: int = PAIRS_PER_LEVEL) -> Corpus:
    rng = random.Random(seed)
    vocabulary = _vocabulary(rng)
    texts: dict[str, str] = {}
    pairs: list[Pair] = []
    for level in LEVELS:
        for _ in range(pairs_per_level):
            original, edited = _near_duplicate_pair(rng, vocabulary, level)
            # Opaque ids, unrelated to positions or levels: results must be keyed by id.
            id_a, id_b = (f"<urn:uuid:{rng.getrandbits(128):032x}>" for _ in range(2))
            texts[id_a], texts[id_b] = original, edited
            pairs.append(Pair(level, id_a, id_b, _exact_jaccard(original, edited)))
    order = list(texts)
    rng.shuffle(order)
    return Corpus({doc_id: texts[doc_id] for doc_id in order}, pairs)


def _same_cluster(clusters: dict[str, str], a: str, b: str) -> bool:
    return clusters.get(a, a) == clusters.get(b, b)


@dataclass(frozen=True)
class LevelResult:
    level: float
    pairs: int
    mean_jaccard: float
    detected: float  # without verification
    expected: float  # mean of P(s) over the pairs' exact similarities
    standard_error: float
    detected_verified: float


def measure(corpus: Corpus, plain: dict[str, str], verified: dict[str, str]) -> list[LevelResult]:
    results = []
    for level in LEVELS:
        pairs = corpus.level(level)
        similarity = np.array([p.jaccard for p in pairs])
        probability = lsh_probability(similarity)
        results.append(
            LevelResult(
                level=level,
                pairs=len(pairs),
                mean_jaccard=float(similarity.mean()),
                detected=float(np.mean([_same_cluster(plain, p.original, p.edited) for p in pairs])),
                expected=float(probability.mean()),
                standard_error=float(np.sqrt((probability * (1 - probability)).sum()) / len(pairs)),
                detected_verified=float(np.mean([_same_cluster(verified, p.original, p.edited) for p in pairs])),
            )
        )
    return results


# ------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return build_corpus()


@pytest.fixture(scope="module")
def plain(corpus: Corpus) -> dict[str, str]:
    return cluster_by_bands(corpus.bands)


@dataclass
class VerifiedRun:
    clusters: dict[str, str]
    verifier: JaccardVerifier
    read: list[str]  # ids whose text the verifier fetched, in order


@pytest.fixture(scope="module")
def verified_run(corpus: Corpus) -> VerifiedRun:
    read: list[str] = []

    def lookup(doc_id: str) -> str:  # stands in for the data stage's reader of Parquet shards
        read.append(doc_id)
        return corpus.texts[doc_id]

    verifier = jaccard_verifier(lookup, VERIFY_THRESHOLD, N_GRAMS)
    return VerifiedRun(cluster_by_bands(corpus.bands, verify=verifier), verifier, read)


@pytest.fixture(scope="module")
def verified(verified_run: VerifiedRun) -> dict[str, str]:
    return verified_run.clusters


@pytest.fixture(scope="module")
def results(corpus: Corpus, plain: dict[str, str], verified: dict[str, str]) -> dict[float, LevelResult]:
    return {r.level: r for r in measure(corpus, plain, verified)}


# ---------------------------------------------------------------------------- tests


def test_theoretical_curve() -> None:
    # The S-curve of 14 buckets x 8 hashes, as quoted in tasks/data/dedup.py.
    assert lsh_probability(0.5) == pytest.approx(0.0532, abs=5e-4)
    assert lsh_probability(0.7) == pytest.approx(0.5646, abs=5e-4)
    assert lsh_probability(0.8) == pytest.approx(0.9234, abs=5e-4)
    assert lsh_probability(0.85) == pytest.approx(0.9884, abs=5e-4)


def test_pairs_have_the_target_similarity(corpus: Corpus) -> None:
    assert len(corpus.pairs) == len(LEVELS) * PAIRS_PER_LEVEL
    for pair in corpus.pairs:
        assert abs(pair.jaccard - pair.level) <= 0.006, pair
    # The library's exact Jaccard (on hashed shingles of normalised text) agrees with the
    # reference on word tuples; spot-check a sample of each level.
    for level in LEVELS:
        for pair in corpus.level(level)[:50]:
            a, b = corpus.texts[pair.original], corpus.texts[pair.edited]
            assert normalize_for_dedup(a) == a
            assert shingle_jaccard(a, b, N_GRAMS) == pytest.approx(pair.jaccard, abs=1e-12)


def test_only_injected_pairs_are_merged_and_the_earlier_is_kept(corpus: Corpus, plain: dict[str, str]) -> None:
    partner = {p.original: p.edited for p in corpus.pairs} | {p.edited: p.original for p in corpus.pairs}
    assert plain, "no pair detected at all"
    for duplicate, kept in plain.items():
        assert partner[duplicate] == kept
        assert corpus.position[kept] < corpus.position[duplicate]


@pytest.mark.parametrize("level", LEVELS)
def test_detection_rate_follows_the_lsh_curve(results: dict[float, LevelResult], level: float) -> None:
    r = results[level]
    tolerance = max(0.04, 4 * r.standard_error)
    assert abs(r.detected - r.expected) <= tolerance, (
        f"s={level}: detected {r.detected:.4f} of {r.pairs} pairs, theory {r.expected:.4f} ± {tolerance:.4f}"
    )


def test_signature_agreement_matches_jaccard(corpus: Corpus) -> None:
    """Sharper than detection: per hash, P(minima agree) = s; per bucket, P(all 8 agree) = s**8.

    Pooled over a level's pairs this has 112,000 (resp. 14,000) trials, so it would expose a
    hash family that is biased or whose hash functions are correlated.
    """
    for level in LEVELS:
        pairs = corpus.level(level)
        signatures = corpus.signatures
        agree = np.stack([signatures[p.original] == signatures[p.edited] for p in pairs])  # pairs x buckets x hashes
        similarity = np.array([p.jaccard for p in pairs])

        per_hash = similarity[:, None, None].repeat(BUCKETS, 1).repeat(HASHES_PER_BUCKET, 2)
        se_hash = np.sqrt((per_hash * (1 - per_hash)).sum()) / per_hash.size
        assert abs(agree.mean() - per_hash.mean()) <= 4 * se_hash, (level, agree.mean(), per_hash.mean())

        bucket_probability = np.repeat(similarity**HASHES_PER_BUCKET, BUCKETS)
        bucket_agree = agree.all(axis=2).ravel()
        se_bucket = np.sqrt((bucket_probability * (1 - bucket_probability)).sum()) / bucket_probability.size
        assert abs(bucket_agree.mean() - bucket_probability.mean()) <= max(4 * se_bucket, 2e-4), (
            level,
            bucket_agree.mean(),
            bucket_probability.mean(),
        )


def test_verification_removes_false_merges_and_keeps_true_ones(
    corpus: Corpus, plain: dict[str, str], verified: dict[str, str], results: dict[float, LevelResult]
) -> None:
    for level in LEVELS:
        r = results[level]
        if level <= 0.5:
            assert r.detected_verified <= 0.01, r
        if level >= 0.85:
            assert r.detected_verified >= 0.95, r
    # Pairs are alone in their buckets, so verification keeps exactly the LSH candidates
    # whose exact similarity reaches the threshold.
    for pair in corpus.pairs:
        expected = _same_cluster(plain, pair.original, pair.edited) and pair.jaccard >= VERIFY_THRESHOLD
        assert _same_cluster(verified, pair.original, pair.edited) == expected, pair
    assert set(verified.items()) <= set(plain.items())


def test_verifier_reads_only_candidate_texts_once(
    corpus: Corpus, plain: dict[str, str], verified_run: VerifiedRun
) -> None:
    read, verifier = verified_run.read, verified_run.verifier
    assert len(read) == len(set(read)) == verifier.lookups  # each text fetched once
    # Only the injected pairs share buckets, and each such pair is checked once: exactly
    # the documents of the LSH candidate pairs are read, and nothing else.
    candidates = candidate_ids(corpus.bands)
    assert candidates == set(plain) | set(plain.values())
    assert set(read) == candidates
    assert verifier.checked == len(plain)
    assert verifier.rejected == len(plain) - len(verified_run.clusters)


def _table(results: list[LevelResult]) -> str:
    lines = [
        "| s | pairs | mean exact J | detected (LSH) | theory P(s) | ± 1 s.e. | detected (LSH + verify >= 0.8) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.level} | {r.pairs} | {r.mean_jaccard:.4f} | {r.detected:.4f} | {r.expected:.4f} "
            f"| {r.standard_error:.4f} | {r.detected_verified:.4f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    built = build_corpus()
    plain_clusters = cluster_by_bands(built.bands)
    verified_clusters = cluster_by_bands(
        built.bands, verify=jaccard_verifier(built.texts, VERIFY_THRESHOLD, N_GRAMS)
    )
    print(_table(measure(built, plain_clusters, verified_clusters)))
