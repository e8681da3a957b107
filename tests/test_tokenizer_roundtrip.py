"""decode(encode(x)) == x on every shared text, each read with its real encoding, BOM and CRLF included."""

from __future__ import annotations

from pathlib import Path

import pytest

from model.tokenizer import BpeTokenizer, train_bpe

# How each file must be read (shared/data/SOURCES.md). Everything not listed is UTF-8,
# read strictly: a wrong guess fails loudly instead of round-tripping mojibake.
KNOWN_ENCODINGS = {"fr/germinal-zola-latin1-crlf.txt": "latin-1"}
# The Chinese file starts with a UTF-8 byte order mark. It is decoded with "utf-8", not
# "utf-8-sig": U+FEFF is then the text's first character, and the tokenizer must keep it
# (a tokenizer that silently dropped it could not reproduce the file).
BOM_FILE = "zh/hongloumeng.txt"
LATIN1_FILE = "fr/germinal-zola-latin1-crlf.txt"


def _read(root: Path, name: str) -> str:
    # read_bytes + decode, not read_text: text mode would turn CRLF into LF.
    return (root / name).read_bytes().decode(KNOWN_ENCODINGS.get(name, "utf-8"))


@pytest.fixture(scope="module")
def texts(shared_data: Path) -> dict[str, str]:
    root = shared_data / "text"
    names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.txt"))
    assert {BOM_FILE, LATIN1_FILE} <= set(names)
    return {name: _read(root, name) for name in names}


@pytest.fixture(scope="module")
def tok(texts: dict[str, str]) -> BpeTokenizer:
    # A small vocabulary trained on a slice of every file, so each script gets some
    # merges but the training stays fast; every byte remains encodable regardless.
    return train_bpe([t[:60_000] for t in texts.values()], 1024)


def test_file_encodings_are_what_sources_md_says(shared_data: Path, texts: dict[str, str]) -> None:
    raw = (shared_data / "text" / LATIN1_FILE).read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")  # so it really needs the explicit Latin-1 entry
    assert b"\r\n" in raw and "\r\n" in texts[LATIN1_FILE]
    assert any(c in texts[LATIN1_FILE] for c in "éèàç")
    assert (shared_data / "text" / BOM_FILE).read_bytes().startswith(b"\xef\xbb\xbf")
    assert texts[BOM_FILE][0] == "\ufeff"


@pytest.mark.slow  # ~2 s: every shared text, 8 MB
def test_round_trip_every_shared_text(tok: BpeTokenizer, texts: dict[str, str]) -> None:
    assert tok.vocab_size == 1024 and tok.encoder_backend == "tiktoken"
    encoded = tok.encode_batch(list(texts.values()))
    for (name, text), ids in zip(texts.items(), encoded):
        decoded = tok.decode(ids)
        assert decoded == text, f"{name}: first difference at {_first_difference(decoded, text)}"
        assert len(ids) < len(text.encode("utf-8")), name  # the merges compress every language


def test_bom_and_line_ends_survive(tok: BpeTokenizer, texts: dict[str, str]) -> None:
    bom_start = texts[BOM_FILE][:200]
    ids = tok.encode(bom_start)
    assert tok.decode(ids) == bom_start
    assert tok.decode(ids).startswith("\ufeff")
    assert b"".join(tok.token_bytes(i) for i in ids).startswith(b"\xef\xbb\xbf")
    crlf = texts[LATIN1_FILE][:5000]
    assert tok.decode(tok.encode(crlf)).count("\r\n") == crlf.count("\r\n") > 0


def test_round_trip_token_by_token(tok: BpeTokenizer, texts: dict[str, str]) -> None:
    # Byte-exact too: the tokens' bytes concatenate to the UTF-8 of the text, including
    # where a token holds only part of a character.
    for name, text in texts.items():
        sample = text[:20_000]
        ids = tok.encode(sample)
        assert b"".join(tok.token_bytes(i) for i in ids) == sample.encode("utf-8"), name


def _first_difference(a: str, b: str) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
