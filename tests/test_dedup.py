"""Exact and MinHash deduplication (detection quality: test_dedup_quality.py)."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import numpy as np
import pytest
import xxhash

from tasks.data.dedup import (
    _permutations,
    band_hashes,
    candidate_ids,
    cluster_by_bands,
    exact_dedup,
    jaccard_verifier,
    minhash_dedup,
    minhash_signatures,
    minhash_signatures_batch,
    normalize_for_dedup,
    shingle_jaccard,
)


def test_normalisation() -> None:
    assert normalize_for_dedup("  Hello,\tWORLD!!\n\n It's   me…  ") == "hello world its me"
    # NFKC folds compatibility forms (fullwidth letters, ligatures) before comparing
    assert normalize_for_dedup("Ｈｅｌｌｏ ﬁne") == "hello fine"
    assert normalize_for_dedup("price: $5 + tax") == "price $5 + tax"  # symbols are content


def test_exact_duplicates_differing_in_case_punctuation_whitespace() -> None:
    docs = [
        ("d1", "The cat sat on the mat."),
        ("d2", "A different document entirely."),
        ("d3", "the CAT sat   on the mat"),
        ("d4", "The cat, sat on the mat!\n"),
        ("d5", "The cat sat on the hat."),
    ]
    assert exact_dedup(docs) == {"d3": "d1", "d4": "d1"}


def test_first_in_the_given_order_is_kept() -> None:
    docs = [("z", "same text"), ("a", "Same text."), ("m", "SAME TEXT")]
    assert exact_dedup(docs) == {"a": "z", "m": "z"}
    assert exact_dedup(reversed(docs)) == {"a": "m", "z": "m"}


def test_results_are_keyed_by_id_and_accept_generators() -> None:
    result = exact_dedup((f"doc-{i}", "x" if i % 2 else f"unique {i}") for i in range(6))
    assert result == {"doc-3": "doc-1", "doc-5": "doc-1"}


def test_distinct_texts_are_not_duplicates(shared_data: Path) -> None:
    book = (shared_data / "text" / "en" / "pg1342-pride-and-prejudice.txt").read_text(encoding="utf-8")
    paragraphs = [p for p in book.split("\n\n") if len(p) > 200][:200]
    assert len(set(paragraphs)) == len(paragraphs)
    assert exact_dedup((str(i), p) for i, p in enumerate(paragraphs)) == {}


def test_repeated_ids_are_rejected() -> None:
    with pytest.raises(ValueError, match="duplicate document id 'a'"):
        exact_dedup([("a", "one"), ("a", "two")])


def test_minhash_signature_shape_and_determinism() -> None:
    text = "one two three four five six seven eight nine ten"
    signature = minhash_signatures(text)
    assert signature is not None and signature.shape == (14, 8)
    assert (signature == minhash_signatures(text)).all()
    assert minhash_signatures("!!! ...") is None


def test_minhash_finds_near_duplicates(shared_data: Path) -> None:
    book = (shared_data / "text" / "en" / "pg1342-pride-and-prejudice.txt").read_text(encoding="utf-8")
    start = book.index("It is a truth universally acknowledged")
    base = book[start : start + 4000]
    edited = base.replace("Netherfield", "Netherfeld", 1) + " A line appended at the end."
    other = book[start + 50_000 : start + 54_000]
    docs = [("orig", base), ("other", other), ("edited", edited), ("copy", base.upper())]
    assert minhash_dedup(docs) == {"edited": "orig", "copy": "orig"}


def test_minhash_clusters_are_transitive_and_keep_the_first() -> None:
    words = [f"w{i}" for i in range(400)]
    a = " ".join(words)
    b = " ".join(words[:390] + [f"x{i}" for i in range(10)])  # a small edit of a
    c = " ".join(words[:380] + [f"x{i}" for i in range(10)] + [f"y{i}" for i in range(10)])  # of b
    assert minhash_dedup([("c", c), ("a", a), ("b", b)]) == {"a": "c", "b": "c"}


# ------------------------------------------------------------------ batch signatures


def _reference_signature(text: str, n_grams: int = 5, buckets: int = 14, hashes_per_bucket: int = 8) -> np.ndarray:
    """The definition, in Python integers: min over shingles of ((a*x + b) mod 2**64) mod (2**61 - 1)."""
    words = normalize_for_dedup(text).split()
    width = min(n_grams, len(words))
    shingles = {" ".join(words[i : i + width]) for i in range(len(words) - width + 1)}
    xs = [xxhash.xxh3_64_intdigest(s.encode("utf-8")) for s in shingles]
    a, b = _permutations(buckets * hashes_per_bucket, 1)
    p = (1 << 61) - 1
    mins = [min((int(ai) * x + int(bi)) % (1 << 64) % p for x in xs) for ai, bi in zip(a, b)]
    return np.array(mins, dtype=np.uint64).reshape(buckets, hashes_per_bucket)


def test_signatures_follow_the_definition() -> None:
    for text in ["one two three four five six seven eight", "Hello, world!", "a"]:
        signature = minhash_signatures(text)
        assert signature is not None
        assert (signature == _reference_signature(text)).all()


def test_batch_signatures_equal_single_ones() -> None:
    rng = random.Random(3)
    vocabulary = [f"w{i}" for i in range(500)]
    texts = [" ".join(rng.choice(vocabulary) for _ in range(rng.choice([0, 1, 4, 5, 6, 80, 300]))) for _ in range(60)]
    # Longer than one block of shingles (2**19 values / 112 hashes = 4681 rows): crosses block edges.
    texts += ["", "!!! ...", " ".join(rng.choice(vocabulary) for _ in range(12_000)), "short text"]
    rng.shuffle(texts)
    batch = minhash_signatures_batch(texts)
    assert len(batch) == len(texts)
    for text, signature in zip(texts, batch):
        single = minhash_signatures(text)
        if single is None:
            assert signature is None and not normalize_for_dedup(text)
        else:
            assert signature is not None and signature.shape == (14, 8) and signature.dtype == np.uint64
            assert (signature == single).all()
    assert minhash_signatures_batch([]) == []
    assert minhash_signatures_batch(["", "..."]) == [None, None]
    other = minhash_signatures_batch(texts[:3], n_grams=3, buckets=4, hashes_per_bucket=2, seed=7)
    assert all(s is None or s.shape == (4, 2) for s in other)


# ------------------------------------------------------------------ exact Jaccard


def test_shingle_jaccard() -> None:
    words = [f"w{i}" for i in range(10)]  # 6 distinct 5-gram shingles
    text = " ".join(words)
    assert shingle_jaccard(text, text) == 1.0
    assert shingle_jaccard(text, text.upper().replace(" w3 ", ", w3; ")) == 1.0  # normalised first
    assert shingle_jaccard(text, " ".join(words[:-1] + ["x"])) == pytest.approx(5 / 7)  # 5 shared of 7
    assert shingle_jaccard(text, " ".join(f"y{i}" for i in range(10))) == 0.0
    assert shingle_jaccard("a b c", "a b c") == 1.0  # shorter than a shingle: one shingle
    assert shingle_jaccard("a b c", "a b d") == 0.0
    assert shingle_jaccard(text, " ".join(words[:6]), n_grams=3) == pytest.approx(4 / 8)
    assert shingle_jaccard("", "...") == 1.0 and shingle_jaccard("", "a") == 0.0


def test_jaccard_verifier_fetches_lazily_and_caches() -> None:
    texts = {
        "a": "one two three four five six",
        "b": "one two three four five seven",
        "c": "one two three four five six",
    }
    read: list[str] = []

    def lookup(doc_id: str) -> str:
        read.append(doc_id)
        return texts[doc_id]

    verify = jaccard_verifier(lookup, threshold=0.5)
    assert read == []  # nothing read until a pair is checked
    assert verify("a", "c") and not verify("a", "b") and not verify("c", "b")
    assert read == ["a", "c", "b"]  # each text read once
    assert (verify.checked, verify.rejected, verify.lookups) == (3, 2, 3)
    assert jaccard_verifier(texts, threshold=1 / 3)("a", "b")  # a mapping works too; >= threshold merges

    small = jaccard_verifier(lookup, threshold=0.5, cache_size=1)
    read.clear()
    small("a", "b"), small("a", "b")
    assert read == ["a", "b", "a", "b"]  # an LRU of one document re-reads
    with pytest.raises(ValueError, match="threshold"):
        jaccard_verifier(texts, threshold=1.5)


# --------------------------------------------------------- clustering and verification


class _Verifier:
    """verify() over a fixed set of similar pairs, logging every check."""

    def __init__(self, similar: set[frozenset[str]]) -> None:
        self.similar = similar
        self.calls: list[tuple[str, str]] = []

    def __call__(self, a: str, b: str) -> bool:
        self.calls.append((a, b))
        return frozenset((a, b)) in self.similar


def _pairs(*names: str) -> set[frozenset[str]]:
    return {frozenset(name) for name in names}


def test_a_chain_clusters_to_its_first_document() -> None:
    # A and C share no bucket; B shares one with each.
    docs = [("A", [1, 2, 3]), ("B", [1, 5, 6]), ("C", [7, 5, 8]), ("D", [9, 9, 9]), ("E", None)]
    assert cluster_by_bands(docs) == {"B": "A", "C": "A"}
    # With verification each link is checked, never A against C, and the chain holds.
    verify = _Verifier(_pairs("AB", "BC"))
    assert cluster_by_bands(docs, verify=verify) == {"B": "A", "C": "A"}
    assert verify.calls == [("A", "B"), ("B", "C")]
    # A link that fails verification cuts the chain there.
    assert cluster_by_bands(docs, verify=_Verifier(_pairs("AB"))) == {"B": "A"}


def test_verification_checks_newcomers_against_representatives() -> None:
    # All four share one bucket. Without verification they are one cluster.
    docs = [("A", [1]), ("B", [1]), ("C", [1]), ("D", [1]), ("E", [1])]
    assert cluster_by_bands(docs) == {"B": "A", "C": "A", "D": "A", "E": "A"}
    # A~B, C~D, and B~E (E resembles B, not A). C fails against A and becomes the bucket's
    # second representative, so its near-copy D is still found; E meets only the
    # representatives A and C (not B, a member), so it stays.
    verify = _Verifier(_pairs("AB", "CD", "BE"))
    assert cluster_by_bands(docs, verify=verify) == {"B": "A", "D": "C"}
    assert verify.calls == [("A", "B"), ("A", "C"), ("A", "D"), ("C", "D"), ("A", "E"), ("C", "E")]


def test_verification_checks_each_pair_once() -> None:
    # A and B share three buckets: one check, merged or not.
    docs = [("A", [1, 2, 3]), ("B", [1, 2, 3])]
    merged = _Verifier(_pairs("AB"))
    assert cluster_by_bands(docs, verify=merged) == {"B": "A"}
    rejected = _Verifier(set())
    assert cluster_by_bands(docs, verify=rejected) == {}
    assert merged.calls == rejected.calls == [("A", "B")]
    # Already in the cluster through an earlier bucket: no check needed.
    docs = [("A", [1, 0]), ("B", [1, 2]), ("C", [3, 2]), ("D", [1, 2])]
    verify = _Verifier(_pairs("AB", "BC", "AD"))
    assert cluster_by_bands(docs, verify=verify) == {"B": "A", "C": "A", "D": "A"}
    assert verify.calls == [("A", "B"), ("B", "C"), ("A", "D")]


def _near_duplicate_corpus() -> list[tuple[str, str]]:
    """Groups of lightly edited copies (exact shingle Jaccard > 0.84) among unrelated texts."""
    rng = random.Random(11)
    vocabulary = [f"w{i}" for i in range(3000)]
    docs: list[tuple[str, str]] = []
    for group in range(12):
        base = [rng.choice(vocabulary) for _ in range(300)]
        for copy in range(rng.randint(1, 4)):
            words = list(base)
            # An edit changes at most 5 of 296 shingles; two copies differ at <= 5 sites: J >= 271/321.
            for _ in range(copy):
                words[rng.randrange(len(words))] = rng.choice(vocabulary)
            docs.append((f"g{group}-c{copy}", " ".join(words)))
    rng.shuffle(docs)
    return docs


def test_clusters_are_keyed_by_id_and_independent_of_sharding() -> None:
    docs = _near_duplicate_corpus()
    texts = dict(docs)
    for a, b in itertools.combinations(docs, 2):
        same_group = a[0].split("-")[0] == b[0].split("-")[0]
        assert shingle_jaccard(a[1], b[1]) > 0.84 if same_group else shingle_jaccard(a[1], b[1]) < 0.05
    expected = minhash_dedup(docs)
    # Every copy of a group is found and mapped to the group's first document, by id.
    first_of_group: dict[str, str] = {}
    for doc_id, _ in docs:
        first_of_group.setdefault(doc_id.split("-")[0], doc_id)
    assert expected == {d: first_of_group[d.split("-")[0]] for d, _ in docs if first_of_group[d.split("-")[0]] != d}
    assert minhash_dedup(docs, verify_threshold=0.8) == expected

    for shard_size in (1, 7, len(docs)):
        bands: list[tuple[str, list[int] | None]] = []
        for lo in range(0, len(docs), shard_size):  # signatures computed per shard, as in the data stage
            shard = docs[lo : lo + shard_size]
            signatures = minhash_signatures_batch(text for _, text in shard)
            bands += [(doc_id, band_hashes(sig)) for (doc_id, _), sig in zip(shard, signatures)]
        assert cluster_by_bands(bands) == expected
        assert cluster_by_bands(iter(bands), verify=jaccard_verifier(texts, 0.8)) == expected
        assert candidate_ids(bands) == set(expected) | set(expected.values())

    # Renaming documents renames the result and nothing else.
    renamed = {doc_id: f"<urn:uuid:{i:04d}>" for i, (doc_id, _) in enumerate(reversed(docs))}
    result = minhash_dedup((renamed[d], t) for d, t in docs)
    assert result == {renamed[d]: renamed[k] for d, k in expected.items()}
