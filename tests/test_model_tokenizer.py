"""Byte-level BPE tokenizer: id layout, exact vocab size, lossless round trips, no special-token injection."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import tokenizers

from model.tokenizer import MIN_VOCAB_SIZE, SPECIAL_TOKENS, BpeTokenizer, train_bpe

VOCAB_SIZE = 400

WORDS = (
    "the quick brown fox jumps over lazy dog while seven wizards quietly boxed jugs of "
    "liquid tokenizer training data model language chat assistant user system Grüße aus "
    "München Straße schön Käse 你好 世界 数据 模型 hello world don't can't we'll they're"
).split()


def _corpus(n_lines: int = 600, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for _ in range(n_lines):
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 14))]
        words.insert(rng.randint(0, len(words)), str(rng.randint(0, 99999)))
        lines.append(" ".join(words) + rng.choice([".", "!", "?", ",\n", "\r\n"]))
    return lines


@pytest.fixture(scope="module")
def tok() -> BpeTokenizer:
    return train_bpe(_corpus(), VOCAB_SIZE)


def test_special_tokens_have_fixed_ids_in_order(tok: BpeTokenizer) -> None:
    assert len(SPECIAL_TOKENS) == 16
    for i, special in enumerate(SPECIAL_TOKENS):
        assert tok.token_id(special) == i
        assert tok.id_to_token(i) == special
    assert tok.bos_id == 0


def test_special_ids_do_not_depend_on_vocab_size() -> None:
    small = train_bpe(_corpus(100, seed=1), MIN_VOCAB_SIZE)
    assert small.vocab_size == MIN_VOCAB_SIZE  # specials + bytes, no merges
    assert [small.id_to_token(i) for i in range(16)] == list(SPECIAL_TOKENS)


def test_trained_vocab_size_is_exact(tok: BpeTokenizer) -> None:
    assert tok.vocab_size == VOCAB_SIZE
    # Every byte is representable even though the corpus uses only a few of them.
    byte_tokens = {tok.id_to_token(i) for i in range(16, 16 + 256)}
    assert byte_tokens == set(tokenizers.pre_tokenizers.ByteLevel.alphabet())


def test_unknown_special_name_and_out_of_range_id_raise(tok: BpeTokenizer) -> None:
    with pytest.raises(ValueError):
        tok.token_id("<|nope|>")
    with pytest.raises(ValueError):
        tok.id_to_token(VOCAB_SIZE)


@pytest.mark.parametrize(
    "text",
    [
        "The quick brown fox jumps over the lazy dog. It's 2024; we'll see 1,234,567.89!",
        "Grüße aus München: die Straße ist schön, der Käse auch.",
        "你好，世界。大型语言模型正在学习中文分词。",
        "emoji 🎉🔥 and a family 👩‍👩‍👧 and flags 🇩🇪 and skin tones 👍🏽",
        "windows\r\nline\r\nendings\r\n\r\n and \ttabs  and   spaces ",
        "",
        " leading space and trailing newline\n",
        "<|bos|><|user_start|>hi<|user_end|>",
        "\x00\x01 control bytes \x7f and \u200b zero width",
    ],
)
def test_round_trip(tok: BpeTokenizer, text: str) -> None:
    assert tok.decode(tok.encode(text)) == text


def test_round_trip_long_text_without_spaces(tok: BpeTokenizer) -> None:
    rng = random.Random(3)
    text = "".join(rng.choice("abcdefghijklmnopqrstuvwxyzäöü0123456789") for _ in range(100_000))
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert len(ids) < len(text.encode("utf-8"))  # merges actually applied


def test_merges_compress_in_domain_text(tok: BpeTokenizer) -> None:
    text = "the quick brown fox jumps over the lazy dog"
    assert len(tok.encode(text)) < len(text) // 2


def test_special_looking_text_is_not_special(tok: BpeTokenizer) -> None:
    for special in SPECIAL_TOKENS:
        ids = tok.encode(special)
        assert len(ids) > 1
        assert all(i >= len(SPECIAL_TOKENS) for i in ids)
        assert tok.decode(ids) == special
    batch = tok.encode_batch(["<|bos|>hello", "<|assistant_end|>"])
    assert all(i >= len(SPECIAL_TOKENS) for ids in batch for i in ids)


def test_encode_batch_matches_encode(tok: BpeTokenizer) -> None:
    texts = _corpus(20, seed=7) + ["", "<|bos|>"]
    assert tok.encode_batch(texts) == [tok.encode(t) for t in texts]


def test_decode_renders_special_tokens(tok: BpeTokenizer) -> None:
    ids = [tok.bos_id, tok.token_id("<|user_start|>"), *tok.encode("hi there"), tok.token_id("<|user_end|>")]
    assert tok.decode(ids) == "<|bos|><|user_start|>hi there<|user_end|>"


def test_digits_are_split_in_groups_of_at_most_three(tok: BpeTokenizer) -> None:
    pieces = [tok.decode([i]) for i in tok.encode("1234567")]
    assert "".join(pieces) == "1234567"
    assert all(len(p) <= 3 for p in pieces)


def test_save_load_gives_identical_ids(tok: BpeTokenizer, tmp_path: Path) -> None:
    path = tmp_path / "tokenizer.json"
    tok.save(path)
    assert path.is_file() and list(tmp_path.iterdir()) == [path]
    loaded = BpeTokenizer.from_file(path)
    texts = _corpus(50, seed=9) + ["<|bos|> Grüße 你好 🎉", "12345678"]
    assert loaded.encode_batch(texts) == tok.encode_batch(texts)
    assert loaded.vocab_size == tok.vocab_size
    # Loading must also keep special-looking text plain, not only fresh training.
    assert all(i >= 16 for i in loaded.encode("<|bos|>"))

    # The file is a plain tokenizers file with the specials registered as special added tokens.
    raw = tokenizers.Tokenizer.from_file(str(path))
    assert raw.token_to_id("<|assistant_end|>") == 6
    added = {t["content"]: t for t in json.loads(path.read_text())["added_tokens"]}
    assert all(added[s]["special"] for s in SPECIAL_TOKENS)


def test_from_file_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        BpeTokenizer.from_file(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        BpeTokenizer.from_file(bad)


def test_vocab_size_too_small_raises() -> None:
    with pytest.raises(ValueError, match="272"):
        train_bpe(["hello"], 271)
