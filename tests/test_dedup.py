"""Exact and MinHash deduplication."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.dedup import exact_dedup, minhash_dedup, minhash_signatures, normalize_for_dedup


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
