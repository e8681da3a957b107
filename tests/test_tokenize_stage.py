"""The tokenize stage's own checks."""

from __future__ import annotations

import pytest

from tasks.tokenize.stage import check_encodable, is_validation, token_dtype


def test_the_tokenize_stage_names_a_document_with_unencodable_text() -> None:
    check_encodable("<urn:uuid:ok>", "plain text, and U+FFFD: \ufffd")
    with pytest.raises(ValueError, match="<urn:uuid:bad>.*lone surrogate"):
        check_encodable("<urn:uuid:bad>", "broken \ud800 text")


def test_the_split_is_a_stable_function_of_the_document_id() -> None:
    ids = [f"<urn:uuid:{i:08d}>" for i in range(4000)]
    val = [i for i in ids if is_validation(i, 0.1)]
    assert val == [i for i in ids if is_validation(i, 0.1)]
    assert 300 < len(val) < 500
    assert not any(is_validation(i, 0.0) for i in ids)


def test_token_ids_use_the_smallest_integer_type_that_fits() -> None:
    import pyarrow as pa

    assert token_dtype(32_768) == pa.uint16() and token_dtype(65_536) == pa.uint16()
    assert token_dtype(65_537) == pa.uint32()


def test_tail_split_keeps_the_end_of_each_document_for_validation() -> None:
    from llmforge.config import TokenizeConfig
    from tasks.tokenize.stage import split_parts

    text = "".join(chr(ord("a") + i % 26) for i in range(1000))
    tail = TokenizeConfig(split="tail", val_fraction=0.1)
    assert split_parts("doc", text, tail) == [("train", text[:900]), ("val", text[900:])]  # nanoGPT's cut
    assert split_parts("doc", "x", tail) == [("val", "x")]  # nothing left to train on: no empty part
    documents = TokenizeConfig(split="documents", val_fraction=0.5)
    assert split_parts("doc", text, documents) == [("val" if is_validation("doc", 0.5) else "train", text)]


def test_the_tokenizer_never_sees_validation_text(tmp_path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from llmforge.config import TokenizeConfig
    from tasks.tokenize.stage import training_texts

    docs = tmp_path / "documents"
    docs.mkdir()
    ids = [f"d{i}" for i in range(40)]
    pq.write_table(pa.table({"id": ids, "text": [f"text of {i} " * 5 for i in ids]}), docs / "v0001-00000.parquet")
    by_documents = TokenizeConfig(val_fraction=0.3)
    seen = training_texts(docs, by_documents)
    assert seen == [f"text of {i} " * 5 for i in ids if not is_validation(i, 0.3)]
    by_tail = TokenizeConfig(split="tail", val_fraction=0.3, max_chars_per_doc=1000)
    assert training_texts(docs, by_tail) == [(f"text of {i} " * 5)[: int(len(f"text of {i} " * 5) * 0.7)] for i in ids]
