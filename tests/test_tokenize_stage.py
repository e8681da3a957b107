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
